"""Running the CUDA C kernels two ways: on the GPU through CuPy, on the CPU through C++.

A runtime is what a launcher (pooling_launch.py, embedding_launch.py, ...) needs
from its device: the array module (`xp`), `launch(source, kernel, grid, block, args)`,
the address of an array (`pointer`) and a host-to-device copy (`to_device`).

- `CupyRuntime` ("cuda") compiles each .cu with NVRTC through `cupy.RawModule`, once per
  process, when one of its kernels is first launched.
- `CpuShimRuntime` compiles the same .cu as C++ with g++ (cpu_shim.h maps threadIdx,
  blockIdx, atomicAdd, ... and runs the grid one thread after another) into a shared
  library and calls the kernel's exported launcher through ctypes, with NumPy arrays. It
  exists so that every kernel, and the launch arithmetic of its launcher, can be checked
  against the NumPy reference on a machine with no GPU. `scheduled(seed)` gives the same
  runtime running each grid's threads in a shuffled order, to check that a kernel's result
  does not depend on the schedule.

Kernel arguments are arrays and NumPy scalars whose dtype is the C parameter's type
(np.int32 for int, np.int64 for long long, np.float32 for float, ...): CuPy passes a
scalar by its dtype, and the CPU launcher reads each argument through a pointer to a value
of the parameter's type, so a Python int or float (whose C type would be a guess) is
refused.
"""

from __future__ import annotations

import copy
import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

SOURCE_DIR = Path(__file__).resolve().parent
BLOCK = 256  # threads per block for every elementwise-style kernel here
MAX_GRID = 65535  # blocks; grid-stride loops cover any larger problem
# NVRTC options per source file beyond --std=c++17; optimizer steps must round exactly as
# the NumPy optimizers do, so they may not contract a * b + c into one fused multiply-add
EXTRA_OPTIONS = {"optimizer.cu": ("--fmad=false",)}
FLOAT_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def grid_1d(work_items: int, block: int = BLOCK) -> int:
    """Blocks for a grid-stride loop over `work_items`: one item per thread, capped."""
    return max(1, min(-(-work_items // block), MAX_GRID))


def float_suffix(op: str, dtype) -> str:
    """The kernel-name suffix for a dtype ("f32", "f64"); TypeError for any other dtype."""
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_SUFFIX:
        raise TypeError(f"{op}: the CUDA kernel supports float32 and float64, got {dtype}")
    return FLOAT_SUFFIX[dtype]


def source_text(source: str) -> str:
    return (SOURCE_DIR / source).read_text()


class CupyRuntime:
    """Kernels compiled by NVRTC (cupy.RawModule), launched on the current CUDA device."""

    def __init__(self):
        import cupy

        self.xp = cupy
        self._modules: dict[str, object] = {}

    def module(self, source: str):
        if source not in self._modules:
            options = ("--std=c++17",) + EXTRA_OPTIONS.get(source, ())
            self._modules[source] = self.xp.RawModule(code=source_text(source), options=options)
        return self._modules[source]

    def launch(self, source: str, kernel: str, grid: int, block: int, args) -> None:
        _check_arguments(kernel, args)
        self.module(source).get_function(kernel)((grid,), (block,), tuple(args))

    @staticmethod
    def pointer(array) -> int:
        return array.data.ptr

    def to_device(self, host_array):
        return self.xp.asarray(host_array)


class CpuShimRuntime:
    """Kernels compiled as C++ with cpu_shim.h into `build_dir`, run sequentially on the CPU."""

    xp = np
    schedule_seed = 0  # 0: threads in index order; else the seed of a shuffled order

    def __init__(self, build_dir, compiler: str | None = None):
        self.build_dir = Path(build_dir)
        self.compiler = compiler or os.environ.get("CXX", "g++")
        self._libraries: dict[str, ctypes.CDLL] = {}

    def scheduled(self, seed: int) -> "CpuShimRuntime":
        """This runtime, sharing its builds, running every grid's threads in the pseudo-random
        order drawn from `seed` (cpu_shim.h's tg_set_schedule; 0: index order)."""
        runtime = copy.copy(self)
        runtime.schedule_seed = int(seed)
        return runtime

    def library(self, source: str) -> ctypes.CDLL:
        """The shared library built from `source`, compiled on first use."""
        if source not in self._libraries:
            if shutil.which(self.compiler) is None:
                raise RuntimeError(f"the CPU build of {source} needs a C++17 compiler; "
                                   f"{self.compiler!r} was not found (set CXX)")
            self.build_dir.mkdir(parents=True, exist_ok=True)
            output = self.build_dir / (Path(source).stem + ".so")
            # -ffp-contract=off: no fused multiply-add, as the CUDA build of optimizer.cu
            command = [self.compiler, "-std=c++17", "-O2", "-ffp-contract=off", "-shared",
                       "-fPIC", "-x", "c++", str(SOURCE_DIR / source), "-o", str(output)]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"compiling {source} for the CPU failed:\n"
                                   f"{' '.join(command)}\n{result.stderr}")
            self._libraries[source] = ctypes.CDLL(str(output))
        return self._libraries[source]

    def launch(self, source: str, kernel: str, grid: int, block: int, args) -> None:
        _check_arguments(kernel, args)
        library = self.library(source)
        library.tg_set_schedule(ctypes.c_uint(self.schedule_seed))
        launcher = getattr(library, f"tg_launch_{kernel}")
        values = [_ctypes_value(arg) for arg in args]
        pointers = (ctypes.c_void_p * max(1, len(values)))(
            *[ctypes.cast(ctypes.pointer(value), ctypes.c_void_p) for value in values])
        launcher(ctypes.c_uint(grid), ctypes.c_uint(1), ctypes.c_uint(1),
                 ctypes.c_uint(block), ctypes.c_uint(1), ctypes.c_uint(1), pointers)

    @staticmethod
    def pointer(array) -> int:
        return array.ctypes.data

    @staticmethod
    def to_device(host_array):
        return host_array


def _check_arguments(kernel: str, args) -> None:
    for position, arg in enumerate(args):
        if not isinstance(arg, np.generic) and not hasattr(arg, "dtype"):
            raise TypeError(f"{kernel}: argument {position} is a {type(arg).__name__}; pass "
                            "arrays and NumPy scalars typed like the C parameter")


def _ctypes_value(arg):
    if isinstance(arg, np.ndarray):
        if not arg.flags.c_contiguous:
            raise ValueError("kernel arguments must be C-contiguous arrays")
        return ctypes.c_void_p(arg.ctypes.data)
    return np.ctypeslib.as_ctypes_type(arg.dtype)(arg.item())
