"""Learning-rate schedulers: StepLR and CosineAnnealingLR, as in torch.optim.lr_scheduler.

A scheduler rewrites each parameter group's "lr" once per `step()`, called after the
optimizer's step. Like PyTorch, `step()` is recursive: it derives the next lr from the
group's current one, so changes made by something else (another scheduler) carry forward.
`step(epoch)` jumps to an epoch with the closed form instead (deprecated in PyTorch, kept
for old training loops).

Construction records each group's "initial_lr" (the base lr) and takes the first step, to
epoch 0. Resuming with `last_epoch=k` needs the "initial_lr" that a restored optimizer
state dict brings back.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from tinygrad_like.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: base lrs, the epoch counter, `step`, `get_last_lr`, state dicts."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} is not an "
                            "Optimizer")
        self.optimizer = optimizer
        for number, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{type(self).__name__}: resuming at last_epoch={last_epoch} "
                               f"needs 'initial_lr' in param_groups[{number}]; load the "
                               "optimizer's state dict first, or start from last_epoch=-1")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True
        self.step()
        self._is_initial = False

    def get_lr(self) -> list[float]:
        """The lrs for `last_epoch`, derived from the groups' current lrs."""
        raise NotImplementedError(f"{type(self).__name__} must define get_lr()")

    def _closed_form_lr(self) -> list[float]:
        """The lrs for `last_epoch`, derived from the base lrs alone."""
        raise NotImplementedError(f"{type(self).__name__} must define _closed_form_lr()")

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (call after `optimizer.step()`), or jump to `epoch`."""
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            lrs = self.get_lr()
        else:
            warnings.warn(f"{type(self).__name__}.step(epoch) is deprecated, as in PyTorch; "
                          "call step() once per epoch instead", UserWarning, stacklevel=2)
            self.last_epoch = epoch
            lrs = self._closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The lrs the last `step()` set, one per parameter group."""
        return list(self._last_lr)

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer, as in PyTorch."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """Multiply every group's lr by `gamma` each `step_size` epochs:
    lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        if not isinstance(step_size, int) or step_size <= 0:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Anneal each group's lr from its base lr to `eta_min` along half a cosine over `T_max`
    epochs (SGDR, Loshchilov & Hutter 2017, without restarts):

        lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2

    `step()` uses PyTorch's recursive form of this, which keeps following the cosine past
    `T_max` (back up towards the base lr) and honours outside changes to the lr.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1):
        if not T_max > 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        epoch, period, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current_lrs()
        if (epoch - 1 - period) % (2 * period) == 0:
            # the trough, where the ratio below would divide by 1 + cos(pi) = 0
            return [lr + (base_lr - eta_min) * (1 - math.cos(math.pi / period)) / 2
                    for lr, base_lr in zip(self._current_lrs(), self.base_lrs)]
        ratio = ((1 + math.cos(math.pi * epoch / period))
                 / (1 + math.cos(math.pi * (epoch - 1) / period)))
        return [ratio * (lr - eta_min) + eta_min for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]
