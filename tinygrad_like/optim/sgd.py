"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.

The rule of torch.optim.SGD (torch/optim/sgd.py, `_single_tensor_sgd`). With g the gradient
after `maximize` and L2 weight decay (g + weight_decay * p), and b the momentum buffer:

    b = g                                     on the first step (undamped, as in PyTorch)
    b = momentum * b + (1 - dampening) * g    afterwards
    g = g + momentum * b    with nesterov,    else g = b
    p = p - lr * g
"""

from __future__ import annotations

from typing import Any

from tinygrad_like.optim.optimizer import Optimizer, ParamsT
from tinygrad_like.tensor import Tensor


class SGD(Optimizer):
    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False):
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_options(self, group: dict[str, Any]) -> None:
        self._require_nonnegative(group, "lr", "momentum", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{self._name}: Nesterov momentum requires a momentum and zero "
                             f"dampening; got momentum={group['momentum']}, "
                             f"dampening={group['dampening']}")

    def _update(self, param: Tensor, grad, state: dict[str, Any], group: dict[str, Any]):
        momentum = group["momentum"]
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                # a copy: `grad` may be the parameter's own gradient array
                state["momentum_buffer"] = Tensor._wrap(grad.copy(), param.backend)
            else:
                buffer.data *= momentum
                buffer.data += (1 - group["dampening"]) * grad
            velocity = state["momentum_buffer"].data
            grad = grad + momentum * velocity if group["nesterov"] else velocity
        param.data -= group["lr"] * grad
