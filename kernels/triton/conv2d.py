"""2-D convolution (cross-correlation, zero padding, groups=1) as channels-last implicit GEMM.

Each of the three kernels is a tiled matrix product whose A or B operand is an im2col
matrix that never exists in memory: a program computes, from its tile's row and column
indices, where each element lives and gathers its tile straight from there, masking the
padding and the tails to 0. The im2col matrix of a 3x3 convolution is 9 times the input;
materialising it would write and re-read that.

The gathered operands are read channels-last (NHWC): one im2col row of one tap is then
BLOCK_K contiguous channels of one pixel, so a thread loads 8 (16-bit) or 4 (fp32)
neighbouring channels as one 128-bit access, and Triton's software pipeline (num_stages)
turns those loads into cp.async copies into shared memory (LDGSTS.128) that overlap the
tensor-core products. Read NCHW, the same row is BLOCK_K elements H*W apart: scalar 2-byte
loads, and no cp.async. The launchers convert x and the output gradient to NHWC once per
call (conv2d_passes.py; nothing is copied for a tensor that is channels-last in memory
already) and re-lay the weight (tiny) so its tiles are contiguous along the GEMM's N axis. Results are stored straight into NCHW: the pixel index within
an image is the contiguous axis there, so stores of runs of pixels stay coalesced.

With P = N*OH*OW output pixels and R = KH*KW taps (the reference is backend/reference_conv.py):

- conv2d: out (P x K) = X_col (P x C*R) @ W (C*R x K). A program owns BLOCK_M output
  pixels x BLOCK_N output channels, in matmul.py's grouped order. Its reduction runs
  tap-major: for each tap (i, j) the input pixel of every row, (oh*sh - ph + i*dh,
  ow*sw - pw + j*dw), is the row's window corner plus one scalar offset, and BLOCK_K
  channels at a time are gathered; the per-step index work is on BLOCK_M row vectors.
  Input channels are padded to BLOCK_K per tap, so a first layer with C=3 wastes most
  of each step (and its rows are not 16-byte aligned: scalar loads); that layer is a
  tiny share of a network's FLOPs. Bias is added to the fp32 accumulator.
- conv2d_backward_input: dx (N*H*W x C) = G_col (N*H*W x K*R) @ W (K*R x C), the
  transposed convolution, gathered the other way round. Input pixel h receives tap i
  from output row oh only when oh*sh = h + ph - i*dh, i.e. when t = h + ph - i*dh is
  >= 0, divisible by sh and t/sh < OH; the mask drops every other (pixel, tap) pair.
  Nothing is scattered, so there are no atomics, and every dx element is written once.
  With stride s only one tap in s (per axis) survives the mask for a given pixel, so
  the tensor cores do sh*sw times the useful work on stride-2 layers (masked loads cost
  no memory traffic); stride-2 layers are few.
- conv2d_backward_weight: dW (K x C, per tap) = G (K x P) @ X_col (P x C). A program
  owns BLOCK_M output channels x BLOCK_N input channels of one tap (grid axis 1). The grid
  has just K/BLOCK_M * C/BLOCK_N * R programs (18 for a 128-channel 3x3 layer) against a
  reduction of P (200k for batch 64 at 56x56), so the reduction is split across grid axis
  2 into fp32 partial sums that the launcher adds (split-K, deterministic, no atomics).

fp16/bf16 accumulate in fp32, fp32 at full IEEE precision (`input_precision="ieee"`),
float64 (the "interp" gradient checks) in float64. Pixel indices are int32 and element
offsets int64 (conv2d_geometry.check_index_range refuses calls beyond that, by name).
"""

from __future__ import annotations

import functools

import numpy as np
import triton
import triton.language as tl

from tinygrad_like.kernels.triton.conv2d_geometry import (check_dtypes, check_grad,
                                                          conv_geometry)
from tinygrad_like.kernels.triton.conv2d_passes import sum_splits, to_channels_last
from tinygrad_like.kernels.triton.launch import arch_for, device_capability

