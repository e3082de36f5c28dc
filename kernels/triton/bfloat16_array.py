"""bfloat16 on "cuda": 16-bit CuPy storage with float32 arithmetic.

CuPy has no bfloat16 dtype, so a bfloat16 array on "cuda" is a `Bfloat16Array`: its bits in a
uint16 CuPy array (`bits`), its dtype bfloat16. The Triton kernels launch on it with '*bf16'
pointers; everything else computes the way PyTorch's CUDA kernels do:

- widening is exact: bfloat16 is float32's top half, so float32 = bits << 16;
- each floating result is computed in float32 and rounded once to nearest-even back to
  bfloat16 (NaN stays NaN, as sign | 0x7FC0, which is what ml_dtypes gives on "cpu");
- a Python float operand is first rounded to bfloat16 (NumPy's "weak" scalar rule, which
  ml_dtypes follows on "cpu"), except where the "cpu" kernel table keeps it float32 (the
  `mul` and `div` entries: `Bfloat16Arrays.opmath`);
- comparisons and other non-floating results are returned as they are (no rounding);
- structural operations (indexing, reshape, transpose, broadcast, concatenate, copy,
  setitem) act on the bits, so views stay views of the same memory.

`Bfloat16Array` does this for operators and array methods (an unknown method is called on the
widened array and its float32 results rounded); `Bfloat16Arrays` is the "cuda" backend's `xp`:
CuPy with every function wrapped by the same rule, the wrapped function cached as an attribute
so a call costs one attribute lookup, plus `astype(array, dtype)`, the cast that reaches
bfloat16 (NumPy 2 has `np.astype` with the same signature, so ops call `xp.astype` on every
device). Only array methods and operators are used on the bits, so the same code runs on CuPy
and on the launch-marshalling test device's stand-in.
"""

from __future__ import annotations

import types

import ml_dtypes
import numpy as np

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
FLOAT32 = np.dtype(np.float32)

# functions that only move or select elements: run on the bits, the result stays bfloat16
STRUCTURAL = frozenset((
    "reshape", "transpose", "swapaxes", "moveaxis", "broadcast_to", "broadcast_arrays",
    "ascontiguousarray", "concatenate", "stack", "hstack", "vstack", "expand_dims", "squeeze",
    "flip", "roll", "take", "take_along_axis", "copy", "tile", "repeat", "split",
    "array_split", "ravel", "tril", "triu", "diagonal", "atleast_1d", "atleast_2d",
    "atleast_3d", "rot90", "shares_memory", "may_share_memory"))
# functions about dtypes: NumPy's, with a bfloat16 array given as its dtype
DTYPE_FUNCTIONS = frozenset(("result_type", "promote_types", "can_cast", "issubdtype"))


def widen(bits):
    """float32 from bfloat16 bits: exact, as bfloat16 is float32's top half. The memory is a
    float32 allocation (a uint32 one viewed as float32 would be too), which is what the
    launch-marshalling device checks a '*fp32' kernel argument against."""
    wide = bits.astype(np.float32)  # allocates; its values are replaced below
    as_int = wide.view(np.uint32)
    as_int[...] = bits.view(np.uint16)
    as_int <<= 16
    return wide


def round_to_bfloat16(wide) -> "Bfloat16Array":
    """A float32 array rounded to nearest-even bfloat16, NaN kept as sign | 0x7FC0."""
    u = wide.astype(np.float32, copy=False).view(np.uint32)
    rounded = (u + (((u >> 16) & 1) + 0x7FFF)) >> 16  # wraps only for NaN, replaced below
    nan_bits = ((u >> 16) & 0x8000) | 0x7FC0
    # rounded + is_nan * (nan_bits - rounded), modulo 2**32: a select using operators only
    is_nan = (wide != wide).astype(np.uint32)
    bits = (rounded + is_nan * (nan_bits - rounded)).astype(np.uint16)
    return Bfloat16Array(bits[...])  # [...]: a NumPy scalar (a stand-in's reduction) as 0-d


def _float32_rounded_to_odd(wide):
    """float64 to float32 rounded to odd (truncated, the last bit set if inexact): rounding
    that to bfloat16 gives float64's own nearest-even bfloat16, with no double rounding."""
    with np.errstate(over="ignore"):  # NumPy (the test stand-in) warns of what becomes inf
        narrow = wide.astype(np.float32)
    back = narrow.astype(np.float64)
    inexact = back != wide
    bits = narrow.view(np.uint32)
    bits = bits - ((abs(back) > abs(wide)) & inexact).astype(np.uint32)  # towards zero
    return (bits | inexact.astype(np.uint32)).view(np.float32)


