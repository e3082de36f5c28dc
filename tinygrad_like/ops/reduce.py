"""Reductions: sum, mean, var, std, max/min (amax/amin), argmax/argmin, logsumexp.

`sum` and `amax`/`amin` are the primitives with their own backward; the others
are compositions of differentiable ops, so their gradients (and second
derivatives) follow from the primitives'.
"""

from __future__ import annotations

import builtins
from collections import namedtuple

from tinygrad_like import dtypes
from tinygrad_like.amp.autocast import autocast_op
from tinygrad_like.autograd import Function
from tinygrad_like.ops.selection import maximum, minimum, where
from tinygrad_like.tensor import Tensor

MaxResult = namedtuple("MaxResult", ["values", "indices"])  # what torch.max(x, dim) returns


def normalize_dims(op: str, shape: tuple, dim) -> tuple:
    """`dim` (None, an int or a sequence, negatives allowed) as sorted non-negative axes."""
    ndim = len(shape)
    bound = builtins.max(ndim, 1)  # a 0-d tensor accepts dim 0 and -1, as in PyTorch
    if dim is None:
        return tuple(range(ndim))
    if not isinstance(dim, (int, tuple, list)):
        raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    axes = []
    for d in dims:
        if not isinstance(d, int):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
        if not -bound <= d < bound:
            raise IndexError(f"{op}: dimension {d} is out of range for a tensor of shape {shape} "
                             f"(expected to be in [{-bound}, {bound - 1}])")
        axes.append(d % ndim if ndim else 0)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: dim {dim!r} repeats a dimension")
    return tuple(sorted(axes)) if ndim else ()


def normalize_dim(op: str, shape: tuple, dim) -> int:
    """One dim (an int, negatives allowed) as a non-negative axis; 0 for a 0-d tensor."""
    if not isinstance(dim, int):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    axes = normalize_dims(op, shape, dim)
    return axes[0] if axes else 0


def _reduction_axes(op: str, shape: tuple, dim) -> tuple:
    """The axes a reduction folds: an empty tuple of dims means all of them, as in PyTorch."""
    return normalize_dims(op, shape, None if dim == () or dim == [] else dim)


def _check_nonempty(op: str, shape: tuple, axes: tuple) -> None:
    """max/min-like reductions have no identity: an empty reduced dimension is an error."""
    if any(shape[axis] == 0 for axis in axes) or (not axes and 0 in shape):
        raise IndexError(f"{op}: cannot reduce over an empty dimension of a tensor of shape "
                         f"{shape} (dims {axes})")


