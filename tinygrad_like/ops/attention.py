"""Scaled dot-product attention as one fused op: softmax(q k^T * scale + mask) v.

The device's `attention` kernel never stores the (L, S) probabilities: the tiled NumPy
kernel on "cpu" (backend/cpu_attention.py) and the Triton FlashAttention kernel on
"cuda"/"interp" both keep only each row's log-sum-exp and recompute the probabilities
block by block in backward. `attention_math` is the same function composed from
differentiable primitives; it serves dropout (which needs the probabilities), masks that
require grad, and double backward.
"""

from __future__ import annotations

import math

from tinygrad_like import dtypes
from tinygrad_like.amp.autocast import autocast_op
from tinygrad_like.autograd import Function, differentiable_backward
from tinygrad_like.grad_mode import is_grad_enabled
from tinygrad_like.ops.checks import (broadcasts_to, check_number, check_optional_tensor,
                                     check_tensor)
from tinygrad_like.ops.dropout import dropout
from tinygrad_like.ops.selection import where
from tinygrad_like.ops.softmax import softmax
from tinygrad_like.tensor import Tensor


class ScaledDotProductAttention(Function):
    """q (Z, L, D), k (Z, S, D), v (Z, S, Dv) -> (Z, L, Dv); `mask` is an additive array."""

    saves_output = True

    @staticmethod
    def forward(ctx, q, k, v, mask, is_causal, scale):
        out, lse = q.backend.kernels.attention(q._array, k._array, v._array, mask, is_causal, scale)
        ctx.save_for_backward(q, k, v, Tensor._wrap(lse, q.backend))
        ctx.mask, ctx.is_causal, ctx.scale = mask, is_causal, scale
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, lse, out = ctx.saved_tensors
        if is_grad_enabled():
            mask = None if ctx.mask is None else Tensor._wrap(ctx.mask, q.backend)
            return differentiable_backward(
                lambda q, k, v: attention_math(q, k, v, mask, ctx.is_causal, ctx.scale),
                (q, k, v), ctx.needs_input_grad[:3], grad)
        grads = q.backend.kernels.attention_backward(grad._array, q._array, k._array, v._array, out._array,
                                                     lse._array, ctx.mask, ctx.is_causal, ctx.scale)
        return tuple(Tensor._wrap(g, q.backend) if needed else None
                     for g, needed in zip(grads, ctx.needs_input_grad))


def attention_math(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool,
                   scale: float, dropout_p: float = 0.0) -> Tensor:
    """Attention from primitives, with the fused kernel's conventions.

    `mask` is a bool mask (True = may attend) or an additive float mask (-inf hides a key);
    a row with no visible key gives zeros rather than NaN.
    """
    scores = (q @ k.mT) * scale
    visible = None
    if mask is not None and mask.dtype is dtypes.bool_:
        visible = mask
    elif mask is not None:
        visible = mask > float("-inf")
        scores = scores + where(visible, mask, 0.0)
    if is_causal:
        xp = q.backend.xp
        causal = Tensor._wrap(xp.tril(xp.ones((q.shape[-2], k.shape[-2]), dtype=bool)), q.backend)
        visible = causal if visible is None else visible & causal
    if visible is not None:
        any_visible = visible.sum(-1, keepdim=True) > 0
        # hidden keys get -inf; rows with nothing visible get finite scores, zeroed afterwards
        scores = where(any_visible, where(visible, scores, float("-inf")), 0.0)
    weights = softmax(scores, -1)
    if visible is not None:
        weights = where(any_visible, weights, 0.0)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p)
    return weights @ v