# Tiles by operand width, the same on A100 (sm_80) and H100 (sm_90); every kernel and dtype is
# compiled for both by tests/test_kernel_compile.py, which also checks that the 16-bit
# variants gather with cp.async and never with scalar 2-byte loads, and that none spills.
# 16-bit operands: 128 x 128 tiles, 64 channels (one 128-byte line per pixel) per step,
# num_stages=3 (A and B buffered in 64 KiB of shared memory on sm_80, 96 KiB on sm_90). fp32 runs on the FMA units, whose products
# keep both operands in registers, so it takes 64 x 64 tiles in 16-wide steps over 8 warps.
# float64 (on a GPU only for gradient checks) uses the fp32 tile.
TILES = {
    2: {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 8,
        "num_stages": 3},
    4: {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 16, "GROUP_M": 8, "num_warps": 8,
        "num_stages": 3},
}
ARCHS = (80, 90)
# The interpreter runs every program in Python: small tiles keep the tests fast.
INTERP_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16, "GROUP_M": 4}
# backward-weight split-K: aim for about 4 programs per H100 SM, but give every split at
# least this many pixels, or writing and re-adding the partial sums costs more than it buys
TARGET_PROGRAMS = 528
MIN_SPLIT_PIXELS = 4096


@triton.jit
def _grouped_tile(pid, tiles_m, tiles_n, GROUP_M: tl.constexpr):
    """(tile row, tile column) of program `pid` in matmul.py's grouped order."""
    tiles_per_group = GROUP_M * tiles_n
    first_m = (pid // tiles_per_group) * GROUP_M
    group_rows = min(tiles_m - first_m, GROUP_M)
    return first_m + (pid % tiles_per_group) % group_rows, (pid % tiles_per_group) // group_rows


@triton.jit
def _store_nchw(out_ptr, acc, n, pixel, rows, cols, M, COLS, PIXELS):
    """acc (pixels x channels) into a contiguous (N, COLS, PIXELS) array.

    PIXELS (OH*OW, passed on its own so the JIT sees when it is a multiple of 16) makes
    `pixel` runs of contiguous addresses, so Triton lays the store out along them.
    """
    offsets = (n.to(tl.int64) * COLS * PIXELS + pixel)[:, None] + cols[None, :] * PIXELS
    tl.store(out_ptr + offsets, acc.to(out_ptr.dtype.element_ty),
             mask=(rows[:, None] < M) & (cols[None, :] < COLS))


@triton.jit
def conv2d_forward_kernel(
    x_ptr, w_ptr, bias_ptr, out_ptr,  # x (N, H, W, C), w (KH, KW, C, K), out (N, K, OH, OW)
    N, C, H, W, K, OH, OW, KH, KW,
    stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, OHW,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    HAS_BIAS: tl.constexpr,
):
    M = N * OHW
    pid_m, pid_n = _grouped_tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(K, BLOCK_N),
                                 GROUP_M)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # output pixels (n, oh, ow)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # output channels
    ks = tl.arange(0, BLOCK_K)
    n, pixel = rows // OHW, rows % OHW
    # each row's window corner; tap (i, j) shifts it by (i*dh, j*dw). A tail row's corner
    # is put at ih0 = H, below the image for every tap, so the padding mask also drops it.
    ih0 = tl.where(rows < M, pixel // OW * stride_h - pad_h, H)
    iw0 = pixel % OW * stride_w - pad_w
    # may point outside x (padding, tail rows): only ever dereferenced under the mask
    x_rows = x_ptr + ((n * H + ih0) * W + iw0).to(tl.int64) * C
    a_ptrs = x_rows[:, None] + ks[None, :]  # + the step's scalar offset
    b_offsets = ks[:, None] * K + cols[None, :]

    acc_dtype = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=acc_dtype)
    c0 = 0
    i = 0
    j = 0
    # one flat loop over (tap, channel block) pipelines better than two nested ones
    for _ in range(KH * KW * tl.cdiv(C, BLOCK_K)):
        # 0 <= ih < H in one unsigned compare: a negative ih wraps to above 2**31
        row_ok = (((ih0 + i * dilation_h).to(tl.uint32, bitcast=True) < H)
                  & ((iw0 + j * dilation_w).to(tl.uint32, bitcast=True) < W))
        channel_ok = ks < C - c0
        tap_offset = (i * dilation_h * W + j * dilation_w).to(tl.int64) * C + c0
        a = tl.load(a_ptrs + tap_offset, mask=row_ok[:, None] & channel_ok[None, :], other=0.0)
        b = tl.load(w_ptr + ((i * KW + j) * C + c0) * K + b_offsets,
                    mask=channel_ok[:, None] & (cols[None, :] < K), other=0.0)
        acc = tl.dot(a, b, acc, input_precision="ieee")
        # the next (tap, channel block), counted rather than divided out of the step number;
        # written out here and in conv2d_backward_input_kernel, as the interpreter makes
        # each call of a @triton.jit helper in the loop cost more than the rest of the step
        c0 = tl.where(c0 + BLOCK_K < C, c0 + BLOCK_K, 0)
        j = tl.where(c0 == 0, j + 1, j)
        i = tl.where(j == KW, i + 1, i)
        j = tl.where(j == KW, 0, j)

    if HAS_BIAS:
        bias = tl.load(bias_ptr + cols, mask=cols < K, other=0.0)
        acc += bias.to(acc_dtype)[None, :]
    _store_nchw(out_ptr, acc, n, pixel, rows, cols, M, K, OHW)


