"""PyTorch's F.unfold (im2col) and F.fold (col2im) on the window ops of ops/conv.py.

F.unfold lays every kh x kw block of a (N, C, H, W) input out as a column: (N, C*kh*kw, L),
L the number of blocks, channels slowest and kernel taps fastest. It is ops/conv.py's
strided window view (`Unfold`) moved into that order, and F.fold, its adjoint, sums each
column back into its block (`Fold`), so overlapping blocks add up. Each is the other's
gradient, so both are differentiable to any order.
"""

from __future__ import annotations

import math

from tinygrad_like.ops.checks import check_tensor
from tinygrad_like.ops.conv import Fold, Unfold, _pair
from tinygrad_like.ops.movement import pad
from tinygrad_like.tensor import Tensor


def _geometry(op: str, kernel_size, dilation, padding, stride) -> tuple:
    kernel, dilation, padding, stride = (_pair(op, name, value) for name, value in (
        ("kernel_size", kernel_size), ("dilation", dilation), ("padding", padding),
        ("stride", stride)))
    if any(v <= 0 for v in kernel + dilation + stride) or min(padding) < 0:
        raise ValueError(f"{op}: kernel_size {kernel}, dilation {dilation} and stride {stride} "
                         f"must be positive and padding {padding} non-negative")
    return kernel, dilation, padding, stride


def _blocks(op: str, size: tuple, kernel, dilation, padding, stride, shape) -> tuple:
    """How many blocks fit along each spatial dimension of a (padded) `size` plane."""
    counts = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                   for n, k, d, p, s in zip(size, kernel, dilation, padding, stride))
    if min(counts) <= 0:
        raise ValueError(f"{op}: kernel_size {kernel} with dilation {dilation} does not fit in "
                         f"the spatial size {size} padded by {padding} (input of shape {shape})")
    return counts


def unfold(x: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Blocks of a (N, C, H, W) or (C, H, W) input as columns: (N, C*kh*kw, L) or (C*kh*kw, L)."""
    op = "unfold"
    check_tensor(op, "input", x)
    kernel, dilation, padding, stride = _geometry(op, kernel_size, dilation, padding, stride)
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input with "
                         f"non-empty channel and spatial dimensions, got shape {x.shape}")
    oh, ow = _blocks(op, x.shape[-2:], kernel, dilation, padding, stride, x.shape)
    batched = x if x.ndim == 4 else x.unsqueeze(0)
    if any(padding):
        batched = pad(batched, (padding[1], padding[1], padding[0], padding[0]))
    windows = Unfold.apply(batched, kernel, stride, dilation)  # (N, C, OH, OW, KH, KW)
    n, c = batched.shape[:2]
    columns = windows.permute(0, 1, 4, 5, 2, 3).reshape(n, c * kernel[0] * kernel[1], oh * ow)
    return columns if x.ndim == 4 else columns.squeeze(0)


def fold(x: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sum columns (N, C*kh*kw, L) or (C*kh*kw, L) into an (N, C, H, W) or (C, H, W) output."""
    op = "fold"
    check_tensor(op, "input", x)
    size = _pair(op, "output_size", output_size)
    kernel, dilation, padding, stride = _geometry(op, kernel_size, dilation, padding, stride)
    taps = math.prod(kernel)
    if x.ndim not in (2, 3) or x.shape[-2] == 0 or x.shape[-2] % taps:
        raise ValueError(f"{op}: expected a 2-D (C*kh*kw, L) or 3-D (N, C*kh*kw, L) input whose "
                         f"dimension {x.ndim - 2} is a non-zero multiple of the kernel's {taps} "
                         f"taps (kernel_size {kernel}), got shape {x.shape}")
    oh, ow = _blocks(op, size, kernel, dilation, padding, stride, x.shape)
    if x.shape[-1] != oh * ow:
        raise ValueError(f"{op}: output_size {size}, kernel_size {kernel}, dilation {dilation}, "
                         f"padding {padding} and stride {stride} give {oh} * {ow} = {oh * ow} "
                         f"blocks, but the input of shape {x.shape} has {x.shape[-1]}")
    batched = x if x.ndim == 3 else x.unsqueeze(0)
    n, c = batched.shape[0], batched.shape[1] // taps
    windows = batched.reshape(n, c, kernel[0], kernel[1], oh, ow).permute(0, 1, 4, 5, 2, 3)
    padded = (n, c, size[0] + 2 * padding[0], size[1] + 2 * padding[1])
    out = Fold.apply(windows, padded, stride, dilation)
    if any(padding):
        out = out[:, :, padding[0]:padding[0] + size[0], padding[1]:padding[1] + size[1]]
    return out if x.ndim == 3 else out.squeeze(0)
