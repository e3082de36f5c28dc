"""Arithmetic: + - * / ** and unary minus, each with its derivative.

The operands are promoted and broadcast by ops/operands.py; each backward sums its
gradients back to the input shapes with `unbroadcast`.
"""

from __future__ import annotations

import math

from tinygrad_like import dtypes
from tinygrad_like.amp.autocast import autocast_op
from tinygrad_like.ops.operands import Binary, binary_op, is_bool, promote, unbroadcast
from tinygrad_like.ops.selection import where
from tinygrad_like.ops.unary import Unary, log
from tinygrad_like.tensor import Tensor


class Add(Binary):
    kernel = "add"
    saves_inputs = False

    @staticmethod
    def backward(ctx, grad):
        shape_a, shape_b = ctx.shapes
        return (unbroadcast(grad, shape_a) if ctx.needs_input_grad[0] else None,
                unbroadcast(grad, shape_b) if ctx.needs_input_grad[1] else None)


class Sub(Binary):
    kernel = "sub"
    saves_inputs = False

    @staticmethod
    def backward(ctx, grad):
        shape_a, shape_b = ctx.shapes
        return (unbroadcast(grad, shape_a) if ctx.needs_input_grad[0] else None,
                unbroadcast(-grad, shape_b) if ctx.needs_input_grad[1] else None)


class Mul(Binary):
    kernel = "mul"

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return (unbroadcast(grad * b, a.shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(grad * a, b.shape) if ctx.needs_input_grad[1] else None)


class Div(Binary):
    kernel = "div"

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return (unbroadcast(grad / b, a.shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(-grad * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None)


class Pow(Binary):
    @staticmethod
    def compute(xp, a, b):
        # pow() has refused negative Python ints with integer tensors, as PyTorch does
        if not hasattr(b, "dtype") or b.dtype.kind != "i" or not (b < 0).any():
            return a**b
        # NumPy refuses negative integer powers; PyTorch truncates 1 / a^|b| towards zero,
        # which leaves a^b where |a| == 1 and 0 elsewhere
        magnitude = a ** xp.abs(b)
        return xp.where((b >= 0) | (xp.abs(a) == 1), magnitude, 0)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = unbroadcast(grad * b * a ** (b - 1), a.shape)
        if ctx.needs_input_grad[1]:
            grad_b = unbroadcast(grad * a**b * _exponent_log(a, b), b.shape)
        return grad_a, grad_b


def _exponent_log(a, b: Tensor):
    """log a for d(a^b)/db = a^b log a, taken as 0 where a == 0 and b >= 0 (PyTorch's
    convention); `a` is a Tensor, or a Python number when it is the base of `2 ** x`."""
    if isinstance(a, Tensor):
        return where((a == 0) & (b >= 0), 0.0, log(a))
    if a == 0:
        return where(b >= 0, 0.0, -math.inf)
    return math.log(a) if a > 0 else math.nan



class Neg(Unary):
    compute = staticmethod(lambda xp, x: -x)

    @staticmethod
    def backward(ctx, grad):
        return -grad



def _refuse_bool(op: str, a, b) -> None:
    if is_bool(a) or is_bool(b):
        raise TypeError(f"{op}: subtraction with a bool operand is not supported (as in "
                        "PyTorch); to invert a mask use ~ or logical_not")


add = binary_op(Add, "add")
sub = binary_op(Sub, "sub", check=_refuse_bool)
mul = binary_op(Mul, "mul")
div = binary_op(Div, "div", floating=True)


@autocast_op("pow")
def pow(a, b) -> Tensor:
    integer_base = isinstance(a, Tensor) and not a.dtype.is_floating_point
    if integer_base and type(b) is int and b < 0:
        raise ValueError(f"pow: integers to negative integer powers are not allowed (a "
                         f"{a.dtype.name} tensor to the power {b}), as in PyTorch")
    a, b = promote("pow", a, b)
    if is_bool(a) and is_bool(b):
        # NumPy gives int8 for bool ** bool; PyTorch stays bool: x ** True is x, x ** False 1
        return Pow.apply(*(x.long() if isinstance(x, Tensor) else int(x) for x in (a, b))).bool()
    return Pow.apply(a, b)


def neg(x: Tensor) -> Tensor:
    if x.dtype is dtypes.bool_:
        raise TypeError("neg: negation of a bool tensor is not supported; use logical_not")
    return Neg.apply(x)
