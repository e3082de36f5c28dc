"""The op table: every public op, exported as `tg.<name>` and attached to `Tensor`.

This is the one place an op is registered. The test suite reads `PUBLIC_OPS` and
fails for any name that has no gradcheck/parity case in `tests/op_registry.py`.
"""

from __future__ import annotations

from tinygrad_like.ops import elementwise, indexing, linalg, movement, reduce, softmax
from tinygrad_like.tensor import Tensor

# name -> function; each is also a Tensor method of the same name
PUBLIC_OPS = {
    # elementwise
    "add": elementwise.add, "sub": elementwise.sub, "mul": elementwise.mul,
    "div": elementwise.div, "pow": elementwise.pow, "neg": elementwise.neg,
    "exp": elementwise.exp, "log": elementwise.log, "sqrt": elementwise.sqrt,
    "rsqrt": elementwise.rsqrt, "abs": elementwise.abs, "sign": elementwise.sign,
    "sin": elementwise.sin, "cos": elementwise.cos, "tanh": elementwise.tanh,
    "sigmoid": elementwise.sigmoid, "relu": elementwise.relu, "gelu": elementwise.gelu,
    "silu": elementwise.silu, "softplus": elementwise.softplus, "erf": elementwise.erf,
    "clamp": elementwise.clamp, "clip": elementwise.clip, "maximum": elementwise.maximum,
    "minimum": elementwise.minimum, "where": elementwise.where,
    # comparisons, logic and bitwise ops (no gradient)
    "eq": elementwise.eq, "ne": elementwise.ne, "lt": elementwise.lt, "le": elementwise.le,
    "gt": elementwise.gt, "ge": elementwise.ge, "logical_and": elementwise.logical_and,
    "logical_or": elementwise.logical_or, "logical_xor": elementwise.logical_xor,
    "logical_not": elementwise.logical_not, "bitwise_and": elementwise.bitwise_and,
    "bitwise_or": elementwise.bitwise_or, "bitwise_xor": elementwise.bitwise_xor,
    "bitwise_not": elementwise.bitwise_not,
    # reductions
    "sum": reduce.sum, "mean": reduce.mean, "var": reduce.var, "std": reduce.std,
    "max": reduce.max, "min": reduce.min, "amax": reduce.amax, "amin": reduce.amin,
    "argmax": reduce.argmax, "argmin": reduce.argmin, "logsumexp": reduce.logsumexp,
    # movement
    "reshape": movement.reshape, "view": movement.view, "flatten": movement.flatten,
    "squeeze": movement.squeeze, "unsqueeze": movement.unsqueeze,
    "transpose": movement.transpose, "permute": movement.permute, "expand": movement.expand,
    "contiguous": movement.contiguous, "clone": movement.clone, "cat": movement.cat, "stack": movement.stack,
    "split": movement.split, "chunk": movement.chunk, "unbind": movement.unbind,
    "pad": movement.pad, "repeat": movement.repeat,
    # indexing and linear algebra
    "gather": indexing.gather, "matmul": linalg.matmul,
    # neural-network primitives (also in tg.nn.functional)
    "softmax": softmax.softmax, "log_softmax": softmax.log_softmax,
}

# names that are functions only (tg.cat(...)), not Tensor methods, as in PyTorch
_NOT_METHODS = {"cat", "stack", "where", "pad"}
_PROPERTIES = {"T": movement.T, "mT": movement.mT}


# every name the op registry in tests/ must cover: the table, the properties, indexing
REGISTERED_NAMES = set(PUBLIC_OPS) | set(_PROPERTIES) | {"getitem"}


def _reflected(op):
    return lambda self, other: op(other, self)


_OPERATORS = {
    "__add__": elementwise.add, "__radd__": _reflected(elementwise.add),
    "__sub__": elementwise.sub, "__rsub__": _reflected(elementwise.sub),
    "__mul__": elementwise.mul, "__rmul__": _reflected(elementwise.mul),
    "__truediv__": elementwise.div, "__rtruediv__": _reflected(elementwise.div),
    "__pow__": elementwise.pow, "__rpow__": _reflected(elementwise.pow),
    "__matmul__": linalg.matmul, "__rmatmul__": _reflected(linalg.matmul),
    "__neg__": elementwise.neg, "__abs__": elementwise.abs,
    "__eq__": elementwise.eq, "__ne__": elementwise.ne, "__lt__": elementwise.lt,
    "__le__": elementwise.le, "__gt__": elementwise.gt, "__ge__": elementwise.ge,
    "__and__": elementwise.bitwise_and, "__rand__": _reflected(elementwise.bitwise_and),
    "__or__": elementwise.bitwise_or, "__ror__": _reflected(elementwise.bitwise_or),
    "__xor__": elementwise.bitwise_xor, "__rxor__": _reflected(elementwise.bitwise_xor),
    "__invert__": elementwise.bitwise_not,
    "__getitem__": indexing.getitem, "__setitem__": indexing.setitem,
}

# Tensor methods that are ops but neither tg.<op> functions nor operators: Tensor.to resolves
# the device (tensor.py imports backend/, ops do not) and then calls these.
_PRIVATE_METHODS = {"_to_backend": elementwise.to_device, "_cast": elementwise.cast}


def _attach() -> None:
    for name, op in PUBLIC_OPS.items():
        if name not in _NOT_METHODS:
            setattr(Tensor, name, op)
    for name, op in _PROPERTIES.items():
        setattr(Tensor, name, property(op))
    for name, op in (*_OPERATORS.items(), *_PRIVATE_METHODS.items()):
        setattr(Tensor, name, op)
    Tensor.__hash__ = object.__hash__  # __eq__ is elementwise, so identity hashing is restored


_attach()
