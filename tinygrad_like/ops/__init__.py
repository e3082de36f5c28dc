"""The op table: every public op, exported as `tg.<name>` and attached to `Tensor`.

This is the one place an op is registered. The test suite reads `PUBLIC_OPS` and
fails for any name that has no gradcheck/parity case in `tests/op_registry.py`.
"""

from __future__ import annotations

from tinygrad_like.ops import (arithmetic, comparison, conversion, einsum, indexing, linalg,
                               movement, reduce, selection, softmax, unary)
from tinygrad_like.ops.inplace import inplace_methods
from tinygrad_like.tensor import Tensor

# name -> function; each is also a Tensor method of the same name
PUBLIC_OPS = {
    # elementwise
    "add": arithmetic.add, "sub": arithmetic.sub, "mul": arithmetic.mul,
    "div": arithmetic.div, "pow": arithmetic.pow, "neg": arithmetic.neg,
    "exp": unary.exp, "log": unary.log, "sqrt": unary.sqrt,
    "rsqrt": unary.rsqrt, "abs": unary.abs, "sign": unary.sign,
    "sin": unary.sin, "cos": unary.cos, "tanh": unary.tanh,
    "sigmoid": unary.sigmoid, "relu": unary.relu, "gelu": unary.gelu,
    "silu": unary.silu, "softplus": unary.softplus, "erf": unary.erf,
    "clamp": selection.clamp, "clip": selection.clip, "maximum": selection.maximum,
    "minimum": selection.minimum, "where": selection.where,
    "clamp_min": selection.clamp_min, "clamp_max": selection.clamp_max,
    "tril": selection.tril, "triu": selection.triu, "masked_fill": selection.masked_fill,
    "masked_fill_": selection.masked_fill_,
    # comparisons, logic and bitwise ops (no gradient)
    "eq": comparison.eq, "ne": comparison.ne, "lt": comparison.lt, "le": comparison.le,
    "gt": comparison.gt, "ge": comparison.ge, "logical_and": comparison.logical_and,
    "logical_or": comparison.logical_or, "logical_xor": comparison.logical_xor,
    "logical_not": comparison.logical_not, "bitwise_and": comparison.bitwise_and,
    "bitwise_or": comparison.bitwise_or, "bitwise_xor": comparison.bitwise_xor,
    "bitwise_not": comparison.bitwise_not,
    # reductions
    "sum": reduce.sum, "mean": reduce.mean, "var": reduce.var, "std": reduce.std,
    "max": reduce.max, "min": reduce.min, "amax": reduce.amax, "amin": reduce.amin,
    "argmax": reduce.argmax, "argmin": reduce.argmin, "logsumexp": reduce.logsumexp,
    "cumsum": reduce.cumsum, "cumprod": reduce.cumprod, "all": reduce.all_, "any": reduce.any_,
    "norm": reduce.norm,
    "isnan": comparison.isnan, "isinf": comparison.isinf, "isfinite": comparison.isfinite,
    "allclose": comparison.allclose,
    # movement
    "reshape": movement.reshape, "view": movement.view, "flatten": movement.flatten,
    "squeeze": movement.squeeze, "unsqueeze": movement.unsqueeze,
    "transpose": movement.transpose, "permute": movement.permute, "expand": movement.expand,
    "contiguous": movement.contiguous, "clone": movement.clone, "cat": movement.cat, "stack": movement.stack,
    "split": movement.split, "chunk": movement.chunk, "unbind": movement.unbind,
    "pad": movement.pad, "repeat": movement.repeat,
    "flip": movement.flip, "roll": movement.roll, "narrow": movement.narrow, "t": movement.t,
    "view_as": movement.view_as, "expand_as": movement.expand_as,
    "nelement": movement.nelement, "type_as": conversion.type_as,
    # indexing and linear algebra
    "gather": indexing.gather, "matmul": linalg.matmul,
    "sort": indexing.sort, "argsort": indexing.argsort, "topk": indexing.topk,
    "index_select": indexing.index_select, "masked_select": indexing.masked_select,
    "index_add": indexing.index_add, "einsum": einsum.einsum,
    "outer": linalg.outer, "bmm": linalg.bmm, "addmm": linalg.addmm, "baddbmm": linalg.baddbmm,
    # neural-network primitives (also in tg.nn.functional)
    "softmax": softmax.softmax, "log_softmax": softmax.log_softmax,
}

# names that are functions only (tg.cat(...)), not Tensor methods, as in PyTorch
_NOT_METHODS = {"cat", "stack", "where", "pad", "einsum"}
_PROPERTIES = {"T": movement.T, "mT": movement.mT}


# every name the op registry in tests/ must cover: the table, the properties, indexing
REGISTERED_NAMES = set(PUBLIC_OPS) | set(_PROPERTIES) | {"getitem"}


def _reflected(op):
    return lambda self, other: op(other, self)


_OPERATORS = {
    "__add__": arithmetic.add, "__radd__": _reflected(arithmetic.add),
    "__sub__": arithmetic.sub, "__rsub__": _reflected(arithmetic.sub),
    "__mul__": arithmetic.mul, "__rmul__": _reflected(arithmetic.mul),
    "__truediv__": arithmetic.div, "__rtruediv__": _reflected(arithmetic.div),
    "__pow__": arithmetic.pow, "__rpow__": _reflected(arithmetic.pow),
    "__matmul__": linalg.matmul, "__rmatmul__": _reflected(linalg.matmul),
    "__neg__": arithmetic.neg, "__abs__": unary.abs,
    "__eq__": comparison.eq, "__ne__": comparison.ne, "__lt__": comparison.lt,
    "__le__": comparison.le, "__gt__": comparison.gt, "__ge__": comparison.ge,
    "__and__": comparison.bitwise_and, "__rand__": _reflected(comparison.bitwise_and),
    "__or__": comparison.bitwise_or, "__ror__": _reflected(comparison.bitwise_or),
    "__xor__": comparison.bitwise_xor, "__rxor__": _reflected(comparison.bitwise_xor),
    "__invert__": comparison.bitwise_not,
    "__getitem__": indexing.getitem, "__setitem__": indexing.setitem,
}

# x.exp_(), x.index_add_(...): the op written into x's memory (ops/inplace.py)
_INPLACE_METHODS = inplace_methods({name: PUBLIC_OPS[name] for name in (
    "exp", "log", "sqrt", "rsqrt", "abs", "sign", "neg", "sin", "cos", "tanh", "sigmoid", "relu",
    "erf", "pow", "clamp_min", "clamp_max", "tril", "triu", "index_add")})

# Tensor methods that are ops but neither tg.<op> functions nor operators: Tensor.to resolves
# the device (tensor.py imports backend/, ops do not) and then calls these.
_PRIVATE_METHODS = {"_to_backend": conversion.to_device, "_cast": conversion.cast}


def _attach() -> None:
    for name, op in PUBLIC_OPS.items():
        if name not in _NOT_METHODS:
            setattr(Tensor, name, op)
    for name, op in _PROPERTIES.items():
        setattr(Tensor, name, property(op))
    for name, op in (*_OPERATORS.items(), *_PRIVATE_METHODS.items(), *_INPLACE_METHODS.items()):
        setattr(Tensor, name, op)
    Tensor.__hash__ = object.__hash__  # __eq__ is elementwise, so identity hashing is restored


_attach()
