"""tg.nn.functional (F): stateless neural-network functions, as torch.nn.functional.

Everything here is composed from the differentiable ops in `tinygrad_like.ops`
(whose gradients the op registry checks), so these functions need no backward
of their own. Losses live in `nn/losses.py` and are re-exported here.
"""

from __future__ import annotations

import math

from tinygrad_like import dtypes
from tinygrad_like.nn.losses import (  # noqa: F401  (re-exported as F.<loss>)
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, l1_loss, mse_loss,
    nll_loss)
from tinygrad_like.ops.elementwise import (  # noqa: F401  (re-exported as F.<activation>)
    gelu, relu, sigmoid, silu, softplus, tanh, where)
from tinygrad_like.ops.linalg import linear  # noqa: F401
from tinygrad_like.ops.movement import pad  # noqa: F401
from tinygrad_like.ops.nn import _pair, log_softmax, softmax, unfold  # noqa: F401
from tinygrad_like.tensor import Tensor

# the public functions; tests/op_registry.py must cover each (tests/test_ops.py checks)
__all__ = ["linear", "conv2d", "max_pool2d", "avg_pool2d", "softmax", "log_softmax", "dropout",
           "embedding", "layer_norm", "batch_norm", "scaled_dot_product_attention", "relu",
           "sigmoid", "tanh", "gelu", "silu", "softplus", "leaky_relu", "one_hot", "pad",
           "mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits"]


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return where(x > 0, x, x * negative_slope)


def one_hot(indices: Tensor, num_classes: int = -1) -> Tensor:
    if indices.dtype.is_floating_point:
        raise TypeError(f"one_hot: expected an integer tensor, got {indices.dtype.name}")
    num_classes = int(indices.max().item()) + 1 if num_classes < 0 else num_classes
    classes = Tensor._wrap(indices.backend.xp.arange(num_classes), indices.backend)
    return (indices.unsqueeze(-1) == classes).long()


# ---- convolution and pooling ---------------------------------------------------------------
def _conv_padding(padding, kernel, dilation) -> tuple:
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return _pair(padding)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D cross-correlation as im2col + one batched BLAS matmul per group.

    x (N, C, H, W), weight (K, C/groups, KH, KW) -> (N, K, OH, OW).
    """
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d: expected 4-D input and weight, got shapes {x.shape} and "
                         f"{weight.shape}")
    n, c, h, w = x.shape
    k, c_per_group, kh, kw = weight.shape
    if c % groups or k % groups or c // groups != c_per_group:
        raise ValueError(f"conv2d: input with {c} channels and weight of shape {weight.shape} "
                         f"do not fit groups={groups} (weight needs C/groups = {c // groups} "
                         "input channels)")
    stride, dilation = _pair(stride), _pair(dilation)
    if padding == "same" and stride != (1, 1):
        raise ValueError("conv2d: padding='same' needs stride 1")
    pad_h, pad_w = _conv_padding(padding, (kh, kw), dilation)
    if pad_h or pad_w:
        extra_h = dilation[0] * (kh - 1) - 2 * pad_h if padding == "same" else 0
        extra_w = dilation[1] * (kw - 1) - 2 * pad_w if padding == "same" else 0
        x = pad(x, (pad_w, pad_w + extra_w, pad_h, pad_h + extra_h))
    windows = unfold(x, (kh, kw), stride, dilation)  # (N, C, OH, OW, KH, KW), a view
    oh, ow = windows.shape[2:4]
    # im2col: (N, G, OH*OW, C/G*KH*KW) rows against (G, C/G*KH*KW, K/G) filters
    cols = windows.reshape(n, groups, c_per_group, oh, ow, kh * kw).permute(0, 1, 3, 4, 2, 5)
    cols = cols.reshape(n, groups, oh * ow, c_per_group * kh * kw)
    filters = weight.reshape(groups, k // groups, c_per_group * kh * kw).mT
    out = (cols @ filters).permute(0, 1, 3, 2).reshape(n, k, oh, ow)
    return out if bias is None else out + bias.reshape(1, k, 1, 1)


def _pool_windows(op: str, x: Tensor, kernel_size, stride, padding, dilation, fill: float):
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D or 4-D input, got shape {x.shape}")
    kernel = _pair(kernel_size)
    stride = kernel if stride is None or stride == [] else _pair(stride)
    padding = _pair(padding)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} should be at most half of kernel size {kernel}")
    batched = x if x.ndim == 4 else x.unsqueeze(0)
    if any(padding):
        batched = pad(batched, (padding[1], padding[1], padding[0], padding[0]), value=fill)
    return unfold(batched, kernel, stride, dilation), x.ndim == 3


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over each window; the gradient goes to the first maximum, as in PyTorch."""
    if ceil_mode or return_indices:
        raise ValueError("max_pool2d: ceil_mode and return_indices are not supported")
    windows, unbatched = _pool_windows("max_pool2d", x, kernel_size, stride, padding, dilation,
                                       float("-inf"))
    out = windows.reshape(*windows.shape[:4], -1).max(dim=-1).values
    return out.squeeze(0) if unbatched else out


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    if ceil_mode:
        raise ValueError("avg_pool2d: ceil_mode is not supported")
    windows, unbatched = _pool_windows("avg_pool2d", x, kernel_size, stride, padding, 1, 0.0)
    out = windows.sum((-2, -1))
    if count_include_pad or not any(_pair(padding)):
        out = out / (windows.shape[-2] * windows.shape[-1])
    else:
        ones = Tensor._wrap(x.backend.xp.ones((1, 1) + x.shape[-2:], dtype=x.data.dtype), x.backend)
        counts, _ = _pool_windows("avg_pool2d", ones, kernel_size, stride, padding, 1, 0.0)
        out = out / counts.sum((-2, -1))
    return out.squeeze(0) if unbatched else out


