"""Group normalization and RMS normalization (F.group_norm, F.rms_norm).

Group norm is layer norm over each (sample, group) block: the input is viewed as
(N, groups, C/groups * spatial) and normalised by the fused `layer_norm` op of ops/norm.py,
whose kernels and gradient serve it unchanged, then scaled and shifted per channel. RMS norm
has no mean to subtract and no fused kernel; it is composed from elementwise ops and a mean,
in PyTorch's order (x * rsqrt(mean(x^2) + eps), then the weight).
"""

from __future__ import annotations

import math

from tinygrad_like.amp.autocast import autocast_op
from tinygrad_like.ops import norm
from tinygrad_like.ops.checks import check_int, check_ints, check_per_channel, check_tensor
from tinygrad_like.tensor import Tensor


@autocast_op("group_norm")
def group_norm(x: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise each group of num_groups channel groups of an (N, C, *) input, per sample."""
    op = "group_norm"
    check_tensor(op, "input", x)
    groups = check_int(op, "num_groups", num_groups, minimum=1)
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an input of at least 2 dimensions (N, C, *), got "
                         f"shape {x.shape}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype.name}")
    n, c = x.shape[:2]
    if c % groups:
        raise ValueError(f"{op}: expected the number of channels of the input of shape "
                         f"{x.shape} ({c}) to be divisible by num_groups={groups}")
    for name, param in (("weight", weight), ("bias", bias)):
        check_per_channel(op, name, param, (c,), x)
    per_group = c // groups * math.prod(x.shape[2:])
    if n * c // groups * math.prod(x.shape[2:]) == 1:
        raise ValueError(f"{op}: expected more than 1 value per group, got input of shape "
                         f"{x.shape} with num_groups={groups}")
    if x.numel() == 0:  # nothing to normalize, and the kernels' mean of nothing is NaN
        out = x.clone()
    else:
        out = norm.layer_norm(x.reshape(n, groups, per_group), (per_group,), None, None,
                              eps).reshape(x.shape)
    channels = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(channels)
    return out if bias is None else out + bias.reshape(channels)


def rms_norm(x: Tensor, normalized_shape, weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """x / sqrt(mean(x^2) + eps) over the trailing `normalized_shape`, times the weight.

    Half-precision inputs are normalised in float32, and eps=None is the machine epsilon of
    that precision (float32's or float64's), as PyTorch.
    """
    op = "rms_norm"
    check_tensor(op, "input", x)
    shape = check_ints(op, "normalized_shape", (normalized_shape,)
                       if isinstance(normalized_shape, int) else normalized_shape)
    if not shape or x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"{op}: normalized_shape {shape} does not match the trailing "
                         f"dimensions of the input of shape {x.shape}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype.name}")
    check_per_channel(op, "weight", weight, shape, x)
    dims = tuple(range(x.ndim - len(shape), x.ndim))
    # half precision is normalised in float32 and rounded once, as PyTorch does
    wide = x.float() if x.dtype.itemsize < 4 else x
    if eps is None:  # the epsilon of the precision it is computed in, as PyTorch
        eps = float(x.backend.xp.finfo(wide._array.dtype).eps)
    out = (wide * ((wide * wide).mean(dims, keepdim=True) + eps).rsqrt()).to(x.dtype)
    return out if weight is None else out * weight
