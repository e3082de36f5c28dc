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

from tinygrad_like import sass
from tinygrad_like.kernels.triton import (attention, attention_backward, conv2d,
                                          conv2d_passes, cross_entropy, matmul, matmul_tma,
                                          softmax)
from tinygrad_like.kernels.triton.launch import num_warps_for
from tinygrad_like.kernels.triton.variants import ITEMSIZE, KernelVariant, jit_attrs, signature_of

GPU_DTYPES = ("fp32", "fp16", "bf16")  # the dtypes every GPU kernel is compiled for


# ---- matmul.py ------------------------------------------------------------------------------
MATMUL_SIZE = 4096  # M = N = K of the roofline estimate


def matmul_variants(archs=(80, 90)) -> list[KernelVariant]:
    """The kernel as the JIT compiles it for contiguous 4096 x 4096 operands, per config.

    "matmul" variants cover every dtype x config of each architecture (notes["arch"]) that
    the config serves; "linear_gelu" (bias + GELU epilogue) covers each config in fp32 where
    it serves fp32 (the FMA accumulator leaves the fewest registers spare), else in fp16.
    The signature mirrors the JIT's specialisation for that call: unit strides are constants,
    and pointers, sizes and other strides are divisible by 16 (notes["attrs"]). On sm_90,
    "matmul_tma" (fp16) and "linear_tma_gelu" (bf16, the weight read K-major) are the
    persistent TMA kernel of matmul_tma.py with each of its configs.

    Roofline traffic assumes no L2 reuse at all: A is read once per column of tiles
    (N / BLOCK_N times), B once per row of tiles (M / BLOCK_M times), C written once.
    """
    variants = []
    for arch in archs:
        for config in matmul.CONFIGS[arch]:
            served = [dtype for dtype in GPU_DTYPES
                      if _DTYPE_NAMES[dtype] in config.get("dtypes", HALF_AND_FULL)]
            variants += [_matmul_variant(arch, dtype, config) for dtype in served]
            variants.append(_matmul_variant(arch, served[0], config, activation="gelu"))
    if 90 in archs:
        for index, config in enumerate(matmul_tma.CONFIGS):
            variants.append(_matmul_variant(90, "fp16", config, tma=True))
            if index == 0:
                variants.append(_matmul_variant(90, "bf16", config, "gelu", tma=True))
    return variants


_DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
HALF_AND_FULL = tuple(_DTYPE_NAMES.values())