@triton.jit
def conv2d_backward_input_kernel(
    grad_ptr, w_ptr, dx_ptr,  # grad (N, OH, OW, K), w (KH, KW, K, C), dx (N, C, H, W)
    N, C, H, W, K, OH, OW, KH, KW,
    stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, HW,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    M = N * HW
    pid_m, pid_n = _grouped_tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(C, BLOCK_N),
                                 GROUP_M)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # input pixels (n, h, w)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # input channels
    ks = tl.arange(0, BLOCK_K)
    n, pixel = rows // HW, rows % HW
    # output pixel (oh, ow) reads (h, w) through tap (i, j) iff oh*sh == h + ph - i*dh (and
    # likewise for w). A tail row gets th < 0 for every tap, which the mask drops.
    th0 = tl.where(rows < M, pixel // W + pad_h, -1)
    tw0 = pixel % W + pad_w
    b_offsets = ks[:, None] * C + cols[None, :]

    acc_dtype = tl.float64 if grad_ptr.dtype.element_ty == tl.float64 else tl.float32
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=acc_dtype)
    k0 = 0
    i = 0
    j = 0
    for _ in range(KH * KW * tl.cdiv(K, BLOCK_K)):
        # a negative t fails `t % s == 0` or gives oh < 0, whatever `//` rounds to; a stride
        # of 1 is a JIT constant, and the division and remainder fold away
        th = th0 - i * dilation_h
        tw = tw0 - j * dilation_w
        oh = th // stride_h
        ow = tw // stride_w
        row_ok = ((oh.to(tl.uint32, bitcast=True) < OH) & (ow.to(tl.uint32, bitcast=True) < OW)
                  & (th % stride_h == 0) & (tw % stride_w == 0))
        grad_rows = ((n * OH + oh) * OW + ow).to(tl.int64) * K + k0
        channel_ok = ks < K - k0
        a = tl.load(grad_ptr + grad_rows[:, None] + ks[None, :],
                    mask=row_ok[:, None] & channel_ok[None, :], other=0.0)
        b = tl.load(w_ptr + ((i * KW + j) * K + k0) * C + b_offsets,
                    mask=channel_ok[:, None] & (cols[None, :] < C), other=0.0)
        acc = tl.dot(a, b, acc, input_precision="ieee")
        k0 = tl.where(k0 + BLOCK_K < K, k0 + BLOCK_K, 0)  # as in conv2d_forward_kernel
        j = tl.where(k0 == 0, j + 1, j)
        i = tl.where(j == KW, i + 1, i)
        j = tl.where(j == KW, 0, j)

    _store_nchw(dx_ptr, acc, n, pixel, rows, cols, M, C, HW)