def is_bfloat16_dtype(dtype) -> bool:
    return isinstance(dtype, (np.dtype, type)) and np.dtype(dtype) == BFLOAT16


def _scalar(value):
    """A Python float as the bfloat16 value NumPy's weak-scalar rule would make it."""
    return float(ml_dtypes.bfloat16(value)) if type(value) is float else value


def _rounded(result):
    """float32 arrays in `result` (tuples and lists too) rounded to bfloat16."""
    if getattr(result, "dtype", None) == FLOAT32 and getattr(result, "ndim", None) is not None:
        return round_to_bfloat16(result)
    if isinstance(result, (tuple, list)):
        return type(result)(_rounded(r) for r in result)
    return result


class _Scan:
    """What a call's arguments hold: a bfloat16 array or dtype, and other floating arrays."""

    def __init__(self):
        self.bfloat16 = self.other_floating = False

    def visit(self, value) -> None:
        if type(value) is Bfloat16Array:
            self.bfloat16 = True
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.visit(item)
        elif getattr(getattr(value, "dtype", None), "kind", "") in ("f", "c"):
            self.other_floating = True


def _widened(value, scalars: bool):
    if type(value) is Bfloat16Array:
        return widen(value.bits)
    if isinstance(value, (list, tuple)):
        return type(value)(_widened(item, scalars) for item in value)
    return _scalar(value) if scalars else value


def _bits(value):
    if type(value) is Bfloat16Array:
        return value.bits
    if isinstance(value, (list, tuple)):
        return type(value)(_bits(item) for item in value)
    return value


def _tagged(result):
    if getattr(result, "dtype", None) == np.uint16:
        return Bfloat16Array(result)
    if isinstance(result, (tuple, list)):
        return type(result)(_tagged(r) for r in result)
    return result


def call_through_float32(function, args, kwargs, scalars_to_bfloat16: bool = True,
                         method: bool = False):
    """`function(*args, **kwargs)` with bfloat16 arrays widened to float32; float32 results are
    rounded back when every floating array argument (and for a `method`, the array it is
    bound to) was bfloat16, or dtype=bfloat16 was asked for. `out=` a Bfloat16Array receives
    the rounded result."""
    scan = _Scan()
    scan.bfloat16 = method
    scan.visit(args)
    asked = kwargs.get("dtype")
    force = asked is not None and is_bfloat16_dtype(asked)
    if not force:
        for i, arg in enumerate(args):
            if isinstance(arg, (np.dtype, type)) and is_bfloat16_dtype(arg):
                args = args[:i] + (FLOAT32,) + args[i + 1:]  # a positional dtype
                force = True
    out = kwargs.get("out")
    if not (scan.bfloat16 or force or type(out) is Bfloat16Array):
        return function(*args, **kwargs)
    kwargs = {k: _widened(v, scalars_to_bfloat16) for k, v in kwargs.items() if k != "out"}
    if force and asked is not None:
        kwargs["dtype"] = FLOAT32
    if out is not None and type(out) is not Bfloat16Array:
        kwargs["out"] = out
    result = function(*_widened(args, scalars_to_bfloat16), **kwargs)
    if force or (scan.bfloat16 and not scan.other_floating and asked is None):
        result = _rounded(result)
    if type(out) is Bfloat16Array:
        out[...] = result
        return out
    return result


