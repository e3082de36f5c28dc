"""Convolution and pooling as fused kernels: each device's kernel table does the work.

On "cpu" the kernels are im2col + BLAS (backend/cpu_conv.py, native im2col/col2im when
built, and Winograd F(4x4, 3x3) + BLAS for large 3x3 stride-1 convolutions then); on "cuda" and "interp" conv2d is the Triton implicit GEMM and pooling the CUDA C
kernels where they exist. Each op's backward is one kernel call too. Under
`create_graph=True` a backward is differentiated again through `differentiable_backward`,
which rebuilds the op from `unfold` and matmul (`conv2d_unfold` below), so second
derivatives stay exact without a double-backward kernel.

`Unfold` is a strided *view* that exposes every kh x kw window (tinygrad_like/windows.py, the
view backend/ uses for im2col too) and `Fold`, its scatter-add adjoint (col2im).
"""

from __future__ import annotations

import numbers

from tinygrad_like.autograd import Function, differentiable_backward
from tinygrad_like.grad_mode import is_grad_enabled
from tinygrad_like.ops.movement import pad
from tinygrad_like.tensor import Tensor
from tinygrad_like.windows import window_view


# ---- sliding windows: a strided view (Unfold) and its scatter-add adjoint (Fold) ----------
class Unfold(Function):
    """Every sliding window of an (N, C, H, W) input as (N, C, OH, OW, KH, KW)."""

    returns_view = True

    @staticmethod
    def forward(ctx, x, kernel, stride, dilation):
        ctx.input_shape, ctx.kernel, ctx.stride, ctx.dilation = x.shape, kernel, stride, dilation
        return window_view(x.backend.xp, x._array, kernel, stride, dilation)

    @staticmethod
    def backward(ctx, grad):
        return Fold.apply(grad, ctx.input_shape, ctx.stride, ctx.dilation)


class Fold(Function):
    """The adjoint of Unfold: add each window back where it came from (col2im)."""

    @staticmethod
    def forward(ctx, windows, input_shape, stride, dilation):
        ctx.kernel, ctx.stride, ctx.dilation = windows.shape[4:], stride, dilation
        xp = windows.backend.xp
        out = xp.zeros(input_shape, dtype=windows._array.dtype)
        oh, ow, kh, kw = windows.shape[2:]
        # one strided slice-add per kernel tap: KH*KW vectorised adds instead of a scatter
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (oh - 1) + 1, stride[0])
                cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (ow - 1) + 1, stride[1])
                out[:, :, rows, cols] += windows._array[:, :, :, :, i, j]
        return out

    @staticmethod
    def backward(ctx, grad):
        return Unfold.apply(grad, ctx.kernel, ctx.stride, ctx.dilation)


