"""F.interpolate: nearest and (bi/tri)linear resampling, one spatial axis at a time.

Both modes are separable, so each spatial axis is resampled on its own with `index_select`
(whose gradient scatter-adds back), and linear modes blend two such selections with
per-position weights; the gradients, of every order, are those of the primitives. Source
positions and weights follow PyTorch's CPU kernels (ATen's UpSample.h) operation for
operation, in the same precision (float32 unless the input is float64), and the last axis is
blended first as there, so results agree with PyTorch's to the last bit or close to it.
"""

from __future__ import annotations

import math
import numbers

from tinygrad_like.ops.checks import check_tensor
from tinygrad_like.tensor import Tensor

# interpolation mode -> the input ndim it needs (None: any of 3, 4, 5), as PyTorch
_MODES = {"nearest": None, "nearest-exact": None, "linear": 3, "bilinear": 4, "trilinear": 5}
_UNSUPPORTED_MODES = ("area", "bicubic")


def _per_axis(name: str, value, x: Tensor, kind) -> list:
    """`size` or `scale_factor` as one value per spatial dimension of x."""
    spatial = x.ndim - 2
    values = list(value) if isinstance(value, (tuple, list)) else [value] * spatial
    if len(values) != spatial:
        raise ValueError(f"interpolate: input with spatial dimensions {x.shape[2:]} and {name} "
                         f"{value!r} must have the same number of spatial dimensions")
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        what = "an int" if kind is numbers.Integral else "a number"
        raise TypeError(f"interpolate: {name} must be {what} or a sequence of them, got "
                        f"{value!r}")
    return values


def _output_and_scales(x: Tensor, size, scale_factor, recompute_scale_factor) -> tuple:
    """The output size per axis, and the scale factors the kernels use (None: from sizes)."""
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: exactly one of size or scale_factor should be defined, "
                         f"got size={size!r} and scale_factor={scale_factor!r}")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor is not meaningful with an "
                             "explicit size")
        return [int(v) for v in _per_axis("size", size, x, numbers.Integral)], None
    scales = [float(v) for v in _per_axis("scale_factor", scale_factor, x, numbers.Real)]
    sizes = [int(n * s) for n, s in zip(x.shape[2:], scales)]  # truncated, as PyTorch
    return sizes, None if recompute_scale_factor else scales


def _scale(xp, dtype, in_size: int, out_size: int, scale_factor, align_corners: bool):
    """Output-to-source coordinate ratio in the kernels' precision (ATen's
    area_pixel_compute_scale): from the user's factor when given, else from the sizes."""
    if align_corners:
        return xp.asarray(in_size - 1, dtype) / dtype(max(out_size - 1, 1))
    if scale_factor is not None and scale_factor > 0:
        return xp.asarray(1.0 / scale_factor, dtype)
    return xp.asarray(in_size, dtype) / dtype(out_size)


def _nearest_indices(xp, in_size: int, out_size: int, scale_factor, exact: bool):
    """Source index of each output position: floor(dst * scale), or floor((dst + 0.5) * scale)
    for nearest-exact, clamped to the input; in float32 whatever the input, as PyTorch."""
    if out_size == 2 * in_size and not exact:
        return xp.arange(out_size) // 2  # PyTorch's exact shortcut
    scale = _scale(xp, xp.float32, in_size, out_size, scale_factor, False)
    if exact:  # (dst + 0.5) is a double in ATen, and the product is rounded to float
        source = ((xp.arange(out_size) + 0.5) * scale.astype(xp.float64)).astype(xp.float32)
    else:
        source = xp.arange(out_size, dtype=xp.float32) * scale
    return xp.minimum(xp.floor(source).astype(xp.int64), in_size - 1)