def _matmul_variant(arch: int, dtype: str, config: dict, activation: str = "none",
                    tma: bool = False) -> KernelVariant:
    size, itemsize, pointer = MATMUL_SIZE, ITEMSIZE[dtype], f"*{dtype}"
    fused = activation != "none"
    tiles = {k: v for k, v in config.items() if k.isupper()}
    if tma:
        kernel = matmul_tma.matmul_tma_kernel
        m, n, k = tiles["BLOCK_M"], tiles["BLOCK_N"], tiles["BLOCK_K"]
        boxes = {"a_desc": [m, k], "b_desc": [n, k] if fused else [k, n], "c_desc": [m, n // 2]}
        signature = {name: "i32" for name in kernel.arg_names}
        signature.update({name: f"tensordesc<{dtype}[1, {box[0]}, {box[1]}]>"
                          for name, box in boxes.items()}, bias_ptr=pointer)
        # one 4096 x 4096 matrix: the JIT makes stack == 1 a constant; 132 SMs (H100 SXM)
        constexprs = dict(stack=1, NUM_SMS=132, A_COLUMN_MAJOR=False, B_COLUMN_MAJOR=fused)
    else:
        kernel = matmul.matmul_kernel
        signature = {name: "i32" for name in kernel.arg_names}
        signature.update(a_ptr=pointer, b_ptr=pointer, c_ptr=pointer, bias_ptr=pointer)
        constexprs = dict(stride_ak=1, stride_bn=1, stride_cn=1, ALLOW_TF32=False)
    constexprs.update(HAS_BIAS=fused, ACTIVATION=activation, **tiles)
    if not fused:
        constexprs["bias_ptr"] = None
    signature.update({name: "constexpr" for name in constexprs})
    divisible = [name for name, kind in signature.items() if kind == "i32" or kind[0] == "*"]
    reads = size * size * (size / config["BLOCK_N"] + size / config["BLOCK_M"])
    name = f"linear_{activation}" if fused else "matmul"
    return KernelVariant(
        name=name.replace("_", "_tma_", 1) if tma and fused else name + "_tma" * tma,
        kernel=kernel, dtype=dtype, signature=signature, constexprs=constexprs,
        num_warps=config["num_warps"], num_stages=config["num_stages"],
        tensor_cores=dtype != "fp32", shape=f"{size}x{size}x{size}", flops=2.0 * size**3,
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
    if kernel is softmax.softmax_forward_online_kernel:  # contiguous rows: 16-byte vectors
        constexprs["ALIGN"] = 16 // ITEMSIZE[dtype]
    for pointer in pointers:
        tensor = pointer[:-len("_ptr")]
        constexprs[f"{tensor}_col_stride"] = constexprs[f"{tensor}_inner_stride"] = 1
    signature = signature_of(kernel, dtype, constexprs)
    # n_cols and every row stride equal the width (contiguous rows)
    values = {name: cols for name in signature if name == "n_cols" or name.endswith("outer_stride")}
    return KernelVariant(
        name=f"{name}_online" if online else name, kernel=kernel, dtype=dtype,
        signature=signature, constexprs=constexprs, num_warps=num_warps_for(block),
        shape=f"({rows}, {cols})", loop_elements=rows * cols,
        notes={"block": block, "attrs": jit_attrs(signature, values),
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
    types = {"target_ptr": "*i64", "lse_ptr": "*fp32", "smoothing": "fp32",
             "smoothing_low": "fp32"}
    variants = []
    for dtype in GPU_DTYPES:
        itemsize = ITEMSIZE[dtype]
        # per row: the int64 target, the float32 lse (written forward, read backward), and
        # the loss (written) or upstream gradient (read) in the logits' dtype
        per_row = 8 + 4 + itemsize
        for name, kernel, path, flops, logit_passes, constexprs in (
                # per logit: max, subtract, exp, add, and the add of the smoothing sum
                ("cross_entropy_forward", cross_entropy.cross_entropy_forward_kernel,
                 "online row", 5, 1, {"col_stride": 1, "target_stride": 1, "BLOCK": block,
                                      "ALIGN": 16 // itemsize}),
                # per logit: subtract, exp, subtract, compare-select, multiply
                ("cross_entropy_backward", cross_entropy.cross_entropy_backward_kernel,
                 "row x column tiles", 5, 2,
                 {"col_stride": 1, "target_stride": 1, "lse_stride": 1, "BLOCK": block})):
            signature = signature_of(kernel, dtype, constexprs, types)
            traffic = logit_passes * elements * itemsize + rows * per_row
            variants.append(KernelVariant(
                name=name, kernel=kernel, dtype=dtype, signature=signature,
                constexprs=constexprs, num_warps=num_warps_for(block),
                shape=f"({rows}, {cols})", loop_elements=elements, flops=flops * elements,
                bytes_moved=traffic,
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
    """attention.py's forward kernel, one variant per tile of its autotuning set (fp16 and
    fp32; bf16 with the set's first tile: the same code with bf16 HGMMA/HMMA operands, so
    one compile shows the dtype). See `_attention_variants`."""
    return _attention_variants(("forward",))


def attention_backward_variants() -> list[KernelVariant]:
    """attention_backward.py's dq and dk/dv kernels; see `_attention_variants`."""
    return _attention_variants(("dq", "dkdv"))


def _attention_variants(jobs: tuple) -> list[KernelVariant]:
    """The `jobs` kernels x {fp16, bf16, fp32} x head dims {64, 128} x tiles, as the
    GPU launches them for the causal benchmark: contiguous (Z, T, D) q, k, v, out and g, no
    mask (mask_ptr None), unit column strides constant and the rest divisible by 16.

    Roofline traffic assumes no L2 reuse: the operand a program does not own (k and v in the
    forward and dq kernels, q and g in the dk/dv kernel) is read once per tile pair visited,
    the owned one once. FLOPs are those the tiling does, diagonal tiles in full.
    """
    return [_attention_variant(job, dtype, head_dim, config) for head_dim in HEAD_DIMS
            for dtype in ("fp16", "bf16", "fp32") for job in jobs
            for config in attention_tiles(job, dtype, head_dim)]


def attention_tiles(job: str, dtype: str, head_dim: int) -> list[dict]:
    """The tiles a launcher may run for (job, dtype, padded head dim): BLOCK_M, BLOCK_N,
    num_warps, num_stages; the forward's are its autotuning set (bf16: its first tile)."""
    precision = "half" if ITEMSIZE[dtype] == 2 else "full"
    if job != "forward":
        return [attention.CONFIGS[job, precision, head_dim]]
    configs = attention.FORWARD_CONFIGS[precision, head_dim]
    return [{**config.kwargs, "num_warps": config.num_warps, "num_stages": config.num_stages}
            for config in (configs[:1] if dtype == "bf16" else configs)]


def _attention_variant(job: str, dtype: str, head_dim: int, config: dict) -> KernelVariant:
    Z, T = ATTENTION_BENCH["B"] * ATTENTION_BENCH["H"], ATTENTION_BENCH["T"]
    kernel = ATTENTION_KERNELS[job]
    constexprs = {"mask_ptr": None, "HAS_MASK": False, "IS_CAUSAL": True,
                  "BLOCK_M": config["BLOCK_M"], "BLOCK_N": config["BLOCK_N"],
                  "BLOCK_D": head_dim, "BLOCK_DV": head_dim}
    if job == "forward":  # compile-time head dims; T is a multiple of every BLOCK_N
        constexprs.update(HEAD_DIM=head_dim, HEAD_DIM_V=head_dim, EVEN_N=True)
    constexprs.update({name: 1 for name in kernel.arg_names
                       if name.startswith("stride_") and name[-1] == "d"})
    types = {"lse_ptr": "*fp32", "delta_ptr": "*fp32", "scale": "fp64"}
    signature = signature_of(kernel, dtype, constexprs, types)
    # sizes, row strides (head_dim) and z strides (T * head_dim) are multiples of 16; the
    # mask's strides are the 0s the launcher passes without one
    values = {name: 0 if name.startswith("stride_m") else 16 for name in signature}
    flops, bytes_moved, ideal_bytes = _attention_traffic(job, config, T, head_dim,
                                                         ITEMSIZE[dtype])
    notes = {"attrs": jit_attrs(signature, values), "head_dim": head_dim}
    loop_elements = 0.0
    if job == "forward":  # its main loop is the first one, over the full (unmasked) blocks
        notes["main_loop"] = 0
        loop_elements = Z * full_tile_pairs(T, config["BLOCK_M"], config["BLOCK_N"]) * (
            config["BLOCK_M"] * config["BLOCK_N"])
    return KernelVariant(
        name=f"attention_{job}" if job == "forward" else f"attention_backward_{job}",
        kernel=kernel, dtype=dtype, signature=signature, constexprs=constexprs,
        num_warps=config["num_warps"], num_stages=config["num_stages"],
        tensor_cores=dtype != "fp32",
        shape=f"B{ATTENTION_BENCH['B']} H{ATTENTION_BENCH['H']} T{T} D{head_dim} causal",
        flops=Z * flops, bytes_moved=Z * bytes_moved, ideal_bytes=Z * ideal_bytes,
        loop_elements=loop_elements, notes=notes)


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


def full_tile_pairs(T: int, block_m: int, block_n: int) -> int:
    """The pairs the causal forward visits in its full-block (unmasked) loop, T = L = S: the
    key blocks wholly left of each query block's first row."""
    return sum(min(m * block_m, T) // block_n for m in range(triton.cdiv(T, block_m)))


def score_elements_per_thread(variant: KernelVariant) -> float:
    """Score elements one thread holds of a forward tile: BLOCK_M x BLOCK_N over the threads."""
    return variant.constexprs["BLOCK_M"] * variant.constexprs["BLOCK_N"] / (32 * variant.num_warps)


def instructions_per_score_element(variant: KernelVariant, sass_text: str) -> float:
    """Non-tensor-core instructions a thread issues per score element in the forward's
    full-block loop (the first loop with tensor-core or global-load work): the loop body's
    SASS instructions, less HGMMA/HMMA, over `score_elements_per_thread`. The issue-bound
    view of the online softmax: the tensor cores run beside these, not in their place."""
    loop = sass.main_loop(sass.parse(sass_text), index=variant.notes.get("main_loop", 0))
    if loop is None:
        raise ValueError(f"{variant.name}: no loop with tensor-core or load work in the SASS")
    issued = len(loop.instructions) - sass.tensor_core_ops(loop.instructions)
    return issued / score_elements_per_thread(variant)


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


COMPILE_VARIANTS = {"matmul": matmul_variants, "softmax": softmax_variants,
                    "cross_entropy": cross_entropy_variants, "attention": attention_variants,
                    "attention_backward": attention_backward_variants,
                    "conv2d": conv2d_variants}
