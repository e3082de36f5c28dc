"""The "cuda" device: CuPy arrays on an NVIDIA GPU.

Elementwise, reduce and movement ops run through CuPy's NumPy-compatible API
with the same op code as "cpu"; matmul, softmax, log-softmax and cross-entropy
run the Triton kernels in `tinygrad_like.kernels.triton` (backend/triton_kernels.py);
pooling, embedding backward, dropout and the fused optimizer steps run the CUDA C kernels
in `tinygrad_like.kernels.cuda`, compiled by NVRTC through cupy.RawModule. Their launchers
read tg.use_deterministic_algorithms at each call and run segment_sum.cu in place of
atomics while it is on (tinygrad_like/determinism.py).

The backend lives on one GPU, "cuda:<index>" on first use (CuPy's current device for plain
"cuda"): it makes that GPU current, and its kernels run with it current, so allocations,
NVRTC modules and Triton launches (whose driver asks CuPy, kernels/triton/launch.py) agree.
Naming another index later in the process raises. Triton kernels launch on CuPy's current
stream, as CuPy's own kernels do.

bfloat16, which CuPy lacks, is kept as 16-bit storage tagged bfloat16 (kernels/triton/
bfloat16_array.py): the Triton kernels take it ('*bf16' pointers), and everything else
computes on it in float32 and rounds each result once, as PyTorch's CUDA kernels do. The
backend's `xp` is CuPy wrapped to that rule (`Bfloat16Arrays`), so the ops' code is the same
as on "cpu"; `xp.astype` is the cast that reaches bfloat16.
"""

from __future__ import annotations

import functools

import numpy as np


def is_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver or no device: all mean "not available"
        return False


def make_backend(seed: int, index: int | None = None):
    """The "cuda" backend on GPU `index` ("cuda:1" -> 1; None: CuPy's current device)."""
    if not is_available():
        raise RuntimeError("device 'cuda' is not available: it needs CuPy and an NVIDIA GPU "
                           "(install the 'cuda' extra on a machine with a GPU)")
    import cupy
    import cupyx.scipy.special

    from tinygrad_like.backend import Backend
    from tinygrad_like.kernels.triton.bfloat16_array import (BFLOAT16, Bfloat16Array,
                                                             Bfloat16Arrays)

    count = cupy.cuda.runtime.getDeviceCount()
    if index is None:
        index = cupy.cuda.runtime.getDevice()
    elif not 0 <= index < count:
        raise RuntimeError(f"device 'cuda:{index}' is not available: CuPy sees {count} GPU(s), "
                           f"'cuda:0' to 'cuda:{count - 1}'")
    cupy.cuda.Device(index).use()

    class CudaBackend(Backend):
        def manual_seed(self, seed: int) -> None:
            with cupy.cuda.Device(index):  # the generator's state lives on the backend's GPU
                super().manual_seed(seed)

        def asarray(self, data, dtype=None):
            if isinstance(data, Bfloat16Array):
                return data if dtype is None or np.dtype(dtype) == BFLOAT16 else \
                    data.astype(dtype)
            kind = dtype if dtype is not None else getattr(data, "dtype", None)
            with cupy.cuda.Device(index):
                if kind is not None and np.dtype(kind) == BFLOAT16:
                    if isinstance(data, cupy.ndarray):  # on the device: round it there
                        return xp.astype(data, BFLOAT16)
                    bits = np.ascontiguousarray(np.asarray(data, dtype=BFLOAT16))
                    return Bfloat16Array(cupy.asarray(bits.view(np.uint16)))
                return cupy.asarray(data, dtype=dtype)

        def to_numpy(self, array):
            if isinstance(array, Bfloat16Array):
                return cupy.asnumpy(array.bits).view(BFLOAT16)
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

    xp = Bfloat16Arrays(cupy)
    # add and sub round a Python float operand to bfloat16, mul and div keep it float32, as
    # the "cpu" kernel table does (backend/cpu_bfloat16.py)
    cupy_kernels = {"add": xp.add, "sub": xp.subtract, "mul": xp.opmath("multiply"),
                    "div": xp.opmath("true_divide"),
                    "erf": xp.wrap(cupyx.scipy.special.erf)}
    # CUDA C kernels (kernels/cuda/*.cu): pooling, embedding backward, scatter-add, dropout,
    # and the fused multi-tensor optimizer steps, whose half precision the NumPy rule serves
    cuda_c_kernels = cuda_c.kernel_table(CupyRuntime(), references={
        "sgd_step": reference_optim.sgd_step, "adam_step": reference_optim.adam_step})
    launched = {**cuda_c_kernels, **triton_kernels(interpret=False)}
    own = {**cupy_kernels, **{name: _on_device(cupy, index, kernel)
                              for name, kernel in launched.items()}}
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
    backend = CudaBackend("cuda", xp, table, seed)
    backend.index = index
    return backend


def _on_device(cupy, index: int, kernel):
    """`kernel`, run with GPU `index` current: a thread other than the one that built the
    backend starts on device 0, and its launches must still reach the backend's GPU."""
    @functools.wraps(kernel)
    def on_device(*args, **kwargs):
        with cupy.cuda.Device(index):
            return kernel(*args, **kwargs)

    on_device.func = getattr(kernel, "func", kernel)  # backend_info names the kernel's module
    return on_device
