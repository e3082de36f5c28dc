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


import triton

from tinygrad_like.kernels.triton import cross_entropy, matmul, matmul_tma, softmax
from tinygrad_like.kernels.triton.launch import num_warps_for
from tinygrad_like.kernels.triton.variants import (GPU_DTYPES, ITEMSIZE, KernelVariant, jit_attrs,
                                                  signature_of)
# the attention and conv2d families live in modules of their own, re-exported here
from tinygrad_like.kernels.triton.catalog_attention import (  # noqa: F401
    HEAD_DIMS, attention_backward_variants, attention_tiles, attention_variants,
    causal_tile_pairs, full_tile_pairs, instructions_per_score_element,
    score_elements_per_thread)
from tinygrad_like.kernels.triton.catalog_conv2d import conv2d_variants


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
    if online:  # contiguous rows: 16-byte vectors
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
                 {"col_stride": 1, "target_stride": 1, "lse_stride": 1, "BLOCK": block,
                  "ALIGN": 16 // itemsize})):
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


COMPILE_VARIANTS = {"matmul": matmul_variants, "softmax": softmax_variants,
                    "cross_entropy": cross_entropy_variants, "attention": attention_variants,
                    "attention_backward": attention_backward_variants,
                    "conv2d": conv2d_variants}
