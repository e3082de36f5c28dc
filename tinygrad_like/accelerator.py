"""`tg.accelerator`: PyTorch's device-agnostic view of the machine's accelerator.

The one accelerator type here is "cuda"; without a usable GPU there is none, and
`current_accelerator()` returns None, as PyTorch does on a CPU-only machine.
"""

from __future__ import annotations

from tinygrad_like import cuda
from tinygrad_like.backend import Device


def is_available() -> bool:
    return cuda.is_available()


def current_accelerator(check_available: bool = False) -> Device | None:
    return Device("cuda") if cuda.is_available() else None


def device_count() -> int:
    return cuda.device_count()


def current_device_index() -> int:
    return cuda.current_device() if cuda.is_available() else -1


def synchronize(device=None) -> None:
    cuda.synchronize(device)
