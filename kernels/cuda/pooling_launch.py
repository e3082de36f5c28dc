"""Launchers of pooling.cu: 2-D max and average pooling, forward and backward.

Arrays are (N, C, H, W); kernel, stride, padding and dilation are (height, width) pairs
(an int means both). The semantics are PyTorch's with ceil_mode=False: padding is implicit
(-inf for max, left out or counted as zeros for the average), at most half the kernel, and
max pooling returns int64 indices h * W + w into each unpadded input plane. The max backward
adds with atomics, so under deterministic mode it runs the sorted segmented sum of
segment_sum.cu instead.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np

from tinygrad_like import determinism
from tinygrad_like.kernels.cuda.runtime import BLOCK, float_suffix, grid_1d
from tinygrad_like.kernels.cuda.segment_sum_launch import index_add_rows

SOURCE = "pooling.cu"
INT32_MAX = 2**31 - 1  # positions inside one plane are 32-bit in the kernels


@dataclass(frozen=True)
class PoolGeometry:
    """One plane's sizes and the window, in the order pooling.cu's kernels take them."""

    height: int
    width: int
    out_height: int
    out_width: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int

    def kernel_args(self) -> list[np.int32]:
        return [np.int32(value) for value in astuple(self)]


def pair(op: str, name: str, value) -> tuple[int, int]:
    values = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) for v in values):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return int(values[0]), int(values[1])


def pool_geometry(op: str, input_shape, kernel, stride, padding,
                  dilation=1) -> tuple[PoolGeometry, tuple[int, int]]:
    """The geometry of pooling an (N, C, H, W) input, with the dilation; checks the options."""
    if len(input_shape) != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape "
                         f"{tuple(input_shape)}")
    height, width = int(input_shape[2]), int(input_shape[3])
    kernel, stride = pair(op, "kernel_size", kernel), pair(op, "stride", stride)
    padding, dilation = pair(op, "padding", padding), pair(op, "dilation", dilation)
    for name, values in (("kernel_size", kernel), ("stride", stride), ("dilation", dilation)):
        if min(values) <= 0:
            raise ValueError(f"{op}: {name} must be positive, got {values}")
    if min(padding) < 0 or padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be >= 0 and at most half of "
                         f"kernel_size {kernel}")
    out = tuple((size + 2 * pad - dil * (k - 1) - 1) // s + 1 for size, pad, dil, k, s
                in zip((height, width), padding, dilation, kernel, stride))
    if min(out) < 1:
        raise ValueError(f"{op}: input of shape {tuple(input_shape)} is too small for "
                         f"kernel_size {kernel} with padding {padding} and dilation "
                         f"{dilation} (output size {out})")
    if height * width > INT32_MAX:
        raise ValueError(f"{op}: one input plane has {height * width} elements; the kernel "
                         f"indexes planes of at most {INT32_MAX}")
    geometry = PoolGeometry(height, width, out[0], out[1], *kernel, *stride, *padding)
    return geometry, dilation


def max_pool2d(runtime, x, kernel, stride, padding, dilation):
    """(out, indices) of 2-D max pooling; indices are int64 positions h * W + w in each plane."""
    suffix = float_suffix("max_pool2d", x.dtype)
    geometry, dilation = pool_geometry("max_pool2d", x.shape, kernel, stride, padding, dilation)
    x = runtime.xp.ascontiguousarray(x)
    shape = x.shape[:2] + (geometry.out_height, geometry.out_width)
    out = runtime.xp.empty(shape, dtype=x.dtype)
    indices = runtime.xp.empty(shape, dtype=np.int64)
    if out.size:
        runtime.launch(SOURCE, f"max_pool2d_forward_{suffix}", grid_1d(out.size), BLOCK,
                       [x, out, indices, np.int64(out.size), *geometry.kernel_args(),
                        np.int32(dilation[0]), np.int32(dilation[1])])
    return out, indices


def max_pool2d_backward(runtime, grad, indices, input_shape):
    """dx of max pooling: each output's gradient added at its argmax (windows may overlap)."""
    suffix = float_suffix("max_pool2d_backward", grad.dtype)
    input_shape = tuple(int(size) for size in input_shape)
    if (grad.shape != indices.shape or grad.ndim != 4 or len(input_shape) != 4
            or grad.shape[:2] != input_shape[:2]):
        raise ValueError(f"max_pool2d_backward: grad {tuple(grad.shape)} and indices "
                         f"{tuple(indices.shape)} must be (N, C, OH, OW) for the input "
                         f"(N, C, H, W) = {input_shape}")
    if indices.dtype != np.int64:
        raise TypeError(f"max_pool2d_backward: indices must be int64, got {indices.dtype}")
    grad = runtime.xp.ascontiguousarray(grad)
    indices = runtime.xp.ascontiguousarray(indices)
    if determinism.are_deterministic_algorithms_enabled():
        return _max_pool2d_backward_sorted(runtime, grad, indices, input_shape)
    dx = runtime.xp.zeros(input_shape, dtype=grad.dtype)
    if grad.size and dx.size:
        runtime.launch(SOURCE, f"max_pool2d_backward_{suffix}", grid_1d(grad.size), BLOCK,
                       [grad, indices, dx, np.int64(grad.size),
                        np.int64(grad.shape[2] * grad.shape[3]),
                        np.int64(input_shape[2] * input_shape[3])])
    return dx