# ---- regularisation, embedding, normalisation ------------------------------------------------
def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout).

    The mask comes from the device's generator, so `tg.manual_seed` reproduces it.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = x.backend.rng.random(x.shape) >= p
    mask = Tensor._wrap(x.backend.xp.asarray(keep, dtype=x.data.dtype) / (1.0 - p), x.backend)
    return x * mask


def embedding(indices: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` picked by integer `indices`; padding_idx rows receive no gradient."""
    if indices.dtype.is_floating_point:
        raise TypeError(f"embedding: indices must be an integer tensor, got {indices.dtype.name}")
    if indices.numel() and (int(indices.data.min()) < 0 or
                            int(indices.data.max()) >= weight.shape[0]):
        raise IndexError(f"embedding: indices must lie in [0, {weight.shape[0] - 1}] for a weight "
                         f"of shape {weight.shape}; got [{int(indices.data.min())}, "
                         f"{int(indices.data.max())}]")
    rows = weight[indices]
    if padding_idx is None:
        return rows
    keep = (indices != padding_idx % weight.shape[0]).unsqueeze(-1)
    return where(keep, rows, rows.detach())


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the trailing "
                         f"dimensions of the input of shape {x.shape}")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    centered = x - x.mean(axes, keepdim=True)
    out = centered * ((centered * centered).mean(axes, keepdim=True) + eps).rsqrt()
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise over every dimension but the channels (dim 1).

    Training uses the batch statistics and updates the running ones in place with the
    unbiased variance, as PyTorch does; evaluation uses the running statistics.
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2-D input (N, C, ...), got {x.shape}")
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if training:
        count = x.numel() // x.shape[1]
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                             f"got input of shape {x.shape}")
        mean = x.mean(axes, keepdim=True)
        var = ((x - mean) * (x - mean)).mean(axes, keepdim=True)
        if running_mean is not None:
            from tinygrad_like.autograd import no_grad

            with no_grad():
                running_mean.mul_(1 - momentum).add_(mean.detach().reshape(-1) * momentum)
                running_var.mul_(1 - momentum).add_(
                    var.detach().reshape(-1) * (momentum * count / (count - 1)))
    else:
        if running_mean is None:
            raise ValueError("batch_norm: evaluation mode needs running_mean and running_var")
        mean, var = running_mean.reshape(shape), running_var.reshape(shape)
    out = (x - mean) * (var + eps).rsqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    return out if bias is None else out + bias.reshape(shape)


# ---- attention -------------------------------------------------------------------------------
def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """softmax(q k^T * scale + mask) v over (..., L, E) queries and (..., S, E) keys.

    A bool mask marks the positions that may be attended (True = keep), as in PyTorch;
    a float mask is added to the scores. Rows with every key masked give zeros.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: q {q.shape}, k {k.shape} and v {v.shape} "
                         "need q and k to share the last dimension and k and v the sequence one")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.mT) * scale
    allowed = None
    if is_causal:
        xp = q.backend.xp
        allowed = Tensor._wrap(xp.tril(xp.ones((q.shape[-2], k.shape[-2]), dtype=bool)), q.backend)
    elif attn_mask is not None and attn_mask.dtype is dtypes.bool_:
        allowed = attn_mask
    elif attn_mask is not None:
        scores = scores + attn_mask
    if allowed is not None:
        # fully masked rows get finite scores and are zeroed after the softmax
        any_allowed = allowed.sum(-1, keepdim=True) > 0
        scores = where(allowed, scores, float("-inf"))
        scores = where(any_allowed, scores, 0.0)
    weights = softmax(scores, -1)
    if allowed is not None:
        weights = where(allowed.sum(-1, keepdim=True) > 0, weights, 0.0)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p)
    return weights @ v