class Bfloat16Array:
    """A bfloat16 array on "cuda": its bits in a 16-bit CuPy array (`bits`), its dtype
    bfloat16; arithmetic in float32, rounded once (see the module docstring)."""

    dtype = BFLOAT16
    __array_priority__ = 1000  # CuPy's operators defer to ours

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """np.maximum(x, 0) and the like: NumPy's ufunc on the widened arrays, which CuPy's
        own __array_ufunc__ then serves."""
        return call_through_float32(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, function, kinds, args, kwargs):
        """np.where(mask, x, 0) and the like, by the rule of `Bfloat16Arrays`."""
        if function.__name__ in STRUCTURAL:
            return _structural(function)(*args, **kwargs)
        return call_through_float32(function, args, kwargs)

    def __init__(self, bits):
        if bits.dtype.itemsize != 2:
            raise TypeError(f"bfloat16 storage must be 16-bit, got {bits.dtype}")
        self.bits = bits

    shape = property(lambda self: self.bits.shape)
    strides = property(lambda self: self.bits.strides)
    ndim = property(lambda self: self.bits.ndim)
    size = property(lambda self: self.bits.size)
    nbytes = property(lambda self: self.bits.nbytes)
    itemsize = property(lambda self: 2)
    data = property(lambda self: self.bits.data)
    device = property(lambda self: self.bits.device)
    flags = property(lambda self: self.bits.flags)
    base = property(lambda self: self.bits.base)
    T = property(lambda self: Bfloat16Array(self.bits.T))
    mT = property(lambda self: Bfloat16Array(self.bits.swapaxes(-1, -2)))

    # ---- structural: on the bits ----------------------------------------------------------
    def __getitem__(self, index):
        return _tagged(self.bits[_bits(index)])

    def __setitem__(self, index, value) -> None:
        if type(value) is not Bfloat16Array:
            if isinstance(value, (bool, int, float)):
                value = float(ml_dtypes.bfloat16(value))
                value = np.array(value, BFLOAT16).view(np.uint16)
                self.bits[_bits(index)] = value
                return
            value = round_to_bfloat16(value.astype(np.float32))
        self.bits[_bits(index)] = value.bits

    def __len__(self) -> int:
        return len(self.bits)

    def take(self, indices, *args, **kwargs):
        return Bfloat16Array(self.bits.take(_bits(indices), *args, **kwargs))

    def view(self, dtype=None):
        if dtype is None or is_bfloat16_dtype(dtype):
            return Bfloat16Array(self.bits.view())
        return self.bits.view(dtype)

    def fill(self, value) -> None:
        self[...] = value

    # ---- conversions --------------------------------------------------------------------
    def astype(self, dtype, copy: bool = True):
        """bfloat16 is float32's top half: widen the bits, then convert from float32."""
        if is_bfloat16_dtype(dtype):
            return self.copy() if copy else self
        return widen(self.bits).astype(dtype, copy=False)

    def get(self) -> np.ndarray:
        """The array on the host, as NumPy bfloat16 (ml_dtypes)."""
        return np.asarray(self.bits.get()).view(np.uint16).view(BFLOAT16)

    def item(self, *args) -> float:
        return float(widen(self.bits).item(*args))

    def tolist(self):
        return widen(self.bits).tolist()

    def __float__(self) -> float:
        return self.item()

    def __bool__(self) -> bool:
        return bool(widen(self.bits))

    def __array__(self, *args, **kwargs):
        raise TypeError("a bfloat16 array on 'cuda' is 16-bit storage for the Triton kernels; "
                        "convert it with .astype(float32) or move it to the CPU first")

    def __repr__(self) -> str:
        return f"Bfloat16Array(shape={self.shape})"

    # ---- anything else: on the widened array, float32 results rounded ----------------------
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        attribute = getattr(widen(self.bits), name)
        if not callable(attribute):
            return _rounded(attribute)

        def method(*args, **kwargs):
            return call_through_float32(attribute, args, kwargs, method=True)

        return method


def _binary(operator):
    def run(self, other):
        return call_through_float32(operator, (self, other), {})

    def run_reflected(self, other):
        return call_through_float32(operator, (other, self), {})

    def run_inplace(self, other):
        self[...] = call_through_float32(operator, (self, other), {})
        return self

    return run, run_reflected, run_inplace


