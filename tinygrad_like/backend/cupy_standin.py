"""A stand-in for CuPy on the CPU: NumPy memory dressed as CuPy device memory.

It is the memory of the launch-marshalling test device (marshal_device.py), which runs the
"cuda" backend's own code with no GPU. What the "cuda" launch code reads from CuPy is modelled,
and nothing more:

- arrays (`DeviceArray`, a NumPy subclass) have `.data.ptr`, their host address, which is
  what a compiled Triton launch passes for a pointer argument, and `.device`, the device
  current when their memory was allocated (views inherit it);
- `allocation(ptr)` finds the live array whose memory holds an address, as a GPU would resolve
  a pointer; memory whose arrays were freed is not found;
- `cuda.Device`, `cuda.runtime`, `cuda.Stream`, `cuda.get_current_stream`, `cuda.Event`:
  a current device and a current stream per thread, as CUDA's runtime keeps them;
- every other name is NumPy's, with array results returned as `DeviceArray`.

`configure(device_count, compute_capability)` sets what the stand-in reports.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
import weakref

import numpy as np

_config = {"device_count": 1, "compute_capability": "90"}
_thread = threading.local()  # .device: the current device; .streams: {device: [Stream, ...]}
_allocations: dict[int, weakref.ref] = {}  # base address -> the array that owns the memory
_allocations_lock = threading.Lock()


def configure(device_count: int = 1, compute_capability: str = "90") -> dict:
    """What the stand-in reports: how many GPUs, and their compute capability ("90"). Every
    thread's current device and stream are reset; returns the previous settings."""
    previous = dict(_config)
    _config.update(device_count=int(device_count), compute_capability=str(compute_capability))
    _thread.__dict__.clear()
    return previous


class _Memory:
    """What `cupy.ndarray.data` is to a launcher: the address of the first element."""

    def __init__(self, ptr: int):
        self.ptr = ptr


class DeviceArray(np.ndarray):
    """A NumPy array that reports a device pointer (its host address) and its device."""

    def __array_finalize__(self, obj) -> None:
        source = getattr(obj, "_device_id", None)
        self._device_id = _current_device() if source is None else source
        _register(self)

    @property
    def data(self) -> _Memory:
        return _Memory(self.__array_interface__["data"][0])

    @property
    def device(self) -> "Device":
        return Device(self._device_id)

    def get(self) -> np.ndarray:
        return np.array(self)

    def __array_function__(self, function, kinds, args, kwargs):
        # np.where(mask, x, 0) on CuPy arrays gives a CuPy array (CuPy serves the function);
        # NumPy would give a plain host array for a subclass
        return _to_device(super().__array_function__(function, kinds, args, kwargs))


def _register(array: np.ndarray) -> None:
    owner = array
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    start = owner.__array_interface__["data"][0]
    with _allocations_lock:
        if len(_allocations) > 4096:  # forget freed memory now and then
            for address in [a for a, ref in _allocations.items() if ref() is None]:
                del _allocations[address]
        known = _allocations.get(start)
        if known is None or known() is None or known().nbytes < owner.nbytes:
            _allocations[start] = weakref.ref(owner)


def allocation(ptr: int) -> tuple[np.ndarray, int, int] | None:
    """(the live array owning the memory at `ptr`, its device, ptr's byte offset in it), or
    None where no live stand-in array holds that address."""
    with _allocations_lock:
        owners = [ref() for ref in _allocations.values()]
    for owner in owners:
        if owner is None:
            continue
        start = owner.__array_interface__["data"][0]
        if start <= ptr < start + max(owner.nbytes, 1):
            device = getattr(owner, "_device_id", None)
            return owner, _current_device() if device is None else device, ptr - start
    return None


def _to_device(value):
    if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray):
        return value.view(DeviceArray)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(item) for item in value)
    return value


def _device_function(function):
    @functools.wraps(function)
    def on_device(*args, **kwargs):
        return _to_device(function(*args, **kwargs))

    return on_device


