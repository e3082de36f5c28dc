"""Adagrad (Duchi, Hazan & Singer 2011): per-coordinate steps shrink with the summed
squared gradients.

The rule of torch.optim.Adagrad (torch/optim/adagrad.py, `_single_tensor_adagrad`). With g
the gradient after `maximize` and L2 weight decay (g + weight_decay * p) at step t:

    lr_t = lr / (1 + (t - 1) * lr_decay)
    s = s + g * g                       s starts at initial_accumulator_value
    p = p - lr_t * g / (sqrt(s) + eps)
"""

from __future__ import annotations

from typing import Any

from tinygrad_like.creation import full_like
from tinygrad_like.optim.optimizer import Optimizer, ParamsT, count_step, step_counter
from tinygrad_like.tensor import Tensor


class Adagrad(Optimizer):
    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False):
        defaults = {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "eps": eps,
                    "maximize": maximize}
        super().__init__(params, defaults)

    def _check_options(self, group: dict[str, Any]) -> None:
        self._require_nonnegative(group, "lr", "lr_decay", "weight_decay",
                                  "initial_accumulator_value", "eps")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        # PyTorch creates Adagrad's state up front, so a state dict lists every parameter
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for param in group["params"]:
            self.state[param] = self._init_state(param, group)

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": step_counter(),
                "sum": full_like(param, group["initial_accumulator_value"])}

    def _update(self, param: Tensor, grad, state: dict[str, Any], group: dict[str, Any]):
        step = count_step(state)
        step_size = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        squared_sum = state["sum"]._array
        squared_sum += grad * grad
        param._array -= step_size * grad / (param.backend.xp.sqrt(squared_sum) + group["eps"])
