"""What the globals of a PyTorch checkpoint's pickle do here: tinygrad_like's own versions of
`torch._utils._rebuild_tensor_v2` and its kin, which the restricted unpickler hands out in
place of torch's. Each checks its arguments, since a forged file chooses them: a tensor view
that would reach past its storage is refused rather than read out of bounds.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping

import numpy as np

from tinygrad_like.backend import Device, get_backend
from tinygrad_like.dtypes import DType
from tinygrad_like.nn.module import Parameter
from tinygrad_like.tensor import Tensor


class RefusedError(pickle.UnpicklingError):
    """A global or opcode that torch.load(weights_only=True) would refuse too."""


class UnsupportedContentError(NotImplementedError):
    """Content PyTorch's weights_only loader admits but tinygrad_like cannot represent."""


class UnsupportedDtypeError(TypeError):
    """A tensor or dtype value of a dtype tinygrad_like has no type for."""


class CorruptContentError(ValueError):
    """Arguments no torch.save would write: a damaged or forged checkpoint."""


class StorageType:
    """Stands for `torch.FloatStorage` and the other storage classes a persistent id names."""

    __slots__ = ("name", "dtype_name")

    def __init__(self, name: str, dtype_name: str):
        self.name, self.dtype_name = name, dtype_name

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class TensorType:
    """Stands for `torch.Tensor` or `torch.nn.Parameter` as `_rebuild_from_type_v2`'s type."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


TENSOR_TYPE, PARAMETER_TYPE = TensorType("torch.Tensor"), TensorType("torch.nn.Parameter")


class Storage:
    """One storage of the checkpoint: its elements as a 1-D NumPy array, and the device its
    tensors go to. Tensors on the CPU are views of `array`, so tensors that shared a storage
    when saved share memory when loaded, as in PyTorch."""

    __slots__ = ("key", "array", "device")

    def __init__(self, key: str, array: np.ndarray, device: str):
        self.key, self.array, self.device = key, array, device


def rebuild_tensor(storage, storage_offset, size, stride) -> Tensor:
    return _tensor(storage, storage_offset, size, stride, False, "_rebuild_tensor")


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                      metadata=None) -> Tensor:
    _check_empty(backward_hooks, "backward hooks", "_rebuild_tensor_v2")
    _check_empty(metadata, "tensor metadata", "_rebuild_tensor_v2")
    return _tensor(storage, storage_offset, size, stride, requires_grad, "_rebuild_tensor_v2")


def rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                      dtype, metadata=None) -> Tensor:
    """torch's form for a byte (untyped) storage read as `dtype`."""
    _check_empty(backward_hooks, "backward hooks", "_rebuild_tensor_v3")
    _check_empty(metadata, "tensor metadata", "_rebuild_tensor_v3")
    if not isinstance(storage, Storage) or not isinstance(dtype, DType):
        raise CorruptContentError("_rebuild_tensor_v3: expected a storage and a dtype, got "
                                  f"{type(storage).__name__} and {type(dtype).__name__}")
    raw = storage.array
    if raw.dtype != np.uint8 or raw.size % dtype.itemsize:
        raise CorruptContentError(f"_rebuild_tensor_v3: storage {storage.key} of {raw.size} "
                                  f"{raw.dtype} elements cannot be read as {dtype.name}")
    typed = Storage(storage.key, raw.view(dtype.np_dtype), storage.device)
    return _tensor(typed, storage_offset, size, stride, requires_grad, "_rebuild_tensor_v3")


def rebuild_parameter(data, requires_grad, backward_hooks) -> Parameter:
    _check_empty(backward_hooks, "backward hooks", "_rebuild_parameter")
    if not isinstance(data, Tensor) or not isinstance(requires_grad, bool):
        raise CorruptContentError("_rebuild_parameter: expected a tensor and a bool, got "
                                  f"{type(data).__name__} and {type(requires_grad).__name__}")
    return Parameter(data, requires_grad=requires_grad)


def rebuild_parameter_with_state(data, requires_grad, backward_hooks, state) -> Parameter:
    _check_empty(state, "Python attributes", "_rebuild_parameter_with_state")
    return rebuild_parameter(data, requires_grad, backward_hooks)


