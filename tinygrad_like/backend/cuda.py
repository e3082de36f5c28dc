"""The "cuda" device: CuPy arrays on an NVIDIA GPU.

Elementwise, reduce and movement ops run through CuPy's NumPy-compatible API
with the same op code as "cpu"; matmul, softmax, log-softmax and cross-entropy
run the Triton kernels in `tinygrad_like.kernels.triton` (backend/triton_kernels.py).
"""

from __future__ import annotations

from types import SimpleNamespace


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

    from tinygrad_like.backend.triton_kernels import triton_kernel_table

    fallback = SimpleNamespace(matmul=cupy.matmul, erf=cupyx.scipy.special.erf)
    return CudaBackend("cuda", cupy, triton_kernel_table(fallback, interpret=False), seed)
