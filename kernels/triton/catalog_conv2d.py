"""The conv2d kernels' compile variants and roofline model (see catalog.py)."""

from __future__ import annotations

import math

import triton

from tinygrad_like.kernels.triton import (conv2d, conv2d_passes)
from tinygrad_like.kernels.triton.variants import GPU_DTYPES, ITEMSIZE, KernelVariant


# ---- conv2d.py ------------------------------------------------------------------------------
# the roofline benchmark: a ResNet stage-2 layer, 3x3, stride 1, padding 1
CONV2D_BENCH = {"input": (64, 128, 56, 56), "weight": (128, 128, 3, 3)}


def conv2d_variants(archs=conv2d.ARCHS) -> list[KernelVariant]:
    """The three kernels as the launchers call them on contiguous benchmark operands, and
    conv2d_passes.py's NCHW -> NHWC copy and split-K sum.

    One variant per kernel x dtype x architecture (notes["arch"]), with its dtype's tile.
    As the JIT would, arguments equal to 1 become constants and the others are marked
    divisible by 16 where they are (notes["attrs"]). The forward kernel is compiled
    with its bias epilogue, the backward-weight kernel writing fp32 split-K partial sums.

    Traffic (`_conv2d_traffic`): unlike the matmul's no-reuse model, the KH*KW taps of a
    gather re-read the rows one program has just read, from L2, so a forward or
    backward-input program reads its own output rows' input rows plus the kernel's halo
    (KH - 1 rows) once from HBM; the weight (295 KB here) stays in L2 and is read once.
    Counting each gathered im2col element as an HBM read instead would claim 9 times the
    activation traffic. The launchers' NCHW -> NHWC copies (read and write) and weight
    re-layout count in full. The ideal reads each operand once.
    """
    return [variant for arch in archs for dtype in GPU_DTYPES
            for variant in _conv2d_variants(arch, dtype, conv2d.TILES[ITEMSIZE[dtype]])]


