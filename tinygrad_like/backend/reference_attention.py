"""Attention, the plain NumPy reference: the whole (L, S) score matrix, written out.

q (Z, L, D), k (Z, S, D) and v (Z, S, Dv), with Z the flattened batch and heads, as the
kernel table's `attention` entry takes them. `mask` is None or an additive float array
broadcastable to (Z, L, S): -inf hides a key (ops/attention.py turns a bool mask, True =
may attend, into 0 / -inf before any kernel sees it). `is_causal` hides key j from query i
where j > i (PyTorch's top-left alignment). A row whose every key is hidden gets output 0
and lse = +inf. float16 inputs are computed in float32, float64 in float64.

This is the oracle the tuned "cpu" attention (cpu_attention.py) and its native steps are
tested against: it holds a (Z, L, S) array, which the tuned path never does.
"""

from __future__ import annotations

import numpy as np


def _compute_dtype(dtype):
    return np.float64 if dtype == np.float64 else np.float32


def _scores(q, k, mask, is_causal: bool, scale: float, compute):
    """q k^T * scale + mask, (Z, L, S), with -inf where a key is hidden."""
    scores = (q.astype(compute) @ k.astype(compute).transpose(0, 2, 1)) * compute(scale)
    if mask is not None:
        scores = scores + np.asarray(mask, dtype=compute)
    if is_causal:
        visible = np.tril(np.ones(scores.shape[1:], dtype=bool))
        scores = np.where(visible, scores, -np.inf)
    return scores


def _probabilities(scores, lse):
    """softmax of each row, exp(scores - lse); exactly 0 in rows with lse = +inf."""
    return np.exp(scores - lse[:, :, None])


def attention(q, k, v, mask, is_causal: bool, scale: float):
    """softmax(q k^T * scale + mask) v; returns (out (Z, L, Dv), lse (Z, L))."""
    compute = _compute_dtype(q.dtype)
    scores = _scores(q, k, mask, is_causal, scale, compute)
    row_max = scores.max(axis=2, initial=-np.inf)
    any_visible = row_max > -np.inf
    shift = np.where(any_visible, row_max, 0.0)  # a hidden row: no -inf - -inf
    row_sum = np.exp(scores - shift[:, :, None]).sum(axis=2)
    lse = np.where(any_visible, shift + np.log(np.where(any_visible, row_sum, 1.0)), np.inf)
    lse = lse.astype(compute)
    out = _probabilities(scores, lse) @ v.astype(compute)
    return out.astype(q.dtype), lse


def attention_backward(grad_out, q, k, v, out, lse, mask, is_causal: bool, scale: float):
    """(dq, dk, dv) of `attention`, from the probabilities P = exp(scores - lse):
        dV = P^T dO,   dP = dO V^T,   dS = P * (dP - rowsum(P * dP)),
        dQ = dS K * scale,   dK = dS^T Q * scale.
    `out` is not needed: rowsum(P * dP) is the softmax's own backward, not rowsum(dO * O)."""
    compute = _compute_dtype(q.dtype)
    dtypes = (q.dtype, k.dtype, v.dtype)
    grad, q, k, v = (a.astype(compute) for a in (grad_out, q, k, v))
    probs = _probabilities(_scores(q, k, mask, is_causal, scale, compute),
                           np.asarray(lse, dtype=compute))
    dv = probs.transpose(0, 2, 1) @ grad
    dprobs = grad @ v.transpose(0, 2, 1)
    dscores = probs * (dprobs - (probs * dprobs).sum(axis=2, keepdims=True))
    dq = (dscores @ k) * compute(scale)
    dk = (dscores.transpose(0, 2, 1) @ q) * compute(scale)
    return tuple(g.astype(dtype) for g, dtype in zip((dq, dk, dv), dtypes))
