"""Dropout: a random mask, drawn on the device from the backend's counter-based generator.

`F.dropout`, `nn.Dropout` and the dropout inside attention all call `dropout` here.
"""

from __future__ import annotations

from tinygrad_like.autograd import Function
from tinygrad_like.tensor import Tensor


class Dropout(Function):
    """Inverted dropout as one kernel: the mask comes from a counter-based generator.

    The device kernel draws element i's uniform from (seed, offset + i / 4), so a mask is
    reproducible from `tg.manual_seed` and two calls never reuse counters.
    """

    @staticmethod
    def forward(ctx, x, p):
        seed, offset = x.backend.random_counter(x._array.size)
        out, mask = x.backend.kernels.dropout(x._array, p, seed, offset)
        ctx.mask = Tensor._wrap(mask, x.backend)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.mask


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout).

    The mask comes from a counter-based (Philox) generator, so `tg.manual_seed` reproduces it.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout.apply(x, float(p))
