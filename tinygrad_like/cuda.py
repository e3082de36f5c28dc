"""`tg.cuda`: whether the "cuda" device can be used here, how many GPUs, and its generator.

As in PyTorch, seeding works on a machine without a GPU (the seed waits for the device's
first use, and is a no-op if it never comes), so a program's start-up
`tg.cuda.manual_seed_all(0)` runs anywhere.
"""

from __future__ import annotations

from tinygrad_like import backend, random
from tinygrad_like.amp import cuda_amp as amp  # tg.cuda.amp.autocast: PyTorch's old spelling
from tinygrad_like.backend.cuda_device import is_available
from tinygrad_like.tensor import Tensor


def device_count() -> int:
    """The number of GPUs CuPy sees (0 without CuPy, a driver or a GPU)."""
    if not is_available():
        return 0
    import cupy

    return cupy.cuda.runtime.getDeviceCount()


def current_device() -> int:
    if not is_available():
        raise RuntimeError("tg.cuda.current_device: CUDA is not available (the 'cuda' device "
                           "needs CuPy and an NVIDIA GPU)")
    import cupy

    return cupy.cuda.runtime.getDevice()


def manual_seed(seed: int) -> None:
    """Seed the "cuda" generator (its first use if it is not in use yet)."""
    backend.manual_seed_device("cuda", seed)


manual_seed_all = manual_seed  # one generator serves the device ("cuda:0")


def synchronize(device=None) -> None:
    """Wait for the GPU's queued work (a no-op without a GPU, as nothing is queued)."""
    if is_available():
        import cupy

        cupy.cuda.Device().synchronize()


def get_rng_state(device: str | int = "cuda") -> Tensor:
    """The "cuda" generator's state as a uint8 tensor on the CPU, as torch.cuda.get_rng_state."""
    return random.get_rng_state(_cuda_device(device, "get_rng_state"))


def set_rng_state(new_state: Tensor, device: str | int = "cuda") -> None:
    """Restore the "cuda" generator from `get_rng_state`, as torch.cuda.set_rng_state."""
    random.set_rng_state(new_state, _cuda_device(device, "set_rng_state"))


def _cuda_device(device: str | int, caller: str) -> str:
    name = f"cuda:{device}" if isinstance(device, int) else str(device)
    if name.split(":")[0] != "cuda":
        raise ValueError(f"tg.cuda.{caller}: expected a cuda device, got {device!r}")
    if not is_available():
        raise RuntimeError(f"tg.cuda.{caller}: CUDA is not available (the 'cuda' device needs "
                           "CuPy and an NVIDIA GPU)")
    return name


__all__ = ["amp", "current_device", "device_count", "get_rng_state", "is_available",
           "manual_seed", "manual_seed_all", "set_rng_state", "synchronize"]
