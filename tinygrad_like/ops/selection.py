"""Ops that pick values elementwise: where, maximum, minimum and clamp (clip).

Their gradient flows only to the operand that was picked; maximum and minimum split it
evenly on ties, as PyTorch does.
"""

from __future__ import annotations

from tinygrad_like import dtypes
from tinygrad_like.autograd import Function
from tinygrad_like.ops.checks import broadcasts_to, check_int, check_number
from tinygrad_like.ops.operands import Binary, binary_op, promote, raw, unbroadcast
from tinygrad_like.tensor import Tensor


class Maximum(Binary):
    compute = staticmethod(lambda xp, a, b: xp.maximum(a, b))

    @staticmethod
    def backward(ctx, grad):
        return _select_backward(ctx, grad, lambda a, b: a > b)


class Minimum(Binary):
    compute = staticmethod(lambda xp, a, b: xp.minimum(a, b))

    @staticmethod
    def backward(ctx, grad):
        return _select_backward(ctx, grad, lambda a, b: a < b)


def _select_backward(ctx, grad, wins):
    """maximum/minimum: the gradient goes to the winner, split evenly on ties (as PyTorch)."""
    a, b = ctx.saved_tensors
    share_a = wins(a, b).to(grad.dtype) + (a == b).to(grad.dtype) * 0.5
    return (unbroadcast(grad * share_a, a.shape) if ctx.needs_input_grad[0] else None,
            unbroadcast(grad * (1 - share_a), b.shape) if ctx.needs_input_grad[1] else None)


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition, a, b)
        xp = condition.backend.xp
        dtype = (a if isinstance(a, Tensor) else b)._array.dtype  # the promoted dtype
        try:
            # a Python scalar operand must not widen bfloat16 (NumPy does for ml_dtypes')
            return xp.where(condition._array, raw(a), raw(b)).astype(dtype, copy=False)
        except ValueError:
            shapes = ", ".join(str(getattr(x, "shape", ())) for x in (condition, a, b))
            raise ValueError(f"where: shapes {shapes} cannot be broadcast together") from None

    @staticmethod
    def backward(ctx, grad):
        condition, a, b = ctx.saved_tensors
        zero = zeros_like_scalar(grad)
        return (None,
                unbroadcast(where(condition, grad, zero), a.shape) if ctx.needs_input_grad[1] else None,
                unbroadcast(where(condition, zero, grad), b.shape) if ctx.needs_input_grad[2] else None)


def zeros_like_scalar(t: Tensor) -> float:
    return 0.0 if t.dtype.is_floating_point else 0



