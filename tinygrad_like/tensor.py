"""Tensor: an array on a device, its gradient, and the graph node that made it.

`data` is the raw backend array (a NumPy array on "cpu", a CuPy array on
"cuda"), as in micrograd and early tinygrad. The differentiable ops live in
`tinygrad_like/ops/` and are attached here as methods and operators from the
table in `ops/__init__.py`.
"""

from __future__ import annotations

import numpy as np

from tinygrad_like import autograd, autograd_hooks, dtypes
from tinygrad_like.backend import Backend, get_backend, is_device
from tinygrad_like.dtypes import DType
from tinygrad_like.size import Size


def _is_size(args: tuple) -> bool:
    """Tensor(2, 3), Tensor(2) and Tensor() read their arguments as a size, as PyTorch does."""
    return all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in args) \
        and (len(args) != 1 or isinstance(args[0], int))


def _infer_dtype(data) -> DType:
    """PyTorch's inference for Python data: floats give float32, ints int64, bools bool."""
    array = np.asarray(data)
    if array.dtype == np.float64 and not isinstance(data, np.ndarray):
        return dtypes.default_float()
    if array.dtype.kind in "iu" and not isinstance(data, np.ndarray):
        return dtypes.int64
    return dtypes.from_numpy_dtype(array.dtype)


