"""2-D convolution (cross-correlation, NCHW, zero padding, groups=1) as implicit GEMM.

Each of the three kernels is a tiled matrix product whose A or B operand is an im2col
matrix that never exists in memory: a program computes, from its tile's row and
column indices, where each element lives in the NCHW tensor and gathers its tile
straight from there, masking the padding and the tails to 0. The im2col matrix of a
3x3 convolution is 9 times the input; materialising it would write and re-read that.

With P = N*OH*OW output pixels and R = KH*KW taps (the reference is backend/reference_conv.py):

- conv2d: out (P x K) = X_col (P x C*R) @ W (C*R x K). A program owns BLOCK_M output
  pixels x BLOCK_N output channels. Its reduction runs tap-major: for each tap (i, j)
  the input pixel of every row, (oh*sh - ph + i*dh, ow*sw - pw + j*dw), and its
  padding mask are computed once, then BLOCK_K input channels at a time are gathered.
  The only per-step index work is on BLOCK_M row vectors, never a div/mod per element.
  Input channels are padded to BLOCK_K per tap, so a first layer with C=3 wastes most
  of each step; that layer is a tiny share of a network's FLOPs. Bias is added to the
  fp32 accumulator in the epilogue.
- conv2d_backward_input: dx (N*H*W x C) = G_col (N*H*W x K*R) @ W (K*R x C), the
  transposed convolution, gathered the other way round. Input pixel h receives tap i
  from output row oh only when oh*sh = h + ph - i*dh, i.e. when t = h + ph - i*dh is
  >= 0, divisible by sh and t/sh < OH; the mask drops every other (pixel, tap) pair.
  Nothing is scattered, so there are no atomics, and every dx element is written once.
  With stride s only one tap in s (per axis) survives the mask for a given pixel, so
  the tensor cores do sh*sw times the useful work on stride-2 layers (the masked
  loads cost no memory traffic); splitting dx pixels by (h % sh, w % sw) phase would
  remove that and is left undone: stride-2 layers are few.
- conv2d_backward_weight: dW (K x C, per tap) = G (K x P) @ X_col (P x C). A program
  owns BLOCK_M output channels x BLOCK_N input channels of one tap (grid axis 1), so a
  reduction step needs the tap's pixel offsets for BLOCK_K pixels only. The grid then
  has just K/BLOCK_M * C/BLOCK_N * R programs (18 for a 128-channel 3x3 layer) against a
  reduction of P (200k for batch 64 at 56x56): the reduction is split across grid axis 2
  into fp32 partial sums that the launcher adds (split-K, deterministic, no atomics).

Programs of conv2d and conv2d_backward_input walk their tiles in matmul.py's grouped
order, so a wave shares rows of A and columns of B in L2. The weight (tiny next to the
activations) is re-laid out once per call so its tiles are read with unit stride along
the GEMM's N axis; activations and gradients are read in place through their strides
(any layout, slices, channels-last). fp16/bf16 accumulate in fp32, fp32 at full IEEE
precision (`input_precision="ieee"`), float64 (the "interp" gradient checks) in float64.
"""

from __future__ import annotations

import functools

import numpy as np
import triton
import triton.language as tl

from tinygrad_like.kernels.triton.launch import arch_for, device_capability

