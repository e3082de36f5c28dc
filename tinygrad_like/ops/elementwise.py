"""Elementwise ops: arithmetic, unary math, activations, comparisons, casts.

Binary ops broadcast like NumPy; their backward sums each gradient back to its
input's shape in one place (`unbroadcast`). Operands are first promoted to a
common dtype with PyTorch's rules (`dtypes.result_type`), so a Function always
sees operands of one dtype, and Python scalars stay Python scalars (NumPy 2
treats them as "weak", which is PyTorch's rule too).
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_like import dtypes
from tinygrad_like.autograd import Function, first_tensor
from tinygrad_like.tensor import Tensor


def raw(x):
    """The backend array of a Tensor, or a Python scalar unchanged."""
    return x.data if isinstance(x, Tensor) else x


def unbroadcast(grad: Tensor, shape: tuple) -> Tensor:
    """Sum `grad` over the axes that broadcasting added or stretched, giving `shape`."""
    if grad.data.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    stretched = tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    return grad.sum(tuple(range(extra)) + stretched, keepdim=True).reshape(shape)


def _as_operand(x, like: Tensor):
    """Python/NumPy scalars become Python scalars; arrays and lists become Tensors."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float)):
        return x
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (np.ndarray, list, tuple)):
        return Tensor(x, device=like.device)
    raise TypeError(f"unsupported operand of type {type(x).__name__} for a Tensor op")


# The category (0 bool, 1 integer, 2 floating) of each Python scalar type promote passes as is
_SCALAR_CATEGORY = {bool: 0, int: 1, float: 2}


def promote(op: str, *operands, floating: bool = False):
    """Bring tensors to one device and the PyTorch result dtype; scalars stay as they are.

    `floating` asks for a floating result even from integer inputs (true division, exp).
    """
    first = operands[0] if isinstance(operands[0], Tensor) else first_tensor(operands)
    if _already_promoted(first, operands, floating):
        return operands
    operands = tuple(_as_operand(x, first) for x in operands)
    tensors = [x for x in operands if isinstance(x, Tensor)]
    for t in tensors:
        if t.backend is not first.backend:
            raise RuntimeError(f"{op}: expected all tensors on one device, but got {first.device} "
                               f"and {t.device}")
    target = dtypes.result_type(*operands)
    if floating and not target.is_floating_point:
        target = dtypes.default_float()
    return tuple(x.to(target) if isinstance(x, Tensor) and x.dtype is not target else x
                 for x in operands)


def _already_promoted(first: Tensor, operands: tuple, floating: bool) -> bool:
    """The common case, decided without `dtypes.result_type`: every tensor has `first`'s dtype
    and device, and every other operand is a Python scalar that cannot raise its category."""
    np_dtype, backend = first.data.dtype, first.backend
    dtype = dtypes.from_numpy_dtype(np_dtype)  # first.dtype, less a property call
    for x in operands:
        if isinstance(x, Tensor):
            if x.data.dtype != np_dtype or x.backend is not backend:
                return False
        elif _SCALAR_CATEGORY.get(type(x), 3) > dtype.category:
            return False
    return not floating or dtype.is_floating_point


def _broadcast_error(op: str, a, b, error: ValueError) -> ValueError:
    shapes = [getattr(x, "shape", ()) for x in (a, b)]
    return ValueError(f"{op}: shapes {shapes[0]} and {shapes[1]} cannot be broadcast together")


class _Binary(Function):
    """Shared forward of broadcasting binary ops: the kernel-table entry `kernel` (the four
    arithmetic ops, which a backend may run on several cores) or `compute` on the raw arrays."""

    kernel: str | None = None

    @classmethod
    def forward(cls, ctx, a, b):
        ctx.save_for_backward(a, b)
        # raw(a), raw(b) inline: two calls fewer on every binary op
        x = a.data if isinstance(a, Tensor) else a
        y = b.data if isinstance(b, Tensor) else b
        try:
            if cls.kernel is not None:
                return getattr(ctx.backend.kernels, cls.kernel)(x, y)
            return cls.compute(ctx.backend.xp, x, y)
        except ValueError as error:
            raise _broadcast_error(cls.__name__.lower(), a, b, error) from None