class Tensor:
    __slots__ = ("_array", "backend", "_requires_grad", "grad", "_ctx", "_version",
                 "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, *args, requires_grad: bool = False, dtype=None, device=None):
        """Tensor(data) holds a copy of `data`; Tensor(2, 3) (only ints) is PyTorch's legacy
        constructor: a zero-filled float tensor of that size; Tensor() is empty."""
        if len(args) == 1 and not _is_size(args):
            data = args[0]
        elif _is_size(args):
            dtype = dtypes.default_float() if dtype is None else dtype
            size = tuple(int(n) for n in args) if args else (0,)
            data = np.zeros(size, dtypes.to_dtype(dtype).np_dtype)
        else:
            raise TypeError(f"Tensor: expected data or sizes (ints), got {len(args)} positional "
                            "arguments; pass requires_grad, dtype and device by keyword")
        self._init(data, requires_grad, dtype, device)
        if autograd.is_inference_mode_enabled():
            autograd.mark_inference(self)

    @classmethod
    def _from_data(cls, data, requires_grad: bool = False, dtype=None, device=None) -> "Tensor":
        """A tensor holding a copy of `data`, an int included (tg.tensor(3) is 0-d)."""
        t = cls.__new__(cls)
        t._init(data, requires_grad, dtype, device)
        if autograd.is_inference_mode_enabled():
            autograd.mark_inference(t)
        return t

    def _init(self, data, requires_grad: bool, dtype, device) -> None:
        if isinstance(data, Tensor):
            device = data.device if device is None else device
            data = data.backend.to_numpy(data._array)
        backend = get_backend("cpu" if device is None else device)
        self._array = _backend_array(data, dtype, backend)
        self.backend = backend
        self.grad = None
        self._ctx = None
        self._version = [0, 0]  # [in-place writes, stamp of the last one] (autograd.py)
        self._retains_grad = False
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, array, backend: Backend) -> "Tensor":
        """A new leaf around an existing backend array, without copying."""
        t = cls.__new__(cls)
        t._array = array
        t.backend = backend
        t._requires_grad = False
        t.grad = None
        t._ctx = None
        t._version = [0, 0]
        t._retains_grad = False
        return t

    # ---- attributes ---------------------------------------------------------------------
    # `_array` is the raw backend array (NumPy or CuPy); `np.asarray(t)` and `t.numpy()`
    # are the public ways to it. `data` is PyTorch's: a tensor on the same memory.
    @property
    def data(self) -> "Tensor":
        """The same memory, cut from the graph and from autograd's in-place checks: writes
        through it (`p.data.add_(...)`) are invisible to autograd, as in PyTorch."""
        return Tensor._wrap(self._array, self.backend)

    @data.setter
    def data(self, value: "Tensor") -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"data: expected a Tensor, got {type(value).__name__}")
        if value.device != self.device:
            raise RuntimeError(f"data: cannot assign a tensor on {value.device} to a tensor on "
                               f"{self.device}")
        if self._requires_grad and not value.dtype.is_floating_point:
            raise RuntimeError(f"data: cannot assign a {value.dtype.name} tensor to a tensor "
                               "that requires grad")
        self._array = value._array

    @property
    def shape(self) -> Size:
        return Size(self._array.shape)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self._array.shape[dim]

    @property
    def ndim(self) -> int:
        return self._array.ndim

    def dim(self) -> int:
        return self._array.ndim

    def numel(self) -> int:
        return int(self._array.size)

    @property
    def dtype(self) -> DType:
        return dtypes.from_numpy_dtype(self._array.dtype)

    @property
    def device(self) -> str:
        return self.backend.name

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and not self.dtype.is_floating_point:
            raise RuntimeError(f"only floating-point tensors can require gradients; this tensor "
                               f"has dtype {self.dtype.name}")
        if not value and self._ctx is not None:
            raise RuntimeError("requires_grad can only be cleared on leaf tensors; use .detach()")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward, as PyTorch does."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: the tensor does not require grad")
        self._retains_grad = True
        if self._ctx is not None:
            self._ctx.retained_output = self

    def register_post_accumulate_grad_hook(self, hook) -> "autograd_hooks.RemovableHandle":
        """Call `hook(self)` after each backward has accumulated this leaf's `.grad`, as
        PyTorch's; returns a handle whose `remove()` unregisters it."""
        if self._ctx is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors get "
                               "accumulated gradients; this tensor was made by "
                               f"{self._ctx.name}")
        if not self._requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: the tensor does not "
                               "require grad")
        return autograd_hooks.register_post_accumulate_grad_hook(self, hook)

    def is_inference(self) -> bool:
        """True for a tensor made under tg.inference_mode (see grad_mode.inference_mode)."""
        return autograd.is_inference_tensor(self)

    def is_contiguous(self) -> bool:
        return bool(self._array.flags.c_contiguous)

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    # ---- conversion ---------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        if self._requires_grad:
            raise RuntimeError("numpy(): can't call numpy() on a tensor that requires grad; "
                               "use tensor.detach().numpy()")
        return self.backend.to_numpy(self._array)

    def __array__(self, dtype=None, copy=None):
        array = self.backend.to_numpy(self._array)
        return array if dtype is None else array.astype(dtype, copy=False)

    def __dlpack__(self, *args, **kwargs):
        return self._array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"item(): only a one-element tensor can be converted to a Python "
                             f"scalar; this one has shape {self.shape}")
        return self.backend.to_numpy(self._array).reshape(()).item()

    def tolist(self):
        return self.backend.to_numpy(self._array).tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def __index__(self) -> int:
        if self.dtype.is_floating_point or self.numel() != 1:
            raise TypeError("only one-element integer tensors can be used as an index")
        return int(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    __hash__ = object.__hash__

    def detach(self) -> "Tensor":
        """The same memory and version counter, cut from the graph."""
        t = Tensor._wrap(self._array, self.backend)
        t._version = self._version
        return t

    def __deepcopy__(self, memo) -> "Tensor":
        """A leaf copy of data and grad on the same device (copy.deepcopy of modules)."""
        if self._ctx is not None:
            raise RuntimeError("deepcopy: only leaf tensors can be deep-copied; use .detach() "
                               "or .clone() for tensors in the autograd graph")
        new = type(self).__new__(type(self))
        new._array, new.backend = self._array.copy(), self.backend
        new._ctx, new._version, new._retains_grad = None, [0, 0], False
        new._requires_grad = self._requires_grad
        new.grad = None if self.grad is None else self.grad.__deepcopy__(memo)
        memo[id(self)] = new
        return new

    def to(self, *args, dtype=None, device=None, **kwargs) -> "Tensor":
        for arg in args:
            if isinstance(arg, Tensor):
                dtype, device = arg.dtype, arg.device
            elif is_device(arg):
                device = arg
            else:
                dtype = arg
        # the device is resolved here, as in __init__; the copy and the cast are ops
        # (ops/conversion.py), attached as `_to_backend` and `_cast` by ops/__init__.py
        out = self if device is None else self._to_backend(get_backend(device))
        return out if dtype is None else out._cast(dtype)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        return self.to("cuda")

    def float(self) -> "Tensor":
        return self.to(dtypes.float32)

    def double(self) -> "Tensor":
        return self.to(dtypes.float64)

    def half(self) -> "Tensor":
        return self.to(dtypes.float16)

    def long(self) -> "Tensor":
        return self.to(dtypes.int64)

    def int(self) -> "Tensor":
        return self.to(dtypes.int32)

    def bool(self) -> "Tensor":
        return self.to(dtypes.bool_)

    def type(self, dtype) -> "Tensor":
        return self.to(dtypes.to_dtype(dtype))

    # ---- in place (only where no gradient can be silently invalidated) --------------------
    def _check_inplace(self, op: str) -> None:
        if autograd.any_inference_tensors and autograd.is_inference_tensor(self) \
                and not autograd.is_inference_mode_enabled():
            raise RuntimeError(f"{op}: in-place update to an inference tensor outside "
                               "inference_mode is not allowed; clone it first")
        if autograd.is_grad_enabled() and self._requires_grad:
            kind = "a leaf tensor" if self._ctx is None else "a tensor in the autograd graph"
            raise RuntimeError(f"{op}: cannot modify {kind} that requires grad in place; "
                               "wrap the update in tg.no_grad() or use an out-of-place op")

    def _bump_version(self) -> None:
        """Mark an in-place write; every one must come through here (see autograd)."""
        self._version[0] += 1
        self._version[1] = autograd.count_inplace_write()

    def _inplace(self, op: str, value) -> "Tensor":
        """Write `value` (a Tensor, array or scalar) into this tensor's memory."""
        self._check_inplace(op)
        if isinstance(value, Tensor):
            if value.device != self.device:
                raise RuntimeError(f"{op}: tensor on {value.device} cannot be written into a "
                                   f"tensor on {self.device}")
            value = value._array
        try:
            self._array[...] = value
        except ValueError as error:
            raise RuntimeError(f"{op}: cannot write a value of shape "
                               f"{getattr(value, 'shape', ())} into a tensor of shape "
                               f"{self.shape}") from error
        self._bump_version()
        return self

    def zero_(self) -> "Tensor":
        return self._inplace("zero_", 0)

    def fill_(self, value) -> "Tensor":
        return self._inplace("fill_", value)

    def copy_(self, source) -> "Tensor":
        return self._inplace("copy_", source)

    def add_(self, other, alpha=1) -> "Tensor":
        return self._inplace("add_", (self + other * alpha) if alpha != 1 else (self + other))

    def sub_(self, other, alpha=1) -> "Tensor":
        return self._inplace("sub_", (self - other * alpha) if alpha != 1 else (self - other))

    def mul_(self, other) -> "Tensor":
        return self._inplace("mul_", self * other)

    def div_(self, other) -> "Tensor":
        return self._inplace("div_", self / other)

    def clamp_(self, min=None, max=None) -> "Tensor":
        return self._inplace("clamp_", self.clamp(min, max))

    # ---- autograd -----------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        if not self._requires_grad:
            raise RuntimeError("backward: the tensor does not require grad and has no grad_fn")
        gradients = None if gradient is None else (gradient,)
        (gradient,) = autograd.initial_gradients((self,), gradients, "backward")
        retain_graph = create_graph if retain_graph is None else retain_graph
        autograd.run_backward((self,), (gradient,), retain_graph, create_graph)

    # ---- printing -----------------------------------------------------------------------
    def __format__(self, spec: str) -> str:
        """f"{loss:.4f}" formats a 0-d tensor's value; other specs need a single value."""
        if self.ndim == 0:
            return format(self.item(), spec)
        if spec:
            raise TypeError("unsupported format string passed to Tensor.__format__")
        return str(self)

    def __repr__(self) -> str:
        array = self.backend.to_numpy(self._array)
        if self.dtype is dtypes.bfloat16:  # NumPy prints ml_dtypes' floats like integers
            array = array.astype(np.float32)
        body = np.array2string(array, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype not in (dtypes.default_float(), dtypes.int64, dtypes.bool_):
            extras.append(f"dtype={self.dtype!r}")
        if self._ctx is not None:
            extras.append(f"grad_fn={self._ctx!r}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"


autograd.register_tensor_class(Tensor)


def _backend_array(data, dtype, backend: Backend):
    """Python or NumPy data as a backend array of `dtype` (inferred as PyTorch does if None)."""
    try:
        dtype = _infer_dtype(data) if dtype is None else dtypes.to_dtype(dtype)
        return backend.asarray(np.array(data, dtype=_storage_dtype(dtype, backend)))
    except (TypeError, ValueError) as error:  # ragged lists, strings, objects, bad dtypes
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(f"tensor: cannot make a tensor from {type(data).__name__} data: "
                   f"{error}") from None


def _storage_dtype(dtype: DType, backend: Backend):
    if dtype.np_dtype is None:
        raise TypeError(f"dtype {dtype.name} is not supported on device {backend.name!r}")
    return dtype.np_dtype
