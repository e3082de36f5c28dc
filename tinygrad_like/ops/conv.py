"""Convolution and pooling as fused kernels: each device's kernel table does the work.

On "cpu" the kernels are im2col + BLAS (backend/cpu_conv.py, native im2col/col2im when
built, and Winograd F(4x4, 3x3) + BLAS for large 3x3 stride-1 convolutions then); on "cuda" and "interp" conv2d is the Triton implicit GEMM and pooling the CUDA C
kernels where they exist. Each op's backward is one kernel call too. Under
`create_graph=True` a backward is differentiated again through `differentiable_backward`,
which rebuilds the op from `unfold` and matmul (`conv2d_unfold` below), so second
derivatives stay exact without a double-backward kernel.
"""

from __future__ import annotations

from tinygrad_like.autograd import Function, differentiable_backward, is_grad_enabled
from tinygrad_like.ops.nn import unfold
from tinygrad_like.tensor import Tensor


class Conv2d(Function):
    """x (N, C, H, W) * weight (K, C, KH, KW) (+ bias) -> (N, K, OH, OW); one group."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation):
        ctx.save_for_backward(x, weight, bias)
        ctx.geometry = stride, padding, dilation
        return x.backend.kernels.conv2d(x.data, weight.data, None if bias is None else bias.data,
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
            dx = Tensor._wrap(kernels.conv2d_backward_input(grad.data, weight.data, x.shape,
                                                            *ctx.geometry), wrap)
        if need_weight:
            dweight = Tensor._wrap(kernels.conv2d_backward_weight(grad.data, x.data, weight.shape,
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
    from tinygrad_like.ops.movement import pad

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
        out, indices = x.backend.kernels.max_pool2d(x.data, kernel, stride, padding, dilation)
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
        return grad.backend.kernels.max_pool2d_backward(grad.data, indices.data, input_shape)

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
        return x.backend.kernels.avg_pool2d(x.data, *ctx.options)

    @staticmethod
    def backward(ctx, grad):
        return AvgPool2dBackward.apply(grad, ctx.input_shape, *ctx.options)


class AvgPool2dBackward(Function):
    """Spread each output gradient evenly over its window; the adjoint of AvgPool2d."""

    @staticmethod
    def forward(ctx, grad, input_shape, kernel, stride, padding, count_include_pad):
        ctx.options = kernel, stride, padding, count_include_pad
        return grad.backend.kernels.avg_pool2d_backward(grad.data, input_shape, *ctx.options)

    @staticmethod
    def backward(ctx, gg):
        return AvgPool2d.apply(gg, *ctx.options)
