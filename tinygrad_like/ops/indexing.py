"""Indexing: `x[index]` (ints, slices, None, Ellipsis, integer and boolean arrays) and gather.

Each backward is a scatter-add into zeros (the kernel `scatter_add`, `np.add.at`
on the CPU, accumulates repeated integer indices, which plain assignment would
drop), and each scatter's own backward is the gather again, so second
derivatives flow through indexing.
"""

from __future__ import annotations

from collections import namedtuple

from tinygrad_like import dtypes
from tinygrad_like.autograd import Function
from tinygrad_like.ops.checks import check_int
from tinygrad_like.ops.reduce import normalize_dims
from tinygrad_like.tensor import Tensor


def normalize_index(x: Tensor, index, op: str):
    """Tensors and lists inside `index` become backend arrays on x's device."""
    items = index if isinstance(index, tuple) else (index,)
    out = []
    for item in items:
        if isinstance(item, Tensor):
            if item.backend is not x.backend:
                raise RuntimeError(f"{op}: index on {item.device}, tensor on {x.device}")
            if item.dtype.is_floating_point:
                raise IndexError(f"{op}: tensors used as indices must be integer or bool, got "
                                 f"{item.dtype.name}")
            item = item._array
        elif isinstance(item, list):
            item = x.backend.asarray(item)
            if item.dtype.kind == "f":
                raise IndexError(f"{op}: lists used as indices must hold integers or bools")
        elif isinstance(item, float):
            raise IndexError(f"{op}: float index {item!r}; indices must be integers")
        out.append(item)
    return tuple(out)


def _index_error(op: str, x: Tensor, index, error: Exception) -> IndexError:
    return IndexError(f"{op}: {error} (indexing a tensor of shape {x.shape} with {index!r})")


class GetItem(Function):
    returns_view = True

    @staticmethod
    def forward(ctx, x, index):
        ctx.input_shape, ctx.index = x.shape, index
        try:
            return x._array[index]
        except IndexError as error:
            raise _index_error("getitem", x, index, error) from None

    @staticmethod
    def backward(ctx, grad):
        return IndexScatter.apply(grad, ctx.index, ctx.input_shape)


class IndexScatter(Function):
    """zeros(shape) with `grad` added at `index`: the adjoint of GetItem."""

    @staticmethod
    def forward(ctx, grad, index, shape):
        ctx.index = index
        xp = grad.backend.xp
        out = xp.zeros(shape, dtype=grad._array.dtype)
        if all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in index):
            out[index] += grad._array  # basic indexing never repeats a position: no scatter needed
        else:
            grad.backend.kernels.scatter_add(out, index, grad._array)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.index]


def getitem(x: Tensor, index) -> Tensor:
    return GetItem.apply(x, normalize_index(x, index, "getitem"))


def _gather_indices(xp, index, dim: int) -> tuple:
    """Full index arrays that address x[..., index[i, j, ...], ...] along `dim`."""
    axes = list(xp.indices(index.shape, sparse=True))
    axes[dim] = index
    return tuple(axes)


class Gather(Function):
    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.dim, ctx.index, ctx.input_shape = dim, index, x.shape
        return x._array[_gather_indices(x.backend.xp, index._array, dim)]

    @staticmethod
    def backward(ctx, grad):
        return GatherScatter.apply(grad, ctx.dim, ctx.index, ctx.input_shape)


class GatherScatter(Function):
    """zeros(shape) with `grad` added along `dim` at `index`: the adjoint of Gather."""

    @staticmethod
    def forward(ctx, grad, dim, index, shape):
        ctx.dim, ctx.index = dim, index
        xp = grad.backend.xp
        out = xp.zeros(shape, dtype=grad._array.dtype)
        grad.backend.kernels.scatter_add(out, _gather_indices(xp, index._array, dim), grad._array)
        return out

    @staticmethod
    def backward(ctx, grad):
        return Gather.apply(grad, ctx.dim, ctx.index)


