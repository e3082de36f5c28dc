"""The launch-marshalling test device: the "cuda" backend's own launch code, with no GPU.

`marshalling()` puts a stand-in CuPy (cupy_standin.py) where CuPy is imported and makes
Triton's active driver a `CupyDriver` (kernels/triton/launch.py, the driver "cuda" uses) whose
two GPU-only pieces are replaced: loading a cubin (`StandInUtils`) and launching it
(`InterpretingLauncher`). Everything between an op and the launch is the real code:
`cuda_device.make_backend`, the Triton launchers and their argument marshalling, Triton's
binder and specialisation, `triton.compile` for the stand-in's compute capability (sm_90 by
default, a real cubin), the autotuner, the grid and the stream. The launch then checks what a
GPU would only corrupt silently, each with an error naming the kernel and the argument:

- every pointer points into a live array, on the device the kernel is launched on, whose
  element type is the one the kernel was specialised for ('*fp16' on float16 memory, '*bf16'
  on 16-bit bfloat16 storage);
- the stream is CuPy's current stream; the grid fits CUDA's limits; integer arguments fit
  their specialised type;

and runs the kernel with Triton's interpreter on the memory the pointers point into, so the
results can be compared with the NumPy reference. bfloat16 memory is handed to the
interpreter (which cannot compute in bfloat16) widened to float32 and rounded back on the way
out, as the kernels compute in float32 anyway. Every launch is logged in `LAUNCHES`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import sys
import types
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import scipy.special
import torch
from triton.runtime import Autotuner, JITFunction
from triton.runtime import driver as triton_driver

from tinygrad_like import backend as devices
from tinygrad_like.backend import cuda_device, cupy_standin
from tinygrad_like.backend.triton_kernels import TRITON_KERNELS
from tinygrad_like.kernels.triton.launch import CupyDriver, Launcher

# Triton's pointer element types -> the NumPy dtypes whose memory they may point into
POINTEE = {"fp16": ("float16",), "bf16": ("uint16", "bfloat16"), "fp32": ("float32",),
           "fp64": ("float64",), "i1": ("bool", "int8", "uint8"), "i8": ("int8",),
           "u8": ("uint8", "bool"), "i16": ("int16",), "i32": ("int32",), "u32": ("uint32",),
           "i64": ("int64",), "u64": ("uint64",)}
INTEGER_RANGE = {"i1": (0, 1), "i8": (-2**7, 2**7 - 1), "i16": (-2**15, 2**15 - 1),
                 "i32": (-2**31, 2**31 - 1), "i64": (-2**63, 2**63 - 1), "u8": (0, 2**8 - 1),
                 "u16": (0, 2**16 - 1), "u32": (0, 2**32 - 1), "u64": (0, 2**64 - 1)}
MAX_GRID = (2**31 - 1, 65535, 65535)  # CUDA's limits on grid dimensions x, y, z
SHARED_MEMORY = {80: 166912, 86: 101376, 89: 101376, 90: 232448}  # bytes per block, opt-in


@dataclass
class Launch:
    """One launch as the GPU would have received it."""

    kernel: str
    grid: tuple[int, int, int]
    stream: int
    device: int
    signature: dict  # parameter -> Triton type ('*fp16', 'i32', 'constexpr', ...)
    arch: int


LAUNCHES: list[Launch] = []


class MarshallingError(RuntimeError):
    """A launch a GPU would have run on the wrong memory, stream or device, or refused."""


class StandInUtils:
    """What Triton's CudaUtils gives its driver, for a GPU that is not there."""

    def load_binary(self, name: str, cubin: bytes, shared: int, device: int):
        if cubin[:4] != b"\x7fELF":
            raise MarshallingError(f"{name}: the compiled kernel is not a cubin")
        return 1, 1, 0, 0, 1024  # module, function, registers, spills, max threads per block

    def unload_module(self, module) -> None:
        pass

    def get_device_properties(self, device: int) -> dict:
        arch = int(cupy_standin.cuda.Device(device).compute_capability)
        return {"max_shared_mem": SHARED_MEMORY.get(arch, 101376), "multiprocessor_count": 132,
                "max_num_regs": 65536, "warpSize": 32, "arch": f"sm_{arch}"}


