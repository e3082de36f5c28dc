"""Layer normalisation over the rows of a 2-D array: the NumPy reference of the
`layer_norm` / `layer_norm_backward` kernel-table entries (ops/norm.py flattens the
normalised trailing dimensions into the C columns).

Forward keeps each row's mean and reciprocal standard deviation, so backward needs neither
a second statistics pass nor the (R, C) normalised input. With x^ = (x - mean) * rstd and
g = grad * weight, the input gradient is

    dx = rstd * (g - mean_c(g) - x^ * mean_c(g * x^)),

dweight = sum_rows(grad * x^) and dbias = sum_rows(grad). Half-precision inputs are computed
in float32. Only array methods are used, so CuPy arrays work too.
"""

from __future__ import annotations

import numpy as np


def _compute_dtype(dtype):
    return np.result_type(dtype, np.float32)


def layer_norm(x, weight, bias, eps: float):
    """(R, C) x -> (out (R, C), mean (R,), rstd (R,)); weight and bias are (C,) or None."""
    xc = x.astype(_compute_dtype(x.dtype), copy=False)
    mean = xc.mean(axis=1)
    centered = xc - mean[:, None]
    rstd = 1 / ((centered * centered).mean(axis=1) + eps) ** 0.5
    out = centered * rstd[:, None]
    if weight is not None:
        out *= weight
    if bias is not None:
        out += bias
    return out.astype(x.dtype, copy=False), mean, rstd


def layer_norm_backward(grad, x, mean, rstd, weight):
    """-> (dx (R, C), dweight (C,) or None when weight is None, dbias (C,))."""
    dtype = _compute_dtype(x.dtype)
    grad = grad.astype(dtype, copy=False)
    normalized = (x.astype(dtype, copy=False) - mean[:, None]) * rstd[:, None]
    g = grad if weight is None else grad * weight
    dx = rstd[:, None] * (g - g.mean(axis=1, keepdims=True)
                          - normalized * (g * normalized).mean(axis=1, keepdims=True))
    # the parameters' gradients in the parameters' dtype: under autocast a float32 weight
    # normalises bfloat16 activations, as PyTorch's mixed-dtype layer_norm allows
    param_dtype = x.dtype if weight is None else weight.dtype
    dweight = None if weight is None else (grad * normalized).sum(axis=0).astype(param_dtype)
    return dx.astype(x.dtype, copy=False), dweight, grad.sum(axis=0).astype(param_dtype)
