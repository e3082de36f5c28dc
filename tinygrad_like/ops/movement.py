"""Movement ops: reshape, permute, expand, concatenate, pad and what is built from them.

Reshape, Permute, Expand, Cat and Pad are the primitives; squeeze, transpose,
stack, split, repeat and friends are compositions, so they need no backward of
their own. Views share memory (and the version counter) with their input.
"""

from __future__ import annotations

import math

from tinygrad_like.autograd import Function
from tinygrad_like.ops.checks import check_int, check_ints, check_tensor
from tinygrad_like.ops.operands import promote, unbroadcast
from tinygrad_like.ops.reduce import normalize_dim, normalize_dims
from tinygrad_like.tensor import Tensor


def _shape_arg(op: str, shape: tuple, name: str = "shape") -> tuple:
    """Accept both f(2, 3) and f((2, 3)); every entry must be an int."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return check_ints(op, name, shape)


def _resolve_shape(op: str, x: Tensor, shape: tuple) -> tuple:
    """Fill in one -1 and check that the element count is unchanged."""
    unknown = [i for i, n in enumerate(shape) if n == -1]
    if len(unknown) > 1 or any(n < -1 for n in shape):
        raise ValueError(f"{op}: invalid shape {shape}: at most one -1 and no other negatives")
    known = math.prod(n for n in shape if n != -1)
    if unknown:
        if known == 0 or x.numel() % known:
            raise ValueError(f"{op}: shape {shape} is invalid for input of shape {x.shape}")
        shape = shape[: unknown[0]] + (x.numel() // known,) + shape[unknown[0] + 1:]
    if math.prod(shape) != x.numel():
        raise ValueError(f"{op}: shape {shape} is invalid for input of shape {x.shape} "
                         f"({x.numel()} elements)")
    return shape


class Reshape(Function):
    returns_view = True

    @staticmethod
    def forward(ctx, x, shape, require_view):
        ctx.input_shape = x.shape
        if require_view:
            try:
                return x.backend.xp.reshape(x._array, shape, copy=False)
            except ValueError:
                raise RuntimeError(f"view: shape {shape} is not compatible with the input's "
                                   f"strides (shape {x.shape}); use .reshape(...) instead") from None
        return x._array.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.input_shape)


class Permute(Function):
    returns_view = True

    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return x._array.transpose(axes)

    @staticmethod
    def backward(ctx, grad):
        inverse = [0] * len(ctx.axes)
        for i, axis in enumerate(ctx.axes):
            inverse[axis] = i
        return grad.permute(inverse)


class Expand(Function):
    returns_view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.input_shape = x.shape
        return x.backend.xp.broadcast_to(x._array, shape)

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.input_shape)


class Copy(Function):
    """A fresh C-contiguous copy (clone, and contiguous on a non-contiguous input)."""

    @staticmethod
    def forward(ctx, x):
        return x._array.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


class Cat(Function):
    @staticmethod
    def forward(ctx, *tensors, axis):
        ctx.axis = axis
        ctx.sizes = [t.shape[axis] for t in tensors]
        return tensors[0].backend.xp.concatenate([t._array for t in tensors], axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(split(grad, ctx.sizes, ctx.axis))


class Pad(Function):
    """Constant padding with non-negative widths; negative widths are crops done before."""

    @staticmethod
    def forward(ctx, x, widths, value):
        ctx.widths = widths
        return x.backend.xp.pad(x._array, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, grad):
        return grad[tuple(slice(before, n - after) for (before, after), n in
                          zip(ctx.widths, grad.shape))]


# ---- public functions ----------------------------------------------------------------------
def reshape(x: Tensor, *shape) -> Tensor:
    shape = _resolve_shape("reshape", x, _shape_arg("reshape", shape))
    return x if shape == x.shape else Reshape.apply(x, shape, False)


def view(x: Tensor, *shape) -> Tensor:
    shape = _resolve_shape("view", x, _shape_arg("view", shape))
    return Reshape.apply(x, shape, True)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    start = normalize_dim("flatten", x.shape, start_dim)
    end = normalize_dim("flatten", x.shape, end_dim)
    if x.ndim == 0:
        return x.reshape(1)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return x.reshape(x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:])


def squeeze(x: Tensor, dim=None) -> Tensor:
    axes = normalize_dims("squeeze", x.shape, dim)
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1)))


def _new_axis(op: str, shape: tuple, dim) -> int:
    """Where a new dimension goes (unsqueeze, stack): one of the ndim + 1 places."""
    check_int(op, "dim", dim)
    ndim = len(shape)
    if not -ndim - 1 <= dim <= ndim:
        raise IndexError(f"{op}: dimension {dim} is out of range for a tensor of shape "
                         f"{shape} (expected to be in [{-ndim - 1}, {ndim}])")
    return dim % (ndim + 1)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    dim = _new_axis("unsqueeze", x.shape, dim)
    return x.reshape(x.shape[:dim] + (1,) + x.shape[dim:])


def permute(x: Tensor, *dims) -> Tensor:
    dims = _shape_arg("permute", dims, "dims")
    if len(dims) != x.ndim:
        raise ValueError(f"permute: got {len(dims)} dims {dims} for a tensor of shape {x.shape}")
    normalize_dims("permute", x.shape, dims)  # checks range and repeats
    return Permute.apply(x, tuple(d % x.ndim for d in dims))


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    a, b = normalize_dim("transpose", x.shape, dim0), normalize_dim("transpose", x.shape, dim1)
    if a == b:  # also a 0-d tensor, whose dims 0 and -1 both name its one (absent) dimension
        return x
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(x, tuple(axes))


def T(x: Tensor) -> Tensor:
    """All dimensions reversed (the matrix transpose for 2-D tensors)."""
    return Permute.apply(x, tuple(reversed(range(x.ndim))))


def mT(x: Tensor) -> Tensor:
    """The last two dimensions swapped (a batch of matrix transposes)."""
    return transpose(x, -2, -1)


def expand(x: Tensor, *shape) -> Tensor:
    shape = _shape_arg("expand", shape)
    extra = len(shape) - x.ndim
    if extra < 0:
        raise ValueError(f"expand: the target shape {shape} has fewer dimensions than the input "
                         f"{x.shape}")
    if any(n < -1 or n == -1 and i < extra for i, n in enumerate(shape)):
        raise ValueError(f"expand: invalid target shape {shape} for the input of shape "
                         f"{x.shape}: sizes must be non-negative, or -1 to keep an existing "
                         "dimension")
    target = tuple(x.shape[i - extra] if n == -1 else n for i, n in enumerate(shape))
    for i, n in enumerate(x.shape):
        if n != 1 and n != target[i + extra]:
            raise ValueError(f"expand: the input of shape {x.shape} cannot be expanded to {shape} "
                             f"(dimension {i}: {n} must be 1 or equal {target[i + extra]})")
    return x if target == x.shape else Expand.apply(x, target)


def contiguous(x: Tensor) -> Tensor:
    return x if x.is_contiguous() else Copy.apply(x)


def clone(x: Tensor) -> Tensor:
    return Copy.apply(x)


def _tensor_list(op: str, tensors) -> list:
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of Tensors, got "
                        f"{type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of tensors")
    for i, t in enumerate(tensors):
        check_tensor(op, f"element {i} of the list", t)
    return list(tensors)


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = list(promote("cat", *_tensor_list("cat", tensors)))
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated")
    axis = normalize_dim("cat", first.shape, dim)
    for i, t in enumerate(tensors):
        if t.ndim != first.ndim or any(a != b for d, (a, b) in enumerate(zip(t.shape, first.shape))
                                       if d != axis):
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, which does not match "
                             f"{first.shape} outside dimension {axis}")
    return Cat.apply(*tensors, axis=axis)


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = _tensor_list("stack", tensors)
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: expects tensors of equal shape, but tensor 0 has shape "
                             f"{tensors[0].shape} and tensor {i} has shape {t.shape}")
    axis = _new_axis("stack", tensors[0].shape, dim)
    return cat([t.unsqueeze(axis) for t in tensors], axis)


def split(x: Tensor, split_size, dim: int = 0) -> tuple:
    axis = normalize_dim("split", x.shape, dim)
    length = x.shape[axis]
    if isinstance(split_size, int):
        if split_size <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size}")
        sizes = [min(split_size, length - start)
                 for start in range(0, length, split_size)] or [0]
    else:
        sizes = list(check_ints("split", "split_size", split_size))
        if sum(sizes) != length or min(sizes, default=0) < 0:
            raise ValueError(f"split: sections {sizes} sum to {sum(sizes)}, but dimension {dim} "
                             f"of the tensor of shape {x.shape} has size {length}")
    pieces, start = [], 0
    prefix = (slice(None),) * axis
    for size in sizes:
        pieces.append(x[prefix + (slice(start, start + size),)])
        start += size
    return tuple(pieces)


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple:
    check_int("chunk", "chunks", chunks, minimum=1)
    length = x.shape[normalize_dim("chunk", x.shape, dim)]
    if length == 0:
        return split(x, [0] * chunks, dim)  # as PyTorch: `chunks` empty pieces
    return split(x, math.ceil(length / chunks), dim)


def unbind(x: Tensor, dim: int = 0) -> tuple:
    return tuple(piece.squeeze(dim) for piece in split(x, 1, dim))


def pad(x: Tensor, pad: tuple, mode: str = "constant", value: float = 0.0) -> Tensor:
    """PyTorch's F.pad: `pad` lists (before, after) pairs starting from the last dimension."""
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: padding {tuple(pad)} must have an even length of at most "
                         f"2 * ndim = {2 * x.ndim} for a tensor of shape {x.shape}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if any(before < 0 or after < 0 for before, after in widths):
        crop = tuple(slice(-min(before, 0), n + min(after, 0))
                     for (before, after), n in zip(widths, x.shape))
        x = x[crop]
        widths = [(max(before, 0), max(after, 0)) for before, after in widths]
    return Pad.apply(x, tuple(widths), value)


