"""Every Triton kernel's ahead-of-time compile variants and their roofline model.

For each kernel module of the kernel table, the launches that `tests/test_kernel_compile.py`
compiles for sm_80 and sm_90 (it must not spill) and that `tinygrad-like kernels`
(kernel_report.py) tabulates: one `KernelVariant` per (kernel, dtype, tuned configuration),
its signature specialised as Triton's JIT would for the benchmark call (unit strides
constant, pointers and multiples of 16 marked divisible), with the FLOPs, the bytes its
tiling moves from HBM and the ideal bytes on the module's benchmark shape. The tiles
themselves stay with the launchers that use them (each module's CONFIGS / TILES).

COMPILE_VARIANTS maps a kernel module's name (as backend/triton_kernels.py names it) to the
function that lists its variants; kernel_report.py refuses a kernel module missing from it.
"""

from __future__ import annotations

import math

import triton

from tinygrad_like.kernels.triton import (attention, attention_backward, conv2d, cross_entropy,
                                          matmul, softmax)
from tinygrad_like.kernels.triton.launch import num_warps_for
from tinygrad_like.kernels.triton.variants import ITEMSIZE, KernelVariant, jit_attrs, signature_of

GPU_DTYPES = ("fp32", "fp16", "bf16")  # the dtypes every GPU kernel is compiled for


# ---- matmul.py ------------------------------------------------------------------------------
MATMUL_SIZE = 4096  # M = N = K of the roofline estimate


def matmul_variants(archs=(80, 90)) -> list[KernelVariant]:
    """The kernel as the JIT compiles it for contiguous 4096 x 4096 operands, per config.

    "matmul" variants cover every dtype x config of each architecture (notes["arch"]);
    "linear_gelu" (bias + GELU epilogue) covers each config in fp32, where the FMA
    accumulator leaves the fewest registers spare. The signature mirrors the JIT's
    specialisation for that call: unit strides are constants, and pointers, sizes and
    other strides are divisible by 16 (notes["attrs"]).

    Roofline traffic assumes no L2 reuse at all: A is read once per column of tiles
    (N / BLOCK_N times), B once per row of tiles (M / BLOCK_M times), C written once.
    """
    variants = []
    for arch in archs:
        for config in matmul.CONFIGS[arch]:
            variants += [_matmul_variant(arch, dtype, config) for dtype in GPU_DTYPES]
            variants.append(_matmul_variant(arch, "fp32", config, activation="gelu"))
    return variants


def _matmul_variant(arch: int, dtype: str, config: dict, activation: str = "none") -> KernelVariant:
    size, itemsize, pointer = MATMUL_SIZE, ITEMSIZE[dtype], f"*{dtype}"
    fused = activation != "none"
    signature = {name: "i32" for name in matmul.matmul_kernel.arg_names}
    signature.update(a_ptr=pointer, b_ptr=pointer, c_ptr=pointer, bias_ptr=pointer)
    constexprs = dict(stride_ak=1, stride_bn=1, stride_cn=1, ALLOW_TF32=False, HAS_BIAS=fused,
                      ACTIVATION=activation, **{k: v for k, v in config.items() if k.isupper()})
    if not fused:
        constexprs["bias_ptr"] = None
    signature.update({name: "constexpr" for name in constexprs})
    divisible = [name for name, kind in signature.items() if kind != "constexpr"]
    reads = size * size * (size / config["BLOCK_N"] + size / config["BLOCK_M"])
    return KernelVariant(
        name=f"linear_{activation}" if fused else "matmul", kernel=matmul.matmul_kernel,
        dtype=dtype, signature=signature, constexprs=constexprs, num_warps=config["num_warps"],
        num_stages=config["num_stages"], tensor_cores=dtype != "fp32",
        shape=f"{size}x{size}x{size}", flops=2.0 * size**3,
        bytes_moved=(reads + size * size + fused * size) * itemsize,
        ideal_bytes=(3 * size * size + fused * size) * itemsize,
        notes={"arch": arch, "attrs": {name: [["tt.divisibility", 16]] for name in divisible}})


