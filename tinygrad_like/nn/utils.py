"""Gradient clipping and weight penalties over a collection of parameters.

`clip_grad_norm_` follows torch.nn.utils.clip_grad_norm_: the total norm is the norm of
the per-gradient norms (the norm of all gradients concatenated), and every gradient is
scaled by min(1, max_norm / (total + 1e-6)). The penalties are ordinary tg ops, so they
are differentiable and can be added to a loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tinygrad_like.tensor import Tensor

ParamsT = Tensor | Iterable[Tensor]


def _as_list(parameters: ParamsT) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_norm_(parameters: ParamsT, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients in place so their total `norm_type` norm is at most `max_norm`.

    Returns the total norm before clipping, as a scalar Tensor. `norm_type` may be any
    p-norm order, `inf` included. A gradient is replaced by its scaled copy rather than
    written in place, since a gradient array may be shared by two parameters.
    """
    params = [param for param in _as_list(parameters) if param.grad is not None]
    if not params:
        return Tensor(0.0)
    devices = sorted({param.grad.device for param in params})
    if len(devices) > 1:
        raise RuntimeError(f"clip_grad_norm_: the gradients are on several devices {devices}; "
                           "expected all on one")
    backend = params[0].grad.backend
    xp, order = backend.xp, float(norm_type)
    norms = [xp.linalg.norm(param.grad._array.reshape(-1), ord=order) for param in params]
    total = xp.asarray(xp.linalg.norm(xp.stack(norms), ord=order))
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                           "gradients is non-finite, so they cannot be clipped; pass "
                           "error_if_nonfinite=False to scale them by it anyway")
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for param in params:
        param.grad = Tensor._wrap(param.grad._array * scale, backend)
    return Tensor._wrap(total, backend)


def l1_penalty(params: ParamsT) -> Tensor:
    """sum |w| over every given parameter (the lasso term); differentiable."""
    return _sum_over(params, lambda param: param.abs().sum())


def l2_penalty(params: ParamsT) -> Tensor:
    """sum w * w over every given parameter (no factor 1/2); differentiable."""
    return _sum_over(params, lambda param: (param * param).sum())


def _sum_over(params: ParamsT, term: Callable[[Tensor], Tensor]) -> Tensor:
    params = _as_list(params)
    if not params:
        return Tensor(0.0)
    total = term(params[0])
    for param in params[1:]:
        total = total + term(param)
    return total
