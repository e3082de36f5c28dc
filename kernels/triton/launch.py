"""Running one Triton kernel two ways: compiled on "cuda", interpreted on "interp".

`triton.jit` decides at decoration time whether a kernel is interpreted (the
TRITON_INTERPRET variable), so the compiled JITFunction is what the module
defines, and the interpreted form is made on demand by wrapping its Python
function in `InterpretedFunction`. The interpreter wants torch CPU tensors
(it reads `untyped_storage()`); `torch.from_numpy` views share memory with the
NumPy arrays, so a kernel's writes land in the caller's output array.

Library functions such as `tl.max` and `tl.sum` are themselves @triton.jit
functions, compiled-mode objects that refuse to be called from Python; while an
interpreted kernel runs, calls to any JITFunction are routed to its interpreted
form, which is what TRITON_INTERPRET=1 would have made them.

Compiled launches go through `CupyDriver`, a Triton driver whose device, current stream and
compute capability come from CuPy: Triton's own NVIDIA driver asks torch whenever torch is
imported (a CPU torch build then reports no GPU, and a CUDA build hands Triton torch's stream).

CuPy has no bfloat16, so a bfloat16 array on "cuda" is a `Bfloat16Array` (bfloat16_array.py):
16-bit CuPy storage carrying the bfloat16 dtype, which Triton's binder reads as '*bf16'.

The launch checks and choices that more than one kernel file makes (the floating dtypes the
row kernels accept, the warps for a BLOCK-wide row) are at the end.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import numpy as np
from triton.backends.nvidia.driver import CudaDriver, CudaLauncher, CudaUtils
from triton.runtime import driver as triton_driver

from tinygrad_like.kernels.triton.bfloat16_array import (  # noqa: F401  (re-exported)
    BFLOAT16,
    Bfloat16Array,
    Bfloat16Arrays,
)


class Launcher:
    """Runs kernels for one device: `interpret=True` for "interp", False for "cuda"."""

    def __init__(self, interpret: bool):
        self.interpret = interpret
        if interpret:
            self.xp = np
        else:
            cupy = _cupy()
            install_driver(cupy)
            self.xp = Bfloat16Arrays(cupy)

    def kernel(self, jit_function):
        """The runnable form of a @triton.jit function (or the JITFunction under an autotuner)."""
        if not self.interpret:
            return jit_function
        base = getattr(jit_function, "fn", jit_function)
        while not hasattr(base, "__code__"):  # Autotuner -> JITFunction -> Python function
            base = base.fn
        return _InterpretedKernel(_interpreted(base))

    def arg(self, array):
        """An array as the kernel argument this device's Triton expects."""
        if not self.interpret:
            return _CupyArg(array)
        import torch

        if array.dtype.name == "bfloat16":
            # Triton's interpreter keeps bfloat16 as uint16 and multiplies those integers in
            # tl.dot, so it would return garbage rather than fail
            raise TypeError("interp: Triton's interpreter cannot run bfloat16 kernels; run "
                            "bfloat16 on 'cpu' (or compiled on 'cuda'), or use float16 here")
        if any(s < 0 for s in array.strides):
            array = np.ascontiguousarray(array)
        with warnings.catch_warnings():
            # read-only views (broadcasts) are only ever read by the kernels
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)


class _InterpretedKernel:
    """`kernel[grid](*args)` for an interpreted kernel, with device functions interpretable."""

    def __init__(self, interpreted):
        self.interpreted = interpreted

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            with _jit_calls_interpreted():
                return self.interpreted[grid](*args, **kwargs)

        return launch


@contextlib.contextmanager
def _jit_calls_interpreted():
    from triton.runtime.interpreter import _patch_lang
    from triton.runtime.jit import JITFunction

    def call_interpreted(self, *args, **kwargs):
        # InterpretedFunction.__call__ would patch triton.language and never restore it,
        # breaking every later triton.compile in this process; restore the patch here.
        scope = _patch_lang(self.fn)
        try:
            return _interpreted(self.fn).rewrite()(*args, **kwargs)
        finally:
            scope.restore()

    original = JITFunction.__call__
    JITFunction.__call__ = call_interpreted
    try:
        yield
    finally:
        JITFunction.__call__ = original


