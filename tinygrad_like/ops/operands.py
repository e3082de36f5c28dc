"""The operands of elementwise ops: promotion to one dtype and device, and broadcasting.

Operands are promoted to a common dtype with PyTorch's rules (`dtypes.result_type`), so a
Function always sees operands of one dtype, and Python scalars stay Python scalars (NumPy 2
treats them as "weak", which is PyTorch's rule too). Binary ops broadcast like NumPy; their
backward sums each gradient back to its input's shape in one place (`unbroadcast`). Also the
shared forward of broadcasting binary ops (`Binary`) and the wrapper that makes each public
binary op (`binary_op`).
"""

from __future__ import annotations

import numpy as np

from tinygrad_like import dtypes
from tinygrad_like.autograd import Function, first_tensor
from tinygrad_like.tensor import Tensor


def raw(x):
    """The backend array of a Tensor, or a Python scalar unchanged."""
    return x._array if isinstance(x, Tensor) else x


def unbroadcast(grad: Tensor, shape: tuple) -> Tensor:
    """Sum `grad` over the axes that broadcasting added or stretched, giving `shape`."""
    if grad._array.shape == shape:
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
            return Tensor._from_data(x, device=like.device)
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
    np_dtype, backend = first._array.dtype, first.backend
    dtype = dtypes.from_numpy_dtype(np_dtype)  # first.dtype, less a property call
    for x in operands:
        if isinstance(x, Tensor):
            if x._array.dtype != np_dtype or x.backend is not backend:
                return False
        elif _SCALAR_CATEGORY.get(type(x), 3) > dtype.category:
            return False
    return not floating or dtype.is_floating_point


def operands_error(op: str, xp, a, b, error: ValueError) -> ValueError:
    """The ValueError a binary op's kernel raised, restated: mostly shapes that do not
    broadcast, but also NumPy's own refusals (an integer to a negative power)."""
    shape_a, shape_b = (getattr(x, "shape", ()) for x in (a, b))
    try:
        xp.broadcast_shapes(shape_a, shape_b)
    except ValueError:
        return ValueError(f"{op}: shapes {shape_a} and {shape_b} cannot be broadcast together")
    return ValueError(f"{op}: {error} (operand shapes {shape_a} and {shape_b})")


class Binary(Function):
    """Shared forward of broadcasting binary ops: the kernel-table entry `kernel` (the four
    arithmetic ops, which a backend may run on several cores) or `compute` on the raw arrays."""

    kernel: str | None = None
    calls_ops = False  # forward computes on the raw arrays
    # Add and Sub need only the input shapes, and save no tensors, as PyTorch's: so an
    # in-place write to an input afterwards is no error there either
    saves_inputs = True

    @classmethod
    def forward(cls, ctx, a, b):
        # raw(a), raw(b) inline: two calls fewer on every binary op
        x = a._array if isinstance(a, Tensor) else a
        y = b._array if isinstance(b, Tensor) else b
        if cls.saves_inputs:
            ctx.save_for_backward(a, b)
        else:
            ctx.shapes = (getattr(x, "shape", ()), getattr(y, "shape", ()))
        try:
            if cls.kernel is not None:
                return getattr(ctx.backend.kernels, cls.kernel)(x, y)
            return cls.compute(ctx.backend.xp, x, y)
        except ValueError as error:
            raise operands_error(cls.__name__.lower(), ctx.backend.xp, a, b, error) from None


def binary_op(function, op_name, floating=False, check=None):
    """The public op: promote the operands, then apply `function`; `check(op_name, a, b)`
    first refuses operands the op does not take."""

    def op(a, b):
        # The commonest case first, with no call: a floating tensor with a Python float, or
        # with a tensor of its dtype on its device, needs no promotion (promote would say so
        # after three calls; this runs for every op).
        if (type(a) is Tensor and a._array.dtype.kind == "f"
                and (type(b) is float or type(b) is Tensor and b._array.dtype == a._array.dtype
                     and b.backend is a.backend)):
            return function.apply(a, b)
        if check is not None:
            check(op_name, a, b)
        a, b = promote(op_name, a, b, floating=floating)
        return function.apply(a, b)

    op.__name__ = op_name
    return op


def is_bool(x) -> bool:
    return isinstance(x, (bool, np.bool_)) or isinstance(x, Tensor) and x.dtype is dtypes.bool_
