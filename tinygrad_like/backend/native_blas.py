"""GEMMs on the native extension's own threads: `batched_gemm`, for the Winograd convolution.

The Winograd conv2d alternates native transforms, which run on `_C`'s worker pool, with 36
GEMMs. Given to NumPy, the GEMMs run on NumPy's BLAS, which threads over a pool of its own
whose idle threads spin for a while after each call; so two pools took turns on the same
cores, each finding the other's threads still spinning, and the conv2d benchmark step ran
well behind PyTorch's (docs/performance.md, "Winograd GEMMs on the native pool").

`_C.batched_gemm` shares the batch out over `_C`'s pool, and each task calls BLAS for its
matrix. That BLAS is SciPy's: `scipy.linalg.cython_blas` publishes Fortran sgemm and dgemm
as function pointers for compiled code (the way Numba reaches BLAS too), so the extension
links no BLAS of its own. It must not thread inside our tasks, so for the length of each
call threadpoolctl keeps every BLAS library it finds in the process to one thread. (The
pointers lead to SciPy's Cython wrappers, not into the library behind them, so which of
the libraries is SciPy's is not known here; limiting NumPy's too costs nothing, as nothing
calls it meanwhile, short of another Python thread running a GEMM of its own, which then
runs on one thread.) Where SciPy or threadpoolctl is missing, or threadpoolctl finds no
BLAS to limit, the GEMMs stay with NumPy (`cpu_winograd.batched_gemm`) and `status()` says
why.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from tinygrad_like.backend import cpu_winograd, native

# One caller at a time sets the BLAS to one thread and back, so that two threads in here
# cannot restore each other's settings out of order; _C's pool runs one job at a time anyway.
_LIMIT_LOCK = threading.Lock()
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@functools.cache
def _single_threaded_blas():
    """(a threadpoolctl controller of the process's BLAS libraries, "") or (None, why not)."""
    if not native.available():
        return None, f"tinygrad_like._C is not in use: {native.reason()}"
    try:
        from scipy.linalg import cython_blas
        from threadpoolctl import ThreadpoolController
    except ImportError as error:
        return None, f"no SciPy BLAS or threadpoolctl ({error})"
    controller = ThreadpoolController().select(user_api="blas")
    if not controller.lib_controllers:
        return None, "threadpoolctl finds no BLAS library to keep to one thread"
    native._C.set_blas(cython_blas.__pyx_capi__["sgemm"], cython_blas.__pyx_capi__["dgemm"])
    return controller, ""


def available() -> bool:
    return _single_threaded_blas()[0] is not None


def status() -> str:
    """Where the Winograd GEMMs run, for tg.backend_info()."""
    controller, why = _single_threaded_blas()
    if controller is None:
        return f"NumPy's matmul ({why})"
    libraries = ", ".join(sorted({f"{info['internal_api']} {info['version']}"
                                  for info in controller.info()}))
    return f"_C's pool through SciPy's BLAS, single-threaded ({libraries} found)"


def batched_gemm(a, b, transpose_b=False, into=None):
    """out[p] = a[p] @ b[p] (b[p]^T with transpose_b) for every p, added into `into` if given,
    as cpu_winograd.batched_gemm, with the matrices of the batch shared out over _C's pool.

    Operands of one float32 or float64 dtype go to _C (into must be C-contiguous to be
    written there); anything else goes to cpu_winograd.batched_gemm."""
    controller, _ = _single_threaded_blas()
    if (controller is None or a.dtype not in _FLOATS or b.dtype != a.dtype
            or (into is not None and (into.dtype != a.dtype or not into.flags.c_contiguous))):
        return cpu_winograd.batched_gemm(a, b, transpose_b, into)
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    with _LIMIT_LOCK, controller.limit(limits=1):
        return native._C.batched_gemm(a, b, transpose_b, into)