@functools.lru_cache(maxsize=None)
def _interpreted(python_function):
    from triton.runtime.interpreter import InterpretedFunction

    return InterpretedFunction(python_function)


def _cupy():
    import cupy

    return cupy


class _CupyArg:
    """What compiled Triton reads from a tensor argument: a device pointer and a dtype."""

    def __init__(self, array):
        self.array = array
        self.dtype = triton_dtype(array.dtype.name)

    def data_ptr(self) -> int:
        return self.array.data.ptr


class _TritonDtype:
    """A dtype as Triton reads one from a torch tensor: its name, and its itemsize (which a
    host-side TensorDescriptor checks strides with)."""

    def __init__(self, name: str):
        self.name = name
        self.itemsize = np.dtype(BFLOAT16 if name == "bfloat16" else name).itemsize
        self.is_floating_point = name in FLOATING

    def __str__(self) -> str:  # Triton maps "torch.float16"-style names to its types
        return f"torch.{self.name}"


# Triton's binder caches the dtype -> '*fp16' mapping keyed on the dtype object's hash (its
# address), so a dtype object made per argument, once freed, lets a later argument of another
# dtype reuse its address and its cached pointer type: one long-lived object per dtype name.
_TRITON_DTYPES: dict[str, _TritonDtype] = {}


def triton_dtype(name: str) -> _TritonDtype:
    """The one dtype object Triton's binder sees for arrays of dtype `name`."""
    return _TRITON_DTYPES.setdefault(name, _TritonDtype(name))


class CupyDriver(CudaDriver):
    """Triton's NVIDIA driver, with the device, its current stream and its compute capability
    taken from `cupy` (torch is never asked). `utils` and `launcher_cls` default to Triton's
    own (libcuda); the launch-marshalling test device passes stand-ins."""

    def __init__(self, cupy, utils=None, launcher_cls=CudaLauncher):
        self.cupy = cupy
        self._utils = utils
        self.launcher_cls = launcher_cls

    @property
    def utils(self):
        """Triton's libcuda helpers, built (a C compile) when a kernel is first loaded."""
        if self._utils is None:
            self._utils = CudaUtils()
        return self._utils

    @staticmethod
    def is_active() -> bool:
        return True

    def get_current_device(self) -> int:
        return self.cupy.cuda.runtime.getDevice()

    def set_current_device(self, device: int) -> None:
        self.cupy.cuda.runtime.setDevice(device)

    def get_current_stream(self, device: int) -> int:
        return self.cupy.cuda.get_current_stream(device).ptr

    def get_device_capability(self, device: int) -> tuple[int, int]:
        capability = int(self.cupy.cuda.Device(device).compute_capability)
        return capability // 10, capability % 10

    def get_active_torch_device(self):
        raise RuntimeError("the 'cuda' device launches Triton kernels through CuPy, not torch")


def install_driver(cupy) -> CupyDriver:
    """Make compiled launches use a CupyDriver on `cupy`, unless one already does."""
    active = triton_driver._active
    if not (isinstance(active, CupyDriver) and active.cupy is cupy):
        active = CupyDriver(cupy)
        triton_driver.set_active(active)
    return active


# ---- launch checks and choices shared by the row kernels (softmax.py, cross_entropy.py) ------
FLOATING = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "float64": "fp64"}


def check_floating(op: str, array) -> None:
    if array.dtype.name not in FLOATING:
        raise TypeError(f"{op}: expected a floating-point array ({', '.join(FLOATING)}), "
                        f"got {array.dtype.name}")


def num_warps_for(block: int) -> int:
    """The tutorial's choice: 4 warps below 2048 columns, 8 at 2048, 16 from 4096 on, so a
    thread holds at most 16 elements of a tensor (8 at the 4096-column steps)."""
    return 4 if block < 2048 else 8 if block < 4096 else 16


def arch_for(op: str, capability: int, archs) -> int:
    """The architecture of `archs` closest below a device's compute capability (86 -> 80)."""
    known = [arch for arch in sorted(archs) if arch <= capability]
    if not known:
        raise RuntimeError(f"{op}: the Triton kernels need compute capability 8.0 or newer, "
                           f"got {capability / 10:.1f}")
    return known[-1]


def device_capability() -> int:
    """The current CUDA device's compute capability as an int (8.6 -> 86)."""
    import cupy

    return int(cupy.cuda.Device().compute_capability)
