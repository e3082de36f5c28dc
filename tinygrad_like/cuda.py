"""`tg.cuda`: whether the "cuda" device can be used here, and its generator's state."""

from __future__ import annotations

from tinygrad_like import random
from tinygrad_like.backend.cuda_device import is_available
from tinygrad_like.tensor import Tensor


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


__all__ = ["get_rng_state", "is_available", "set_rng_state"]
