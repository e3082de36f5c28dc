"""Unary math and activations: exp, log, sqrt, trigonometry, tanh, sigmoid, relu, erf, gelu,
silu, softplus, abs and sign, each with its derivative.

Integer inputs of the floating functions become the default float dtype first, as in PyTorch.
"""

from __future__ import annotations

import math

from tinygrad_like import dtypes
from tinygrad_like.amp.autocast import autocast_op
from tinygrad_like.autograd import Function
from tinygrad_like.ops.selection import where
from tinygrad_like.tensor import Tensor


class Unary(Function):
    """Shared forward of unary ops: `compute` on the raw array.

    Ops whose derivative is cheapest from y = f(x) set `saves_output`; the rest save x.
    """

    calls_ops = False  # forward computes on the raw array

    @classmethod
    def forward(cls, ctx, x):
        if not cls.saves_output:
            ctx.save_for_backward(x)
        return cls.compute(x.backend.xp, x._array)



def _rounded_once(compute):
    """`compute` (a formula of several ufuncs) in at least float32, rounded once to the
    input's dtype: float16 and bfloat16 then round as PyTorch's, which computes in float."""

    def run(xp, x):
        wide = x.astype(xp.result_type(x.dtype, xp.float32), copy=False)
        return xp.astype(compute(xp, wide), x.dtype, copy=False)

    return run


class Exp(Unary):
    compute = staticmethod(lambda xp, x: xp.exp(x))
    saves_output = True

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out


class Log(Unary):
    compute = staticmethod(lambda xp, x: xp.log(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Sqrt(Unary):
    compute = staticmethod(lambda xp, x: xp.sqrt(x))
    saves_output = True

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad / (2 * out)


class Rsqrt(Unary):
    compute = staticmethod(_rounded_once(lambda xp, x: 1 / xp.sqrt(x)))
    saves_output = True

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * -0.5 * out * out * out


class Abs(Unary):
    compute = staticmethod(lambda xp, x: xp.abs(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * sign(x)


class Sign(Unary):
    compute = staticmethod(lambda xp, x: xp.sign(x))

    @staticmethod
    def backward(ctx, grad):
        return grad * 0


class Sin(Unary):
    compute = staticmethod(lambda xp, x: xp.sin(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * cos(x)


class Cos(Unary):
    compute = staticmethod(lambda xp, x: xp.cos(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * -sin(x)


class Tanh(Unary):
    compute = staticmethod(lambda xp, x: xp.tanh(x))
    saves_output = True

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return TanhBackward.apply(grad, out)


class TanhBackward(Function):
    """grad * (1 - out²) as one op rather than three (as PyTorch's tanh_backward); its own
    backward keeps tanh differentiable to any order."""

    @staticmethod
    def forward(ctx, grad, out):
        ctx.save_for_backward(grad, out)
        return grad._array * (1 - out._array * out._array)

    @staticmethod
    def backward(ctx, grad_grad):
        grad, out = ctx.saved_tensors
        return (grad_grad * (1 - out * out) if ctx.needs_input_grad[0] else None,
                grad_grad * grad * out * -2 if ctx.needs_input_grad[1] else None)


class Sigmoid(Unary):
    # 1 / (1 + exp(-x)) overflows for large negative x; tanh form is stable everywhere
    compute = staticmethod(_rounded_once(lambda xp, x: 0.5 * (xp.tanh(0.5 * x) + 1)))
    saves_output = True

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return SigmoidBackward.apply(grad, out)


class SigmoidBackward(Function):
    """grad * out * (1 - out) as one op rather than three (as PyTorch's sigmoid_backward); its
    own backward keeps sigmoid differentiable to any order."""

    @staticmethod
    def forward(ctx, grad, out):
        ctx.save_for_backward(grad, out)
        return grad._array * out._array * (1 - out._array)

    @staticmethod
    def backward(ctx, grad_grad):
        grad, out = ctx.saved_tensors
        return (grad_grad * out * (1 - out) if ctx.needs_input_grad[0] else None,
                grad_grad * grad * (1 - 2 * out) if ctx.needs_input_grad[1] else None)


class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.backend.kernels.relu(x._array)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return ReluBackward.apply(grad, x)


class ReluBackward(Function):
    """grad where x > 0, else 0, as one kernel rather than a compare, a cast and a multiply
    (PyTorch's threshold_backward). It is linear in grad and flat in x, so its own backward
    is itself applied to grad_grad, and nothing for x."""

    @staticmethod
    def forward(ctx, grad, x):
        ctx.save_for_backward(x)
        return x.backend.kernels.relu_backward(grad._array, x._array)

    @staticmethod
    def backward(ctx, grad_grad):
        (x,) = ctx.saved_tensors
        return ReluBackward.apply(grad_grad, x) if ctx.needs_input_grad[0] else None, None


class Erf(Unary):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.backend.kernels.erf(x._array)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (2 / math.sqrt(math.pi)) * exp(-x * x)


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, linear above `threshold` like PyTorch."""

    @staticmethod
    def forward(ctx, x, beta, threshold):
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        xp = x.backend.xp
        scaled = x._array * beta
        return xp.where(scaled > threshold, x._array, xp.logaddexp(0, scaled) / beta)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        scaled = x * ctx.beta
        return grad * where(scaled > ctx.threshold, 1.0, sigmoid(scaled))



def _float_unary(function):
    def op(x: Tensor) -> Tensor:
        # NumPy's "f" kind first: cheaper than the dtype property, and true for most calls
        if x._array.dtype.kind != "f" and not x.dtype.is_floating_point:
            x = x.to(dtypes.default_float())
        return function.apply(x)

    op.__name__ = function.__name__.lower()
    op.__doc__ = function.__doc__
    return op


exp = autocast_op("exp")(_float_unary(Exp))
log = autocast_op("log")(_float_unary(Log))
sqrt = _float_unary(Sqrt)
rsqrt = autocast_op("rsqrt")(_float_unary(Rsqrt))
sin = _float_unary(Sin)
cos = _float_unary(Cos)
tanh = _float_unary(Tanh)
sigmoid = _float_unary(Sigmoid)
erf = _float_unary(Erf)


def abs(x: Tensor) -> Tensor:
    return Abs.apply(x)


def sign(x: Tensor) -> Tensor:
    return Sign.apply(x)


def relu(x: Tensor) -> Tensor:
    return Relu.apply(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x Φ(x) exactly (erf), or PyTorch's tanh approximation with approximate="tanh"."""
    if approximate == "none":
        return x * 0.5 * (1 + erf(x * (1 / math.sqrt(2))))
    if approximate == "tanh":
        return x * 0.5 * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(x: Tensor) -> Tensor:
    return x * sigmoid(x)


@autocast_op("softplus")
def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return Softplus.apply(x if x.dtype.is_floating_point else x.float(), beta, threshold)