# Tiles by operand width, the same on A100 (sm_80) and H100 (sm_90); every kernel and dtype
# is compiled for both by tests/test_kernel_compile.py and none may spill. A gathered tile
# cannot be proven contiguous, so its loads are element-wise, each with a 64-bit address in
# a register: 128 x 128 tiles spill even in fp16 (255 registers and a stack), 128 x 64 with
# 8 warps holds 16-bit operands in about 175. fp32 runs on the FMA units and keeps its
# products' operands in registers too, so it takes 64 x 64 tiles in 16-wide steps, spread
# over 8 warps (with 4, ptxas caps sm_90 at 168 registers and spills). float64
# (on a GPU only for gradient checks) uses the fp32 tile.
TILES = {
    2: {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8, "num_warps": 8,
        "num_stages": 2},
    4: {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 16, "GROUP_M": 8, "num_warps": 8,
        "num_stages": 3},
}
ARCHS = (80, 90)
# The interpreter runs every program in Python: small tiles keep the tests fast.
INTERP_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16, "GROUP_M": 4}
SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64")
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
def conv2d_forward_kernel(
    x_ptr, w_ptr, bias_ptr, out_ptr,
    N, C, H, W, K, OH, OW, KH, KW,
    stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
    stride_xn, stride_xc, stride_xh, stride_xw,
    stride_wh, stride_ww, stride_wc, stride_wk,  # the weight viewed as (KH, KW, C, K)
    stride_bias, stride_on, stride_ok, stride_oh, stride_ow,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    HAS_BIAS: tl.constexpr,
):
    M = N * OH * OW
    pid_m, pid_n = _grouped_tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(K, BLOCK_N),
                                 GROUP_M)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # output pixels (n, oh, ow)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # output channels
    ks = tl.arange(0, BLOCK_K)
    n, oh, ow = rows // (OH * OW), rows // OW % OH, rows % OW
    # each row's window corner; tap (i, j) shifts it by (i*dh, j*dw), a scalar offset
    ih0 = oh * stride_h - pad_h
    iw0 = ow * stride_w - pad_w
    # may point outside x (padding, tail rows): only ever dereferenced under the mask
    x_rows = x_ptr + n.to(tl.int64) * stride_xn + ih0 * stride_xh + iw0 * stride_xw

    acc_dtype = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=acc_dtype)
    c_steps = tl.cdiv(C, BLOCK_K)
    # one flat loop over (tap, channel block) pipelines better than two nested ones
    for step in range(KH * KW * c_steps):
        i = step // c_steps // KW
        j = step // c_steps % KW
        c = step % c_steps * BLOCK_K + ks
        ih = ih0 + i * dilation_h
        iw = iw0 + j * dilation_w
        row_ok = (rows < M) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        tap_offset = i * dilation_h * stride_xh + j * dilation_w * stride_xw
        a = tl.load(x_rows[:, None] + tap_offset + c[None, :] * stride_xc,
                    mask=row_ok[:, None] & (c[None, :] < C), other=0.0)
        b = tl.load(w_ptr + i * stride_wh + j * stride_ww + c[:, None] * stride_wc
                    + cols[None, :] * stride_wk,
                    mask=(c[:, None] < C) & (cols[None, :] < K), other=0.0)
        acc = tl.dot(a, b, acc, input_precision="ieee")

    if HAS_BIAS:
        bias = tl.load(bias_ptr + cols * stride_bias, mask=cols < K, other=0.0)
        acc += bias.to(acc_dtype)[None, :]
    out_rows = n.to(tl.int64) * stride_on + oh * stride_oh + ow * stride_ow
    tl.store(out_ptr + out_rows[:, None] + cols[None, :] * stride_ok,
             acc.to(out_ptr.dtype.element_ty), mask=(rows[:, None] < M) & (cols[None, :] < K))