def repeat(x: Tensor, *repeats) -> Tensor:
    """Tile `x` (torch.Tensor.repeat), as an expand of interleaved unit axes then a reshape."""
    repeats = _shape_arg("repeat", repeats, "repeats")
    if len(repeats) < x.ndim:
        raise ValueError(f"repeat: {len(repeats)} repeat counts for a tensor of shape {x.shape}; "
                         "need at least one per dimension")
    shape = (1,) * (len(repeats) - x.ndim) + x.shape
    interleaved = x.reshape(tuple(d for n in shape for d in (1, n)))
    expanded = interleaved.expand(tuple(d for r, n in zip(repeats, shape) for d in (r, n)))
    return expanded.reshape(tuple(r * n for r, n in zip(repeats, shape)))


class Flip(Function):
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return x.backend.xp.flip(x._array, axes).copy()  # a copy, as torch.flip

    @staticmethod
    def backward(ctx, grad):
        return Flip.apply(grad, ctx.axes)


class Roll(Function):
    @staticmethod
    def forward(ctx, x, shifts, axes):
        ctx.shifts, ctx.axes = shifts, axes
        return x.backend.xp.roll(x._array, shifts, axes)

    @staticmethod
    def backward(ctx, grad):
        return Roll.apply(grad, tuple(-s for s in ctx.shifts), ctx.axes)


