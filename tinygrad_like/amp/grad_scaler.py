"""GradScaler: dynamic loss scaling for mixed-precision training, as torch.amp.GradScaler.

The loss is multiplied by a scale before backward so that small float16 gradients do not
flush to zero; `step` divides the gradients by it again and skips the optimizer step when
any of them overflowed to inf or NaN. `update` then halves the scale (backoff_factor) after
a skipped step, and doubles it (growth_factor) after `growth_interval` clean steps in a row.

The scale is kept as float32, and 1/scale is rounded to float32 from double, as PyTorch's
`_amp_update_scale_` and `unscale_` do, so a run follows PyTorch's scale trajectory exactly.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from tinygrad_like.backend.cuda_device import is_available as cuda_is_available
from tinygrad_like.grad_mode import no_grad
from tinygrad_like.tensor import Tensor

READY, UNSCALED, STEPPED = "ready", "unscaled", "stepped"  # an optimizer's stage in a step


class GradScaler:
    """Scales the loss, unscales and checks the gradients, and adapts the scale.

        scaler = tg.amp.GradScaler("cpu")
        scaler.scale(loss).backward()
        scaler.step(optimizer)      # skipped if a gradient is inf or NaN
        scaler.update()
    """

    def __init__(self, device: str = "cuda", init_scale: float = 2.0**16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True) -> None:
        self._device = str(getattr(device, "type", device))
        self._enabled = enabled
        if self._device == "cuda" and enabled and not cuda_is_available():
            warnings.warn("tg.amp.GradScaler is enabled, but CUDA is not available. Disabling.",
                          stacklevel=2)
            self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise ValueError(f"GradScaler: growth_factor must be > 1.0, got {growth_factor}")
            if backoff_factor >= 1.0:
                raise ValueError(f"GradScaler: backoff_factor must be < 1.0, got "
                                 f"{backoff_factor}")
        self._scale = _float32(init_scale)
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = growth_interval
        self._growth_tracker = 0  # clean steps in a row since the scale last changed
        self._optimizer_states: dict[int, dict[str, Any]] = {}

    # ---- the training-step calls ----------------------------------------------------------
    def scale(self, outputs):
        """`outputs` (a Tensor, or a nested list/tuple of them) times the current scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            # a 0-d float32 tensor, as PyTorch's: it leaves a float16 loss float16
            scale = Tensor._wrap(outputs.backend.xp.asarray(self._scale, dtype=np.float32),
                                 outputs.backend)
            return outputs * scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(output) for output in outputs)
        raise ValueError(f"GradScaler.scale: outputs must be a Tensor or an iterable of "
                         f"Tensors, got {type(outputs).__name__}")

    def unscale_(self, optimizer) -> None:
        """Divide the optimizer's gradients by the scale in place and note whether any is
        inf or NaN; at most once per optimizer between two `update()` calls."""
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] == UNSCALED:
            raise RuntimeError("GradScaler.unscale_() has already been called on this "
                               "optimizer since the last update()")
        if state["stage"] == STEPPED:
            raise RuntimeError("GradScaler.unscale_() is being called after step()")
        inv_scale = _float32(1.0 / self._scale)
        found_inf = False
        with no_grad():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    grad = param.grad
                    if grad is None:
                        continue
                    if grad.dtype.name == "float16":
                        raise ValueError("GradScaler: attempting to unscale float16 gradients; "
                                         "keep the parameters in float32 and let autocast "
                                         "cast them")
                    if not bool(grad.backend.xp.isfinite(grad._array).all()):
                        found_inf = True
                    if inv_scale != 1.0:
                        grad.mul_(inv_scale)
        state["found_inf"] = found_inf
        state["stage"] = UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """Unscale (unless `unscale_` already did) and run `optimizer.step(*args, **kwargs)`,
        unless a gradient is inf or NaN; returns what the step returned (None if skipped)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("GradScaler.step: closure use is not supported")
        state = self._state(optimizer)
        if state["stage"] == STEPPED:
            raise RuntimeError("GradScaler.step() has already been called since the last "
                               "update()")
        if state["stage"] == READY:
            self.unscale_(optimizer)
        result = None if state["found_inf"] else optimizer.step(*args, **kwargs)
        state["stage"] = STEPPED
        return result

    def update(self, new_scale: float | Tensor | None = None) -> None:
        """Back off after an overflow, grow after `growth_interval` clean steps; or set the
        scale to `new_scale` (a float or a one-element tensor)."""
        if not self._enabled:
            return
        if new_scale is not None:
            if isinstance(new_scale, Tensor):
                if new_scale.numel() != 1 or new_scale.requires_grad:
                    raise ValueError("GradScaler.update: new_scale must be a float or a "
                                     "one-element tensor that does not require grad")
                new_scale = new_scale.item()
            self._scale = _float32(new_scale)
        else:
            checked = [s for s in self._optimizer_states.values() if "found_inf" in s]
            if not checked:
                raise RuntimeError("GradScaler.update: no inf checks were recorded before "
                                   "update(); call scaler.step(optimizer) (or unscale_) first")
            if any(s["found_inf"] for s in checked):
                self._scale = _float32(self._scale * self._backoff_factor)
                self._growth_tracker = 0
            elif self._growth_tracker + 1 == self._growth_interval:
                grown = _float32(self._scale * self._growth_factor)
                if math.isfinite(grown):  # an overflowing scale is kept as it is
                    self._scale = grown
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
        self._optimizer_states = {}

    def _state(self, optimizer) -> dict[str, Any]:
        return self._optimizer_states.setdefault(id(optimizer), {"stage": READY})

    # ---- settings and state -------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale (1.0 when disabled)."""
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = new_interval

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict[str, Any]:
        """PyTorch's five entries (empty when disabled); take it after `update()`."""
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self._enabled:
            return
        if not state_dict:
            raise RuntimeError("GradScaler.load_state_dict: the state dict is empty, possibly "
                               "because it was saved from a disabled GradScaler")
        self._scale = _float32(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])


def _float32(value) -> float:
    """`value` rounded to float32, the precision PyTorch keeps the scale in (inf past its
    range, which `update` checks for)."""
    with np.errstate(over="ignore"):
        return float(np.float32(value))
