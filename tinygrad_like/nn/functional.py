"""tg.nn.functional (F): stateless neural-network functions, as torch.nn.functional.

Everything here is composed from the differentiable ops in `tinygrad_like.ops`
(whose gradients the op registry checks), so these functions need no backward
of their own. Losses live in `nn/losses.py` and are re-exported here.
"""

from __future__ import annotations

import math

from tinygrad_like.amp.autocast import autocast_op
from tinygrad_like.grad_mode import is_grad_enabled, no_grad
from tinygrad_like.nn.losses import (  # noqa: F401  (re-exported as F.<loss>)
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, l1_loss, mse_loss,
    nll_loss)
from tinygrad_like.ops import norm
from tinygrad_like.ops.checks import (check_int, check_ints, check_per_channel, check_tensor,
                                      check_weighted_operands)
from tinygrad_like.ops.selection import where  # noqa: F401  (re-exported as F.where)
from tinygrad_like.ops import unary
from tinygrad_like.ops.unary import gelu, sigmoid, softplus, tanh  # noqa: F401  (F.<activation>)
from tinygrad_like.ops.linalg import linear  # noqa: F401
from tinygrad_like.ops.movement import pad  # noqa: F401
from tinygrad_like.ops.attention import scaled_dot_product_attention  # noqa: F401
from tinygrad_like.ops.conv import AvgPool2d, Conv2d, MaxPool2d, _pair, conv2d_unfold
from tinygrad_like.ops.conv_transpose import conv_transpose2d  # noqa: F401
from tinygrad_like.ops.fold import fold, unfold  # noqa: F401
from tinygrad_like.ops.norm_variants import group_norm, rms_norm  # noqa: F401
from tinygrad_like.ops.resample import interpolate  # noqa: F401
from tinygrad_like.ops import dropout as dropout_op
from tinygrad_like.ops.embedding import Embedding
from tinygrad_like.ops.softmax import log_softmax, softmax  # noqa: F401
from tinygrad_like.tensor import Tensor

# the public functions; tests/op_registry.py must cover each (tests/test_ops.py checks)
__all__ = ["linear", "conv2d", "max_pool2d", "avg_pool2d", "softmax", "log_softmax", "dropout",
           "embedding", "layer_norm", "batch_norm", "scaled_dot_product_attention", "relu",
           "sigmoid", "tanh", "gelu", "silu", "softplus", "leaky_relu", "one_hot", "pad",
           "mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "conv1d", "conv_transpose2d", "group_norm",
           "rms_norm", "interpolate", "normalize", "unfold", "fold"]


def _into(x: Tensor, result: Tensor, inplace: bool) -> Tensor:
    """`inplace=True`, as PyTorch: the result is written into x, which is returned. Autograd
    here records no in-place ops, so while it tracks x, x keeps its values and the result is
    a new tensor: the same values and gradients as PyTorch's, without the write."""
    if inplace and not (is_grad_enabled() and x.requires_grad):
        return x.copy_(result)
    return result


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    return _into(x, unary.relu(x), inplace)


def silu(x: Tensor, inplace: bool = False) -> Tensor:
    return _into(x, unary.silu(x), inplace)


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return _into(x, where(x > 0, x, x * negative_slope), inplace)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    return _into(x, dropout_op.dropout(x, p, training), inplace)


def one_hot(indices: Tensor, num_classes: int = -1) -> Tensor:
    """int64 (*indices.shape, num_classes) with a 1 at each index; num_classes=-1 is
    max + 1. Negative or too-large classes raise RuntimeError, as in PyTorch."""
    check_tensor("one_hot", "indices", indices)
    if indices.dtype.category != 1:
        raise TypeError(f"one_hot: expected an integer tensor, got {indices.dtype.name}")
    num_classes = check_int("one_hot", "num_classes", num_classes, minimum=-1)
    if indices.numel() == 0:
        if num_classes < 0:
            raise RuntimeError(f"one_hot: cannot infer the number of classes from an empty "
                               f"tensor of shape {indices.shape}; pass num_classes")
    else:
        low, high = int(indices._array.min()), int(indices._array.max())
        if low < 0:
            raise RuntimeError(f"one_hot: class values must be non-negative, got {low}")
        if num_classes < 0:
            num_classes = high + 1
        elif high >= num_classes:
            raise RuntimeError(f"one_hot: class values must be smaller than num_classes="
                               f"{num_classes}, got {high}")
    classes = Tensor._wrap(indices.backend.xp.arange(num_classes), indices.backend)
    return (indices.unsqueeze(-1) == classes).long()