def flip(x: Tensor, *dims_args, dims=None) -> Tensor:
    """torch.flip: x.flip(0, 1), x.flip((0, 1)) or x.flip(dims=(0, 1))."""
    if dims is not None and dims_args:
        raise TypeError("flip: dims given both positionally and by keyword")
    dims = _shape_arg("flip", dims_args if dims is None else
                      ((dims,) if isinstance(dims, int) else (dims,)), "dims")
    return Flip.apply(x, normalize_dims("flip", x.shape, dims) if x.ndim else ())


def roll(x: Tensor, shifts, dims=None) -> Tensor:
    """torch.roll: elements shifted along `dims`; without dims, along the flattened tensor."""
    shifts = (shifts,) if not isinstance(shifts, (tuple, list)) else shifts
    shifts = check_ints("roll", "shifts", shifts)
    if dims is None:
        if len(shifts) != 1:
            raise ValueError(f"roll: {len(shifts)} shifts {shifts} need as many dims")
        return Roll.apply(x.flatten(), shifts, (0,)).reshape(x.shape)
    dims = check_ints("roll", "dims", (dims,) if not isinstance(dims, (tuple, list)) else dims)
    if len(dims) != len(shifts):
        raise ValueError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    axes = tuple(normalize_dim("roll", x.shape, d) for d in dims)
    return Roll.apply(x, shifts, axes)


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    axis = normalize_dim("narrow", x.shape, dim)
    start, length = check_int("narrow", "start", start), check_int("narrow", "length", length, 0)
    size = x.shape[axis]
    if start < 0:
        start += size
    if not 0 <= start <= size or start + length > size:
        raise IndexError(f"narrow: start {start} and length {length} are out of range for "
                         f"dimension {dim} of size {size} (input of shape {x.shape})")
    return x[(slice(None),) * axis + (slice(start, start + length),)]


def t(x: Tensor) -> Tensor:
    """The matrix transpose of a tensor of at most 2 dimensions (torch.t)."""
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor of at most 2 dimensions, got shape {x.shape}; "
                         "use transpose or mT")
    return x if x.ndim < 2 else transpose(x, 0, 1)


def view_as(x: Tensor, other: Tensor) -> Tensor:
    return view(x, check_tensor("view_as", "other", other).shape)


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    return expand(x, check_tensor("expand_as", "other", other).shape)


def nelement(x: Tensor) -> int:
    """The number of elements (torch.Tensor.nelement, the same as numel)."""
    return x.numel()
