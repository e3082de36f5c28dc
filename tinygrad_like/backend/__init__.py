"""Devices. Each device is a `Backend`: an array module (`xp`), a kernel table
(`kernels`) and the device's random generator. Ops reach the device only
through their tensor's backend, so adding a device means adding a module here.
"""

from __future__ import annotations

import importlib
import threading

import numpy as np

from tinygrad_like.backend.table import DeviceTable

_MODULES = {"cpu": "tinygrad_like.backend.cpu", "cuda": "tinygrad_like.backend.cuda_device",
            "interp": "tinygrad_like.backend.interp"}
_loaded: dict[str, "Backend"] = {}
DEFAULT_SEED = 67280421310721  # PyTorch's default CPU seed: runs are reproducible by default
_seed = DEFAULT_SEED
_device_seeds: dict[str, int] = {}  # tg.cuda.manual_seed before the device is first used


class Backend:
    """What an op needs from a device: its array module, its kernels, its RNG."""

    index: int | None = None  # the GPU a "cuda" backend runs on; None where there is one device

    def __init__(self, name: str, xp, table: DeviceTable, seed: int):
        self.name = name
        self.xp = xp
        self.kernels = table.kernels  # one attribute per entry of backend/table.py
        self.kernel_fallbacks = table.fallbacks  # borrowed entry -> from where, for backend_info
        self._counter_lock = threading.Lock()
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> None:
        self.rng = self.xp.random.default_rng(seed)
        self.seed, self._counter = seed, 0

    def random_counter(self, count: int) -> tuple[int, int]:
        """(seed, first counter) for a counter-based draw of `count` values, 4 per counter.

        Kernels such as dropout draw from Philox at (seed, counter): each call gets fresh
        counters, so results depend only on the seed and the order of calls.
        """
        with self._counter_lock:  # two threads must never draw at the same counters
            offset = self._counter
            self._counter += (count + 3) // 4
            return self.seed, offset

    @property
    def generator_name(self) -> str:
        """The generator's kind, e.g. "numpy.PCG64": a saved state fits only the same kind."""
        return f"{self.xp.__name__}.{type(self.rng.bit_generator).__name__}"

    def rng_state(self) -> tuple[dict, bytes]:
        """Everything this device's random draws depend on, as JSON-safe fields plus raw bytes
        (for generators whose state is a device buffer): the generator's exact position, and
        the seed and counter that counter-based kernels such as dropout draw at."""
        generator_state, payload = self._generator_state()
        return {"generator": self.generator_name, "seed": self.seed, "counter": self._counter,
                "bit_generator": generator_state}, payload

    def set_rng_state(self, fields: dict, payload: bytes) -> None:
        """Restore what `rng_state` returned; nothing changes if it does not fit (ValueError)."""
        rng = self._restored_generator(fields["seed"], fields["bit_generator"], payload)
        self.rng, self.seed, self._counter = rng, fields["seed"], fields["counter"]

    def _generator_state(self) -> tuple[object, bytes]:
        return self.rng.bit_generator.state, b""

    def _restored_generator(self, seed: int, generator_state, payload: bytes):
        rng = self.xp.random.default_rng(seed)
        rng.bit_generator.state = generator_state  # NumPy validates it (ValueError, TypeError)
        return rng

    def asarray(self, data, dtype=None):
        return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array) -> np.ndarray:
        return np.asarray(array)

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


class Device:
    """A device name, as torch.device: `tg.device("cuda:1")` or `tg.device("cuda", 1)`.

    Accepted wherever a device string is; `str(device)` is that string."""

    __slots__ = ("type", "index")

    def __init__(self, type, index: int | None = None):  # noqa: A002  (torch.device's name)
        if isinstance(type, Device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise TypeError(f"device: expected a device string such as 'cuda:0', got "
                            f"{type.__class__.__name__}")
        name, sep, number = type.partition(":")
        if name not in _MODULES:
            raise RuntimeError(f"device: unknown device type {name!r} in {type!r}; expected one "
                               f"of {', '.join(_MODULES)}")
        if sep:
            if index is not None:
                raise RuntimeError(f"device: type {type!r} already names an index; pass "
                                   "the index only once")
            if not number.isdigit():
                raise RuntimeError(f"device: invalid device string {type!r}; expected "
                                   f"'{name}' or '{name}:<index>'")
            index = int(number)
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)
                                  or index < 0):
            raise RuntimeError(f"device: index must be a non-negative integer, got {index!r}")
        self.type, self.index = name, index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


def is_device(arg) -> bool:
    """True for a `Device` or a device string ("cpu", "cuda:0", ...): how .to() tells a
    device from a dtype."""
    return isinstance(arg, Device) or (isinstance(arg, str) and arg.split(":")[0] in _MODULES)


def get_backend(device) -> Backend:
    """The backend for a device name such as "cpu" or "cuda" (a trailing ":0" is accepted)
    or a `Device`."""
    name, _, number = str(device).partition(":")
    index = int(number) if number.isdigit() else None
    if name not in _loaded:
        if name not in _MODULES:
            raise ValueError(f"unknown device {device!r}; expected one of {', '.join(_MODULES)}")
        seed = _device_seeds.pop(name, _seed)
        _loaded[name] = importlib.import_module(_MODULES[name]).make_backend(seed, index)
    backend = _loaded[name]
    if index is not None and backend.index not in (None, index):
        raise RuntimeError(f"device {str(device)!r}: this process runs '{name}' on "
                           f"'{name}:{backend.index}', chosen at its first use; one process "
                           f"uses one GPU (select it with CUDA_VISIBLE_DEVICES or by naming "
                           f"'{name}:<index>' first)")
    return backend


def loaded_devices() -> list[str]:
    """The devices used so far in this process, each with its own generator."""
    return list(_loaded)


def manual_seed(seed: int) -> None:
    """Reseed every device's generator; devices loaded later start from the same seed."""
    global _seed
    _seed = int(seed)
    _device_seeds.clear()
    for backend in _loaded.values():
        backend.manual_seed(_seed)


def manual_seed_device(device: str, seed: int) -> None:
    """Reseed one device's generator (tg.cuda.manual_seed), now if the device is in use, else
    when it is first used: a program seeds at start-up, before it touches the device."""
    if device in _loaded:
        _loaded[device].manual_seed(int(seed))
    else:
        _device_seeds[device] = int(seed)
