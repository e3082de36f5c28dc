"""Dtypes and PyTorch's type-promotion rules.

A `DType` names a storage type and knows its NumPy equivalent. Promotion follows
PyTorch, not NumPy: Python scalars never widen a tensor within its category
(`int32_tensor + 1` stays int32, `float16_tensor * 2.0` stays float16), and a
zero-dimensional tensor only decides the result when it is of a higher category
than every dimensioned operand.

NumPy has no bfloat16; `ml_dtypes` (the one JAX uses) registers it as a NumPy dtype whose
ufuncs compute each element in float32 and round once, as PyTorch's CPU kernels do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ml_dtypes
import numpy as np


@dataclass(frozen=True, eq=False)  # one instance per dtype, so identity is equality (and fast)
class DType:
    name: str
    itemsize: int
    category: int  # 0 bool, 1 integer, 2 floating: promotion never moves down
    np_dtype: np.dtype
    is_floating_point: bool = field(init=False)  # a field, not a property: every op reads it

    def __post_init__(self):
        object.__setattr__(self, "is_floating_point", self.category == 2)  # frozen dataclass

    def __repr__(self) -> str:
        return f"tinygrad_like.{self.name}"

    def __reduce__(self):
        return to_dtype, (self.name,)  # copies and unpickled dtypes stay the singleton


bool_ = DType("bool", 1, 0, np.dtype(np.bool_))
uint8 = DType("uint8", 1, 1, np.dtype(np.uint8))
int8 = DType("int8", 1, 1, np.dtype(np.int8))
int16 = DType("int16", 2, 1, np.dtype(np.int16))
int32 = DType("int32", 4, 1, np.dtype(np.int32))
int64 = DType("int64", 8, 1, np.dtype(np.int64))
float16 = DType("float16", 2, 2, np.dtype(np.float16))
bfloat16 = DType("bfloat16", 2, 2, np.dtype(ml_dtypes.bfloat16))
float32 = DType("float32", 4, 2, np.dtype(np.float32))
float64 = DType("float64", 8, 2, np.dtype(np.float64))


class _ByNumpyDtype(dict):
    """NumPy dtype -> DType. `Tensor.dtype` looks up an array's dtype on every op, which as a
    plain dict lookup costs no Python call; other spellings (np.float32, "float32") and
    unsupported dtypes land in `__missing__`."""

    def __missing__(self, key) -> DType:
        dtype = self.get(np.dtype(key))
        if dtype is None:
            raise TypeError(f"NumPy dtype {key} has no tinygrad_like equivalent")
        return dtype


ALL = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64)
_BY_NUMPY = _ByNumpyDtype({d.np_dtype: d for d in ALL})
_BY_NAME = {d.name: d for d in ALL} | {"float": float32, "double": float64, "half": float16,
                                         "long": int64, "int": int32,
                                         "short": int16}
# what a Python bool, int, float becomes; the float entry is tg.set_default_dtype's
_DEFAULT_FOR_CATEGORY = {0: bool_, 1: int64, 2: float32}


def get_default_dtype() -> DType:
    """The dtype of floating-point tensors made from Python floats (tg.get_default_dtype)."""
    return _DEFAULT_FOR_CATEGORY[2]


default_float = get_default_dtype  # the framework's own name for it


def set_default_dtype(dtype) -> None:
    """tg.set_default_dtype: the dtype of tensors made from Python floats and of tg.zeros,
    tg.rand, ... without a dtype, as torch.set_default_dtype (floating-point types only)."""
    dtype = to_dtype(dtype)
    if dtype not in (float16, bfloat16, float32, float64):
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the "
                        f"default type, got {dtype.name}")
    _DEFAULT_FOR_CATEGORY[2] = dtype


def to_dtype(value) -> DType:
    """Accept a DType, a NumPy dtype, a Python type or a name and return the DType."""
    if isinstance(value, DType):
        return value
    if value is float:
        return default_float()
    if value is int:
        return int64
    if value is bool:
        return bool_
    if isinstance(value, str) and value in _BY_NAME:
        return _BY_NAME[value]
    try:
        return _BY_NUMPY[np.dtype(value)]
    except (TypeError, KeyError):
        raise TypeError(f"unsupported dtype {value!r}; expected one of "
                        f"{', '.join(d.name for d in ALL)}") from None


from_numpy_dtype = _BY_NUMPY.__getitem__  # (np_dtype) -> DType, or TypeError


def scalar_category(value) -> int:
    if isinstance(value, (bool, np.bool_)):
        return 0
    if isinstance(value, (int, np.integer)):
        return 1
    return 2


def _promote_pair(a: DType, b: DType) -> DType:
    if a.category != b.category:
        return a if a.category > b.category else b
    if {a, b} == {float16, bfloat16}:
        return float32  # neither holds the other, as in PyTorch
    if uint8 in (a, b) and a is not b and a.category == 1:
        signed = b if a is uint8 else a  # uint8 with a signed int: the next signed int holds both
        return int16 if signed is int8 else signed
    return a if a.itemsize >= b.itemsize else b


def _promote_all(dtypes) -> DType | None:
    result = None
    for d in dtypes:
        result = d if result is None else _promote_pair(result, d)
    return result


def result_type(*operands) -> DType:
    """The dtype of an elementwise op over Tensors and Python scalars, as in torch.result_type."""
    dimensioned, zero_dim, scalar_categories = [], [], []
    for x in operands:
        dtype = getattr(x, "dtype", None)
        if isinstance(dtype, DType):
            (dimensioned if x.ndim else zero_dim).append(dtype)
        else:
            scalar_categories.append(scalar_category(x))
    result = _promote_all(dimensioned)
    zero_dim_result = _promote_all(zero_dim)
    if zero_dim_result is not None and (result is None or zero_dim_result.category > result.category):
        result = zero_dim_result
    if scalar_categories:
        top = max(scalar_categories)
        if result is None or top > result.category:
            result = _DEFAULT_FOR_CATEGORY[top]
    return result