def _max_pool2d_backward_sorted(runtime, grad, indices, input_shape):
    """max_pool2d_backward without atomics: every output's argmax as a flat position in dx,
    and index_add_rows adds each position's gradients in output order."""
    xp = runtime.xp
    planes, plane_in = input_shape[0] * input_shape[1], input_shape[2] * input_shape[3]
    offsets = xp.arange(planes, dtype=np.int64).reshape(grad.shape[:2] + (1, 1)) * plane_in
    inside = (indices >= 0) & (indices < plane_in)  # -1: a window that held no input
    positions = xp.where(inside, indices + offsets, -1)
    return index_add_rows(runtime, grad.reshape(-1, 1), positions.reshape(-1),
                          planes * plane_in).reshape(input_shape)


def avg_pool2d(runtime, x, kernel, stride, padding, count_include_pad: bool):
    """2-D average pooling; count_include_pad=False divides by the in-bounds count."""
    suffix = float_suffix("avg_pool2d", x.dtype)
    geometry, _ = pool_geometry("avg_pool2d", x.shape, kernel, stride, padding)
    x = runtime.xp.ascontiguousarray(x)
    out = runtime.xp.empty(x.shape[:2] + (geometry.out_height, geometry.out_width), x.dtype)
    if out.size:
        runtime.launch(SOURCE, f"avg_pool2d_forward_{suffix}", grid_1d(out.size), BLOCK,
                       [x, out, np.int64(out.size), *geometry.kernel_args(),
                        np.int32(bool(count_include_pad))])
    return out


def avg_pool2d_backward(runtime, grad, input_shape, kernel, stride, padding,
                        count_include_pad: bool):
    """dx of average pooling: each input element gathers grad / divisor from its windows."""
    suffix = float_suffix("avg_pool2d_backward", grad.dtype)
    input_shape = tuple(int(size) for size in input_shape)
    geometry, _ = pool_geometry("avg_pool2d_backward", input_shape, kernel, stride, padding)
    expected = input_shape[:2] + (geometry.out_height, geometry.out_width)
    if tuple(grad.shape) != expected:
        raise ValueError(f"avg_pool2d_backward: grad has shape {tuple(grad.shape)}, expected "
                         f"{expected} for the input {input_shape}")
    grad = runtime.xp.ascontiguousarray(grad)
    dx = runtime.xp.empty(input_shape, dtype=grad.dtype)
    if dx.size:
        runtime.launch(SOURCE, f"avg_pool2d_backward_{suffix}", grid_1d(dx.size), BLOCK,
                       [grad, dx, np.int64(dx.size), *geometry.kernel_args(),
                        np.int32(bool(count_include_pad))])
    return dx
