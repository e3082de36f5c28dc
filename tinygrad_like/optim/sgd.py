"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.

The rule of torch.optim.SGD (torch/optim/sgd.py, `_single_tensor_sgd`). With g the gradient
after `maximize` and L2 weight decay (g + weight_decay * p), and b the momentum buffer:

    b = g                                     on the first step (undamped, as in PyTorch)
    b = momentum * b + (1 - dampening) * g    afterwards
    g = g + momentum * b    with nesterov,    else g = b
    p = p - lr * g

The update runs as one `sgd_step` kernel call per parameter group (backend/reference_optim.py).
"""

from __future__ import annotations

from typing import Any

from tinygrad_like.optim.optimizer import Optimizer, ParamsT, batches
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

    def _step_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        momentum = group["momentum"]

        def starts_buffer(param: Tensor) -> bool:  # the first step sets b = g
            return momentum != 0 and "momentum_buffer" not in self.state.get(param, {})

        for (backend, first_step), batch in batches(params, starts_buffer).items():
            if first_step:
                for param in batch:
                    buffer = backend.xp.empty_like(param._array)
                    state = self.state.setdefault(param, {})
                    state["momentum_buffer"] = Tensor._wrap(buffer, backend)
            buffers = [self.state[param]["momentum_buffer"]._array for param in batch] \
                if momentum != 0 else []
            backend.kernels.sgd_step(
                [param._array for param in batch], [param.grad._array for param in batch], buffers,
                group["lr"], momentum, group["dampening"], group["nesterov"],
                group["weight_decay"], group["maximize"], first_step)
