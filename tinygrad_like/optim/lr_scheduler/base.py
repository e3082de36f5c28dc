"""LRScheduler, the base class of the schedulers (torch/optim/lr_scheduler.py), and the
helpers they share (per-group arguments, momentum cycling).

A scheduler rewrites each parameter group's "lr" once per `step()`, called after the
optimizer's step. Like PyTorch, most schedulers' `step()` is recursive: it derives the next lr
from the group's current one, so changes made by something else (another scheduler in a
ChainedScheduler) carry forward. `step(epoch)` jumps to an epoch with the closed form instead
(deprecated in PyTorch, kept for old training loops); a scheduler without a closed form
evaluates `get_lr()` at that epoch.

Construction records each group's "initial_lr" (the base lr) and takes the first step, to
epoch 0. Resuming with `last_epoch=k` needs the "initial_lr" that a restored optimizer state
dict brings back. `state_dict()` holds every attribute but the optimizer, under PyTorch's
attribute names, so a state dict saved by either library loads into the other.
"""

from __future__ import annotations

import warnings
from typing import Any

from tinygrad_like.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: base lrs, the epoch counter, `step`, `get_last_lr`, state dicts.

    A subclass defines `get_lr()` (the lrs at `last_epoch`, usually from the current ones) and
    may define `_get_closed_form_lr()` (the lrs at `last_epoch` from the base lrs alone).
    """

    _is_initial: bool = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        check_optimizer(self, optimizer)
        self.optimizer = optimizer
        for number, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{type(self).__name__}: resuming at last_epoch={last_epoch} "
                               f"needs 'initial_lr' in param_groups[{number}]; load the "
                               "optimizer's state dict first, or start from last_epoch=-1")
        self.base_lrs = group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """Reset the step count and take the step to the first epoch."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The lrs for `last_epoch`, one per parameter group."""
        raise NotImplementedError(f"{type(self).__name__} must define get_lr()")

    def _get_closed_form_lr(self) -> list[float]:
        """The lrs for `last_epoch` from the base lrs alone; by default `get_lr()`, as PyTorch
        does for a scheduler without a closed form."""
        return self.get_lr()

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (call after `optimizer.step()`), or jump to `epoch`."""
        self._step_count += 1
        if epoch is not None:
            warn_epoch_argument(self)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            lrs = self.get_lr()
        else:
            self.last_epoch = epoch
            lrs = self._get_closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self._last_lr = group_values(self.optimizer, "lr")

    def get_last_lr(self) -> list[float]:
        """The lrs the last `step()` set, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer, as in PyTorch."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict()` returned (load the optimizer's state dict too)."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected the dict "
                            f"state_dict() returns, got {type(state_dict).__name__}")
        self.__dict__.update(state_dict)


class _LRScheduler(LRScheduler):
    """The old name of LRScheduler, which PyTorch keeps for subclasses written against it."""


def check_optimizer(scheduler: LRScheduler, optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(scheduler).__name__}: {type(optimizer).__name__} is not an "
                        "Optimizer")


def group_values(optimizer: Optimizer, key: str) -> list[Any]:
    """`group[key]` of every parameter group, in order."""
    return [group[key] for group in optimizer.param_groups]


def per_group(scheduler: Any, optimizer: Optimizer, name: str, value: Any) -> list[Any]:
    """`value` repeated for each parameter group, or a list/tuple with one value per group."""
    count = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{type(scheduler).__name__}: {name} must have one value per "
                             f"parameter group; got {len(value)} values for {count} groups")
        return list(value)
    return [value] * count


def warn_epoch_argument(scheduler: LRScheduler) -> None:
    warnings.warn(f"{type(scheduler).__name__}.step(epoch) is deprecated, as in PyTorch; call "
                  "step() once per epoch instead", UserWarning, stacklevel=3)


def uses_beta1(scheduler: LRScheduler, optimizer: Optimizer) -> bool:
    """Whether a momentum-cycling scheduler sets beta1 of "betas" (Adam) or "momentum" (SGD)."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError(f"{type(scheduler).__name__}: cycle_momentum needs an optimizer with a "
                         f"momentum or betas option; {type(optimizer).__name__} has neither "
                         "(pass cycle_momentum=False)")
    return "betas" in optimizer.defaults


def set_momentum(group: dict[str, Any], momentum: float, use_beta1: bool) -> None:
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


def start_momentum_cycle(scheduler: LRScheduler, optimizer: Optimizer, base_momentum: Any,
                         max_momentum: Any, last_epoch: int) -> tuple[list, list]:
    """Record each group's momentum range ("base_momentum", "max_momentum", where PyTorch keeps
    them) and start at the maximum, unless resuming; return the (max, base) momenta."""
    scheduler.use_beta1 = uses_beta1(scheduler, optimizer)
    max_momentums = per_group(scheduler, optimizer, "max_momentum", max_momentum)
    base_momentums = per_group(scheduler, optimizer, "base_momentum", base_momentum)
    if last_epoch == -1:
        for group, top, bottom in zip(optimizer.param_groups, max_momentums, base_momentums):
            set_momentum(group, top, scheduler.use_beta1)
            group["max_momentum"] = top
            group["base_momentum"] = bottom
    return max_momentums, base_momentums