# ---- softmax.py -----------------------------------------------------------------------------
SOFTMAX_SHAPE = (4096, 4096)  # the softmax benchmark: rows x columns, last axis
VOCABULARY_SHAPE = (4096, 50257)  # where the online kernels run: GPT-2's vocabulary


def softmax_variants() -> list[KernelVariant]:
    """Every softmax kernel x {fp32, fp16, bf16} x {single pass, online}, as the GPU launches it.

    The single-pass kernels are modelled on the (4096, 4096) benchmark (BLOCK 4096); the online
    ones on a (4096, 50257) vocabulary softmax, the width they exist for. Strides and sizes that
    equal 1 are compile-time constants, as the JIT specializes them for a contiguous last axis.
    """
    variants = []
    for dtype in GPU_DTYPES:
        for op, log in (("softmax", False), ("log_softmax", True)):
            for online in (False, True):
                variants.append(_softmax_forward_variant(op, log, online, dtype))
                variants.append(_softmax_backward_variant(op, log, online, dtype))
    return variants


def _softmax_forward_variant(op: str, log: bool, online: bool, dtype: str) -> KernelVariant:
    rows, cols = VOCABULARY_SHAPE if online else SOFTMAX_SHAPE
    elements, itemsize = rows * cols, ITEMSIZE[dtype]
    # per element: max, subtract, exp, add; then divide (softmax) or subtract (log); the online
    # write loop subtracts and (softmax) exponentiates again
    flops = (7 if not log else 6) if online else 5
    return _softmax_variant(f"{op}_forward", online, dtype, ("x_ptr", "out_ptr"), log, rows,
                            cols, flops=flops * elements,
                            bytes_moved=(3 if online else 2) * elements * itemsize,
                            ideal_bytes=2 * elements * itemsize)


def _softmax_backward_variant(op: str, log: bool, online: bool, dtype: str) -> KernelVariant:
    rows, cols = VOCABULARY_SHAPE if online else SOFTMAX_SHAPE
    elements, itemsize = rows * cols, ITEMSIZE[dtype]
    # the online sum loop re-reads g and y (only g for log-softmax) before the writing loop
    passes = (4 if log else 5) if online else 3
    return _softmax_variant(f"{op}_backward", online, dtype, ("grad_ptr", "y_ptr", "out_ptr"),
                            log, rows, cols, flops=4 * elements,
                            bytes_moved=passes * elements * itemsize,
                            ideal_bytes=3 * elements * itemsize)


def _softmax_variant(name, online, dtype, pointers, log, rows, cols, **roofline):
    kernels = ((softmax.softmax_backward_kernel, softmax.softmax_backward_online_kernel)
               if len(pointers) == 3
               else (softmax.softmax_forward_kernel, softmax.softmax_forward_online_kernel))
    kernel = kernels[online]
    block = softmax.ONLINE_BLOCK if online else triton.next_power_of_2(cols)
    constexprs = {"inner": 1, "LOG": log, "BLOCK": block}
    for pointer in pointers:
        tensor = pointer[:-len("_ptr")]
        constexprs[f"{tensor}_col_stride"] = constexprs[f"{tensor}_inner_stride"] = 1
    signature = signature_of(kernel, dtype, constexprs)
    # n_cols and every row stride equal the width (contiguous rows)
    values = {name: cols for name in signature if name == "n_cols" or name.endswith("outer_stride")}
    return KernelVariant(
        name=f"{name}_online" if online else name, kernel=kernel, dtype=dtype,
        signature=signature, constexprs=constexprs, num_warps=num_warps_for(block),
        shape=f"({rows}, {cols})", notes={"block": block, "attrs": jit_attrs(signature, values),
                                          "path": "online" if online else "single pass"},
        **roofline)


