"""The sm_90 (Hopper) attention forward: q, k and v tiles arrive through TMA.

The same FlashAttention-2 forward as attention.py's kernel (see its docstring for the online
softmax, the full / masked split of the key loop and the causal rule), with every operand
tile loaded by the Tensor Memory Accelerator from a host-side descriptor (UTMALDG): the box
lands swizzled in shared memory where the warpgroup MMA (HGMMA) reads it, so no thread
computes an address, a bounds mask or a cp.async per element, the address and predicate work
the pointer kernel's loop issues per key block beside the online softmax.

Descriptors are 3-D (z, rows, head dim) over q, k and v as they are stored (from
matmul_tma.storage_layout): a box is [1, rows, BLOCK_D] and never crosses into the next z.
Keys past S and head-dim columns past D are filled with zeros by the TMA unit: a zero head
column adds nothing to q k^T or to P v, and keys past S are hidden by the masked loop, which
tests them against S as the pointer kernel does. The additive mask, out and lse stay pointer
accesses (the mask may be a broadcast with zero strides; out and lse are fresh arrays).

TMA needs 16-byte aligned bases, 16-byte multiples for the z and row strides and a unit
head-dim stride; attention.py's launcher sends other layouts, fp32 and fp64 to the pointer
kernel. The online softmax step and the epilogue live here, shared by both forward kernels
(as matmul_tma.py holds the matmul's grouped order and epilogue).
"""

from __future__ import annotations

import triton
import triton.language as tl

DTYPES = ("float16", "bfloat16")  # the tensor-core dtypes: HGMMA reads the boxes from shared
LOG2E = tl.constexpr(1.4426950408889634)  # exp(x) = exp2(x * log2(e))
LN2 = tl.constexpr(0.6931471805599453)  # log(x) = log2(x) * ln(2)


def set_boxes(args: dict) -> None:
    """Each descriptor's TMA box for the tile about to run (attention.py's autotuner pre_hook,
    or its interpreted launch): one z, a block of rows, the padded head dim."""
    rows = {"q_desc": args["BLOCK_M"], "k_desc": args["BLOCK_N"], "v_desc": args["BLOCK_N"]}
    for name, count in rows.items():
        args[name].block_shape = [1, count, args["BLOCK_DV" if name == "v_desc" else "BLOCK_D"]]


@triton.jit
def softmax_block(qk, running_max, running_sum, mask_ptr, rows, keys, qk_scale, log2e, L, S,
                  stride_ml, stride_ms, MASKED: tl.constexpr, HAS_MASK: tl.constexpr,
                  IS_CAUSAL: tl.constexpr, CHECK_KEYS: tl.constexpr):
    """One key block of the online softmax on its products qk = q k^T, in base 2 (log2(e)
    folded into qk_scale): (p, the rescale of the old sum and output, new max, new sum).
    MASKED blocks test keys against the causal rule (and S where CHECK_KEYS); the others
    test nothing."""
    if MASKED or HAS_MASK:
        scores = qk * qk_scale
        if HAS_MASK:
            # the mask is in natural-log units: -inf stays -inf
            valid = (rows[:, None] < L) & (keys[None, :] < S)
            offsets = (rows[:, None].to(tl.int64) * stride_ml
                       + keys[None, :].to(tl.int64) * stride_ms)
            bias = tl.load(mask_ptr + offsets, mask=valid, other=0.0).to(qk.dtype)
            scores += bias * log2e
        if MASKED:
            if CHECK_KEYS:
                scores = tl.where(keys[None, :] < S, scores, float("-inf"))
            if IS_CAUSAL:
                scores = tl.where(keys[None, :] <= rows[:, None], scores, float("-inf"))
        new_max = tl.maximum(running_max, tl.max(scores, 1))
        # while every key so far is hidden the max is -inf: shift by 0, so exp2 gives 0
        shift = tl.where(new_max == float("-inf"), 0.0, new_max).to(qk.dtype)
        p = tl.math.exp2(scores - shift[:, None])
    else:
        # qk_scale >= 0, so the max of the scaled scores is the scaled max of the products
        new_max = tl.maximum(running_max, tl.max(qk, 1) * qk_scale)
        shift = new_max
        p = tl.math.exp2(qk * qk_scale - shift[:, None])
    correction = tl.math.exp2(running_max - shift)
    running_sum = running_sum * correction + tl.sum(p, 1)
    return p, correction, new_max, running_sum


@triton.jit
def key_range(start_m, S, IS_CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr,
              BLOCK_N: tl.constexpr):
    """(full_end, hi): keys below full_end are inside S and (causal) left of every row of the
    query block at start_m; keys from full_end to hi are the masked blocks."""
    if IS_CAUSAL:
        hi = tl.minimum(S, start_m + BLOCK_M)
        full_end = tl.minimum(start_m, S) // BLOCK_N * BLOCK_N
    else:
        hi = S
        full_end = S // BLOCK_N * BLOCK_N
    return full_end, hi