@triton.jit
def conv2d_backward_input_kernel(
    grad_ptr, w_ptr, dx_ptr,
    N, C, H, W, K, OH, OW, KH, KW,
    stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
    stride_gn, stride_gk, stride_gh, stride_gw,
    stride_wh, stride_ww, stride_wk, stride_wc,  # the weight viewed as (KH, KW, K, C)
    stride_dn, stride_dc, stride_dh, stride_dw,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    M = N * H * W
    pid_m, pid_n = _grouped_tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(C, BLOCK_N),
                                 GROUP_M)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # input pixels (n, h, w)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # input channels
    ks = tl.arange(0, BLOCK_K)
    n, h, w = rows // (H * W), rows // W % H, rows % W
    grad_rows = grad_ptr + n.to(tl.int64) * stride_gn

    acc_dtype = tl.float64 if grad_ptr.dtype.element_ty == tl.float64 else tl.float32
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=acc_dtype)
    k_steps = tl.cdiv(K, BLOCK_K)
    for step in range(KH * KW * k_steps):
        i = step // k_steps // KW
        j = step // k_steps % KW
        k = step % k_steps * BLOCK_K + ks
        # output pixel (oh, ow) reads (h, w) through tap (i, j) iff oh*sh == h + ph - i*dh
        # (and likewise for w); a negative t fails `t >= 0` whatever `//` rounds to
        th = h + pad_h - i * dilation_h
        tw = w + pad_w - j * dilation_w
        oh = th // stride_h
        ow = tw // stride_w
        row_ok = ((rows < M) & (th >= 0) & (tw >= 0) & (th % stride_h == 0)
                  & (tw % stride_w == 0) & (oh < OH) & (ow < OW))
        a = tl.load(grad_rows[:, None] + (oh * stride_gh + ow * stride_gw)[:, None]
                    + k[None, :] * stride_gk,
                    mask=row_ok[:, None] & (k[None, :] < K), other=0.0)
        b = tl.load(w_ptr + i * stride_wh + j * stride_ww + k[:, None] * stride_wk
                    + cols[None, :] * stride_wc,
                    mask=(k[:, None] < K) & (cols[None, :] < C), other=0.0)
        acc = tl.dot(a, b, acc, input_precision="ieee")

    dx_rows = n.to(tl.int64) * stride_dn + h * stride_dh + w * stride_dw
    tl.store(dx_ptr + dx_rows[:, None] + cols[None, :] * stride_dc,
             acc.to(dx_ptr.dtype.element_ty), mask=(rows[:, None] < M) & (cols[None, :] < C))


@triton.jit
def conv2d_backward_weight_kernel(
    grad_ptr, x_ptr, dw_ptr,
    N, C, H, W, K, OH, OW, KW,
    stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, split_pixels,
    stride_gn, stride_gk, stride_gh, stride_gw,
    stride_xn, stride_xc, stride_xh, stride_xw,
    stride_ds, stride_dk, stride_dc, stride_dh, stride_dw,  # (splits, K, C, KH, KW)
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # grid: (output x input channel tiles, taps, reduction splits)
    tiles_c = tl.cdiv(C, BLOCK_N)
    pid_k = tl.program_id(0) // tiles_c
    pid_c = tl.program_id(0) % tiles_c
    i = tl.program_id(1) // KW
    j = tl.program_id(1) % KW
    split = tl.program_id(2)
    P = N * OH * OW
    first = split * split_pixels
    end = min(P, first + split_pixels)

    rows = pid_k * BLOCK_M + tl.arange(0, BLOCK_M)  # output channels
    cols = pid_c * BLOCK_N + tl.arange(0, BLOCK_N)  # input channels
    ks = tl.arange(0, BLOCK_K)
    acc_dtype = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=acc_dtype)
    for start in range(first, end, BLOCK_K):
        p = start + ks  # output pixels (n, oh, ow) of this step
        n, oh, ow = (p // (OH * OW)).to(tl.int64), p // OW % OH, p % OW
        ih = oh * stride_h - pad_h + i * dilation_h
        iw = ow * stride_w - pad_w + j * dilation_w
        a = tl.load(grad_ptr + rows[:, None] * stride_gk
                    + (n * stride_gn + oh * stride_gh + ow * stride_gw)[None, :],
                    mask=(rows[:, None] < K) & (p[None, :] < end), other=0.0)
        pixel_ok = (p < end) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        b = tl.load(x_ptr + (n * stride_xn + ih * stride_xh + iw * stride_xw)[:, None]
                    + cols[None, :] * stride_xc,
                    mask=pixel_ok[:, None] & (cols[None, :] < C), other=0.0)
        acc = tl.dot(a, b, acc, input_precision="ieee")

    dw = dw_ptr + split.to(tl.int64) * stride_ds + i * stride_dh + j * stride_dw
    tl.store(dw + rows[:, None] * stride_dk + cols[None, :] * stride_dc,
             acc.to(dw_ptr.dtype.element_ty), mask=(rows[:, None] < K) & (cols[None, :] < C))


def _pair_of_ints(name: str, what: str, value, minimum: int) -> tuple[int, int]:
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and v >= minimum for v in value)):
        raise ValueError(f"{name}: {what} must be a pair of ints >= {minimum}, got {value!r}")
    return int(value[0]), int(value[1])