def rebuild_from_type_v2(func, new_type, args, state):
    """torch's wrapper for tensors that are subclasses or carry Python attributes: only the
    plain Tensor and Parameter without attributes have an equivalent here."""
    if func not in _TENSOR_REBUILDERS or not isinstance(args, tuple):
        raise CorruptContentError("_rebuild_from_type_v2: expected a tensor rebuild function "
                                  f"and its arguments, got {func!r}")
    if not isinstance(new_type, TensorType):
        raise UnsupportedContentError(f"_rebuild_from_type_v2: tensors of type {new_type!r} "
                                      "are not supported; only torch.Tensor and Parameter")
    _check_empty(state, "Python attributes", "_rebuild_from_type_v2")
    tensor = func(*args)
    if new_type is PARAMETER_TYPE and not isinstance(tensor, Parameter):
        return Parameter(tensor, requires_grad=tensor.requires_grad)
    return tensor


_TENSOR_REBUILDERS = (rebuild_tensor, rebuild_tensor_v2, rebuild_tensor_v3, rebuild_parameter,
                      rebuild_parameter_with_state)


def size(dims=()) -> tuple:
    """torch.Size(dims): a tuple of ints here, as Tensor.shape is."""
    dims = tuple(dims)
    if not all(type(d) is int and d >= 0 for d in dims):
        raise CorruptContentError(f"torch.Size: expected non-negative ints, got {dims!r}")
    return dims


def device(type, index=None) -> Device:  # noqa: A002  (torch.device's argument names)
    try:
        return Device(type, index)
    except (TypeError, RuntimeError) as error:
        raise UnsupportedContentError(f"torch.device({type!r}, {index!r}) has no tinygrad_like "
                                      f"equivalent: {error}") from None


def encode(text, encoding="utf-8", errors="strict") -> bytes:
    """`_codecs.encode`, which protocol-2 pickles use to spell bytes; only text codecs."""
    if not isinstance(text, str) or str(encoding).lower() not in _TEXT_CODECS:
        raise CorruptContentError(f"_codecs.encode: only str to latin-1/utf-8 bytes is "
                                  f"admitted, got {type(text).__name__} with {encoding!r}")
    return text.encode(encoding, errors)


_TEXT_CODECS = {"latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"}


def _tensor(storage, offset, shape, stride, requires_grad, where: str) -> Tensor:
    """A view of `storage` (moved to its device), after checking that it stays inside."""
    if not isinstance(storage, Storage):
        raise CorruptContentError(f"{where}: expected a storage, got {type(storage).__name__}")
    if not (_is_index(offset) and isinstance(shape, tuple) and isinstance(stride, tuple)
            and len(shape) == len(stride) and all(map(_is_index, shape + stride))
            and isinstance(requires_grad, bool)):
        raise CorruptContentError(f"{where}: malformed tensor layout: offset {offset!r}, size "
                                  f"{shape!r}, stride {stride!r}")
    array = storage.array
    last = offset + sum((n - 1) * s for n, s in zip(shape, stride))
    if offset > array.size or (0 not in shape and last >= array.size):
        raise CorruptContentError(f"{where}: a tensor of size {shape} and stride {stride} at "
                                  f"offset {offset} reaches past the end of storage "
                                  f"{storage.key} ({array.size} elements)")
    # a view whose .base chain leads to the storage, so that saving it again finds the storage
    view = np.ndarray(shape, array.dtype, buffer=array.view(np.uint8),
                      offset=offset * array.itemsize,
                      strides=tuple(s * array.itemsize for s in stride))
    backend = get_backend(storage.device)
    tensor = Tensor._wrap(backend.asarray(view), backend)
    if requires_grad:
        if not tensor.dtype.is_floating_point:
            raise CorruptContentError(f"{where}: a {tensor.dtype.name} tensor cannot require "
                                      "grad")
        tensor.requires_grad_()
    return tensor


def _is_index(value) -> bool:
    return type(value) is int and value >= 0


def _check_empty(value, what: str, where: str) -> None:
    """torch passes empty hooks, metadata and state for plain tensors; anything else is an
    object this package cannot carry over."""
    if isinstance(value, tuple):  # (dict state, slot state), as object.__reduce_ex__ gives
        for part in value:
            _check_empty(part, what, where)
        return
    if value is None or (isinstance(value, Mapping) and not value):
        return
    names = sorted(map(str, value)) if isinstance(value, Mapping) else [repr(value)]
    raise UnsupportedContentError(f"{where}: tensors with {what} ({', '.join(names)}) are not "
                                  "supported")