@triton.jit
def conv2d_backward_weight_kernel(
    grad_ptr, x_ptr, dw_ptr,  # grad (N, OH, OW, K), x (N, H, W, C), dw (splits, K, C, KH, KW)
    N, C, H, W, K, OH, OW, KW,
    stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, OHW, split_pixels,
    stride_ds, stride_dk, stride_dc, stride_dh, stride_dw,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # grid: (output x input channel tiles, taps, reduction splits)
    tiles_c = tl.cdiv(C, BLOCK_N)
    pid_k = tl.program_id(0) // tiles_c
    pid_c = tl.program_id(0) % tiles_c
    i = tl.program_id(1) // KW
    j = tl.program_id(1) % KW
    split = tl.program_id(2)
    first = split * split_pixels
    end = min(N * OHW, first + split_pixels)

    rows = pid_k * BLOCK_M + tl.arange(0, BLOCK_M)  # output channels
    cols = pid_c * BLOCK_N + tl.arange(0, BLOCK_N)  # input channels
    ks = tl.arange(0, BLOCK_K)
    # grad is (P, K) row-major: its tile is BLOCK_M contiguous channels of BLOCK_K pixels
    a_ptrs = grad_ptr + (first + ks).to(tl.int64)[None, :] * K + rows[:, None]
    # each step's pixels (n, oh, ow) advance by BLOCK_K = step_n*OHW + step_oh*OW + step_ow:
    # carried from step to step with one carry per axis, not divided out per step
    n, pixel = (first + ks) // OHW, (first + ks) % OHW
    oh, ow = pixel // OW, pixel % OW
    step_n, step_oh, step_ow = BLOCK_K // OHW, BLOCK_K % OHW // OW, BLOCK_K % OHW % OW
    acc_dtype = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=acc_dtype)
    for start in range(first, end, BLOCK_K):
        in_split = start + ks < end
        a = tl.load(a_ptrs, mask=(rows[:, None] < K) & in_split[None, :], other=0.0)
        ih = oh * stride_h + (i * dilation_h - pad_h)
        iw = ow * stride_w + (j * dilation_w - pad_w)
        pixel_ok = (in_split & (ih.to(tl.uint32, bitcast=True) < H)
                    & (iw.to(tl.uint32, bitcast=True) < W))
        x_rows = ((n * H + ih) * W + iw).to(tl.int64) * C
        b = tl.load(x_ptr + x_rows[:, None] + cols[None, :],
                    mask=pixel_ok[:, None] & (cols[None, :] < C), other=0.0)
        acc = tl.dot(a, b, acc, input_precision="ieee")
        a_ptrs += BLOCK_K * K
        ow += step_ow
        carry = ow >= OW
        ow = tl.where(carry, ow - OW, ow)
        oh += step_oh + carry.to(tl.int32)
        carry = oh >= OH
        oh = tl.where(carry, oh - OH, oh)
        n += step_n + carry.to(tl.int32)

    dw = dw_ptr + split.to(tl.int64) * stride_ds + i * stride_dh + j * stride_dw
    tl.store(dw + rows[:, None] * stride_dk + cols[None, :] * stride_dc,
             acc.to(dw_ptr.dtype.element_ty), mask=(rows[:, None] < K) & (cols[None, :] < C))


def _kernel_and_config(launcher, kernel, dtype) -> tuple:
    if launcher.interpret:
        return launcher.kernel(kernel), INTERP_CONFIG
    _device_arch()  # refuses GPUs older than Ampere
    return kernel, TILES[min(dtype.itemsize, 4)]


@functools.cache
def _device_arch() -> int:
    return arch_for("conv2d", device_capability(), ARCHS)


def conv2d(launcher, x, weight, bias, stride, padding, dilation):
    """Cross-correlation of x (N, C, H, W) with weight (K, C, KH, KW), plus bias (K,) or None."""
    geometry = conv_geometry("conv2d", x.shape, weight.shape, stride, padding, dilation)
    check_dtypes("conv2d", x, weight, bias)
    if bias is not None and tuple(bias.shape) != (geometry["K"],):
        raise ValueError(f"conv2d: expected a bias of shape ({geometry['K']},) for a weight of "
                         f"shape {tuple(weight.shape)}, got {tuple(bias.shape)}")
    out = launcher.empty(tuple(geometry[d] for d in ("N", "K", "OH", "OW")), x.dtype)
    if out.size == 0:
        return out
    x = to_channels_last(launcher, x)
    bias = None if bias is None else launcher.xp.ascontiguousarray(bias)
    # (KH, KW, C, K): each B tile is then contiguous along the output channels
    weight = launcher.xp.ascontiguousarray(weight.transpose(2, 3, 1, 0))
    kernel, config = _kernel_and_config(launcher, conv2d_forward_kernel, x.dtype)
    pixels = geometry["OH"] * geometry["OW"]
    tiles = (triton.cdiv(geometry["N"] * pixels, config["BLOCK_M"])
             * triton.cdiv(geometry["K"], config["BLOCK_N"]))
    kernel[(tiles,)](launcher.arg(x), launcher.arg(weight),
                     None if bias is None else launcher.arg(bias), launcher.arg(out),
                     *geometry.values(), pixels, HAS_BIAS=bias is not None, **config)
    return out


