"""Embedding lookup: rows of a weight matrix picked by integer indices (F.embedding)."""

from __future__ import annotations

from tinygrad_like.autograd import Function


class Embedding(Function):
    """Rows of weight (V, D) picked by integer indices; the padding_idx row gets no gradient."""

    @staticmethod
    def forward(ctx, weight, indices, padding_idx):
        ctx.indices, ctx.padding_idx, ctx.num_weights = indices, padding_idx, weight.shape[0]
        return weight._array[indices._array]

    @staticmethod
    def backward(ctx, grad):
        return EmbeddingBackward.apply(grad, ctx.indices, ctx.num_weights, ctx.padding_idx)


class EmbeddingBackward(Function):
    """Scatter-add the rows of grad into a (V, D) gradient as one kernel; its adjoint is a gather."""

    @staticmethod
    def forward(ctx, grad, indices, num_weights, padding_idx):
        ctx.indices, ctx.padding_idx = indices, padding_idx
        dim = grad.shape[-1]
        return grad.backend.kernels.embedding_backward(grad._array.reshape(-1, dim),
                                                       indices._array.reshape(-1), num_weights,
                                                       padding_idx)

    @staticmethod
    def backward(ctx, gg):
        picked = Embedding.apply(gg, ctx.indices, -1)
        if ctx.padding_idx < 0:
            return picked
        kept = (ctx.indices != ctx.padding_idx).to(gg.dtype).unsqueeze(-1)
        return picked * kept