# ---- cross_entropy.py -----------------------------------------------------------------------
def cross_entropy_variants() -> list[KernelVariant]:
    """Forward and backward x {fp32, fp16, bf16} on the (4096, 50257) benchmark (GPT-2's
    vocabulary), contiguous logits, the mean reduction's broadcast upstream gradient (stride 0).

    There is no separate single-pass kernel: the forward never re-reads a row (no per-element
    output depends on the row's lse), so a row that fits one BLOCK is the same loop run once,
    and the backward needs no row reduction at all.
    """
    rows, cols = VOCABULARY_SHAPE
    elements, block = rows * cols, cross_entropy.BLOCK_COLS
    values = {"n_cols": cols, "row_stride": cols, "grad_stride": 0, "ignore_index": -100}
    types = {"target_ptr": "*i64", "lse_ptr": "*fp32", "smoothing_ptr": "*fp32"}
    variants = []
    for dtype in GPU_DTYPES:
        itemsize = ITEMSIZE[dtype]
        # per row: the int64 target, the float32 lse (written forward, read backward), and
        # the loss (written) or upstream gradient (read) in the logits' dtype
        per_row = 8 + 4 + itemsize
        for name, kernel, path, flops, logit_passes, constexprs in (
                # per logit: max, subtract, exp, add, and the add of the smoothing sum
                ("cross_entropy_forward", cross_entropy.cross_entropy_forward_kernel,
                 "online row", 5, 1, {"col_stride": 1, "target_stride": 1, "BLOCK": block}),
                # per logit: subtract, exp, subtract, compare-select, multiply
                ("cross_entropy_backward", cross_entropy.cross_entropy_backward_kernel,
                 "row x column tiles", 5, 2,
                 {"col_stride": 1, "target_stride": 1, "lse_stride": 1, "BLOCK": block})):
            signature = signature_of(kernel, dtype, constexprs, types)
            traffic = logit_passes * elements * itemsize + rows * per_row
            variants.append(KernelVariant(
                name=name, kernel=kernel, dtype=dtype, signature=signature,
                constexprs=constexprs, num_warps=num_warps_for(block),
                shape=f"({rows}, {cols})", flops=flops * elements, bytes_moved=traffic,
                ideal_bytes=traffic, notes={"block": block, "path": path,
                                            "attrs": jit_attrs(signature, values)}))
    return variants


# ---- attention.py, attention_backward.py -----------------------------------------------------
ATTENTION_BENCH = {"B": 4, "H": 16, "T": 4096}  # the benchmark: "B4 H16 T4096 D64 causal"
HEAD_DIMS = (64, 128)
ATTENTION_KERNELS = {"forward": attention.attention_forward_kernel,
                     "dq": attention_backward.attention_backward_dq_kernel,
                     "dkdv": attention_backward.attention_backward_dkdv_kernel}


def attention_variants() -> list[KernelVariant]:
    """attention.py's forward kernel; see `_attention_variants`."""
    return _attention_variants(("forward",))


def attention_backward_variants() -> list[KernelVariant]:
    """attention_backward.py's dq and dk/dv kernels; see `_attention_variants`."""
    return _attention_variants(("dq", "dkdv"))


def _attention_variants(jobs: tuple) -> list[KernelVariant]:
    """The `jobs` kernels x {fp16, bf16, fp32} x head dims {64, 128}, as the
    GPU launches them for the causal benchmark: contiguous (Z, T, D) q, k, v, out and g, no
    mask (mask_ptr None), unit column strides constant and the rest divisible by 16.

    Roofline traffic assumes no L2 reuse: the operand a program does not own (k and v in the
    forward and dq kernels, q and g in the dk/dv kernel) is read once per tile pair visited,
    the owned one once. FLOPs are those the tiling does, diagonal tiles in full.
    """
    return [_attention_variant(job, dtype, head_dim) for head_dim in HEAD_DIMS
            for dtype in ("fp16", "bf16", "fp32") for job in jobs]