def conv2d_backward_input(launcher, grad, weight, input_shape, stride, padding, dilation):
    """d(loss)/dx (N, C, H, W) of conv2d, from grad = d(loss)/d(out) (N, K, OH, OW).

    An implicit GEMM over dx's pixels whose mask keeps only the (pixel, tap) pairs that an
    output pixel reaches (the module docstring): no im2col buffer, no scatter, no atomics.
    """
    name = "conv2d_backward_input"
    geometry = conv_geometry(name, tuple(input_shape), weight.shape, stride, padding, dilation)
    check_dtypes(name, grad, weight)
    check_grad(name, grad, geometry)
    dx = launcher.empty(tuple(input_shape), grad.dtype)
    if dx.size == 0:
        return dx
    if grad.size == 0:  # K == 0: nothing flows back
        sum_splits(launcher, None, dx)
        return dx
    grad = to_channels_last(launcher, grad)
    # (KH, KW, K, C): each B tile is then contiguous along the input channels
    weight = launcher.xp.ascontiguousarray(weight.transpose(2, 3, 0, 1))
    kernel, config = _kernel_and_config(launcher, conv2d_backward_input_kernel, grad.dtype)
    pixels = geometry["H"] * geometry["W"]
    tiles = (triton.cdiv(geometry["N"] * pixels, config["BLOCK_M"])
             * triton.cdiv(geometry["C"], config["BLOCK_N"]))
    kernel[(tiles,)](launcher.arg(grad), launcher.arg(weight), launcher.arg(dx),
                     *geometry.values(), pixels, **config)
    return dx


def backward_weight_splits(pixels: int, programs: int, block_k: int) -> tuple[int, int]:
    """(splits, pixels per split) of the backward-weight reduction over `pixels` = N*OH*OW.

    Enough splits that about TARGET_PROGRAMS programs run, none shorter than
    MIN_SPLIT_PIXELS; each split is a whole number of BLOCK_K steps and none is empty.
    """
    splits = max(1, min(TARGET_PROGRAMS // programs, pixels // MIN_SPLIT_PIXELS))
    split_pixels = max(1, triton.cdiv(triton.cdiv(pixels, splits), block_k)) * block_k
    return max(1, triton.cdiv(pixels, split_pixels)), split_pixels


def conv2d_backward_weight(launcher, grad, x, weight_shape, stride, padding, dilation):
    """d(loss)/d(weight) (K, C, KH, KW) of conv2d, from grad (N, K, OH, OW) and its input x.

    A GEMM per tap over the N*OH*OW pixels, split into fp32 partial sums when the channel
    tiles alone would leave the GPU idle (see backward_weight_splits).
    """
    name = "conv2d_backward_weight"
    geometry = conv_geometry(name, x.shape, tuple(weight_shape), stride, padding, dilation)
    check_dtypes(name, grad, x)
    check_grad(name, grad, geometry)
    dw = launcher.empty(tuple(weight_shape), x.dtype)
    if dw.size == 0:
        return dw
    if grad.size == 0:  # N == 0: an empty sum
        sum_splits(launcher, None, dw)
        return dw
    grad, x = to_channels_last(launcher, grad), to_channels_last(launcher, x)
    kernel, config = _kernel_and_config(launcher, conv2d_backward_weight_kernel, x.dtype)
    channel_tiles = (triton.cdiv(geometry["K"], config["BLOCK_M"])
                     * triton.cdiv(geometry["C"], config["BLOCK_N"]))
    taps = geometry["KH"] * geometry["KW"]
    pixels = geometry["OH"] * geometry["OW"]
    splits, split_pixels = backward_weight_splits(geometry["N"] * pixels,
                                                  channel_tiles * taps, config["BLOCK_K"])
    # split sums are kept in the accumulator's precision and added once, then rounded
    partial = dw[None] if splits == 1 else launcher.empty(
        (splits,) + dw.shape, np.float64 if x.dtype == np.float64 else np.float32)
    args = {key: value for key, value in geometry.items() if key != "KH"}
    config = {key: value for key, value in config.items() if key != "GROUP_M"}
    kernel[(channel_tiles, taps, splits)](
        launcher.arg(grad), launcher.arg(x), launcher.arg(partial), *args.values(), pixels,
        split_pixels, *[s // partial.itemsize for s in partial.strides], **config)
    if splits > 1:
        sum_splits(launcher, partial, dw)
    return dw