def unfold(x: Tensor, kernel_size, stride=1, dilation=1) -> Tensor:
    """Sliding windows of a 4-D input: (N, C, H, W) -> (N, C, OH, OW, KH, KW) (a view)."""
    kernel, stride, dilation = (_pair("unfold", name, v) for name, v in (
        ("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)))
    if x.ndim != 4:
        raise ValueError(f"unfold: expected a 4-D (N, C, H, W) input, got shape {x.shape}")
    h, w = x.shape[2:]
    if any(v <= 0 for v in kernel + stride + dilation):
        raise ValueError(f"unfold: kernel_size {kernel}, stride {stride} and dilation {dilation} "
                         "must be positive")
    if dilation[0] * (kernel[0] - 1) + 1 > h or dilation[1] * (kernel[1] - 1) + 1 > w:
        raise ValueError(f"unfold: kernel {kernel} with dilation {dilation} is larger than the "
                         f"(padded) input of size {(h, w)}")
    return Unfold.apply(x, kernel, stride, dilation)


def _pair(op: str, name: str, value) -> tuple:
    """An int or a pair of ints (kernel_size=3 or (3, 2)) as a pair; floats are refused."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) for v in pair):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return tuple(int(v) for v in pair)


# ---- the fused ops ----------------------------------------------------------------------------
class Conv2d(Function):
    """x (N, C, H, W) * weight (K, C, KH, KW) (+ bias) -> (N, K, OH, OW); one group."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation):
        ctx.save_for_backward(x, weight, bias)
        ctx.geometry = stride, padding, dilation
        return x.backend.kernels.conv2d(x._array, weight._array, None if bias is None else bias._array,
                                        stride, padding, dilation)

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias = ctx.saved_tensors
        if is_grad_enabled():
            return differentiable_backward(
                lambda *args: conv2d_unfold(*args, *ctx.geometry), (x, weight, bias),
                ctx.needs_input_grad[:3], grad)
        kernels, wrap = x.backend.kernels, x.backend
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        dx = dweight = dbias = None
        if need_x:
            dx = Tensor._wrap(kernels.conv2d_backward_input(grad._array, weight._array, x.shape,
                                                            *ctx.geometry), wrap)
        if need_weight:
            dweight = Tensor._wrap(kernels.conv2d_backward_weight(grad._array, x._array, weight.shape,
                                                                  *ctx.geometry), wrap)
        if need_bias:
            dbias = grad.sum((0, 2, 3))
        return dx, dweight, dbias


def conv2d_unfold(x: Tensor, weight: Tensor, bias: Tensor | None, stride, padding, dilation,
                  groups: int = 1) -> Tensor:
    """conv2d composed from differentiable primitives: a strided window view and a matmul.

    x (N, C, H, W), weight (K, C/groups, KH, KW); used for grouped convolutions and to
    differentiate Conv2d's backward.
    """
    n = x.shape[0]
    k, c_per_group, kh, kw = weight.shape
    if any(padding):
        x = pad(x, (padding[1], padding[1], padding[0], padding[0]))
    windows = unfold(x, (kh, kw), stride, dilation)  # (N, C, OH, OW, KH, KW), a view
    oh, ow = windows.shape[2:4]
    # im2col: (N, G, OH*OW, C/G*KH*KW) rows against (G, C/G*KH*KW, K/G) filters
    cols = windows.reshape(n, groups, c_per_group, oh, ow, kh * kw).permute(0, 1, 3, 4, 2, 5)
    cols = cols.reshape(n, groups, oh * ow, c_per_group * kh * kw)
    filters = weight.reshape(groups, k // groups, c_per_group * kh * kw).mT
    out = (cols @ filters).permute(0, 1, 3, 2).reshape(n, k, oh, ow)
    return out if bias is None else out + bias.reshape(1, k, 1, 1)


class MaxPool2d(Function):
    """Max over each window of (N, C, H, W); the gradient goes to the first maximum."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation):
        out, indices = x.backend.kernels.max_pool2d(x._array, kernel, stride, padding, dilation)
        ctx.save_for_backward(Tensor._wrap(indices, x.backend))
        ctx.input_shape = x.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        return MaxPool2dBackward.apply(grad, indices, ctx.input_shape)


class MaxPool2dBackward(Function):
    """Scatter each output gradient to its window's argmax; differentiable again (a gather)."""

    @staticmethod
    def forward(ctx, grad, indices, input_shape):
        ctx.indices = indices
        return grad.backend.kernels.max_pool2d_backward(grad._array, indices._array, input_shape)

    @staticmethod
    def backward(ctx, gg):
        n, c, oh, ow = ctx.indices.shape
        picked = gg.reshape(n, c, -1).gather(2, ctx.indices.reshape(n, c, -1))
        return picked.reshape(n, c, oh, ow)


class AvgPool2d(Function):
    """Mean over each window of (N, C, H, W); linear, so its backward is its adjoint."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, count_include_pad):
        ctx.options = kernel, stride, padding, count_include_pad
        ctx.input_shape = x.shape
        return x.backend.kernels.avg_pool2d(x._array, *ctx.options)

    @staticmethod
    def backward(ctx, grad):
        return AvgPool2dBackward.apply(grad, ctx.input_shape, *ctx.options)


class AvgPool2dBackward(Function):
    """Spread each output gradient evenly over its window; the adjoint of AvgPool2d."""

    @staticmethod
    def forward(ctx, grad, input_shape, kernel, stride, padding, count_include_pad):
        ctx.options = kernel, stride, padding, count_include_pad
        return grad.backend.kernels.avg_pool2d_backward(grad._array, input_shape, *ctx.options)

    @staticmethod
    def backward(ctx, gg):
        return AvgPool2d.apply(gg, *ctx.options)