def normalize(x: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p over dim, eps), as torch.nn.functional.normalize."""
    check_tensor("normalize", "input", x)
    return x / x.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(x)


# ---- convolution and pooling ---------------------------------------------------------------
def _conv_padding(padding, kernel, dilation) -> tuple:
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    if isinstance(padding, str):
        raise ValueError(f"conv2d: padding must be 'valid', 'same', an int or a pair of ints, "
                         f"got {padding!r}")
    return _pair("conv2d", "padding", padding)


def _check_window(op: str, x: Tensor, kernel: tuple, dilation: tuple, padding: tuple,
                  weight: Tensor | None = None) -> None:
    """The (dilated) kernel must fit in the padded input, or there is no output position."""
    padded = (x.shape[-2] + 2 * padding[0], x.shape[-1] + 2 * padding[1])
    if any(d * (k - 1) + 1 > n for k, d, n in zip(kernel, dilation, padded)):
        weight_shape = "" if weight is None else f" (weight of shape {weight.shape})"
        raise ValueError(f"{op}: kernel {kernel}{weight_shape} with dilation {dilation} is "
                         f"larger than the padded input {padded} (input of shape {x.shape}, "
                         f"padding {padding})")


def _check_conv_operands(x: Tensor, weight: Tensor, bias: Tensor | None,
                         op: str = "conv2d") -> None:
    check_weighted_operands(op, x, weight, bias)
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"{op}: expected 4-D input and weight, got shapes {x.shape} and "
                         f"{weight.shape}")


@autocast_op("conv2d")
def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D cross-correlation: x (N, C, H, W), weight (K, C/groups, KH, KW) -> (N, K, OH, OW).

    One group runs the device's conv2d kernels (ops/conv.py); grouped convolutions (and
    empty operands) are composed from unfold and a batched matmul.
    """
    _check_conv_operands(x, weight, bias)
    groups = check_int("conv2d", "groups", groups, minimum=1)
    c = x.shape[1]
    k, c_per_group, kh, kw = weight.shape
    if c_per_group == 0 or kh == 0 or kw == 0:  # nothing to sum (PyTorch's shapes disagree)
        raise ValueError(f"conv2d: the weight of shape {weight.shape} has no input channels or "
                         f"an empty kernel (input of shape {x.shape})")
    if c != c_per_group * groups or k % groups:
        raise ValueError(f"conv2d: input of shape {x.shape} ({c} channels) does not fit the "
                         f"weight of shape {weight.shape} with groups={groups}, which expects "
                         f"{c_per_group * groups} input channels and output channels divisible "
                         "by groups")
    if bias is not None and bias.shape != (k,):
        raise ValueError(f"conv2d: bias of shape {bias.shape} does not match the {k} output "
                         f"channels of the weight of shape {weight.shape}")
    stride, dilation = _pair("conv2d", "stride", stride), _pair("conv2d", "dilation", dilation)
    same = isinstance(padding, str) and padding == "same"
    if same and stride != (1, 1):
        raise ValueError("conv2d: padding='same' needs stride 1")
    padding = _conv_padding(padding, (kh, kw), dilation)
    if any(v <= 0 for v in stride + dilation) or any(v < 0 for v in padding):
        raise ValueError(f"conv2d: stride {stride} and dilation {dilation} must be positive and "
                         f"padding {padding} non-negative")
    if same:  # an even kernel pads one more on the bottom/right, as PyTorch
        extra_h, extra_w = dilation[0] * (kh - 1) % 2, dilation[1] * (kw - 1) % 2
        if extra_h or extra_w:
            x = pad(x, (0, extra_w, 0, extra_h))
    _check_window("conv2d", x, (kh, kw), dilation, padding, weight)
    # the composed path also takes empty operands, which the fused kernels assume away
    if groups != 1 or x.numel() == 0 or weight.numel() == 0:
        return conv2d_unfold(x, weight, bias, stride, padding, dilation, groups)
    return Conv2d.apply(x, weight, bias, stride, padding, dilation)