@autocast_op("scaled_dot_product_attention")
def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """softmax(q k^T * scale + mask) v over (..., L, E) queries and (..., S, E) keys/values.

    A bool mask marks the positions that may be attended (True = keep), as in PyTorch;
    a float mask is added to the scores. Rows with every key masked give zeros.
    """
    batch = _check_inputs(q, k, v, attn_mask, is_causal)
    scale = _scale(q, k, scale)
    # the fused kernels tile by sizes that must be positive: empty inputs take the composed path
    empty = q.numel() == 0 or k.numel() == 0 or v.numel() == 0
    if (dropout_p > 0.0 or (attn_mask is not None and attn_mask.requires_grad) or q.ndim < 3
            or empty):
        return attention_math(q, k, v, attn_mask, is_causal, scale, dropout_p)
    xp = q.backend.xp
    length_q, length_k = q.shape[-2], k.shape[-2]
    mask = None
    if attn_mask is not None:
        mask = attn_mask._array
        if attn_mask.dtype is dtypes.bool_:
            mask = xp.where(mask, 0.0, float("-inf"))
        mask = _flatten_batch(xp, xp.broadcast_to(xp.astype(mask, q._array.dtype, copy=False),
                                                  (*batch, length_q, length_k)))
    # counted rather than -1, which no reshape can infer when a matrix is empty
    flat = [t.expand(*batch, *t.shape[-2:]).reshape(math.prod(batch), *t.shape[-2:])
            for t in (q, k, v)]
    out = ScaledDotProductAttention.apply(*flat, mask, bool(is_causal), scale)
    return out.reshape(*batch, length_q, v.shape[-1])


def _flatten_batch(xp, mask):
    """(*batch, L, S) -> (Z, L, S), as a view when the batch strides allow (broadcast masks)."""
    sizes, strides = mask.shape[:-2], mask.strides[:-2]
    mergeable = all(strides[i] == strides[i + 1] * sizes[i + 1]
                    for i in range(len(sizes) - 1) if sizes[i] > 1 and sizes[i + 1] > 1)
    if not mergeable:  # e.g. a (B, 1, 1, S) key-padding mask over (B, H): one copy
        mask = xp.ascontiguousarray(mask)
    return mask.reshape(math.prod(sizes), *mask.shape[-2:])


def _scale(q: Tensor, k: Tensor, scale) -> float:
    """The given scale, or PyTorch's default 1 / sqrt(E)."""
    name = "scaled_dot_product_attention"
    check_number(name, "scale", scale, optional=True)
    if scale is not None:
        return float(scale)
    if q.shape[-1] == 0:
        raise ValueError(f"{name}: q of shape {q.shape} and k of shape {k.shape} have no "
                         "features, so the default scale 1 / sqrt(E) is undefined; pass scale")
    return 1.0 / math.sqrt(q.shape[-1])


def _check_inputs(q: Tensor, k: Tensor, v: Tensor, attn_mask, is_causal: bool) -> tuple:
    """Check q, k, v and the mask, and return the batch shape they broadcast to."""
    name = "scaled_dot_product_attention"
    for label, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, label, t)
    check_optional_tensor(name, "attn_mask", attn_mask)
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"{name}: q, k and v need at least 2 dims (..., L, E); got shapes "
                         f"{q.shape}, {k.shape} and {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{name}: q {q.shape}, k {k.shape} and v {v.shape} need q and k to "
                         "share the last dimension and k and v the sequence one")
    if not (q.dtype is k.dtype is v.dtype) or not q.dtype.is_floating_point:
        raise TypeError(f"{name}: q, k and v must share one floating dtype; got {q.dtype.name}, "
                        f"{k.dtype.name} and {v.dtype.name}")
    if not (q.backend is k.backend is v.backend):
        raise RuntimeError(f"{name}: q, k and v must be on one device; got {q.device}, "
                           f"{k.device} and {v.device}")
    if is_causal and attn_mask is not None:
        raise ValueError(f"{name}: pass either attn_mask or is_causal")
    xp = q.backend.xp
    try:
        batch = xp.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(f"{name}: the batch dimensions of q {q.shape}, k {k.shape} and "
                         f"v {v.shape} cannot be broadcast together") from None
    if attn_mask is not None:
        _check_mask(attn_mask, q, k, batch)
    return batch


def _check_mask(mask: Tensor, q: Tensor, k: Tensor, batch: tuple) -> None:
    name = "scaled_dot_product_attention"
    if mask.dtype is not dtypes.bool_ and not mask.dtype.is_floating_point:
        raise TypeError(f"{name}: attn_mask must be bool or floating, got {mask.dtype.name}")
    if mask.backend is not q.backend:
        raise RuntimeError(f"{name}: attn_mask on {mask.device}, q on {q.device}")
    scores = (*batch, q.shape[-2], k.shape[-2])
    if not broadcasts_to(mask.shape, scores):
        raise ValueError(f"{name}: attn_mask of shape {mask.shape} does not broadcast to the "
                         f"scores {scores} of q {q.shape} and k {k.shape}")
