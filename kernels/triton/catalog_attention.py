"""The attention kernels' compile variants and roofline model (see catalog.py), and the
SASS measure of the forward's main loop: instructions beside the tensor cores per score
element."""

from __future__ import annotations

from dataclasses import replace

import triton

from tinygrad_like import sass
from tinygrad_like.kernels.triton import (attention, attention_backward, attention_tma)
from tinygrad_like.kernels.triton.variants import ITEMSIZE, KernelVariant, jit_attrs, signature_of


# ---- attention.py, attention_backward.py -----------------------------------------------------
ATTENTION_BENCH = {"B": 4, "H": 16, "T": 4096}  # the benchmark: "B4 H16 T4096 D64 causal"
HEAD_DIMS = (64, 128)
ATTENTION_KERNELS = {"forward": attention.attention_forward_kernel,
                     "dq": attention_backward.attention_backward_dq_kernel,
                     "dkdv": attention_backward.attention_backward_dkdv_kernel}


def attention_variants() -> list[KernelVariant]:
    """attention.py's forward kernel, one variant per tile of its autotuning set (fp16 and
    fp32; bf16 with the set's first tile: the same code with bf16 HGMMA/HMMA operands, so
    one compile shows the dtype). See `_attention_variants`. On sm_90, "attention_forward_tma"
    is attention_tma.py's kernel with each half-precision tile in fp16 (bf16: the first
    tile at D=64), its q, k and v boxes read through descriptors."""
    pointer = _attention_variants(("forward",))
    return pointer + [_attention_tma_variant(v) for v in pointer if v.dtype == "fp16"
                      or (v.dtype == "bf16" and v.notes["head_dim"] == 64)]


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


def _attention_tma_variant(pointer: KernelVariant) -> KernelVariant:
    """The TMA kernel for the launch `pointer` (a forward variant) describes: the same tiles,
    flags and traffic, q, k and v as descriptors whose boxes are one z's rows x head dim."""
    kernel, dtype = attention_tma.attention_forward_tma_kernel, pointer.dtype
    constexprs = {name: value for name, value in pointer.constexprs.items()
                  if name in kernel.arg_names}
    rows = {"q_desc": "BLOCK_M", "k_desc": "BLOCK_N", "v_desc": "BLOCK_N"}
    types = {name: f"tensordesc<{dtype}[1, {constexprs[block]}, {constexprs['BLOCK_D']}]>"
             for name, block in rows.items()}
    signature = signature_of(kernel, dtype, constexprs, {**types, "lse_ptr": "*fp32",
                                                         "scale": "fp64"})
    values = {name: 0 if name.startswith("stride_m") else 16 for name in signature}
    notes = {**pointer.notes, "attrs": jit_attrs(signature, values), "arch": 90}
    return replace(pointer, name="attention_forward_tma", kernel=kernel, signature=signature,
                   constexprs=constexprs, notes=notes)


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