def _attention_variant(job: str, dtype: str, head_dim: int) -> KernelVariant:
    Z, T = ATTENTION_BENCH["B"] * ATTENTION_BENCH["H"], ATTENTION_BENCH["T"]
    kernel = ATTENTION_KERNELS[job]
    precision = "half" if ITEMSIZE[dtype] == 2 else "full"
    config = attention.CONFIGS[job, precision, head_dim]
    constexprs = {"mask_ptr": None, "HAS_MASK": False, "IS_CAUSAL": True,
                  "BLOCK_M": config["BLOCK_M"], "BLOCK_N": config["BLOCK_N"],
                  "BLOCK_D": head_dim, "BLOCK_DV": head_dim}
    constexprs.update({name: 1 for name in kernel.arg_names
                       if name.startswith("stride_") and name[-1] == "d"})
    types = {name: "*fp32" for name in ("lse_ptr", "delta_ptr", "scale_ptr")}
    signature = signature_of(kernel, dtype, constexprs, types)
    # sizes, row strides (head_dim) and z strides (T * head_dim) are multiples of 16; the
    # mask's strides are the 0s the launcher passes without one
    values = {name: 0 if name.startswith("stride_m") else 16 for name in signature}
    flops, bytes_moved, ideal_bytes = _attention_traffic(job, config, T, head_dim,
                                                         ITEMSIZE[dtype])
    return KernelVariant(
        name=f"attention_{job}" if job == "forward" else f"attention_backward_{job}",
        kernel=kernel, dtype=dtype, signature=signature, constexprs=constexprs,
        num_warps=config["num_warps"], num_stages=config["num_stages"],
        tensor_cores=precision == "half",
        shape=f"B{ATTENTION_BENCH['B']} H{ATTENTION_BENCH['H']} T{T} D{head_dim} causal",
        flops=Z * flops, bytes_moved=Z * bytes_moved, ideal_bytes=Z * ideal_bytes,
        notes={"attrs": jit_attrs(signature, values), "head_dim": head_dim})


def _attention_traffic(job: str, config: dict, T: int, D: int, itemsize: int) -> tuple:
    """(FLOPs, bytes moved, ideal bytes) of one z of the causal benchmark, for one kernel.

    Per tile pair of BLOCK_M queries x BLOCK_N keys the forward does 2 products (q k^T, P v),
    the dq kernel 3 (q k^T, g v^T, ds k) and the dk/dv kernel 4 (k q^T, P^T g, v g^T, ds^T q),
    each 2 * BLOCK_M * BLOCK_N * D FLOPs. A (T, D) array in the input dtype is `matrix` bytes,
    a (T,) float32 row statistic (lse, delta) is `row` bytes.
    """
    block_m, block_n = config["BLOCK_M"], config["BLOCK_N"]
    pairs = causal_tile_pairs(job, T, block_m, block_n)
    matrix, row = T * D * itemsize, T * 4
    pair_flops = 2 * block_m * block_n * D
    if job == "forward":  # reads q, k, v; writes out, lse
        streamed = pairs * block_n * 2 * D * itemsize  # a k and a v block per pair
        return 2 * pairs * pair_flops, matrix + streamed + matrix + row, 4 * matrix + row
    if job == "dq":  # reads q, out, g, lse, k, v; writes delta, dq
        streamed = pairs * block_n * 2 * D * itemsize
        owned = 3 * matrix + 2 * row + matrix
        return 3 * pairs * pair_flops, owned + streamed, owned + 2 * matrix
    # dk/dv: reads k, v, q, g, lse, delta; writes dk, dv
    streamed = pairs * block_m * (2 * D * itemsize + 2 * 4)  # q, g, lse and delta per pair
    owned = 4 * matrix
    return 4 * pairs * pair_flops, owned + streamed, owned + 2 * matrix + 2 * row


