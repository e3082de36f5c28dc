"""Adadelta (Zeiler 2012): steps sized by the ratio of running RMS of past updates to running
RMS of gradients, so the units of the update match the parameter's and no global lr is needed.

The rule of torch.optim.Adadelta (torch/optim/adadelta.py, `_single_tensor_adadelta`). With g
the gradient after `maximize` and L2 weight decay (g + weight_decay * p):

    v = rho * v + (1 - rho) * g * g                     square_avg
    d = sqrt(u + eps) / sqrt(v + eps) * g               the update, from the old u
    u = rho * u + (1 - rho) * d * d                     acc_delta
    p = p - lr * d
"""

from __future__ import annotations

from typing import Any

from tinygrad_like.creation import zeros_like
from tinygrad_like.optim.optimizer import Optimizer, ParamsT, count_step, step_counter
from tinygrad_like.tensor import Tensor


class Adadelta(Optimizer):
    def __init__(self, params: ParamsT, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False):
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay,
                    "maximize": maximize}
        super().__init__(params, defaults)

    def _check_options(self, group: dict[str, Any]) -> None:
        self._require_nonnegative(group, "lr", "eps", "weight_decay")
        rho = group["rho"]
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"{self._name}: invalid rho {rho!r}; expected 0 <= rho <= 1")

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": step_counter(), "square_avg": zeros_like(param),
                "acc_delta": zeros_like(param)}

    def _update(self, param: Tensor, grad, state: dict[str, Any], group: dict[str, Any]):
        xp, rho, eps = param.backend.xp, group["rho"], group["eps"]
        count_step(state)  # kept for PyTorch's state layout; the rule does not use it
        square_avg, acc_delta = state["square_avg"]._array, state["acc_delta"]._array
        square_avg *= rho
        square_avg += (1 - rho) * grad * grad
        delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * grad
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta
        param._array -= group["lr"] * delta
