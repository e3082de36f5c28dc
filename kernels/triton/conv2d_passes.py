"""The two memory-bound passes around conv2d's GEMMs: NCHW -> NHWC, and the split-K sum.

- `to_channels_last` copies an (N, C, H, W) array to a C-contiguous (N, H, W, C) one for
  the channels-last gathers of conv2d.py. A program moves one BLOCK_P pixels x BLOCK_C
  channels tile of one image: Triton lays the load out along the pixels (NCHW's unit
  stride) and the store along the channels, and exchanges the two layouts through shared
  memory, so both sides move 16-byte vectors. An element-wise strided copy reads the NCHW
  side one element per cache sector (a warp's lanes H*W apart) instead.
- `sum_splits` adds the backward-weight kernel's split-K partial sums (fp32, or float64)
  into the weight gradient in its own dtype, in one pass; it is also how a launcher fills
  a result with zeros (the sum of no partial sums), as bfloat16 storage on "cuda" has no
  element-wise assignment.
"""

from __future__ import annotations

import triton
import triton.language as tl

# 64 x 64 tiles of 4 warps: a thread holds 16 (fp32) or 32 (16-bit) elements of the tile.
# Neither kernel has a loop worth pipelining (the sum's runs over a handful of splits).
CHANNELS_LAST_CONFIG = {"BLOCK_P": 64, "BLOCK_C": 64, "num_warps": 4, "num_stages": 1}
SUM_CONFIG = {"BLOCK": 1024, "num_warps": 4, "num_stages": 1}
# The interpreter runs every program in Python: small tiles keep the tests fast.
INTERP_CHANNELS_LAST = {"BLOCK_P": 32, "BLOCK_C": 32}
INTERP_SUM = {"BLOCK": 256}
MAX_GRID_Y = 65535  # CUDA's limit on grid axis 1, which carries the batch


@triton.jit
def channels_last_kernel(
    x_ptr, out_ptr,  # x (N, C, P) strided, out (N, P, C) contiguous; P = H*W
    C, P, stride_xn, stride_xc, stride_xp,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    tiles_c = tl.cdiv(C, BLOCK_C)
    p = tl.program_id(0) // tiles_c * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(0) % tiles_c * BLOCK_C + tl.arange(0, BLOCK_C)
    n = tl.program_id(1).to(tl.int64)
    mask = (p[:, None] < P) & (c[None, :] < C)
    # 64-bit: one image of x may hold more than 2**31 elements
    tile = tl.load(x_ptr + n * stride_xn + c.to(tl.int64)[None, :] * stride_xc
                   + p.to(tl.int64)[:, None] * stride_xp, mask=mask)
    tl.store(out_ptr + (n * P + p)[:, None] * C + c[None, :], tile, mask=mask)


@triton.jit
def sum_splits_kernel(partial_ptr, out_ptr, splits, size, BLOCK: tl.constexpr):
    """out[e] = sum over s < splits of partial[s, e], rounded once to out's dtype."""
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < size
    acc_dtype = tl.float64 if out_ptr.dtype.element_ty == tl.float64 else tl.float32
    acc = tl.zeros((BLOCK,), dtype=acc_dtype)
    partial = partial_ptr + offsets  # advanced a split at a time: 64-bit pointer steps
    for _ in range(splits):
        acc += tl.load(partial, mask=mask, other=0.0).to(acc_dtype)
        partial += size
    tl.store(out_ptr + offsets, acc.to(out_ptr.dtype.element_ty), mask=mask)


def _steps(array) -> list[int]:
    return [s // array.itemsize for s in array.strides]


def to_channels_last(launcher, array):
    """(N, C, H, W) `array` as a C-contiguous (N, H, W, C) array: itself (a view) if it is
    channels-last in memory already, else a copy made by channels_last_kernel.

    The kernel reads H and W as one pixel axis; an array whose H and W do not fold into one
    (a slice along W), flips (negative strides) or a batch beyond grid axis 1 is copied by
    the array module instead.
    """
    nhwc = array.transpose(0, 2, 3, 1)
    if nhwc.flags.c_contiguous:
        return nhwc
    n, c, h, w = array.shape
    stride_n, stride_c, stride_h, stride_w = _steps(array)
    pixel_stride = stride_w if w > 1 else stride_h
    if (min(_steps(array)) < 0 or n > MAX_GRID_Y
            or not (h == 1 or w == 1 or stride_h == w * stride_w)):
        return launcher.xp.ascontiguousarray(nhwc)
    out = launcher.empty((n, h, w, c), array.dtype)
    if out.size == 0:
        return out
    kernel, config = ((launcher.kernel(channels_last_kernel), INTERP_CHANNELS_LAST)
                      if launcher.interpret else (channels_last_kernel, CHANNELS_LAST_CONFIG))
    tiles = triton.cdiv(h * w, config["BLOCK_P"]) * triton.cdiv(c, config["BLOCK_C"])
    kernel[(tiles, n)](launcher.arg(array), launcher.arg(out), c, h * w, stride_n, stride_c,
                       pixel_stride, **config)
    return out


def sum_splits(launcher, partial, out) -> None:
    """out[...] = partial.sum(axis=0) for a contiguous `partial` (splits, *out.shape) and a
    fresh contiguous `out`; `partial` None fills `out` with zeros."""
    if out.size == 0:
        return
    kernel, config = ((launcher.kernel(sum_splits_kernel), INTERP_SUM)
                      if launcher.interpret else (sum_splits_kernel, SUM_CONFIG))
    splits = 0 if partial is None else partial.shape[0]
    # with no splits the loop never reads: out itself stands in for the partial sums
    kernel[(triton.cdiv(out.size, config["BLOCK"]),)](
        launcher.arg(out if partial is None else partial), launcher.arg(out), splits, out.size,
        **config)