class _Ufunc:
    """A NumPy ufunc whose results, and those of its methods (.at, .reduce), are on device."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _to_device(self._ufunc(*args, **kwargs))

    def __getattr__(self, name: str):
        attribute = getattr(self._ufunc, name)
        return _device_function(attribute) if callable(attribute) else attribute


def __getattr__(name: str):
    value = getattr(np, name)
    if isinstance(value, np.ufunc):
        return _Ufunc(value)
    if callable(value) and not isinstance(value, type):
        return _device_function(value)
    return value


ndarray = DeviceArray


def asnumpy(array) -> np.ndarray:
    return np.array(array)


class RawModule:
    """CUDA C cannot run here; the CUDA C kernels are checked on the CPU by their own shim."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("the stand-in CuPy cannot compile CUDA C: the launch-marshalling "
                           "device runs the Triton kernels; tests/test_cuda_kernels.py runs "
                           "the CUDA C kernels through kernels/cuda/cpu_shim.h")


# ---- cupy.random: NumPy's generator, its draws on device ----------------------------------
class _Generator:
    def __init__(self, generator):
        self._generator = generator
        self.bit_generator = generator.bit_generator

    def __getattr__(self, name: str):
        return _device_function(getattr(self._generator, name))


class random:  # noqa: N801  (a namespace with CuPy's module name)
    @staticmethod
    def default_rng(seed=None) -> _Generator:
        return _Generator(np.random.default_rng(seed))


# ---- cupy.cuda: devices, streams and events, per thread ------------------------------------
def _current_device() -> int:
    return getattr(_thread, "device", 0)


def _check_device(device: int) -> int:
    device = int(device)
    if not 0 <= device < _config["device_count"]:
        raise RuntimeError(f"stand-in CUDA: invalid device ordinal {device} "
                           f"({_config['device_count']} device(s))")
    return device


class _Runtime:
    @staticmethod
    def getDeviceCount() -> int:  # noqa: N802  (CuPy's names)
        return _config["device_count"]

    @staticmethod
    def getDevice() -> int:  # noqa: N802
        return _current_device()

    @staticmethod
    def setDevice(device: int) -> None:  # noqa: N802
        _thread.device = _check_device(device)


class Device:
    def __init__(self, device: int | None = None):
        self.id = _current_device() if device is None else _check_device(device)
        self._previous: list[int] = []

    @property
    def compute_capability(self) -> str:
        return _config["compute_capability"]

    @property
    def attributes(self) -> dict:
        """The few cudaDeviceAttr values the launchers read (an H100 SXM's)."""
        return {"MultiProcessorCount": 132, "MaxSharedMemoryPerBlockOptin": 232448,
                "WarpSize": 32, "MaxThreadsPerBlock": 1024}

    def use(self) -> None:
        _Runtime.setDevice(self.id)

    def synchronize(self) -> None:
        pass

    def __enter__(self) -> "Device":
        self._previous.append(_current_device())
        self.use()
        return self

    def __exit__(self, *exc) -> None:
        _Runtime.setDevice(self._previous.pop())

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


_stream_handles = itertools.count(0x5000, 0x10)  # distinct non-zero handles, as cudaStream_t


class Stream:
    """A stream: `with stream:` makes it current on its device, as in CuPy."""

    def __init__(self, null: bool = False, non_blocking: bool = False):
        self.ptr = 0 if null else next(_stream_handles)
        self.device_id = _current_device()

    def __enter__(self) -> "Stream":
        _streams(self.device_id).append(self)
        return self

    def __exit__(self, *exc) -> None:
        _streams(self.device_id).pop()

    def use(self) -> "Stream":
        stack = _streams(self.device_id)
        stack[-1:] = [self]
        return self

    def synchronize(self) -> None:
        pass


def _streams(device: int) -> list[Stream]:
    if not hasattr(_thread, "streams"):
        _thread.streams = {}
    return _thread.streams.setdefault(device, [Stream(null=True)])


def get_current_stream(device_id: int = -1) -> Stream:
    return _streams(_current_device() if device_id < 0 else _check_device(device_id))[-1]


class Event:
    def __init__(self, *args, **kwargs):
        self.time = None

    def record(self, stream=None) -> None:
        self.time = time.perf_counter()

    def synchronize(self) -> None:
        pass


def get_elapsed_time(start: Event, end: Event) -> float:
    return (end.time - start.time) * 1000.0


class cuda:  # noqa: N801  (a namespace with CuPy's module name)
    runtime = _Runtime
    Device = Device
    Stream = Stream
    Event = Event
    get_current_stream = staticmethod(get_current_stream)
    get_elapsed_time = staticmethod(get_elapsed_time)