def _conv2d_variants(arch: int, dtype: str, config: dict) -> list[KernelVariant]:
    pointer, itemsize = f"*{dtype}", ITEMSIZE[dtype]
    geometry = conv2d.conv_geometry("conv2d", CONV2D_BENCH["input"], CONV2D_BENCH["weight"],
                                    (1, 1), (1, 1), (1, 1))
    n, c, h, w, k, oh, ow, kh, kw = list(geometry.values())[:9]
    pixels, taps, image = n * oh * ow, kh * kw, n * c * h * w
    weight, output = k * c * taps, pixels * k
    block_m, block_n, block_k = config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"]
    flops = 2.0 * pixels * k * c * taps
    relayout = 2 * weight  # the launcher's weight transpose: read once, written once

    tiles_k, tiles_c = triton.cdiv(k, block_m), triton.cdiv(c, block_n)
    # a program's rows of output (input) pixels and their halo of input (output) rows
    forward_rows = triton.cdiv(pixels, block_m) * tiles_k * (block_m / ow + kh - 1) * w * c
    input_rows = triton.cdiv(n * h * w, block_m) * tiles_c * (block_m / w + kh - 1) * ow * k
    forward = _conv2d_variant("conv2d", conv2d.conv2d_forward_kernel, arch, dtype, config,
                              {"x_ptr": pointer, "w_ptr": pointer, "bias_ptr": pointer,
                               "out_ptr": pointer}, [*geometry.values(), oh * ow],
                              {"HAS_BIAS": True}, flops=flops,
                              bytes_moved=(forward_rows + weight + output + k + relayout
                                           + 2 * image) * itemsize,
                              ideal_bytes=(image + weight + output + k) * itemsize)

    backward_input = _conv2d_variant(
        "conv2d_backward_input", conv2d.conv2d_backward_input_kernel, arch, dtype, config,
        {"grad_ptr": pointer, "w_ptr": pointer, "dx_ptr": pointer},
        [*geometry.values(), h * w], {}, flops=flops,
        bytes_moved=(input_rows + weight + image + relayout + 2 * output) * itemsize,
        ideal_bytes=(output + weight + image) * itemsize)

    splits, split_pixels = conv2d.backward_weight_splits(pixels, tiles_k * tiles_c * taps,
                                                         block_k)
    weight_geometry = [value for key, value in geometry.items() if key != "KH"]
    weight_ints = [*weight_geometry, oh * ow, split_pixels, *_contiguous(splits, k, c, kh, kw)]
    backward_weight = _conv2d_variant(
        "conv2d_backward_weight", conv2d.conv2d_backward_weight_kernel, arch, dtype,
        {key: value for key, value in config.items() if key != "GROUP_M"},
        {"grad_ptr": pointer, "x_ptr": pointer, "dw_ptr": "*fp32" if splits > 1 else pointer},
        weight_ints, {}, flops=flops,
        # the programs of one split (grid axes 0 and 1, which vary fastest) read the same
        # grad and x pixels, each tap shifted by less than a row: from HBM once per split,
        # with x's halo rows; the fp32 partial sums are written, read back and summed
        bytes_moved=(output + image * (1 + (kh - 1) * splits / (n * oh)) + 2 * (output + image))
        * itemsize + (2 * splits * weight * 4 if splits > 1 else 0) + weight * itemsize,
        ideal_bytes=(output + image + weight) * itemsize)
    backward_weight.notes["splits"] = splits

    passes_config = conv2d_passes.CHANNELS_LAST_CONFIG
    channels_last = _conv2d_variant(
        "conv2d_channels_last", conv2d_passes.channels_last_kernel, arch, dtype, passes_config,
        {"x_ptr": pointer, "out_ptr": pointer}, [c, h * w, c * h * w, h * w, 1], {}, flops=0,
        bytes_moved=2 * image * itemsize, ideal_bytes=2 * image * itemsize)
    sum_config = conv2d_passes.SUM_CONFIG
    sum_splits = _conv2d_variant(
        "conv2d_sum_splits", conv2d_passes.sum_splits_kernel, arch, dtype, sum_config,
        {"partial_ptr": "*fp32", "out_ptr": pointer}, [splits, weight], {},
        flops=splits * weight, bytes_moved=splits * weight * 4 + weight * itemsize,
        ideal_bytes=splits * weight * 4 + weight * itemsize)
    for copy in (channels_last, sum_splits):
        copy.tensor_cores = False
    return [forward, backward_input, backward_weight, channels_last, sum_splits]


def _contiguous(*shape: int) -> list[int]:
    """Element strides of a C-contiguous array of `shape`."""
    return [math.prod(shape[i + 1:]) for i in range(len(shape))]


def _conv2d_variant(name, kernel, arch, dtype, config, pointers, ints, flags, **roofline):
    """A KernelVariant whose signature mirrors the JIT's specialisation of `ints`."""
    runtime = [p.name for p in kernel.params if not p.is_constexpr and p.name not in pointers]
    if len(runtime) != len(ints):
        raise ValueError(f"{name}: {len(ints)} benchmark values for {len(runtime)} arguments")
    values = dict(zip(runtime, ints))
    constexprs = {key: value for key, value in config.items() if key.isupper()}
    constexprs.update(flags)
    constexprs.update({key: 1 for key, value in values.items() if value == 1})
    signature = {arg: "constexpr" if arg in constexprs else pointers.get(arg, "i32")
                 for arg in kernel.arg_names}
    divisible = [arg for arg, kind in signature.items()
                 if kind.startswith("*") or (kind == "i32" and values[arg] % 16 == 0)]
    return KernelVariant(
        name=name, kernel=kernel, dtype=dtype, signature=signature, constexprs=constexprs,
        num_warps=config["num_warps"], num_stages=config["num_stages"],
        tensor_cores=dtype != "fp32", shape="N64 C=K=128 56x56 3x3",
        notes={"arch": arch, "attrs": {arg: [["tt.divisibility", 16]] for arg in divisible}},
        **roofline)