class Clamp(Function):
    @staticmethod
    def forward(ctx, x, low, high):
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        # Python bounds must not widen bfloat16 (NumPy's clip does for ml_dtypes')
        return x.backend.xp.clip(x._array, low, high).astype(x._array.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        inside = ones_mask(x)
        if ctx.low is not None:
            inside = inside & (x >= ctx.low)
        if ctx.high is not None:
            inside = inside & (x <= ctx.high)
        return grad * inside.to(grad.dtype)


def ones_mask(x: Tensor) -> Tensor:
    return Tensor._wrap(x.backend.xp.ones(x.shape, dtype=bool), x.backend)


maximum = binary_op(Maximum, "maximum")
minimum = binary_op(Minimum, "minimum")


def where(condition: Tensor, a, b) -> Tensor:
    if not isinstance(condition, Tensor) or condition.dtype is not dtypes.bool_:
        raise TypeError("where: condition must be a bool tensor, got "
                        f"{getattr(condition, 'dtype', type(condition).__name__)}")
    if not any(isinstance(x, Tensor) for x in (a, b)):
        # two numbers: the first becomes a tensor with PyTorch's dtype for it (1.0: float32)
        a = Tensor._from_data(check_number("where", "input", a), device=condition.device)
    a, b = promote("where", a, b)
    first = a if isinstance(a, Tensor) else b
    if first.backend is not condition.backend:
        raise RuntimeError(f"where: condition on {condition.device}, values on {first.device}")
    return Where.apply(condition, a, b)


def clamp(x: Tensor, min=None, max=None) -> Tensor:
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    for name, bound in (("min", min), ("max", max)):
        if not isinstance(bound, Tensor):
            check_number("clamp", name, bound, optional=True)
    bounds = [bound for bound in (min, max) if isinstance(bound, Tensor)]
    if bounds:
        shapes = [x.shape] + [bound.shape for bound in bounds]
        try:
            x.backend.xp.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(f"clamp: shapes {', '.join(map(str, shapes))} of the input and the "
                             "bounds cannot be broadcast together") from None
        out = x if min is None else maximum(x, min)
        return out if max is None else minimum(out, max)
    if x.dtype.is_floating_point or all(v is None or isinstance(v, int) for v in (min, max)):
        return Clamp.apply(x, min, max)
    return Clamp.apply(x.float(), min, max)


clip = clamp


class Tril(Function):
    @staticmethod
    def forward(ctx, x, diagonal):
        ctx.diagonal = diagonal
        return x.backend.xp.tril(x._array, diagonal)

    @staticmethod
    def backward(ctx, grad):
        return Tril.apply(grad, ctx.diagonal)


class Triu(Function):
    @staticmethod
    def forward(ctx, x, diagonal):
        ctx.diagonal = diagonal
        return x.backend.xp.triu(x._array, diagonal)

    @staticmethod
    def backward(ctx, grad):
        return Triu.apply(grad, ctx.diagonal)


def _triangle(op: str, function, x: Tensor, diagonal) -> Tensor:
    if x.ndim < 2:
        raise ValueError(f"{op}: input must have at least 2 dimensions, got shape {x.shape}")
    return function.apply(x, check_int(op, "diagonal", diagonal))


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    return _triangle("tril", Tril, x, diagonal)


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    return _triangle("triu", Triu, x, diagonal)


def _check_mask(op: str, x: Tensor, mask) -> Tensor:
    if not isinstance(mask, Tensor) or mask.dtype is not dtypes.bool_:
        raise TypeError(f"{op}: mask must be a bool tensor, got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.backend is not x.backend:
        raise RuntimeError(f"{op}: mask on {mask.device}, input on {x.device}")
    if not broadcasts_to(mask.shape, x.shape):
        raise ValueError(f"{op}: mask of shape {mask.shape} does not broadcast to the input of "
                         f"shape {x.shape}")
    return mask


def _fill_value(op: str, x: Tensor, value):
    if isinstance(value, Tensor):
        if value.ndim:
            raise ValueError(f"{op}: value must be a 0-d tensor, got shape {value.shape}")
        return value.to(x.dtype)
    return check_number(op, "value", value)


def masked_fill(x: Tensor, mask: Tensor, value) -> Tensor:
    """x with `value` where `mask` (broadcast to x's shape) is True; x's dtype is kept."""
    mask = _check_mask("masked_fill", x, mask)
    value = _fill_value("masked_fill", x, value)
    if not isinstance(value, Tensor):
        value = Tensor._wrap(x.backend.xp.asarray(value, dtype=x._array.dtype), x.backend)
    return where(mask.expand(x.shape), value, x)


def masked_fill_(x: Tensor, mask: Tensor, value) -> Tensor:
    """masked_fill in place, on tensors that need no grad."""
    x._check_inplace("masked_fill_")
    mask = _check_mask("masked_fill_", x, mask)
    value = _fill_value("masked_fill_", x, value)
    value = value._array if isinstance(value, Tensor) else value
    xp = x.backend.xp
    xp.copyto(x._array, xp.asarray(value, dtype=x._array.dtype), where=xp.broadcast_to(mask._array, x.shape))
    x._bump_version()
    return x


def clamp_min(x: Tensor, min) -> Tensor:
    return clamp(x, min=min)


def clamp_max(x: Tensor, max) -> Tensor:
    return clamp(x, max=max)
