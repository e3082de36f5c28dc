"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), with AMSGrad.

The rule of torch.optim.Adam (torch/optim/adam.py, `_single_tensor_adam`). With g the
gradient after `maximize` (and, for Adam, L2 weight decay g + weight_decay * p) at step t:

    p = p * (1 - lr * weight_decay)                         AdamW only (decoupled decay)
    m = m + (1 - beta1) * (g - m)                           a lerp, as PyTorch computes it
    v = beta2 * v + (1 - beta2) * g * g
    v_max = max(v_max, v), used in place of v               with amsgrad
    p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The update runs as one `adam_step` kernel call per parameter group (backend/reference_optim.py).
"""

from __future__ import annotations

from typing import Any

from tinygrad_like.creation import zeros_like
from tinygrad_like.optim.optimizer import Optimizer, ParamsT, batches, count_step, step_counter
from tinygrad_like.tensor import Tensor


class Adam(Optimizer):
    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize,
                    "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def _check_options(self, group: dict[str, Any]) -> None:
        self._require_nonnegative(group, "lr", "eps", "weight_decay")
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"{self._name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{self._name}: invalid beta parameter at index {index}: "
                                 f"{beta!r}; expected 0 <= beta < 1")

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": step_counter(), "exp_avg": zeros_like(param),
                 "exp_avg_sq": zeros_like(param)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = zeros_like(param)
        return state

    def _step_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        for param in params:
            if param not in self.state:
                self.state[param] = self._init_state(param, group)
        # a parameter that missed steps (no gradient) has its own count: one call per count
        for (backend, step), batch in batches(params, lambda p: count_step(self.state[p])).items():
            states = [self.state[param] for param in batch]
            backend.kernels.adam_step(
                [param._array for param in batch], [param.grad._array for param in batch],
                [state["exp_avg"]._array for state in states],
                [state["exp_avg_sq"]._array for state in states],
                [state["max_exp_avg_sq"]._array for state in states] if group["amsgrad"] else None,
                step, group["lr"], *group["betas"], group["eps"], group["weight_decay"],
                group["decoupled_weight_decay"], group["amsgrad"], group["maximize"])


class AdamW(Adam):
    """Adam with decoupled weight decay: the decay shrinks the parameter directly instead of
    passing through the moment estimates."""

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