def conv_geometry(name: str, input_shape, weight_shape, stride, padding, dilation) -> dict:
    """Sizes and steps of one convolution, validated; OH/OW as in torch.nn.functional.conv2d."""
    stride = _pair_of_ints(name, "stride", stride, 1)
    padding = _pair_of_ints(name, "padding", padding, 0)
    dilation = _pair_of_ints(name, "dilation", dilation, 1)
    if len(input_shape) != 4 or len(weight_shape) != 4:
        raise ValueError(f"{name}: expected a 4-D input (N, C, H, W) and weight (K, C, KH, KW), "
                         f"got shapes {tuple(input_shape)} and {tuple(weight_shape)}")
    (n, c, h, w), (k, weight_c, kh, kw) = input_shape, weight_shape
    if c != weight_c:
        raise ValueError(f"{name}: input of shape {tuple(input_shape)} has {c} channels but the "
                         f"weight of shape {tuple(weight_shape)} expects {weight_c}")
    oh, ow = ((size + 2 * pad - dil * (kernel - 1) - 1) // step + 1 for size, kernel, step, pad, dil
              in zip((h, w), (kh, kw), stride, padding, dilation))
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: a {kh}x{kw} kernel (dilation {dilation}) does not fit the "
                         f"{h}x{w} input padded by {padding}: the output would be {oh}x{ow}")
    return {"N": n, "C": c, "H": h, "W": w, "K": k, "OH": oh, "OW": ow, "KH": kh, "KW": kw,
            "stride_h": stride[0], "stride_w": stride[1], "pad_h": padding[0],
            "pad_w": padding[1], "dilation_h": dilation[0], "dilation_w": dilation[1]}


def _check_dtypes(name: str, *arrays) -> None:
    dtypes = [a.dtype for a in arrays if a is not None]
    if any(d != dtypes[0] for d in dtypes):
        raise TypeError(f"{name}: expected one dtype, got {', '.join(map(str, dtypes))}")
    if dtypes[0].name not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}: the Triton kernel supports {', '.join(SUPPORTED_DTYPES)}, "
                        f"got {dtypes[0]}")


def _check_grad(name: str, grad, geometry: dict) -> None:
    expected = tuple(geometry[d] for d in ("N", "K", "OH", "OW"))
    if tuple(grad.shape) != expected:
        raise ValueError(f"{name}: expected a gradient of shape {expected} (the convolution's "
                         f"output), got {tuple(grad.shape)}")


def _readable(launcher, array):
    """`array`, copied only if it has negative strides (the interpreter's torch views cannot)."""
    return launcher.xp.ascontiguousarray(array) if any(s < 0 for s in array.strides) else array


