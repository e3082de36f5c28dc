"""GEMMs on the native extension's own threads: `matmul` for every large float GEMM of the
"cpu" device, and `batched_gemm` for the Winograd convolution.

Given to NumPy, a GEMM runs on NumPy's BLAS, which threads over a pool of its own whose idle
threads spin for a while after each call. Two pools then take turns on the same cores, each
finding the other's threads still spinning: ours after the Winograd transforms, and another
library's after its own work (PyTorch's OpenMP team after its step; our spinning BLAS threads
slowed PyTorch's step as much). The native pool's workers sleep between jobs, and a job's
tasks are claimed one at a time, so a worker that lost its core costs its share and no more
(docs/performance.md, "GEMMs on the native pool").

`_C.matmul` cuts a GEMM into blocks of rows or columns and shares them out over `_C`'s pool,
and `_C.batched_gemm` a batch of them; each task calls BLAS's Fortran sgemm/dgemm for its
block. The extension links no BLAS of its own: it is handed the routines' addresses, from
the OpenBLAS NumPy's wheel bundles (the library np.matmul itself calls) or, where NumPy has
no such library, from SciPy's `scipy.linalg.cython_blas`, which publishes them for compiled
code (the way Numba reaches BLAS too). BLAS must not thread inside our tasks, so for the
length of each call `_C` keeps every OpenBLAS in the process to one thread, through the
libraries' own openblas_set_num_threads, whose addresses threadpoolctl finds. (Another
Python thread running a GEMM of its own meanwhile runs it on one thread.) Where threadpoolctl
is missing, or a BLAS in the process is not an OpenBLAS on its own threads (MKL, or OpenBLAS
on OpenMP, whose counts are per thread), the GEMMs stay with NumPy and `status()` says why.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
from pathlib import Path

import numpy as np

from tinygrad_like.backend import cpu, cpu_winograd, native

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@functools.cache
def _single_threaded_blas():
    """(where the GEMMs run, in words, "") once _C has the BLAS routines and every BLAS
    library's thread controls, or (None, why not)."""
    if not native.available():
        return None, f"tinygrad_like._C is not in use: {native.reason()}"
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError as error:
        return None, f"no threadpoolctl ({error})"
    libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    if not libraries:
        return None, "threadpoolctl finds no BLAS library to keep to one thread"
    controls = []
    for library in libraries:
        if library.internal_api != "openblas" or library.threading_layer != "pthreads":
            return None, (f"{library.internal_api} on {library.threading_layer} cannot be "
                          "kept to one thread from the native pool")
        controls.append((_address(library.dynlib, "openblas_set_num_threads"),
                         _address(library.dynlib, "openblas_get_num_threads")))
    routines = _numpy_gemms(libraries) or _scipy_gemms()
    if routines is None:
        return None, "neither NumPy's OpenBLAS nor SciPy publishes sgemm and dgemm"
    sgemm, dgemm, ilp64, where = routines
    native._C.set_blas(sgemm, dgemm, ilp64, controls)
    found = ", ".join(sorted({f"{lib.internal_api} {lib.version}" for lib in libraries}))
    return f"{where}, single-threaded ({found} found)", ""


def _numpy_gemms(libraries):
    """(sgemm, dgemm, ilp64, "NumPy's OpenBLAS") from the OpenBLAS that np.matmul calls, the
    library in NumPy's own folder (the wheels bundle it), or None where there is none.

    NumPy's wheels carry a newer OpenBLAS than SciPy's, and it ran the benchmarks' GEMMs
    up to a quarter faster (docs/performance.md, "GEMMs on the native pool")."""
    numpy_home = Path(np.__file__).resolve().parent
    for library in libraries:
        path = Path(library.filepath).resolve()
        if path.parent.name != "numpy.libs" and numpy_home not in path.parents:
            continue
        try:
            sgemm, dgemm = (_address(library.dynlib, name) for name in ("sgemm_", "dgemm_"))
        except RuntimeError:
            return None
        config = _function(library.dynlib, "openblas_get_config")
        config.restype = ctypes.c_char_p
        return sgemm, dgemm, b"USE64BITINT" in config(), "NumPy's OpenBLAS on _C's pool"
    return None


