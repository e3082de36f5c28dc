"""The "cuda" device: CuPy arrays on an NVIDIA GPU.

Elementwise, reduce and movement ops run through CuPy's NumPy-compatible API
with the same op code as "cpu". The custom Triton and CUDA C kernels arrive
with the GPU issues; until then matmul is cuBLAS through CuPy.
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

    kernels = SimpleNamespace(matmul=cupy.matmul, erf=cupyx.scipy.special.erf)
    return CudaBackend("cuda", cupy, kernels, seed)