def keepdim_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.input_shape, ctx.axes = x.shape, axes
        # Integer and bool sums accumulate in int64, as in PyTorch
        dtype = None if x.dtype.is_floating_point else dtypes.int64.np_dtype
        return ctx.backend.kernels.sum(x._array, axes, keepdim, dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(keepdim_shape(ctx.input_shape, ctx.axes)).expand(ctx.input_shape)


class _Extreme(Function):
    """amax/amin: the gradient is shared evenly among the elements that tie for the extreme."""

    saves_output = True

    @classmethod
    def forward(cls, ctx, x, axes, keepdim):
        ctx.axes = axes
        ctx.save_for_backward(x)
        return cls.compute(x._array, axes, keepdim)

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        shape = keepdim_shape(x.shape, ctx.axes)
        ties = (x == out.detach().reshape(shape)).to(grad.dtype)
        return grad.reshape(shape) * ties / ties.sum(ctx.axes, keepdim=True)


class Amax(_Extreme):
    compute = staticmethod(lambda x, axes, keepdim: x.max(axis=axes, keepdims=keepdim))


class Amin(_Extreme):
    compute = staticmethod(lambda x, axes, keepdim: x.min(axis=axes, keepdims=keepdim))


class _ArgExtreme(Function):
    @classmethod
    def forward(cls, ctx, x, dim, keepdim):
        if dim is None:
            index = cls.compute(x._array.reshape(-1), 0)
            return index.reshape((1,) * x.ndim) if keepdim else index
        return cls.compute(x._array, dim, keepdims=keepdim).astype(dtypes.int64.np_dtype)


class Argmax(_ArgExtreme):
    compute = staticmethod(lambda x, axis, keepdims=False: x.argmax(axis=axis, keepdims=keepdims))


class Argmin(_ArgExtreme):
    compute = staticmethod(lambda x, axis, keepdims=False: x.argmin(axis=axis, keepdims=keepdims))


# ---- public functions ----------------------------------------------------------------------
@autocast_op("sum")
def sum(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return Sum.apply(x, _reduction_axes("sum", x.shape, dim), keepdim)


def _check_floating(op: str, x: Tensor) -> None:
    if not x.dtype.is_floating_point:
        raise TypeError(f"{op}: input dtype must be floating point, got {x.dtype.name}; "
                        "cast with .float() first")


def mean(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    _check_floating("mean", x)
    axes = _reduction_axes("mean", x.shape, dim)
    count = 1
    for axis in axes:
        count *= x.shape[axis]
    return Sum.apply(x, axes, keepdim) / count


def _variance(op: str, x: Tensor, dim, unbiased: bool | None, keepdim: bool,
              correction: int | None) -> Tensor:
    """Variance with Bessel's correction by default (correction=1), as torch.var."""
    _check_floating(op, x)
    if unbiased is not None and correction is not None:
        raise ValueError(f"{op}: pass either unbiased or correction, not both")
    correction = (1 if unbiased is None or unbiased else 0) if correction is None else correction
    axes = _reduction_axes(op, x.shape, dim)
    count = 1
    for axis in axes:
        count *= x.shape[axis]
    centered = x - mean(x, axes, keepdim=True)
    return sum(centered * centered, axes, keepdim) / builtins.max(count - correction, 0)


def var(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: int | None = None) -> Tensor:
    return _variance("var", x, dim, unbiased, keepdim, correction)


def std(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: int | None = None) -> Tensor:
    return _variance("std", x, dim, unbiased, keepdim, correction).sqrt()


def _extreme(op: str, function, x: Tensor, dim, keepdim: bool) -> Tensor:
    axes = _reduction_axes(op, x.shape, dim)
    _check_nonempty(op, x.shape, axes)
    return function.apply(x, axes, keepdim)


def amax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return _extreme("amax", Amax, x, dim, keepdim)


def amin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return _extreme("amin", Amin, x, dim, keepdim)


def _arg_extreme(op: str, function, x: Tensor, dim, keepdim: bool) -> Tensor:
    """argmax/argmin over one dim, or over the flattened tensor for dim=None (and 0-d)."""
    axis = None if dim is None else normalize_dim(op, x.shape, dim)
    if x.ndim == 0:
        axis = None  # dims 0 and -1 of a 0-d tensor name its one element
    _check_nonempty(op, x.shape, tuple(range(x.ndim)) if axis is None else (axis,))
    return function.apply(x, axis, keepdim)


def argmax(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _arg_extreme("argmax", Argmax, x, dim, keepdim)


def argmin(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _arg_extreme("argmin", Argmin, x, dim, keepdim)


def _max_or_min(name, extreme, arg_extreme, elementwise):
    def op(x: Tensor, dim=None, keepdim: bool = False):
        """No dim: the extreme value. An int dim: (values, indices). A tensor: elementwise."""
        if isinstance(dim, Tensor):
            return elementwise(x, dim)
        if dim is None:
            return _extreme(name, extreme, x, None, False)
        indices = _arg_extreme(name, arg_extreme, x, dim, keepdim=True)
        values = x.gather(dim, indices)
        if not keepdim:
            values, indices = values.squeeze(dim), indices.squeeze(dim)
        return MaxResult(values, indices)

    op.__name__ = name
    return op


max = _max_or_min("max", Amax, Argmax, maximum)
min = _max_or_min("min", Amin, Argmin, minimum)


def logsumexp(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) computed stably by shifting by the (constant) maximum."""
    if not x.dtype.is_floating_point:
        x = x.float()
    axes = _reduction_axes("logsumexp", x.shape, dim)
    if any(x.shape[axis] == 0 for axis in axes):
        return x.sum(axes, keepdim) + float("-inf")  # log of an empty sum
    shift = amax(x.detach(), axes, keepdim=True)
    shift = where(shift.abs() == float("inf"), 0.0, shift)
    out = (x - shift).exp().sum(axes, keepdim=True).log() + shift
    return out if keepdim else out.squeeze(axes)


class Cumsum(Function):
    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        xp = x.backend.xp
        # float16 and bfloat16 accumulate in float32, each output rounded once (PyTorch's)
        wide = xp.result_type(x._array.dtype, xp.float32) if x.dtype.is_floating_point else None
        return xp.astype(xp.cumsum(x._array, axis=axis, dtype=wide), x._array.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        # each input adds to every later output: a reversed cumulative sum of the gradient
        return grad.flip(ctx.axis).cumsum(ctx.axis).flip(ctx.axis)


class Cumprod(Function):
    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        ctx.save_for_backward(x)
        return x.backend.xp.cumprod(x._array, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        # d out_j / d x_i = out_j / x_i for j >= i; an input of exactly 0 is handled by
        # recomputing the products without it (see _cumprod_grad_at_zeros)
        (x,) = ctx.saved_tensors
        out = x.cumprod(ctx.axis)
        if not bool((x._array == 0).any()):
            return (grad * out).flip(ctx.axis).cumsum(ctx.axis).flip(ctx.axis) / x
        return _cumprod_grad_at_zeros(x, grad, ctx.axis)


def _cumprod_grad_at_zeros(x: Tensor, grad: Tensor, axis: int) -> Tensor:
    """The exact gradient when some input is 0: for each i, the sum over j >= i of grad_j times
    the product of x_k for k <= j, k != i (quadratic in the length of `axis`, rarely taken)."""
    n = x.shape[axis]
    xp = x.backend.xp
    shape = [1] * x.ndim
    shape[axis] = n
    total = None
    for i in range(n):
        mask = Tensor._wrap((xp.arange(n) == i).reshape(shape), x.backend)
        later = Tensor._wrap((xp.arange(n) >= i).reshape(shape), x.backend).to(grad.dtype)
        without_i = where(mask, 1.0, x).cumprod(axis)
        part = (grad * without_i * later).sum(axis, keepdim=True) * mask.to(grad.dtype)
        total = part if total is None else total + part
    return total


def _cumulative(op: str, function, x: Tensor, dim, dtype=None) -> Tensor:
    if dim is None:
        raise TypeError(f"{op}: dim is required (input of shape {x.shape})")
    axis = normalize_dim(op, x.shape, dim)
    if dtype is not None:
        x = x.to(dtype)
    elif x.dtype.is_floating_point is False:
        x = x.long()  # integers and bools accumulate in int64, as in PyTorch
    if x.ndim == 0:
        return function.apply(x.reshape(1), 0).reshape(())
    return function.apply(x, axis)


@autocast_op("cumsum")
def cumsum(x: Tensor, dim=None, *, dtype=None) -> Tensor:
    return _cumulative("cumsum", Cumsum, x, dim, dtype)


@autocast_op("cumprod")
def cumprod(x: Tensor, dim=None, *, dtype=None) -> Tensor:
    return _cumulative("cumprod", Cumprod, x, dim, dtype)


def _logical_reduction(op: str, name: str):
    def reduction(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
        axes = normalize_dims(op, x.shape, dim)
        data = getattr(x.backend.xp, name)(x._array, axis=axes, keepdims=bool(keepdim))
        return Tensor._wrap(x.backend.xp.asarray(data), x.backend)

    reduction.__name__ = op
    return reduction


all_ = _logical_reduction("all", "all")
any_ = _logical_reduction("any", "any")


@autocast_op("norm")
def norm(x: Tensor, p="fro", dim=None, keepdim: bool = False) -> Tensor:
    """The vector p-norm over `dim` (all elements without it), as torch.Tensor.norm: p a number,
    inf, -inf, or "fro" (the 2-norm of the entries)."""
    if p == "fro" or p is None:
        p = 2
    if isinstance(p, str) or not isinstance(p, (int, float)):
        raise ValueError(f"norm: p must be a number, inf, -inf or 'fro', got {p!r}")
    _check_floating("norm", x)
    axes = _reduction_axes("norm", x.shape, dim)
    magnitude = x.abs()
    if p == float("inf"):
        return amax(magnitude, axes, keepdim)
    if p == float("-inf"):
        return amin(magnitude, axes, keepdim)
    if p == 0:
        return (x != 0).to(x.dtype).sum(axes, keepdim)
    if p == 1:
        return magnitude.sum(axes, keepdim)
    if p == 2:
        return (x * x).sum(axes, keepdim).sqrt()
    return (magnitude ** p).sum(axes, keepdim) ** (1.0 / p)