def _linear_taps(xp, dtype, in_size, out_size, scale_factor, align_corners: bool):
    """The two source indices and weights of each output position (ATen's
    compute_source_index_and_lambda)."""
    scale = _scale(xp, dtype, in_size, out_size, scale_factor, align_corners)
    dst = xp.arange(out_size, dtype=dtype)
    if align_corners:
        source = scale * dst
    else:
        source = xp.maximum(scale * (dst + dtype(0.5)) - dtype(0.5), dtype(0))
    first = xp.minimum(xp.floor(source).astype(xp.int64), in_size - 1)
    second = first + (first < in_size - 1)
    weight_second = xp.clip(source - first.astype(dtype), dtype(0), dtype(1))
    return first, second, dtype(1) - weight_second, weight_second


def _resample_axis(x: Tensor, axis: int, out_size: int, scale_factor, mode: str,
                   align_corners: bool) -> Tensor:
    in_size = x.shape[axis]
    if out_size == in_size:  # PyTorch copies an axis whose size does not change
        return x
    xp, backend = x.backend.xp, x.backend
    if mode in ("nearest", "nearest-exact"):
        index = _nearest_indices(xp, in_size, out_size, scale_factor, mode == "nearest-exact")
        return x.index_select(axis, Tensor._wrap(index, backend))
    # the weights' precision is PyTorch's opmath: float32, or float64 for float64 inputs
    dtype = xp.float64 if x._array.dtype == xp.float64 else xp.float32
    first, second, weight_first, weight_second = _linear_taps(
        xp, dtype, in_size, out_size, scale_factor, align_corners)
    trailing = (1,) * (x.ndim - 1 - axis)  # weights broadcast along the later axes
    weights = [Tensor._wrap(xp.astype(w, x._array.dtype).reshape((out_size,) + trailing),
                            backend)
               for w in (weight_first, weight_second)]
    return (x.index_select(axis, Tensor._wrap(first, backend)) * weights[0]
            + x.index_select(axis, Tensor._wrap(second, backend)) * weights[1])


def interpolate(x: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """PyTorch's F.interpolate for 3-D (N, C, L), 4-D (N, C, H, W) and 5-D inputs.

    Modes: 'nearest' and 'nearest-exact' (any of them), 'linear' (3-D), 'bilinear' (4-D),
    'trilinear' (5-D), with align_corners for the linear ones.
    """
    check_tensor("interpolate", "input", x)
    if mode in _UNSUPPORTED_MODES or antialias:
        raise NotImplementedError(f"interpolate: mode={mode!r}" + (", antialias=True" if antialias
                                                                     else "") +
                                  " is not implemented in tinygrad_like")
    if mode not in _MODES:
        raise ValueError(f"interpolate: unknown mode {mode!r}; expected one of {list(_MODES)}")
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"interpolate: expected a 3-D, 4-D or 5-D (N, C, spatial...) input, got "
                         f"shape {x.shape}")
    if _MODES[mode] not in (None, x.ndim):
        raise NotImplementedError(f"interpolate: got {x.ndim}-D input of shape {x.shape}, but "
                                  f"mode {mode!r} needs {_MODES[mode]}-D input")
    if mode.startswith("nearest") and align_corners is not None:
        raise ValueError("interpolate: align_corners can only be set with the interpolating "
                         "modes linear, bilinear and trilinear")
    if _MODES[mode] and not x.dtype.is_floating_point:
        raise TypeError(f"interpolate: mode {mode!r} needs a floating-point input, got "
                        f"{x.dtype.name}")
    sizes, scales = _output_and_scales(x, size, scale_factor, recompute_scale_factor)
    if min(sizes) <= 0 or math.prod(x.shape[2:]) == 0:
        raise ValueError(f"interpolate: input and output sizes should be greater than 0, got "
                         f"input of shape {x.shape} and output size {tuple(sizes)}")
    out = x
    for axis in reversed(range(2, x.ndim)):  # the last axis first, as PyTorch blends
        scale = None if scales is None else scales[axis - 2]
        out = _resample_axis(out, axis, sizes[axis - 2], scale, mode, bool(align_corners))
    return out if out is not x else x.clone()
