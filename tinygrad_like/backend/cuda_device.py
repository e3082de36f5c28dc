"""The "cuda" device: CuPy arrays on an NVIDIA GPU.

Elementwise, reduce and movement ops run through CuPy's NumPy-compatible API
with the same op code as "cpu"; matmul, softmax, log-softmax and cross-entropy
run the Triton kernels in `tinygrad_like.kernels.triton` (backend/triton_kernels.py);
pooling, embedding backward, dropout and the fused optimizer steps run the CUDA C kernels
in `tinygrad_like.kernels.cuda`, compiled by NVRTC through cupy.RawModule. Their launchers
read tg.use_deterministic_algorithms at each call and run segment_sum.cu in place of
atomics while it is on (tinygrad_like/determinism.py).
"""

from __future__ import annotations

import numpy as np


def is_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver or no device: all mean "not available"
        return False


def make_backend(seed: int):
    if not is_available():
        raise RuntimeError("device 'cuda' is not available: it needs CuPy and an NVIDIA GPU "
                           "(install the 'cuda' extra on a machine with a GPU)")
    import cupy
    import cupyx.scipy.special

    from tinygrad_like.backend import Backend

    class CudaBackend(Backend):
        def to_numpy(self, array):
            return cupy.asnumpy(array)

        # cuRAND keeps one state per GPU thread in a device buffer, which CuPy's Generator
        # exposes only as the private `bit_generator._state`: its bytes are the position
        def _generator_state(self):
            return None, cupy.asnumpy(self.rng.bit_generator._state).tobytes()

        def _restored_generator(self, seed, generator_state, payload):
            rng = cupy.random.default_rng(seed)
            states = rng.bit_generator._state
            if len(payload) != states.nbytes:
                raise ValueError(f"the saved cuRAND state has {len(payload)} bytes, this "
                                 f"generator's {states.nbytes} (saved with another CuPy?)")
            states.set(np.frombuffer(payload, dtype=states.dtype))
            return rng

    from tinygrad_like.backend import cpu, reference_norm, reference_optim, reference_rnn
    from tinygrad_like.backend.table import build_table
    from tinygrad_like.backend.triton_kernels import triton_kernels
    from tinygrad_like.kernels import cuda as cuda_c
    from tinygrad_like.kernels.cuda.runtime import CupyRuntime

    cupy_kernels = {"add": cupy.add, "sub": cupy.subtract, "mul": cupy.multiply,
                    "div": cupy.true_divide, "erf": cupyx.scipy.special.erf}
    # CUDA C kernels (kernels/cuda/*.cu): pooling, embedding backward, scatter-add, dropout,
    # and the fused multi-tensor optimizer steps, whose half precision the NumPy rule serves
    cuda_c_kernels = cuda_c.kernel_table(CupyRuntime(), references={
        "sgd_step": reference_optim.sgd_step, "adam_step": reference_optim.adam_step})
    own = {**cupy_kernels, **cuda_c_kernels, **triton_kernels(interpret=False)}
    # the NumPy references of these use only array methods and ufuncs, which CuPy serves
    numpy_on_cupy = {"sum": cpu.reduce_sum, "relu": cpu.relu, "relu_backward": cpu.relu_backward,
                     "layer_norm": reference_norm.layer_norm,
                     "layer_norm_backward": reference_norm.layer_norm_backward,
                     "gru_gates": reference_rnn.gru_gates,
                     "gru_gates_backward": reference_rnn.gru_gates_backward,
                     "gru_sequence": reference_rnn.gru_sequence,
                     "gru_sequence_backward": reference_rnn.gru_sequence_backward,
                     "lstm_gates": reference_rnn.lstm_gates,
                     "lstm_gates_backward": reference_rnn.lstm_gates_backward}
    table = build_table("cuda", own, fallbacks=numpy_on_cupy, lender="NumPy")
    return CudaBackend("cuda", cupy, table, seed)