@autocast_op("conv1d")
def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """1-D cross-correlation: x (N, C, L) or (C, L), weight (K, C/groups, KL) -> (N, K, OL).

    A conv2d of height 1, so each device's tuned conv2d kernels serve it; the checks here
    name conv1d and the caller's shapes before conv2d sees the height-1 ones.
    """
    op = "conv1d"
    check_tensor(op, "input", x)
    check_tensor(op, "weight", weight)
    if x.ndim not in (2, 3) or weight.ndim != 3:
        raise ValueError(f"{op}: expected a 2-D (C, L) or 3-D (N, C, L) input and a 3-D "
                         f"weight (K, C/groups, KL), got shapes {x.shape} and {weight.shape}")
    groups = check_int(op, "groups", groups, minimum=1)
    stride, dilation = _single(op, "stride", stride), _single(op, "dilation", dilation)
    k, c_per_group, kernel = weight.shape
    if x.shape[-2] != c_per_group * groups or k % groups or c_per_group == 0 or kernel == 0:
        raise ValueError(f"{op}: input of shape {x.shape} does not fit the weight of shape "
                         f"{weight.shape} with groups={groups}, which expects "
                         f"{c_per_group * groups} input channels, output channels divisible by "
                         "groups and a non-empty kernel")
    if bias is not None and check_tensor(op, "bias", bias).shape != (k,):
        raise ValueError(f"{op}: bias of shape {bias.shape} does not match the {k} output "
                         f"channels of the weight of shape {weight.shape}")
    if isinstance(padding, str):
        if padding not in ("same", "valid") or (padding == "same" and stride != 1):
            raise ValueError(f"{op}: padding must be 'valid', 'same' (with stride 1) or an int, "
                             f"got {padding!r} with stride {stride}")
        length = x.shape[-1]
    else:
        padding = (0, _single(op, "padding", padding))
        length = x.shape[-1] + 2 * padding[1]
    if stride <= 0 or dilation <= 0 or length < x.shape[-1]:
        raise ValueError(f"{op}: stride {stride} and dilation {dilation} must be positive and "
                         f"padding {padding} non-negative")
    if dilation * (kernel - 1) + 1 > length:
        raise ValueError(f"{op}: kernel of size {kernel} (weight of shape {weight.shape}) with "
                         f"dilation {dilation} is larger than the padded input length {length} "
                         f"(input of shape {x.shape}, padding {padding})")
    batched = (x if x.ndim == 3 else x.unsqueeze(0)).unsqueeze(2)
    _check_conv_operands(batched, weight.unsqueeze(2), bias, op)
    out = conv2d(batched, weight.unsqueeze(2), bias, (1, stride), padding, (1, dilation),
                 groups).squeeze(2)
    return out if x.ndim == 3 else out.squeeze(0)


def _single(op: str, name: str, value) -> int:
    """An int or a 1-tuple of ints (PyTorch's _single) as an int; floats are refused."""
    single = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(single) != 1:
        raise TypeError(f"{op}: {name} must be an int or a 1-tuple of ints, got {value!r}")
    return check_int(op, name, single[0])


