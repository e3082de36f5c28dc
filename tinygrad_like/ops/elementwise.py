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
from tinygrad_like.ops.checks import check_number
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


def _as_operand(op: str, x, like: Tensor):
    """Python/NumPy scalars become Python scalars; arrays and lists become Tensors."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.generic) and x.dtype.kind in "biuf":
        return x.item()  # before the Python types: np.float64 is a float, but not a weak one
    if isinstance(x, (bool, int, float)):
        return x
    if isinstance(x, (np.ndarray, list, tuple)):
        try:
            return Tensor(x, device=like.device)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{op}: cannot use {type(x).__name__} operand {x!r} as a tensor "
                            f"({error})") from None
    raise TypeError(f"{op}: unsupported operand of type {type(x).__name__}; expected a Tensor "
                    "or a Python number")


# The category (0 bool, 1 integer, 2 floating) of each Python scalar type promote passes as is
_SCALAR_CATEGORY = {bool: 0, int: 1, float: 2}


def promote(op: str, *operands, floating: bool = False):
    """Bring tensors to one device and the PyTorch result dtype; scalars stay as they are.

    `floating` asks for a floating result even from integer inputs (true division, exp).
    """
    first = operands[0] if isinstance(operands[0], Tensor) else _first_tensor(op, operands)
    if _already_promoted(first, operands, floating):
        return operands
    operands = tuple(_as_operand(op, x, first) for x in operands)
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


def _first_tensor(op: str, operands: tuple) -> Tensor:
    try:
        return first_tensor(operands)
    except TypeError:
        kinds = ", ".join(type(x).__name__ for x in operands)
        raise TypeError(f"{op}: expected at least one Tensor operand, got {kinds}") from None


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


def _operands_error(op: str, xp, a, b, error: ValueError) -> ValueError:
    """The ValueError a binary op's kernel raised, restated: mostly shapes that do not
    broadcast, but also NumPy's own refusals (an integer to a negative power)."""
    shape_a, shape_b = (getattr(x, "shape", ()) for x in (a, b))
    try:
        xp.broadcast_shapes(shape_a, shape_b)
    except ValueError:
        return ValueError(f"{op}: shapes {shape_a} and {shape_b} cannot be broadcast together")
    return ValueError(f"{op}: {error} (operand shapes {shape_a} and {shape_b})")


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
            raise _operands_error(cls.__name__.lower(), ctx.backend.xp, a, b, error) from None


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
    """Comparisons, logical and bitwise ops: bool or integer results, so no graph is ever
    recorded."""

    @classmethod
    def forward(cls, ctx, a, b):
        xp = ctx.backend.xp
        try:
            return cls.compute(xp, raw(a), raw(b))
        except ValueError as error:
            raise _operands_error(cls.op_name, xp, a, b, error) from None


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


# ---- public functions ----------------------------------------------------------------------
def _binary_op(function, op_name, floating=False, check=None):
    """The public op: promote the operands, then apply `function`; `check(op_name, a, b)`
    first refuses operands the op does not take."""

    def op(a, b):
        # The commonest case first, with no call: a floating tensor with a Python float, or
        # with a tensor of its dtype on its device, needs no promotion (promote would say so
        # after three calls; this runs for every op).
        if (type(a) is Tensor and a.data.dtype.kind == "f"
                and (type(b) is float or type(b) is Tensor and b.data.dtype == a.data.dtype
                     and b.backend is a.backend)):
            return function.apply(a, b)
        if check is not None:
            check(op_name, a, b)
        a, b = promote(op_name, a, b, floating=floating)
        return function.apply(a, b)

    op.__name__ = op_name
    return op


def _is_bool(x) -> bool:
    return isinstance(x, (bool, np.bool_)) or isinstance(x, Tensor) and x.dtype is dtypes.bool_


def _refuse_bool(op: str, a, b) -> None:
    if _is_bool(a) or _is_bool(b):
        raise TypeError(f"{op}: subtraction with a bool operand is not supported (as in "
                        "PyTorch); to invert a mask use ~ or logical_not")


add = _binary_op(Add, "add")
sub = _binary_op(Sub, "sub", check=_refuse_bool)
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


def pow(a, b) -> Tensor:
    integer_base = isinstance(a, Tensor) and not a.dtype.is_floating_point
    if integer_base and type(b) is int and b < 0:
        raise ValueError(f"pow: integers to negative integer powers are not allowed (a "
                         f"{a.dtype.name} tensor to the power {b}), as in PyTorch")
    a, b = promote("pow", a, b)
    if _is_bool(a) and _is_bool(b):
        # NumPy gives int8 for bool ** bool; PyTorch stays bool: x ** True is x, x ** False 1
        return Pow.apply(*(x.long() if isinstance(x, Tensor) else int(x) for x in (a, b))).bool()
    return Pow.apply(a, b)


def where(condition: Tensor, a, b) -> Tensor:
    if not isinstance(condition, Tensor) or condition.dtype is not dtypes.bool_:
        raise TypeError("where: condition must be a bool tensor, got "
                        f"{getattr(condition, 'dtype', type(condition).__name__)}")
    if not any(isinstance(x, Tensor) for x in (a, b)):
        # two numbers: the first becomes a tensor with PyTorch's dtype for it (1.0: float32)
        a = Tensor(check_number("where", "input", a), device=condition.device)
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


def cast(x: Tensor, dtype) -> Tensor:
    dtype = dtypes.to_dtype(dtype)
    if dtype is x.dtype:
        return x
    if x.requires_grad and not dtype.is_floating_point:
        return Tensor._wrap(x.data.astype(dtype.np_dtype), x.backend)
    return Cast.apply(x, dtype)


def to_device(x: Tensor, backend) -> Tensor:
    """`x` on `backend` (a Backend: Tensor.to resolves the device name; ops do not import
    backend/)."""
    if backend is x.backend:
        return x
    return ToDevice.apply(x, backend)