def _scipy_gemms():
    """(sgemm, dgemm, False, "SciPy's BLAS") from `scipy.linalg.cython_blas`, which publishes
    Fortran sgemm and dgemm (32-bit integers) for compiled code, or None without SciPy."""
    try:
        from scipy.linalg import cython_blas
    except ImportError:
        return None
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object,
                                                                   ctypes.c_char_p]
    # Cython names its capsules by the C signature, so each is asked for its own name
    sgemm, dgemm = (get_pointer(capsule, get_name(capsule)) for capsule in
                    (cython_blas.__pyx_capi__["sgemm"], cython_blas.__pyx_capi__["dgemm"]))
    return sgemm, dgemm, False, "SciPy's BLAS on _C's pool"


def _function(dynlib, name: str):
    """OpenBLAS's function `name` in `dynlib`, under whichever of the names the wheels give
    it (SciPy's and NumPy's builds prefix and suffix their symbols)."""
    for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
        function = getattr(dynlib, f"{prefix}{name}{suffix}", None)
        if function is not None:
            return function
    raise RuntimeError(f"native_blas: {dynlib._name} has no {name}")


def _address(dynlib, name: str) -> int:
    return ctypes.cast(_function(dynlib, name), ctypes.c_void_p).value


def available() -> bool:
    return _single_threaded_blas()[0] is not None


def status() -> str:
    """Where the large GEMMs run, for tg.backend_info()."""
    where, why = _single_threaded_blas()
    if where is None:
        return f"NumPy's matmul ({why})"
    if native._C.packed_gemm():  # kernels/cpu/packed_gemm.h
        return f"_C's own AVX-512 GEMM for float32, {where} for the rest"
    return where


def batched_gemm(a, b, transpose_b=False, into=None):
    """out[p] = a[p] @ b[p] (b[p]^T with transpose_b) for every p, added into `into` if given,
    as cpu_winograd.batched_gemm, with the matrices of the batch shared out over _C's pool.

    Operands of one float32 or float64 dtype go to _C (into must be C-contiguous to be
    written there); anything else goes to cpu_winograd.batched_gemm."""
    if (not available() or a.dtype not in _FLOATS or b.dtype != a.dtype
            or (into is not None and (into.dtype != a.dtype or not into.flags.c_contiguous))):
        return cpu_winograd.batched_gemm(a, b, transpose_b, into)
    return native._C.batched_gemm(np.ascontiguousarray(a), np.ascontiguousarray(b),
                                  transpose_b, into)


# Below this many multiply-adds np.matmul takes the GEMM: OpenBLAS runs GEMMs this small on
# the calling thread, so its pool never wakes, and NumPy's call costs less than ours.
NATIVE_MATMUL_WORK = 1 << 18


def matmul(a, b, bias=None):
    """np.matmul(a, b) (+ bias), with the large float32/float64 GEMMs on _C's pool
    (`_C.matmul`).

    Two matrices, or stacks of them whose batch shapes are equal or one of them 1 (or 2-D),
    of one float dtype and at least NATIVE_MATMUL_WORK multiply-adds go to _C; a transposed
    view goes as its stored matrix with BLAS's trans flag, and a bias vector of their dtype
    is added by the GEMM itself. Everything else is np.matmul, the bias added after."""
    if (a.ndim < 2 or b.ndim < 2 or max(a.ndim, b.ndim) > 3 or a.dtype not in _FLOATS
            or b.dtype != a.dtype or not available()):
        return cpu.numpy_gemm(a, b, bias)
    batch_a = a.shape[0] if a.ndim == 3 else 1
    batch_b = b.shape[0] if b.ndim == 3 else 1
    if (batch_a != batch_b and 1 not in (batch_a, batch_b)) or a.shape[-1] != b.shape[-2] \
            or max(batch_a, batch_b) * a.shape[-2] * a.shape[-1] * b.shape[-1] \
            < NATIVE_MATMUL_WORK \
            or (bias is not None and (bias.dtype != a.dtype or bias.shape != b.shape[-1:])):
        return cpu.numpy_gemm(a, b, bias)  # np.matmul names a shape mismatch itself
    (stored_a, transpose_a), (stored_b, transpose_b) = _as_stored(a), _as_stored(b)
    out = native._C.matmul(stored_a, stored_b, transpose_a, transpose_b,
                           None if bias is None else np.ascontiguousarray(bias))
    return out if max(a.ndim, b.ndim) == 3 else out[0]


def _as_stored(x):
    """x as (C-contiguous stack of matrices, whether to transpose each): a transposed view
    is read in place, anything else strided is copied."""
    stack = x if x.ndim == 3 else x[None]
    if stack.flags.c_contiguous:
        return stack, False
    transposed = stack.transpose(0, 2, 1)
    if transposed.flags.c_contiguous:
        return transposed, True
    return np.ascontiguousarray(stack), False