def causal_tile_pairs(job: str, T: int, block_m: int, block_n: int) -> int:
    """How many (query block, key block) pairs one kernel's causal loops visit, T = L = S."""
    query_blocks, key_blocks = triton.cdiv(T, block_m), triton.cdiv(T, block_n)
    if job == "dkdv":  # key block n: from the query block holding its first key to the end
        return sum(query_blocks - n * block_n // block_m for n in range(key_blocks))
    return sum(triton.cdiv(min(T, (m + 1) * block_m), block_n) for m in range(query_blocks))


# ---- conv2d.py ------------------------------------------------------------------------------
# the roofline benchmark: a ResNet stage-2 layer, 3x3, stride 1, padding 1
CONV2D_BENCH = {"input": (64, 128, 56, 56), "weight": (128, 128, 3, 3)}


def conv2d_variants(archs=conv2d.ARCHS) -> list[KernelVariant]:
    """The three kernels as the launchers call them on contiguous benchmark operands.

    One variant per kernel x dtype x architecture (notes["arch"]), with its dtype's tile.
    As the JIT would, arguments equal to 1 become constants and the others are marked
    divisible by 16 where they are (notes["attrs"]). The forward kernel is compiled
    with its bias epilogue, the backward-weight kernel writing fp32 split-K partial sums.

    Roofline traffic assumes no L2 reuse at all, so every gathered im2col element counts as
    an HBM read (KH*KW reads of each activation); the ideal reads each operand once.
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

    forward_ints = [*geometry.values(), *_contiguous(n, c, h, w), *_contiguous(kh, kw, c, k), 1,
                    *_contiguous(n, k, oh, ow)]
    forward = _conv2d_variant("conv2d", conv2d.conv2d_forward_kernel, arch, dtype, config,
                              {"x_ptr": pointer, "w_ptr": pointer, "bias_ptr": pointer,
                               "out_ptr": pointer}, forward_ints, {"HAS_BIAS": True},
                              flops=flops,
                              bytes_moved=(pixels * c * taps * triton.cdiv(k, block_n)
                                           + triton.cdiv(pixels, block_m) * weight
                                           + output + k + relayout) * itemsize,
                              ideal_bytes=(image + weight + output + k) * itemsize)

    input_ints = [*geometry.values(), *_contiguous(n, k, oh, ow), *_contiguous(kh, kw, k, c),
                  *_contiguous(n, c, h, w)]
    backward_input = _conv2d_variant(
        "conv2d_backward_input", conv2d.conv2d_backward_input_kernel, arch, dtype, config,
        {"grad_ptr": pointer, "w_ptr": pointer, "dx_ptr": pointer}, input_ints, {}, flops=flops,
        bytes_moved=(n * h * w * k * taps * triton.cdiv(c, block_n)
                     + triton.cdiv(n * h * w, block_m) * weight + image + relayout) * itemsize,
        ideal_bytes=(output + weight + image) * itemsize)

    tiles_k, tiles_c = triton.cdiv(k, block_m), triton.cdiv(c, block_n)
    splits, split_pixels = conv2d.backward_weight_splits(pixels, tiles_k * tiles_c * taps,
                                                         block_k)
    weight_geometry = [value for key, value in geometry.items() if key != "KH"]
    weight_ints = [*weight_geometry, split_pixels, *_contiguous(n, k, oh, ow),
                   *_contiguous(n, c, h, w), *_contiguous(splits, k, c, kh, kw)]
    backward_weight = _conv2d_variant(
        "conv2d_backward_weight", conv2d.conv2d_backward_weight_kernel, arch, dtype,
        {key: value for key, value in config.items() if key != "GROUP_M"},
        {"grad_ptr": pointer, "x_ptr": pointer, "dw_ptr": "*fp32" if splits > 1 else pointer},
        weight_ints, {}, flops=flops,
        # each (channel tile, tap) program reads its rows of grad and its gathered x columns;
        # the fp32 partial sums are written, read back and the sum written in the dtype
        bytes_moved=(taps * (tiles_c * output + tiles_k * pixels * c)) * itemsize
        + (2 * splits * weight * 4 if splits > 1 else 0) + weight * itemsize,
        ideal_bytes=(output + image + weight) * itemsize)
    backward_weight.notes["splits"] = splits
    return [forward, backward_input, backward_weight]


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


COMPILE_VARIANTS = {"matmul": matmul_variants, "softmax": softmax_variants,
                    "cross_entropy": cross_entropy_variants, "attention": attention_variants,
                    "attention_backward": attention_backward_variants,
                    "conv2d": conv2d_variants}