def _pool_args(op: str, x: Tensor, kernel_size, stride, padding, dilation=1):
    check_tensor(op, "input", x)
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D or 4-D input, got shape {x.shape}")
    kernel = _pair(op, "kernel_size", kernel_size)
    stride = kernel if stride is None or stride == [] else _pair(op, "stride", stride)
    padding, dilation = _pair(op, "padding", padding), _pair(op, "dilation", dilation)
    if any(v <= 0 for v in kernel + stride + dilation):
        raise ValueError(f"{op}: kernel_size {kernel}, stride {stride} and dilation {dilation} "
                         "must be positive")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2 or min(padding) < 0:
        raise ValueError(f"{op}: padding {padding} should be at most half of kernel size {kernel}")
    _check_window(op, x, kernel, dilation, padding)
    batched = x if x.ndim == 4 else x.unsqueeze(0)
    return batched, kernel, stride, padding, dilation


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over each window; the gradient goes to the first maximum, as in PyTorch."""
    if ceil_mode or return_indices:
        raise ValueError("max_pool2d: ceil_mode and return_indices are not supported")
    batched, *options = _pool_args("max_pool2d", x, kernel_size, stride, padding, dilation)
    out = MaxPool2d.apply(batched, *options)
    return out.squeeze(0) if x.ndim == 3 else out


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    if ceil_mode:
        raise ValueError("avg_pool2d: ceil_mode is not supported")
    batched, kernel, stride, padding, _ = _pool_args("avg_pool2d", x, kernel_size, stride, padding)
    out = AvgPool2d.apply(batched, kernel, stride, padding, bool(count_include_pad))
    return out.squeeze(0) if x.ndim == 3 else out


# ---- embedding, normalisation (dropout is ops/dropout.py's) -----------------------------------
def embedding(indices: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` picked by integer `indices`; padding_idx rows receive no gradient."""
    check_tensor("embedding", "indices", indices)
    check_tensor("embedding", "weight", weight)
    if indices.dtype.category != 1:
        raise TypeError(f"embedding: indices must be an integer tensor, got {indices.dtype.name}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {weight.shape} (indices of shape {indices.shape})")
    if indices.numel() and (int(indices._array.min()) < 0 or
                            int(indices._array.max()) >= weight.shape[0]):
        raise IndexError(f"embedding: indices must lie in [0, {weight.shape[0] - 1}] for a weight "
                         f"of shape {weight.shape}; got [{int(indices._array.min())}, "
                         f"{int(indices._array.max())}]")
    if padding_idx is not None and not (-weight.shape[0] <= check_int(
            "embedding", "padding_idx", padding_idx) < weight.shape[0]):
        raise ValueError(f"embedding: padding_idx {padding_idx} is out of range for a weight of "
                         f"shape {weight.shape}")
    padding_idx = -1 if padding_idx is None else padding_idx % weight.shape[0]
    return Embedding.apply(weight, indices.long(), padding_idx)


@autocast_op("layer_norm")
def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    check_tensor("layer_norm", "input", x)
    shape = check_ints("layer_norm", "normalized_shape",
                       (normalized_shape,) if isinstance(normalized_shape, int)
                       else normalized_shape)
    if not shape or x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the trailing "
                         f"dimensions of the input of shape {x.shape}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"layer_norm: expected a floating-point input, got {x.dtype.name}")
    for name, param in (("weight", weight), ("bias", bias)):
        check_per_channel("layer_norm", name, param, shape, x)
    if math.prod(shape) == 0:  # nothing to normalize, and the kernels' mean of nothing is NaN
        return x.clone()
    return norm.layer_norm(x, shape, weight, bias, eps)


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise over every dimension but the channels (dim 1).

    Training uses the batch statistics and updates the running ones in place with the
    unbiased variance, as PyTorch does; evaluation uses the running statistics.
    """
    check_tensor("batch_norm", "input", x)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2-D input (N, C, ...), got {x.shape}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"batch_norm: expected a floating-point input, got {x.dtype.name}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: pass both running_mean and running_var, or neither")
    for name, param in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        check_per_channel("batch_norm", name, param, (x.shape[1],), x)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if training:
        count = math.prod(x.shape[:1] + x.shape[2:])  # values per channel
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                             f"got input of shape {x.shape}")
        mean = x.mean(axes, keepdim=True)
        var = ((x - mean) * (x - mean)).mean(axes, keepdim=True)
        if running_mean is not None:
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


# ---- attention: ops/attention.py ---------------------------------------------------------------