@triton.jit
def write_out(acc, running_max, running_sum, out_ptr, lse_ptr, z, rows, L,
              HEAD_DIM_V: tl.constexpr, BLOCK_DV: tl.constexpr):
    """out = acc / sum and lse = max + log sum (natural log) of the query rows `rows`."""
    hidden = running_sum == 0.0  # every key hidden (or S == 0): out 0, lse +inf
    running_sum = tl.where(hidden, 1.0, running_sum).to(acc.dtype)
    out = acc / running_sum[:, None]
    ln2 = tl.full([], LN2, acc.dtype)
    lse = tl.where(hidden, float("inf"), (running_max + tl.math.log2(running_sum)) * ln2)
    # out and lse are fresh contiguous arrays: addressed by their shapes
    dims_v = tl.arange(0, BLOCK_DV)
    out_ptrs = out_ptr + z * L * HEAD_DIM_V + rows[:, None] * HEAD_DIM_V + dims_v[None, :]
    tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty),
             mask=(rows[:, None] < L) & (dims_v[None, :] < HEAD_DIM_V))
    tl.store(lse_ptr + z * L + rows, lse.to(lse_ptr.dtype.element_ty), mask=rows < L)


@triton.jit
def _key_blocks_tma(acc, running_max, running_sum, q, k_desc, v_desc, mask_ptr, z, rows, lo,
                    hi, qk_scale, log2e, L, S, stride_ml, stride_ms,
                    MASKED: tl.constexpr, HAS_MASK: tl.constexpr, IS_CAUSAL: tl.constexpr,
                    EVEN_N: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                    BLOCK_DV: tl.constexpr):
    """The online softmax over key blocks [lo, hi), k and v boxes loaded through TMA."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        keys = start_n + offs_n
        k = k_desc.load([z, start_n, 0]).reshape(BLOCK_N, BLOCK_D)
        qk = tl.dot(q, tl.trans(k), out_dtype=tl.float32)
        p, correction, running_max, running_sum = softmax_block(
            qk, running_max, running_sum, mask_ptr, rows, keys, qk_scale, log2e, L, S,
            stride_ml, stride_ms, MASKED, HAS_MASK, IS_CAUSAL, MASKED and not EVEN_N)
        v = v_desc.load([z, start_n, 0]).reshape(BLOCK_N, BLOCK_DV)
        # P is rounded to v's dtype for the tensor cores; the sum above used it unrounded
        acc = tl.dot(p.to(v.dtype), v, acc * correction[:, None], out_dtype=tl.float32)
    return acc, running_max, running_sum


@triton.jit
def attention_forward_tma_kernel(
    q_desc, k_desc, v_desc, mask_ptr, out_ptr, lse_ptr, scale: tl.float64,
    L, S,
    stride_mz, stride_ml, stride_ms,
    HEAD_DIM_V: tl.constexpr, HAS_MASK: tl.constexpr, IS_CAUSAL: tl.constexpr,
    EVEN_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
):
    """BLOCK_M query rows of one z: full key blocks, then the masked ones, out and lse once.
    16-bit operands only: the statistics and the output accumulate in fp32."""
    query_blocks = tl.cdiv(L, BLOCK_M)
    pid = tl.program_id(0)
    z = pid // query_blocks
    start_m = (query_blocks - 1 - pid % query_blocks) * BLOCK_M  # longest causal blocks first
    if HAS_MASK:
        mask_ptr += z.to(tl.int64) * stride_mz
    log2e = tl.full([], LOG2E, tl.float32)
    qk_scale = tl.full([], scale, tl.float32) * log2e  # >= 0: the launcher folds a sign into q

    rows = start_m + tl.arange(0, BLOCK_M)
    q = q_desc.load([z, start_m, 0]).reshape(BLOCK_M, BLOCK_D)  # rows past L are zeros
    running_max = tl.full([BLOCK_M], float("-inf"), tl.float32)
    running_sum = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)
    full_end, hi = key_range(start_m, S, IS_CAUSAL, BLOCK_M, BLOCK_N)
    acc, running_max, running_sum = _key_blocks_tma(
        acc, running_max, running_sum, q, k_desc, v_desc, mask_ptr, z, rows, 0, full_end,
        qk_scale, log2e, L, S, stride_ml, stride_ms, False, HAS_MASK, IS_CAUSAL, EVEN_N,
        BLOCK_N, BLOCK_D, BLOCK_DV)
    if IS_CAUSAL or not EVEN_N:
        acc, running_max, running_sum = _key_blocks_tma(
            acc, running_max, running_sum, q, k_desc, v_desc, mask_ptr, z, rows, full_end, hi,
            qk_scale, log2e, L, S, stride_ml, stride_ms, True, HAS_MASK, IS_CAUSAL, EVEN_N,
            BLOCK_N, BLOCK_D, BLOCK_DV)
    write_out(acc, running_max, running_sum, out_ptr, lse_ptr, z.to(tl.int64), rows, L,
              HEAD_DIM_V, BLOCK_DV)
