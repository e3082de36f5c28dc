"""Layer normalisation as one fused op over the normalised trailing dimensions.

Forward and backward are the `layer_norm` / `layer_norm_backward` kernels (NumPy in
backend/reference_norm.py, or the native extension's single pass per row): forward saves each
row's mean and reciprocal standard deviation instead of the normalised input, and backward
is one kernel call instead of a dozen elementwise ops and reductions.
"""

from __future__ import annotations

import math

from tinygrad_like.autograd import Function
from tinygrad_like.grad_mode import is_grad_enabled
from tinygrad_like.tensor import Tensor


class LayerNorm(Function):
    """x of shape (..., *normalized_shape) normalised over its trailing `normalized_shape`,
    seen by the kernels as (rows, columns) with the normalised dimensions flattened."""

    @staticmethod
    def forward(ctx, x, weight, bias, normalized_shape, eps):
        columns = math.prod(normalized_shape)
        out, mean, rstd = x.backend.kernels.layer_norm(
            x._array.reshape(-1, columns), None if weight is None else weight._array.reshape(columns),
            None if bias is None else bias._array.reshape(columns), eps)
        ctx.save_for_backward(x, weight, Tensor._wrap(mean, x.backend),
                              Tensor._wrap(rstd, x.backend))
        ctx.normalized_shape, ctx.eps, ctx.has_bias = normalized_shape, eps, bias is not None
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, rstd = ctx.saved_tensors
        shape = ctx.normalized_shape
        if is_grad_enabled():  # create_graph: a gradient that is itself differentiable
            return _layer_norm_backward_graph(grad, x, weight, shape, ctx.eps, ctx.has_bias)
        columns = math.prod(shape)
        dx, dweight, dbias = x.backend.kernels.layer_norm_backward(
            grad._array.reshape(-1, columns), x._array.reshape(-1, columns), mean._array, rstd._array,
            None if weight is None else weight._array.reshape(columns))
        dweight = None if weight is None else Tensor._wrap(dweight.reshape(shape), x.backend)
        dbias = Tensor._wrap(dbias.reshape(shape), x.backend) if ctx.has_bias else None
        return Tensor._wrap(dx.reshape(x.shape), x.backend), dweight, dbias, None, None


def _layer_norm_backward_graph(grad, x, weight, normalized_shape, eps, has_bias):
    """The same gradients from differentiable Tensor ops, recomputing the statistics from x
    so that their dependence on x is part of the graph (double backward)."""
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    leading = tuple(range(x.ndim - len(normalized_shape)))
    centered = x - x.mean(axes, keepdim=True)
    rstd = ((centered * centered).mean(axes, keepdim=True) + eps).rsqrt()
    normalized = centered * rstd
    g = grad if weight is None else grad * weight
    dx = rstd * (g - g.mean(axes, keepdim=True)
                 - normalized * (g * normalized).mean(axes, keepdim=True))
    over_rows = (lambda t: t.sum(leading)) if leading else (lambda t: t)
    dweight = None if weight is None else over_rows(grad * normalized)
    return dx, dweight, over_rows(grad) if has_bias else None, None, None


def layer_norm(x: Tensor, normalized_shape: tuple, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise x over its trailing `normalized_shape` (already checked by the caller)."""
    return LayerNorm.apply(x, weight, bias, tuple(normalized_shape), eps)