def _strides(array) -> list[int]:
    return [s // array.itemsize for s in array.strides]


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
    _check_dtypes("conv2d", x, weight, bias)
    if bias is not None and tuple(bias.shape) != (geometry["K"],):
        raise ValueError(f"conv2d: expected a bias of shape ({geometry['K']},) for a weight of "
                         f"shape {tuple(weight.shape)}, got {tuple(bias.shape)}")
    out = launcher.empty(tuple(geometry[d] for d in ("N", "K", "OH", "OW")), x.dtype)
    if out.size == 0:
        return out
    x = _readable(launcher, x)
    bias = None if bias is None else _readable(launcher, bias)
    # (KH, KW, C, K): each B tile is then contiguous along the output channels
    weight = launcher.xp.ascontiguousarray(weight.transpose(2, 3, 1, 0))
    kernel, config = _kernel_and_config(launcher, conv2d_forward_kernel, x.dtype)
    tiles = (triton.cdiv(out.shape[0] * out.shape[2] * out.shape[3], config["BLOCK_M"])
             * triton.cdiv(geometry["K"], config["BLOCK_N"]))
    bias_arg, bias_stride = (None, 0) if bias is None else (launcher.arg(bias), _strides(bias)[0])
    kernel[(tiles,)](launcher.arg(x), launcher.arg(weight), bias_arg, launcher.arg(out),
                     *geometry.values(), *_strides(x), *_strides(weight), bias_stride,
                     *_strides(out), HAS_BIAS=bias is not None, **config)
    return out


def conv2d_backward_input(launcher, grad, weight, input_shape, stride, padding, dilation):
    """d(loss)/dx (N, C, H, W) of conv2d, from grad = d(loss)/d(out) (N, K, OH, OW).

    An implicit GEMM over dx's pixels whose mask keeps only the (pixel, tap) pairs that an
    output pixel reaches (the module docstring): no im2col buffer, no scatter, no atomics.
    """
    name = "conv2d_backward_input"
    geometry = conv_geometry(name, tuple(input_shape), weight.shape, stride, padding, dilation)
    _check_dtypes(name, grad, weight)
    _check_grad(name, grad, geometry)
    dx = launcher.empty(tuple(input_shape), grad.dtype)
    if dx.size == 0:
        return dx
    if grad.size == 0:  # K == 0: nothing flows back
        dx[...] = 0
        return dx
    grad = _readable(launcher, grad)
    # (KH, KW, K, C): each B tile is then contiguous along the input channels
    weight = launcher.xp.ascontiguousarray(weight.transpose(2, 3, 0, 1))
    kernel, config = _kernel_and_config(launcher, conv2d_backward_input_kernel,
                                        grad.dtype)
    tiles = (triton.cdiv(dx.shape[0] * dx.shape[2] * dx.shape[3], config["BLOCK_M"])
             * triton.cdiv(geometry["C"], config["BLOCK_N"]))
    kernel[(tiles,)](launcher.arg(grad), launcher.arg(weight), launcher.arg(dx),
                     *geometry.values(), *_strides(grad), *_strides(weight), *_strides(dx),
                     **config)
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
    _check_dtypes(name, grad, x)
    _check_grad(name, grad, geometry)
    dw = launcher.empty(tuple(weight_shape), x.dtype)
    if dw.size == 0:
        return dw
    if grad.size == 0:  # N == 0: an empty sum
        dw[...] = 0
        return dw
    grad, x = _readable(launcher, grad), _readable(launcher, x)
    kernel, config = _kernel_and_config(launcher, conv2d_backward_weight_kernel, x.dtype)
    channel_tiles = (triton.cdiv(geometry["K"], config["BLOCK_M"])
                     * triton.cdiv(geometry["C"], config["BLOCK_N"]))
    taps = geometry["KH"] * geometry["KW"]
    splits, split_pixels = backward_weight_splits(grad.size // geometry["K"],
                                                  channel_tiles * taps, config["BLOCK_K"])
    # split sums are kept in the accumulator's precision and added once, then rounded
    partial = dw[None] if splits == 1 else launcher.empty(
        (splits,) + dw.shape, np.float64 if x.dtype == np.float64 else np.float32)
    args = {key: value for key, value in geometry.items() if key != "KH"}
    config = {key: value for key, value in config.items() if key != "GROUP_M"}
    kernel[(channel_tiles, taps, splits)](
        launcher.arg(grad), launcher.arg(x), launcher.arg(partial), *args.values(), split_pixels,
        *_strides(grad), *_strides(x), *_strides(partial), **config)
    if splits > 1:
        dw[...] = partial.sum(axis=0)
    return dw
