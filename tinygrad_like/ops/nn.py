"""Neural-network primitives: softmax, log-softmax and sliding-window unfolding.

softmax and log_softmax are fused (one stable pass, a one-line backward) rather
than composed from exp/sum, which would store three intermediates per call.
Convolution and pooling are built on `unfold`: a strided *view* that exposes
every kh x kw window, so conv2d becomes im2col + one BLAS matmul and its
gradients follow from the matmul's and from `Fold`, the scatter-add adjoint.
"""

from __future__ import annotations

from tinygrad_like.autograd import Function
from tinygrad_like.ops.reduce import normalize_dims
from tinygrad_like.tensor import Tensor


class Softmax(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        xp = x.backend.xp
        shifted = xp.exp(x.data - x.data.max(axis=axis, keepdims=True))
        return shifted / shifted.sum(axis=axis, keepdims=True)

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        # J^T g = y * (g - <g, y>) along the softmax axis
        return out * (grad - (grad * out).sum(ctx.axis, keepdim=True))


class LogSoftmax(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        xp = x.backend.xp
        shifted = x.data - x.data.max(axis=axis, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad - out.exp() * grad.sum(ctx.axis, keepdim=True)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    if not x.dtype.is_floating_point:
        x = x.float()
    return Softmax.apply(x, normalize_dims("softmax", x.shape, dim)[0] if x.ndim else None)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    if not x.dtype.is_floating_point:
        x = x.float()
    return LogSoftmax.apply(x, normalize_dims("log_softmax", x.shape, dim)[0] if x.ndim else None)


def _window_view(xp, array, kernel, stride, dilation):
    """(N, C, H, W) -> a (N, C, OH, OW, KH, KW) view of every window, without copying."""
    n, c, h, w = array.shape
    kh, kw = kernel
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    sn, sc, sh, sw = array.strides
    return xp.lib.stride_tricks.as_strided(
        array, (n, c, oh, ow, kh, kw),
        (sn, sc, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1]))


class Unfold(Function):
    """Every sliding window of an (N, C, H, W) input as (N, C, OH, OW, KH, KW)."""

    returns_view = True

    @staticmethod
    def forward(ctx, x, kernel, stride, dilation):
        ctx.input_shape, ctx.kernel, ctx.stride, ctx.dilation = x.shape, kernel, stride, dilation
        return _window_view(x.backend.xp, x.data, kernel, stride, dilation)

    @staticmethod
    def backward(ctx, grad):
        return Fold.apply(grad, ctx.input_shape, ctx.stride, ctx.dilation)


class Fold(Function):
    """The adjoint of Unfold: add each window back where it came from (col2im)."""

    @staticmethod
    def forward(ctx, windows, input_shape, stride, dilation):
        ctx.kernel, ctx.stride, ctx.dilation = windows.shape[4:], stride, dilation
        xp = windows.backend.xp
        out = xp.zeros(input_shape, dtype=windows.data.dtype)
        oh, ow, kh, kw = windows.shape[2:]
        # one strided slice-add per kernel tap: KH*KW vectorised adds instead of a scatter
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (oh - 1) + 1, stride[0])
                cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (ow - 1) + 1, stride[1])
                out[:, :, rows, cols] += windows.data[:, :, :, :, i, j]
        return out

    @staticmethod
    def backward(ctx, grad):
        return Unfold.apply(grad, ctx.kernel, ctx.stride, ctx.dilation)


def unfold(x: Tensor, kernel_size, stride=1, dilation=1) -> Tensor:
    """Sliding windows of a 4-D input: (N, C, H, W) -> (N, C, OH, OW, KH, KW) (a view)."""
    kernel, stride, dilation = (_pair(v) for v in (kernel_size, stride, dilation))
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


def _pair(value) -> tuple:
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)
