"""Cosine annealing (SGDR, Loshchilov & Hutter 2017): CosineAnnealingLR and
CosineAnnealingWarmRestarts, as in torch.optim.lr_scheduler.

Both follow half a cosine from the base lr down to `eta_min`:

    lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T)) / 2
"""

from __future__ import annotations

import math

from tinygrad_like.optim.lr_scheduler.base import LRScheduler, group_values
from tinygrad_like.optim.optimizer import Optimizer


def _cosine(base_lr: float, eta_min: float, position: float, period: float) -> float:
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * position / period)) / 2


class CosineAnnealingLR(LRScheduler):
    """The cosine over `T_max` epochs, without restarts. `step()` uses PyTorch's recursive
    form, which keeps following the cosine past `T_max` (back up towards the base lr) and
    honours outside changes to the lr."""

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
            return group_values(self.optimizer, "lr")
        if self._step_count == 1 and epoch > 0:
            # the first step after resuming at last_epoch=k has no previous lr to follow
            return self._get_closed_form_lr()
        if (epoch - 1 - period) % (2 * period) == 0:
            # the trough, where the ratio below would divide by 1 + cos(pi) = 0
            return [group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / period)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups,
                                              strict=True)]
        ratio = ((1 + math.cos(math.pi * epoch / period))
                 / (1 + math.cos(math.pi * (epoch - 1) / period)))
        return [ratio * (group["lr"] - eta_min) + eta_min
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [_cosine(base_lr, self.eta_min, self.last_epoch, self.T_max)
                for base_lr in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """The cosine restarted from the base lr every period; the first period lasts `T_0`
    epochs and each next one `T_mult` times the last. `step(epoch)` takes fractional epochs
    (`epoch + batch / batches`) to anneal within an epoch, and does not warn."""

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1):
        if not isinstance(T_0, int) or T_0 <= 0:
            raise ValueError(f"CosineAnnealingWarmRestarts: T_0 must be a positive int, got "
                             f"{T_0!r}")
        if not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"CosineAnnealingWarmRestarts: T_mult must be an int >= 1, got "
                             f"{T_mult!r}")
        if not isinstance(eta_min, (float, int)):
            raise TypeError(f"CosineAnnealingWarmRestarts: eta_min must be a float, got "
                            f"{type(eta_min).__name__}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [_cosine(base_lr, self.eta_min, self.T_cur, self.T_i)
                for base_lr in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """Advance one epoch, or move to the (possibly fractional) `epoch`."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        elif epoch < 0:
            raise ValueError(f"CosineAnnealingWarmRestarts.step: epoch must be non-negative, "
                             f"got {epoch!r}")
        elif epoch >= self.T_0:
            if self.T_mult == 1:
                self.T_cur = epoch % self.T_0
            else:
                # the number of whole periods before `epoch`: T_0 (T_mult^n - 1) / (T_mult - 1)
                # epochs have passed at the start of period n
                n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                self.T_i = self.T_0 * self.T_mult ** n
        else:
            self.T_i = self.T_0
            self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = group_values(self.optimizer, "lr")
