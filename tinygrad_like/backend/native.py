"""The optional native extension `tinygrad_like._C` (C++ kernels in kernels/cpu/): its loader
and controls.

`_C` is the loaded module, or None when the extension is not in use (`reason()` says why);
the per-op kernel-table wrappers around it are backend/native_kernels.py's. Setting the
environment variable TINYGRAD_LIKE_NUMPY=1 before the "cpu" backend is first used keeps
every NumPy kernel, so both paths can be compared on one machine.

The kernels are built once per instruction-set level (CMakeLists.txt): `_C` for the portable
baseline and, on x86-64, `_C_x86_64_v3` (AVX2+FMA) and `_C_x86_64_v4` (AVX-512). The best
level this CPU runs is imported; TINYGRAD_LIKE_ISA=x86-64-v4|x86-64-v3|baseline forces one
(an error if the CPU cannot run it), so that a machine can test every level it runs: their
roundings differ where a kernel fuses multiply-adds or sums in vector lanes.
"""

from __future__ import annotations

import importlib
import os

ENV_FORCE_NUMPY = "TINYGRAD_LIKE_NUMPY"
ENV_ISA = "TINYGRAD_LIKE_ISA"
# instruction-set level -> the module of the kernels built for it, best level first
ISA_MODULES = {"x86-64-v4": "_C_x86_64_v4", "x86-64-v3": "_C_x86_64_v3", "baseline": "_C"}


def _load():
    if os.environ.get(ENV_FORCE_NUMPY, "") not in ("", "0"):
        return None, f"disabled by {ENV_FORCE_NUMPY}={os.environ[ENV_FORCE_NUMPY]}"
    try:
        from tinygrad_like import _C as baseline  # always built; it knows what the CPU runs
    except ImportError as error:
        return None, f"not built ({error}); reinstall with CMake and a C++ compiler to build it"
    levels = list(baseline.cpu_isa_levels())
    forced = os.environ.get(ENV_ISA, "")
    if forced:
        return _forced_level(forced, levels), ""
    for level in levels:  # best first; a level whose build is missing yields to the next
        try:
            return importlib.import_module(f"tinygrad_like.{ISA_MODULES[level]}"), ""
        except ImportError:
            continue
    return baseline, ""


def _forced_level(level: str, levels: list):
    """The module for TINYGRAD_LIKE_ISA=level; asking for what cannot run here is an error,
    not a quiet fallback, so that a run meant to test a level never tests another."""
    if level not in ISA_MODULES:
        raise ValueError(f"{ENV_ISA}={level!r}: expected one of {', '.join(ISA_MODULES)}")
    if level not in levels:
        raise RuntimeError(f"{ENV_ISA}={level}: this CPU cannot run it (it runs "
                           f"{', '.join(levels)})")
    try:
        return importlib.import_module(f"tinygrad_like.{ISA_MODULES[level]}")
    except ImportError as error:
        raise RuntimeError(f"{ENV_ISA}={level}: its build of the kernels is missing "
                           f"({error})") from None


_C, _reason = _load()


def set_num_threads(threads: int) -> None:
    """Threads of the native kernels' parallel loops (0: one per CPU this process may use).

    They are the extension's own, separate from BLAS's and PyTorch's pools, and sleep between
    kernels; the benchmarks pin all three to the same count."""
    if _C is not None:
        _C.set_num_threads(int(threads))


def get_num_threads() -> int:
    return _C.get_num_threads() if _C is not None else 1


def empty_cache() -> None:
    """Hand the freed output blocks the native kernels keep for reuse back to the system.

    The kernels' large outputs come from a cache of freed blocks (kernels/cpu/buffer_cache.h
    says why), which holds at most `cache_limit()` bytes while they are unused."""
    if _C is not None:
        _C.empty_cache()


def set_cache_limit(limit_bytes: int) -> None:
    """Most bytes of freed output blocks kept for reuse (0: none; default 1 GiB)."""
    if _C is not None:
        _C.set_cache_limit(int(limit_bytes))


def cache_limit() -> int:
    return _C.cache_limit() if _C is not None else 0


def cached_bytes() -> int:
    """Bytes of freed output blocks held for reuse right now."""
    return _C.cached_bytes() if _C is not None else 0


def set_streaming_min_bytes(size_bytes: int) -> None:
    """Smallest output the elementwise kernels write with streaming stores, which skip the
    cache (0: the default, 8 MiB; kernels/cpu/streaming.h says why)."""
    if _C is not None:
        _C.set_streaming_min_bytes(int(size_bytes))


def streaming_min_bytes() -> int:
    return _C.streaming_min_bytes() if _C is not None else 0


def available() -> bool:
    """True when tinygrad_like._C is built, importable and not disabled by the environment."""
    return _C is not None


def reason() -> str:
    """Why the extension is not in use ("" when it is)."""
    return _reason


def build_info() -> dict:
    """How the loaded extension was built and runs: threads, instruction-set level, compiler."""
    return dict(_C.build_info()) if _C is not None else {}


def cpu_isa_levels() -> list[str]:
    """The instruction-set levels this CPU runs, best first (keys of ISA_MODULES)."""
    return list(_C.cpu_isa_levels()) if _C is not None else []
