"""Neural-network primitives: softmax, log-softmax and sliding-window unfolding.

softmax and log_softmax are fused (one stable pass, a one-line backward) rather
than composed from exp/sum, which would store three intermediates per call.
Convolution and pooling are built on `unfold`: a strided *view* that exposes
every kh x kw window, so conv2d becomes im2col + one BLAS matmul and its
gradients follow from the matmul's and from `Fold`, the scatter-add adjoint.
"""

from __future__ import annotations

import numbers

from tinygrad_like.autograd import Function
from tinygrad_like.ops.checks import check_tensor
from tinygrad_like.ops.reduce import normalize_dim
from tinygrad_like.tensor import Tensor


class Softmax(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return x.backend.kernels.softmax(x.data, axis)

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return SoftmaxBackward.apply(grad, out, ctx.axis)


class SoftmaxBackward(Function):
    """y * (g - <g, y>) along the axis, as one kernel; differentiable again for double backward."""

    @staticmethod
    def forward(ctx, grad, out, axis):
        ctx.save_for_backward(grad, out)
        ctx.axis = axis
        return grad.backend.kernels.softmax_backward(grad.data, out.data, axis)

    @staticmethod
    def backward(ctx, gg):
        grad, out = ctx.saved_tensors
        inner = (gg * out).sum(ctx.axis, keepdim=True)
        grad_grad = out * gg - out * inner
        dot = (grad * out).sum(ctx.axis, keepdim=True)
        grad_out = gg * (grad - dot) - grad * inner
        return grad_grad, grad_out


class LogSoftmax(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return x.backend.kernels.log_softmax(x.data, axis)

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return LogSoftmaxBackward.apply(grad, out, ctx.axis)


class LogSoftmaxBackward(Function):
    """g - exp(y) * sum(g) along the axis, as one kernel; differentiable again."""

    @staticmethod
    def forward(ctx, grad, out, axis):
        ctx.save_for_backward(grad, out)
        ctx.axis = axis
        return grad.backend.kernels.log_softmax_backward(grad.data, out.data, axis)

    @staticmethod
    def backward(ctx, gg):
        grad, out = ctx.saved_tensors
        probs = out.exp()
        grad_grad = gg - (gg * probs).sum(ctx.axis, keepdim=True)
        grad_out = -gg * probs * grad.sum(ctx.axis, keepdim=True)
        return grad_grad, grad_out


class CrossEntropyRows(Function):
    """Fused log-softmax + NLL over the rows of (N, C) logits: per-row losses (N,).

    Forward keeps only each row's log-sum-exp; backward recomputes the probabilities
    from it, so the (N, C) softmax is never stored.
    """

    @staticmethod
    def forward(ctx, logits, target, ignore_index, label_smoothing):
        losses, lse = logits.backend.kernels.cross_entropy(logits.data, target.data, ignore_index,
                                                           label_smoothing)
        ctx.save_for_backward(logits, target, Tensor._wrap(lse, logits.backend))
        ctx.ignore_index, ctx.label_smoothing = ignore_index, label_smoothing
        return losses

    @staticmethod
    def backward(ctx, grad):
        logits, target, lse = ctx.saved_tensors
        return CrossEntropyRowsBackward.apply(grad, logits, target, lse, ctx.ignore_index,
                                              ctx.label_smoothing)


class CrossEntropyRowsBackward(Function):
    """g_i (softmax(x_i) - smoothed one-hot(y_i)) as one kernel; differentiable again."""

    @staticmethod
    def forward(ctx, grad, logits, target, lse, ignore_index, label_smoothing):
        ctx.save_for_backward(grad, logits, target)
        ctx.ignore_index, ctx.label_smoothing = ignore_index, label_smoothing
        return logits.backend.kernels.cross_entropy_backward(grad.data, logits.data, target.data,
                                                             lse.data, ignore_index,
                                                             label_smoothing)

    @staticmethod
    def backward(ctx, gg):
        grad, logits, target = ctx.saved_tensors
        kept = (target != ctx.ignore_index).to(logits.dtype).unsqueeze(1)
        probs = softmax(logits, 1)
        classes = logits.shape[1]
        smoothed = (1 - ctx.label_smoothing) * (
            target.clamp(min=0).unsqueeze(1) == _class_ids(logits)).to(logits.dtype)
        # d/dg_i: <gg_i, p_i - t_i>;  d/dx_i: g_i (p_i * gg_i - p_i <p_i, gg_i>)
        grad_grad = (gg * (probs - smoothed - ctx.label_smoothing / classes) * kept).sum(1)
        weighted = gg * probs
        grad_logits = (weighted - probs * weighted.sum(1, keepdim=True)) * (grad.unsqueeze(1) * kept)
        return grad_grad, grad_logits


def _class_ids(logits: Tensor) -> Tensor:
    return Tensor._wrap(logits.backend.xp.arange(logits.shape[1]), logits.backend)


def _softmax_family(op: str, function, x: Tensor, dim) -> Tensor:
    check_tensor(op, "input", x)
    axis = normalize_dim(op, x.shape, dim)
    if not x.dtype.is_floating_point:
        x = x.float()
    if x.numel() == 0:  # nothing to normalize, and the kernels' max has no identity
        return x.clone()
    return function.apply(x, axis if x.ndim else None)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return _softmax_family("softmax", Softmax, x, dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return _softmax_family("log_softmax", LogSoftmax, x, dim)


def cross_entropy_rows(logits: Tensor, target: Tensor, ignore_index: int = -100,
                       label_smoothing: float = 0.0) -> Tensor:
    """Per-row cross-entropy of (N, C) logits against (N,) class indices (the fused kernel)."""
    return CrossEntropyRows.apply(logits, target, ignore_index, label_smoothing)


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


class Embedding(Function):
    """Rows of weight (V, D) picked by integer indices; the padding_idx row gets no gradient."""

    @staticmethod
    def forward(ctx, weight, indices, padding_idx):
        ctx.indices, ctx.padding_idx, ctx.num_weights = indices, padding_idx, weight.shape[0]
        return weight.data[indices.data]

    @staticmethod
    def backward(ctx, grad):
        return EmbeddingBackward.apply(grad, ctx.indices, ctx.num_weights, ctx.padding_idx)


class EmbeddingBackward(Function):
    """Scatter-add the rows of grad into a (V, D) gradient as one kernel; its adjoint is a gather."""

    @staticmethod
    def forward(ctx, grad, indices, num_weights, padding_idx):
        ctx.indices, ctx.padding_idx = indices, padding_idx
        dim = grad.shape[-1]
        return grad.backend.kernels.embedding_backward(grad.data.reshape(-1, dim),
                                                       indices.data.reshape(-1), num_weights,
                                                       padding_idx)

    @staticmethod
    def backward(ctx, gg):
        picked = Embedding.apply(gg, ctx.indices, -1)
        if ctx.padding_idx < 0:
            return picked
        kept = (ctx.indices != ctx.padding_idx).to(gg.dtype).unsqueeze(-1)
        return picked * kept


class Dropout(Function):
    """Inverted dropout as one kernel: the mask comes from a counter-based generator.

    The device kernel draws element i's uniform from (seed, offset + i / 4), so a mask is
    reproducible from `tg.manual_seed` and two calls never reuse counters.
    """

    @staticmethod
    def forward(ctx, x, p):
        seed, offset = x.backend.random_counter(x.data.size)
        out, mask = x.backend.kernels.dropout(x.data, p, seed, offset)
        ctx.mask = Tensor._wrap(mask, x.backend)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.mask
