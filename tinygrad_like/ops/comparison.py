"""Comparisons, logical and bitwise ops: bool or integer results, so no gradient.

== != < <= > >= promote their operands like arithmetic; the logical ops read any dtype as
truth values; the bitwise ops (& | ^ ~) take bool and integer operands only, as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from tinygrad_like import dtypes
from tinygrad_like.autograd import Function
from tinygrad_like.ops.operands import binary_op, operands_error, promote, raw
from tinygrad_like.tensor import Tensor


class _Compare(Function):
    """Comparisons, logical and bitwise ops: bool or integer results, so no graph is ever
    recorded."""

    @classmethod
    def forward(cls, ctx, a, b):
        xp = ctx.backend.xp
        try:
            return cls.compute(xp, raw(a), raw(b))
        except ValueError as error:
            raise operands_error(cls.op_name, xp, a, b, error) from None


def _comparison(name: str, op_name: str, compute):
    return type(name, (_Compare,), {"compute": staticmethod(compute), "op_name": op_name})


Eq = _comparison("Eq", "eq", lambda xp, a, b: a == b)
Ne = _comparison("Ne", "ne", lambda xp, a, b: a != b)
Lt = _comparison("Lt", "lt", lambda xp, a, b: a < b)
Le = _comparison("Le", "le", lambda xp, a, b: a <= b)
Gt = _comparison("Gt", "gt", lambda xp, a, b: a > b)
Ge = _comparison("Ge", "ge", lambda xp, a, b: a >= b)
LogicalAnd = _comparison("LogicalAnd", "logical_and", lambda xp, a, b: a & b)
LogicalOr = _comparison("LogicalOr", "logical_or", lambda xp, a, b: a | b)
LogicalXor = _comparison("LogicalXor", "logical_xor", lambda xp, a, b: a ^ b)
BitwiseAnd = _comparison("BitwiseAnd", "bitwise_and", lambda xp, a, b: a & b)
BitwiseOr = _comparison("BitwiseOr", "bitwise_or", lambda xp, a, b: a | b)
BitwiseXor = _comparison("BitwiseXor", "bitwise_xor", lambda xp, a, b: a ^ b)

eq = binary_op(Eq, "eq")
ne = binary_op(Ne, "ne")
lt = binary_op(Lt, "lt")
le = binary_op(Le, "le")
gt = binary_op(Gt, "gt")
ge = binary_op(Ge, "ge")


def _logical(function, op_name):
    """Logical ops read any dtype as truth values (nonzero is True) and give bool, as PyTorch."""

    def op(a, b):
        a, b = (x.to(dtypes.bool_) if isinstance(x, Tensor) else bool(x)
                for x in promote(op_name, a, b))
        return function.apply(a, b)

    op.__name__ = op_name
    return op


logical_and = _logical(LogicalAnd, "logical_and")
logical_or = _logical(LogicalOr, "logical_or")
logical_xor = _logical(LogicalXor, "logical_xor")


def logical_not(x: Tensor) -> Tensor:
    return eq(x.to(dtypes.bool_), False)


def _refuse_floating(op: str, *operands) -> None:
    for x in operands:
        if isinstance(x, Tensor) and x.dtype.is_floating_point:
            raise TypeError(f"{op}: needs bool or integer operands, got {x.dtype.name}")
        if isinstance(x, (float, np.floating)):
            raise TypeError(f"{op}: needs bool or integer operands, got the float {x!r}")


def _bitwise(function, op_name):
    """Bitwise ops (the & | ^ operators): bool and integer operands only, as in PyTorch."""

    def op(a, b):
        _refuse_floating(op_name, a, b)
        return function.apply(*promote(op_name, a, b))

    op.__name__ = op_name
    return op


bitwise_and = _bitwise(BitwiseAnd, "bitwise_and")
bitwise_or = _bitwise(BitwiseOr, "bitwise_or")
bitwise_xor = _bitwise(BitwiseXor, "bitwise_xor")


def bitwise_not(x: Tensor) -> Tensor:
    """~x: logical not of a bool tensor, two's complement of an integer one."""
    _refuse_floating("bitwise_not", x)
    return logical_not(x) if x.dtype is dtypes.bool_ else -x - 1


def _test(op: str, name: str):
    def test(x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
        return Tensor._wrap(getattr(x.backend.xp, name)(x._array), x.backend)

    test.__name__ = op
    return test


isnan = _test("isnan", "isnan")
isinf = _test("isinf", "isinf")
isfinite = _test("isfinite", "isfinite")


def allclose(a: Tensor, b: Tensor, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """Whether |a - b| <= atol + rtol * |b| everywhere (torch.allclose), as a Python bool."""
    for name, t in (("input", a), ("other", b)):
        if not isinstance(t, Tensor):
            raise TypeError(f"allclose: {name} must be a Tensor, got {type(t).__name__}")
    if a.backend is not b.backend:
        raise RuntimeError(f"allclose: input on {a.device}, other on {b.device}")
    try:
        return bool(a.backend.xp.allclose(a._array, b._array, rtol=rtol, atol=atol,
                                          equal_nan=equal_nan))
    except ValueError:
        raise ValueError(f"allclose: shapes {a.shape} and {b.shape} cannot be broadcast "
                         "together") from None
