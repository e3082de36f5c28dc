"""Casts and device moves: `Tensor.to`'s dtype conversion and copy to another device.

Each gradient goes back the way the value came: to the input's dtype, or to its device.
"""

from __future__ import annotations

from tinygrad_like import dtypes
from tinygrad_like.autograd import Function
from tinygrad_like.tensor import Tensor


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.input_dtype = x.dtype
        # xp.astype: the cast that reaches bfloat16 on "cuda" too (np.astype on the CPU)
        return x.backend.xp.astype(x._array, dtype.np_dtype if dtype.np_dtype is not None else
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
        return Tensor._wrap(backend.asarray(x.backend.to_numpy(x._array)), backend)

    @staticmethod
    def backward(ctx, grad):
        return grad.to(ctx.source)



def cast(x: Tensor, dtype) -> Tensor:
    dtype = dtypes.to_dtype(dtype)
    if dtype is x.dtype:
        return x
    if x.requires_grad and not dtype.is_floating_point:
        return Tensor._wrap(x.backend.xp.astype(x._array, dtype.np_dtype), x.backend)
    return Cast.apply(x, dtype)


def to_device(x: Tensor, backend) -> Tensor:
    """`x` on `backend` (a Backend: Tensor.to resolves the device name; ops do not import
    backend/)."""
    if backend is x.backend:
        return x
    return ToDevice.apply(x, backend)


def type_as(x: Tensor, other: Tensor) -> Tensor:
    """x cast to other's dtype (torch.Tensor.type_as)."""
    if not isinstance(other, Tensor):
        raise TypeError(f"type_as: other must be a Tensor, got {type(other).__name__}")
    return x if x.dtype is other.dtype else cast(x, other.dtype)