class Add(_Binary):
    kernel = "add"

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return (unbroadcast(grad, a.shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(grad, b.shape) if ctx.needs_input_grad[1] else None)


class Sub(_Binary):
    kernel = "sub"

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return (unbroadcast(grad, a.shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(-grad, b.shape) if ctx.needs_input_grad[1] else None)


class Mul(_Binary):
    kernel = "mul"

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return (unbroadcast(grad * b, a.shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(grad * a, b.shape) if ctx.needs_input_grad[1] else None)


class Div(_Binary):
    kernel = "div"

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return (unbroadcast(grad / b, a.shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(-grad * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None)


class Pow(_Binary):
    compute = staticmethod(lambda xp, a, b: a**b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = unbroadcast(grad * b * a ** (b - 1), a.shape)
        if ctx.needs_input_grad[1]:
            # d(a^b)/db = a^b log a, taken as 0 where a == 0 and b >= 0 (PyTorch's convention)
            safe_log = where((a == 0) & (b >= 0), 0.0, log(a))
            grad_b = unbroadcast(grad * a**b * safe_log, b.shape)
        return grad_a, grad_b


class Maximum(_Binary):
    compute = staticmethod(lambda xp, a, b: xp.maximum(a, b))

    @staticmethod
    def backward(ctx, grad):
        return _select_backward(ctx, grad, lambda a, b: a > b)


class Minimum(_Binary):
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
        try:
            return xp.where(condition.data, raw(a), raw(b))
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


# ---- unary ---------------------------------------------------------------------------------
class _Unary(Function):
    """Shared forward of unary ops: `compute` on the raw array.

    Ops whose derivative is cheapest from y = f(x) set `saves_output`; the rest save x.
    """

    @classmethod
    def forward(cls, ctx, x):
        if not cls.saves_output:
            ctx.save_for_backward(x)
        return cls.compute(x.backend.xp, x.data)


class Neg(_Unary):
    compute = staticmethod(lambda xp, x: -x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Exp(_Unary):
    compute = staticmethod(lambda xp, x: xp.exp(x))
    saves_output = True

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out


class Log(_Unary):
    compute = staticmethod(lambda xp, x: xp.log(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Sqrt(_Unary):
    compute = staticmethod(lambda xp, x: xp.sqrt(x))
    saves_output = True

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad / (2 * out)


class Rsqrt(_Unary):
    compute = staticmethod(lambda xp, x: 1 / xp.sqrt(x))
    saves_output = True

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * -0.5 * out * out * out


class Abs(_Unary):
    compute = staticmethod(lambda xp, x: xp.abs(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * sign(x)


class Sign(_Unary):
    compute = staticmethod(lambda xp, x: xp.sign(x))

    @staticmethod
    def backward(ctx, grad):
        return grad * 0


class Sin(_Unary):
    compute = staticmethod(lambda xp, x: xp.sin(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * cos(x)


class Cos(_Unary):
    compute = staticmethod(lambda xp, x: xp.cos(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * -sin(x)


class Tanh(_Unary):
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
        return grad.data * (1 - out.data * out.data)

    @staticmethod
    def backward(ctx, grad_grad):
        grad, out = ctx.saved_tensors
        return (grad_grad * (1 - out * out) if ctx.needs_input_grad[0] else None,
                grad_grad * grad * out * -2 if ctx.needs_input_grad[1] else None)


class Sigmoid(_Unary):
    # 1 / (1 + exp(-x)) overflows for large negative x; tanh form is stable everywhere
    compute = staticmethod(lambda xp, x: 0.5 * (xp.tanh(0.5 * x) + 1))
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
        return grad.data * out.data * (1 - out.data)

    @staticmethod
    def backward(ctx, grad_grad):
        grad, out = ctx.saved_tensors
        return (grad_grad * out * (1 - out) if ctx.needs_input_grad[0] else None,
                grad_grad * grad * (1 - 2 * out) if ctx.needs_input_grad[1] else None)


class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.backend.kernels.relu(x.data)

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
        return x.backend.kernels.relu_backward(grad.data, x.data)

    @staticmethod
    def backward(ctx, grad_grad):
        (x,) = ctx.saved_tensors
        return ReluBackward.apply(grad_grad, x) if ctx.needs_input_grad[0] else None, None


class Erf(_Unary):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.backend.kernels.erf(x.data)

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
        scaled = x.data * beta
        return xp.where(scaled > threshold, x.data, xp.logaddexp(0, scaled) / beta)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        scaled = x * ctx.beta
        return grad * where(scaled > ctx.threshold, 1.0, sigmoid(scaled))


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, low, high):
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        return x.backend.xp.clip(x.data, low, high)

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


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.input_dtype = x.dtype
        return x.data.astype(dtype.np_dtype if dtype.np_dtype is not None else
                             _unsupported_dtype(dtype, x))

    @staticmethod
    def backward(ctx, grad):
        return grad.to(ctx.input_dtype)


def _unsupported_dtype(dtype, x):
    raise TypeError(f"to: dtype {dtype.name} is not supported on device {x.device!r}")


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, backend):
        ctx.source = x.device
        return Tensor._wrap(backend.asarray(x.backend.to_numpy(x.data)), backend)

    @staticmethod
    def backward(ctx, grad):
        return grad.to(ctx.source)


class _Compare(Function):
    """Comparisons and logical ops: bool results, so no graph is ever recorded."""

    @classmethod
    def forward(cls, ctx, a, b):
        try:
            return cls.compute(ctx.backend.xp, raw(a), raw(b))
        except ValueError as error:
            raise _broadcast_error(cls.__name__.lower(), a, b, error) from None


def _comparison(name: str, compute):
    return type(name, (_Compare,), {"compute": staticmethod(compute)})


Eq = _comparison("Eq", lambda xp, a, b: a == b)
Ne = _comparison("Ne", lambda xp, a, b: a != b)
Lt = _comparison("Lt", lambda xp, a, b: a < b)
Le = _comparison("Le", lambda xp, a, b: a <= b)
Gt = _comparison("Gt", lambda xp, a, b: a > b)
Ge = _comparison("Ge", lambda xp, a, b: a >= b)
And = _comparison("And", lambda xp, a, b: a & b)
Or = _comparison("Or", lambda xp, a, b: a | b)
Xor = _comparison("Xor", lambda xp, a, b: a ^ b)


# ---- public functions ----------------------------------------------------------------------
def _binary_op(function, op_name, floating=False):
    def op(a, b):
        # The commonest case first, with no call: a floating tensor with a Python float, or
        # with a tensor of its dtype on its device, needs no promotion (promote would say so
        # after three calls; this runs for every op).
        if (type(a) is Tensor and a.data.dtype.kind == "f"
                and (type(b) is float or type(b) is Tensor and b.data.dtype == a.data.dtype
                     and b.backend is a.backend)):
            return function.apply(a, b)
        a, b = promote(op_name, a, b, floating=floating)
        return function.apply(a, b)

    op.__name__ = op_name
    return op


add = _binary_op(Add, "add")
sub = _binary_op(Sub, "sub")
mul = _binary_op(Mul, "mul")
div = _binary_op(Div, "div", floating=True)
maximum = _binary_op(Maximum, "maximum")
minimum = _binary_op(Minimum, "minimum")
eq = _binary_op(Eq, "eq")
ne = _binary_op(Ne, "ne")
lt = _binary_op(Lt, "lt")
le = _binary_op(Le, "le")
gt = _binary_op(Gt, "gt")
ge = _binary_op(Ge, "ge")


def _logical(function, op_name):
    """Logical ops read any dtype as truth values (nonzero is True) and give bool, as PyTorch."""

    def op(a, b):
        a, b = (x.to(dtypes.bool_) if isinstance(x, Tensor) else bool(x)
                for x in promote(op_name, a, b))
        return function.apply(a, b)

    op.__name__ = op_name
    return op


logical_and = _logical(And, "logical_and")
logical_or = _logical(Or, "logical_or")
logical_xor = _logical(Xor, "logical_xor")


def logical_not(x: Tensor) -> Tensor:
    return eq(x.to(dtypes.bool_), False)


def pow(a, b) -> Tensor:
    a, b = promote("pow", a, b)
    return Pow.apply(a, b)


def where(condition: Tensor, a, b) -> Tensor:
    if not isinstance(condition, Tensor) or condition.dtype is not dtypes.bool_:
        raise TypeError("where: condition must be a bool tensor, got "
                        f"{getattr(condition, 'dtype', type(condition).__name__)}")
    if not any(isinstance(x, Tensor) for x in (a, b)):
        a = Tensor._wrap(condition.backend.asarray(a), condition.backend)
    a, b = promote("where", a, b)
    first = a if isinstance(a, Tensor) else b
    if first.backend is not condition.backend:
        raise RuntimeError(f"where: condition on {condition.device}, values on {first.device}")
    return Where.apply(condition, a, b)


def _float_unary(function):
    def op(x: Tensor) -> Tensor:
        # NumPy's "f" kind first: cheaper than the dtype property, and true for most calls
        if x.data.dtype.kind != "f" and not x.dtype.is_floating_point:
            x = x.to(dtypes.default_float())
        return function.apply(x)

    op.__name__ = function.__name__.lower()
    op.__doc__ = function.__doc__
    return op


exp = _float_unary(Exp)
log = _float_unary(Log)
sqrt = _float_unary(Sqrt)
rsqrt = _float_unary(Rsqrt)
sin = _float_unary(Sin)
cos = _float_unary(Cos)
tanh = _float_unary(Tanh)
sigmoid = _float_unary(Sigmoid)
erf = _float_unary(Erf)


def neg(x: Tensor) -> Tensor:
    if x.dtype is dtypes.bool_:
        raise TypeError("neg: negation of a bool tensor is not supported; use logical_not")
    return Neg.apply(x)


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


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return Softplus.apply(x if x.dtype.is_floating_point else x.float(), beta, threshold)


def clamp(x: Tensor, min=None, max=None) -> Tensor:
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = x if min is None else maximum(x, min)
        return out if max is None else minimum(out, max)
    if x.dtype.is_floating_point or all(v is None or isinstance(v, int) for v in (min, max)):
        return Clamp.apply(x, min, max)
    return Clamp.apply(x.float(), min, max)


clip = clamp


def cast(x: Tensor, dtype) -> Tensor:
    dtype = dtypes.to_dtype(dtype)
    if dtype is x.dtype:
        return x
    if x.requires_grad and not dtype.is_floating_point:
        return Tensor._wrap(x.data.astype(dtype.np_dtype), x.backend)
    return Cast.apply(x, dtype)


def to_device(x: Tensor, device) -> Tensor:
    from tinygrad_like.backend import get_backend

    backend = get_backend(device)
    if backend is x.backend:
        return x
    return ToDevice.apply(x, backend)