for _name, _op in (("add", lambda a, b: a + b), ("sub", lambda a, b: a - b),
                   ("mul", lambda a, b: a * b), ("truediv", lambda a, b: a / b),
                   ("floordiv", lambda a, b: a // b), ("mod", lambda a, b: a % b),
                   ("pow", lambda a, b: a**b), ("matmul", lambda a, b: a @ b)):
    _forward, _reflected, _inplace = _binary(_op)
    setattr(Bfloat16Array, f"__{_name}__", _forward)
    setattr(Bfloat16Array, f"__r{_name}__", _reflected)
    setattr(Bfloat16Array, f"__i{_name}__", _inplace)
for _name, _op in (("eq", lambda a, b: a == b), ("ne", lambda a, b: a != b),
                   ("lt", lambda a, b: a < b), ("le", lambda a, b: a <= b),
                   ("gt", lambda a, b: a > b), ("ge", lambda a, b: a >= b)):
    setattr(Bfloat16Array, f"__{_name}__", _binary(_op)[0])
for _name, _op in (("neg", lambda a: -a), ("pos", lambda a: +a), ("abs", abs)):
    setattr(Bfloat16Array, f"__{_name}__",
            lambda self, _op=_op: call_through_float32(_op, (self,), {}))
Bfloat16Array.__hash__ = None  # __eq__ is elementwise
for _name in ("reshape", "transpose", "swapaxes", "copy", "ravel", "flatten", "squeeze",
              "repeat"):  # structural methods: the same method on the bits
    setattr(Bfloat16Array, _name, lambda self, *args, _name=_name, **kwargs: Bfloat16Array(
        getattr(self.bits, _name)(*args, **kwargs)))


class _Wrapped:
    """A CuPy function (a ufunc with its methods: .at, .reduce, ...) under the bfloat16 rule."""

    def __init__(self, function, scalars_to_bfloat16: bool = True):
        self.function = function
        self.scalars = scalars_to_bfloat16
        self.__name__ = getattr(function, "__name__", "function")

    def __call__(self, *args, **kwargs):
        return call_through_float32(self.function, args, kwargs, self.scalars)

    def at(self, target, *args):
        """In place: on the widened array, the result rounded back into the bits."""
        if type(target) is not Bfloat16Array:
            return self.function.at(target, *_widened(args, self.scalars))
        wide = widen(target.bits)
        self.function.at(wide, *_widened(args, self.scalars))
        target[...] = round_to_bfloat16(wide)
        return None

    def __getattr__(self, name: str):
        return _Wrapped(getattr(self.function, name), self.scalars)


def _structural(function):
    def run(*args, **kwargs):
        scan = _Scan()
        scan.visit(args)
        if not scan.bfloat16:
            return function(*args, **kwargs)
        if scan.other_floating:  # mixed dtypes: compute as any other function would
            return call_through_float32(function, args, kwargs)
        return _tagged(function(*_bits(args), **{k: _bits(v) for k, v in kwargs.items()}))

    run.__name__ = getattr(function, "__name__", "function")
    return run


def _dtype_function(function):
    def run(*args, **kwargs):
        return function(*(a.dtype if type(a) is Bfloat16Array else a for a in args), **kwargs)

    return run


class Bfloat16Arrays:
    """The "cuda" backend's `xp`: CuPy, with each function taught bfloat16 (module docstring).

    A name is wrapped on first use and cached as an attribute of this object; types,
    constants and submodules (cupy.random, cupy.cuda) are CuPy's own."""

    def __init__(self, cupy):
        self._cupy = cupy
        self.__name__ = cupy.__name__  # Backend.generator_name reads it

    def __getattr__(self, name: str):
        value = getattr(self._cupy, name)
        if isinstance(value, (type, types.ModuleType)) or not callable(value):
            wrapped = value
        elif name in DTYPE_FUNCTIONS:
            wrapped = _dtype_function(getattr(np, name))
        elif name in STRUCTURAL:
            wrapped = _structural(value)
        else:
            wrapped = _Wrapped(value)
        setattr(self, name, wrapped)
        return wrapped

    def opmath(self, name: str) -> _Wrapped:
        """CuPy's `name` with Python float operands kept float32, as the "cpu" kernel table's
        mul and div take them (backend/cpu_bfloat16.py)."""
        return _Wrapped(getattr(self._cupy, name), scalars_to_bfloat16=False)

    @staticmethod
    def wrap(function) -> _Wrapped:
        """Another library's CuPy function (cupyx.scipy.special.erf) under the same rule."""
        return _Wrapped(function)

    def astype(self, array, dtype, copy: bool = True):
        """`array.astype(dtype)`, reaching bfloat16 too, rounded once as ml_dtypes rounds."""
        if type(array) is not Bfloat16Array and is_bfloat16_dtype(dtype):
            if array.dtype == np.float64:
                return round_to_bfloat16(_float32_rounded_to_odd(array))
            return round_to_bfloat16(array.astype(np.float32, copy=False))
        return array.astype(dtype, copy=copy)

    def empty(self, shape, dtype=float, **kwargs):
        if is_bfloat16_dtype(dtype):
            return Bfloat16Array(self._cupy.empty(shape, dtype=np.uint16, **kwargs))
        return self._cupy.empty(shape, dtype=dtype, **kwargs)

    def asarray(self, data, dtype=None, **kwargs):
        if type(data) is Bfloat16Array and (dtype is None or is_bfloat16_dtype(dtype)):
            return data
        return call_through_float32(self._cupy.asarray, (data,),
                                    {"dtype": dtype, **kwargs} if dtype is not None else kwargs)
