"""RMSprop (Hinton, Coursera lecture 6e), with momentum and the centered variant (Graves 2013).

The rule of torch.optim.RMSprop (torch/optim/rmsprop.py, `_single_tensor_rmsprop`). With g
the gradient after `maximize` and L2 weight decay (g + weight_decay * p):

    v = alpha * v + (1 - alpha) * g * g
    a = g_avg + (1 - alpha) * (g - g_avg);  d = sqrt(v - a * a) + eps     centered
    d = sqrt(v) + eps                                                     otherwise
    b = momentum * b + g / d;  p = p - lr * b                             with momentum
    p = p - lr * g / d                                                    otherwise
"""

from __future__ import annotations

from typing import Any

from tinygrad_like.creation import zeros_like
from tinygrad_like.optim.optimizer import Optimizer, ParamsT, count_step, step_counter
from tinygrad_like.tensor import Tensor


class RMSprop(Optimizer):
    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, *, maximize: bool = False):
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                    "momentum": momentum, "centered": centered, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_options(self, group: dict[str, Any]) -> None:
        self._require_nonnegative(group, "lr", "alpha", "eps", "weight_decay", "momentum")

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": step_counter(), "square_avg": zeros_like(param)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = zeros_like(param)
        if group["centered"]:
            state["grad_avg"] = zeros_like(param)
        return state

    def _update(self, param: Tensor, grad, state: dict[str, Any], group: dict[str, Any]):
        xp, alpha = param.backend.xp, group["alpha"]
        count_step(state)  # kept for PyTorch's state layout; the rule does not use it
        square_avg = state["square_avg"]._array
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]._array
            grad_avg += (1 - alpha) * (grad - grad_avg)
            denominator = xp.sqrt(square_avg - grad_avg * grad_avg) + group["eps"]
        else:
            denominator = xp.sqrt(square_avg) + group["eps"]
        if group["momentum"] > 0:
            buffer = state["momentum_buffer"]._array
            buffer *= group["momentum"]
            buffer += grad / denominator
            param._array -= group["lr"] * buffer
        else:
            param._array -= group["lr"] * grad / denominator
