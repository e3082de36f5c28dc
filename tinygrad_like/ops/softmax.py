"""Softmax, log-softmax and the fused cross-entropy of their rows.

softmax and log_softmax are fused (one stable pass, a one-line backward) rather
than composed from exp/sum, which would store three intermediates per call.
Each backward is one kernel too, itself differentiable for double backward.
"""

from __future__ import annotations

from tinygrad_like.amp.autocast import autocast_op
from tinygrad_like.autograd import Function
from tinygrad_like.ops.checks import check_tensor
from tinygrad_like.ops.reduce import normalize_dim
from tinygrad_like.tensor import Tensor


class Softmax(Function):
    saves_output = True

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return x.backend.kernels.softmax(x._array, axis)

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
        return grad.backend.kernels.softmax_backward(grad._array, out._array, axis)

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
        return x.backend.kernels.log_softmax(x._array, axis)

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
        return grad.backend.kernels.log_softmax_backward(grad._array, out._array, axis)

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
        losses, lse = logits.backend.kernels.cross_entropy(logits._array, target._array, ignore_index,
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
        return logits.backend.kernels.cross_entropy_backward(grad._array, logits._array, target._array,
                                                             lse._array, ignore_index,
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


@autocast_op("softmax")
def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return _softmax_family("softmax", Softmax, x, dim)


@autocast_op("log_softmax")
def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return _softmax_family("log_softmax", LogSoftmax, x, dim)


def cross_entropy_rows(logits: Tensor, target: Tensor, ignore_index: int = -100,
                       label_smoothing: float = 0.0) -> Tensor:
    """Per-row cross-entropy of (N, C) logits against (N,) class indices (the fused kernel)."""
    return CrossEntropyRows.apply(logits, target, ignore_index, label_smoothing)