def gather(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """out[i][j] = x[index[i][j]][j] for dim=0 (torch.gather); index may be smaller than x."""
    if not isinstance(index, Tensor) or index.dtype not in (dtypes.int64, dtypes.int32):
        raise TypeError(f"gather: index must be an int64 tensor, got "
                        f"{getattr(index, 'dtype', type(index).__name__)}")
    if index.backend is not x.backend:
        raise RuntimeError(f"gather: index on {index.device}, input on {x.device}")
    if x.ndim == 0:  # a 0-d input has one element; gather it as a 1-element vector
        return gather(x.reshape(1), 0, index.reshape(1)).reshape(index.shape)
    (axis,) = normalize_dims("gather", x.shape, dim)
    if index.ndim != x.ndim or any(i > n for d, (i, n) in enumerate(zip(index.shape, x.shape))
                                   if d != axis):
        raise ValueError(f"gather: index of shape {index.shape} does not fit input of shape "
                         f"{x.shape} outside dimension {dim}")
    if index.numel() and not (0 <= int(index._array.min()) and int(index._array.max()) < x.shape[axis]):
        raise IndexError(f"gather: index values must lie in [0, {x.shape[axis] - 1}] for "
                         f"dimension {dim} of the input of shape {x.shape}; got "
                         f"[{int(index._array.min())}, {int(index._array.max())}]")
    return Gather.apply(x, axis, index)


def setitem(x: Tensor, index, value) -> None:
    """`x[index] = value` in place, on tensors that need no grad (Tensor.__setitem__)."""
    x._check_inplace("__setitem__")
    if isinstance(value, Tensor):
        if value.device != x.device:
            raise RuntimeError(f"__setitem__: value on {value.device}, tensor on {x.device}")
        value = value._array
    index = normalize_index(x, index, "__setitem__")
    try:
        x._array[index] = value
    except ValueError as error:
        raise RuntimeError(f"__setitem__: cannot assign a value of shape "
                           f"{getattr(value, 'shape', ())} to tensor{list(x.shape)}"
                           f"[{index!r}]") from error
    x._bump_version()


SortResult = namedtuple("SortResult", ["values", "indices"])  # torch.sort / torch.topk's result


def _sort_indices(x: Tensor, axis: int, descending: bool):
    xp = x.backend.xp
    order = xp.argsort(-x._array if descending and x.dtype is not dtypes.bool_ else x._array,
                       axis=axis, kind="stable")
    if descending and x.dtype is dtypes.bool_:
        order = xp.flip(order, axis)
    return order.astype(xp.int64)


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    if x.ndim == 0:
        return Tensor._wrap(x.backend.xp.zeros((), dtype="int64"), x.backend)
    (axis,) = normalize_dims("argsort", x.shape, dim)
    return Tensor._wrap(_sort_indices(x, axis, bool(descending)), x.backend)


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> SortResult:
    """(values, indices) sorted along `dim`; the values are x gathered at the indices, so the
    gradient flows back to the positions they came from."""
    indices = argsort(x, dim, descending)
    if x.ndim == 0:
        return SortResult(x.clone(), indices)
    return SortResult(gather(x, dim, indices), indices)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> SortResult:
    k = check_int("topk", "k", k, 0)
    size = x.shape[normalize_dims("topk", x.shape, dim)[0]] if x.ndim else 1
    if k > size:
        raise ValueError(f"topk: k ({k}) is larger than dimension {dim} of size {size} of the "
                         f"input of shape {x.shape}")
    if x.ndim == 0:
        return sort(x)
    (axis,) = normalize_dims("topk", x.shape, dim)
    indices = argsort(x, axis, descending=largest).narrow(axis, 0, k)
    return SortResult(gather(x, axis, indices), indices)


def index_select(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """x's entries at `index` (a 1-D integer tensor) along `dim`."""
    if not isinstance(index, Tensor) or index.dtype not in (dtypes.int64, dtypes.int32):
        raise TypeError(f"index_select: index must be an int64 tensor, got "
                        f"{getattr(index, 'dtype', type(index).__name__)}")
    if index.ndim > 1:
        raise ValueError(f"index_select: index must be 1-D, got shape {index.shape}")
    if x.ndim == 0:
        return index_select(x.reshape(1), 0, index).reshape(index.shape)
    (axis,) = normalize_dims("index_select", x.shape, dim)
    if index.numel() and not (0 <= int(index._array.min()) and int(index._array.max()) < x.shape[axis]):
        raise IndexError(f"index_select: index values must lie in [0, {x.shape[axis] - 1}] for "
                         f"dimension {dim} of the input of shape {x.shape}")
    return getitem(x, (slice(None),) * axis + (index.reshape(-1),))


def masked_select(x: Tensor, mask: Tensor) -> Tensor:
    """The 1-D tensor of x's entries where `mask` is True (both broadcast together)."""
    if not isinstance(mask, Tensor) or mask.dtype is not dtypes.bool_:
        raise TypeError(f"masked_select: mask must be a bool tensor, got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    try:
        shape = x.backend.xp.broadcast_shapes(x.shape, mask.shape)
    except ValueError:
        raise ValueError(f"masked_select: the input of shape {x.shape} and the mask of shape "
                         f"{mask.shape} cannot be broadcast together") from None
    return getitem(x.expand(shape), mask.expand(shape))


def index_add(x: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    """x with alpha * source[j] added at x's position index[j] along `dim` (repeated indices
    accumulate). The gradient to x is the output's; to source, the output's at the indices."""
    if not isinstance(index, Tensor) or index.dtype not in (dtypes.int64, dtypes.int32):
        raise TypeError(f"index_add: index must be an int64 tensor, got "
                        f"{getattr(index, 'dtype', type(index).__name__)}")
    if not isinstance(source, Tensor) or source.dtype != x.dtype:
        raise TypeError(f"index_add: source must be a tensor of the input's dtype "
                        f"{x.dtype.name}, got {getattr(source, 'dtype', type(source).__name__)}")
    if index.backend is not x.backend or source.backend is not x.backend:
        raise RuntimeError(f"index_add: input on {x.device}, index on {index.device}, source "
                           f"on {source.device}")
    if x.ndim == 0:
        return index_add(x.reshape(1), 0, index.reshape(-1), source.reshape(-1),
                         alpha=alpha).reshape(())
    (axis,) = normalize_dims("index_add", x.shape, dim)
    expected = x.shape[:axis] + (index.numel(),) + x.shape[axis + 1:]
    if index.ndim > 1 or source.shape != expected:
        raise ValueError(f"index_add: source of shape {source.shape} does not fit input of "
                         f"shape {x.shape} with an index of shape {index.shape} along dimension "
                         f"{dim} (expected {expected})")
    if index.numel() and not (0 <= int(index._array.min()) and int(index._array.max()) < x.shape[axis]):
        raise IndexError(f"index_add: index values must lie in [0, {x.shape[axis] - 1}] for "
                         f"dimension {dim} of the input of shape {x.shape}")
    position = (slice(None),) * axis + (index._array.reshape(-1),)
    added = IndexScatter.apply(source, position, x.shape)
    return x + (added if alpha == 1 else added * alpha)