class InterpretingLauncher:
    """Triton's launcher_cls: checks what the C launcher would pass, then interprets."""

    def __init__(self, src, metadata):
        self.function = src.fn
        self.name = src.fn.__name__
        self.signature = dict(src.signature)
        self.arch = metadata.target.arch

    def __call__(self, grid_x, grid_y, grid_z, stream, function, packed_metadata,
                 launch_metadata, enter_hook, exit_hook, *args):
        grid = (grid_x, grid_y, grid_z)
        device = cupy_standin.cuda.runtime.getDevice()
        self._check_grid_and_stream(grid, stream, device)
        LAUNCHES.append(Launch(self.name, grid, stream, device, self.signature, self.arch))
        if grid_x * grid_y * grid_z == 0:
            return
        arguments, write_back = {}, []
        for (name, kind), value in zip(self.signature.items(), args):
            if kind.startswith("*") and value is not None:
                arguments[name] = self._memory(name, kind[1:], value, device, write_back)
            elif kind.startswith("tensordesc"):  # a host-side TMA descriptor: its base pointer
                element = kind[len("tensordesc<"):].split("[")[0]
                base = self._memory(name, element, value.base, device, write_back)
                arguments[name] = dataclasses.replace(value, base=base)
            else:
                self._check_scalar(name, kind, value)
                arguments[name] = value
        Launcher(interpret=True).kernel(self.function)[grid](**arguments)
        for wide, bits in write_back:
            bits[...] = wide.numpy().astype(ml_dtypes.bfloat16).view(np.uint16)

    def _check_grid_and_stream(self, grid, stream: int, device: int) -> None:
        if any(size < 0 or size > limit for size, limit in zip(grid, MAX_GRID)):
            raise MarshallingError(f"{self.name}: grid {grid} exceeds CUDA's limits {MAX_GRID}")
        current = cupy_standin.cuda.get_current_stream(device).ptr
        if stream != current:
            raise MarshallingError(f"{self.name}: launched on stream {stream:#x}, but CuPy's "
                                   f"current stream on device {device} is {current:#x}")

    def _memory(self, name: str, element: str, value, device: int, write_back: list):
        """The memory a pointer argument points into, from its address alone, as a torch
        tensor starting at that address (what the interpreter reads pointers from)."""
        ptr = value.data_ptr() if hasattr(value, "data_ptr") else int(value)
        found = cupy_standin.allocation(ptr)
        if found is None:
            raise MarshallingError(f"{self.name}: {name} = {ptr:#x} points into no live array")
        owner, owner_device, offset = found
        if owner_device != device:
            raise MarshallingError(f"{self.name}: {name} is on device {owner_device}, the "
                                   f"kernel is launched on device {device}")
        if owner.dtype.name not in POINTEE.get(element, ()):
            raise MarshallingError(f"{self.name}: {name} was specialised as *{element} but "
                                   f"points into {owner.dtype.name} memory")
        flat = owner.reshape(-1).view(np.uint8)[offset:]
        flat = flat[:len(flat) - len(flat) % owner.dtype.itemsize]
        if element == "bf16":
            bits = flat.view(np.uint16)
            wide = torch.from_numpy(bits.view(ml_dtypes.bfloat16).astype(np.float32))
            write_back.append((wide, bits))
            return wide
        return torch.from_numpy(np.asarray(flat.view(owner.dtype)).view(np.ndarray))

    def _check_scalar(self, name: str, kind: str, value) -> None:
        if kind in INTEGER_RANGE and value is not None:
            low, high = INTEGER_RANGE[kind]
            if not low <= int(value) <= high:
                raise MarshallingError(f"{self.name}: {name} = {value} does not fit {kind}")


def _standin_modules() -> dict:
    special = types.ModuleType("cupyx.scipy.special")
    special.erf = cupy_standin.__getattr__("vectorize")(scipy.special.erf)
    scipy_module = types.ModuleType("cupyx.scipy")
    scipy_module.special = special
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = scipy_module
    return {"cupy": cupy_standin, "cupyx": cupyx, "cupyx.scipy": scipy_module,
            "cupyx.scipy.special": special}


def _forget_compiled_kernels() -> None:
    """Drop every Triton kernel's compiled and loaded forms, so no kernel loaded for the
    stand-in is launched on a GPU later in the process, nor the other way round."""
    modules = {module for module, _ in TRITON_KERNELS.values()}
    for module in modules:
        source = importlib.import_module(f"tinygrad_like.kernels.triton.{module}")
        for value in vars(source).values():
            if isinstance(value, Autotuner):
                value.cache.clear()
                value = value.fn
            if isinstance(value, JITFunction):
                value.device_caches.clear()
        for value in vars(source).values():  # functools.cache'd choices made for the GPU
            if hasattr(value, "cache_clear"):
                value.cache_clear()


@contextlib.contextmanager
def marshalling(device_count: int = 1, compute_capability: str = "90"):
    """Within: `import cupy` gives the stand-in and compiled Triton launches go through the
    interpreting driver; `make_backend` builds the "cuda" backend on them."""
    cupy_standin.configure(device_count, compute_capability)
    saved_modules = {name: sys.modules.get(name) for name in _standin_modules()}
    saved_driver = triton_driver._active
    sys.modules.update(_standin_modules())
    triton_driver.set_active(CupyDriver(cupy_standin, StandInUtils(), InterpretingLauncher))
    _forget_compiled_kernels()
    try:
        yield
    finally:
        _forget_compiled_kernels()
        triton_driver._active = saved_driver
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def make_backend(seed: int, index: int | None = None):
    """The "cuda" backend, built by cuda_device.make_backend; call it inside `marshalling()`."""
    return cuda_device.make_backend(seed, index)


@contextlib.contextmanager
def as_cuda(device_count: int = 1, compute_capability: str = "90"):
    """Within: device "cuda" is the "cuda" backend built on the stand-in (what tests use);
    yields the backend, and puts back whatever "cuda" was before."""
    with marshalling(device_count, compute_capability):
        saved = devices._loaded.pop("cuda", None)
        devices._loaded["cuda"] = make_backend(0)
        try:
            yield devices._loaded["cuda"]
        finally:
            devices._loaded.pop("cuda")
            if saved is not None:
                devices._loaded["cuda"] = saved

