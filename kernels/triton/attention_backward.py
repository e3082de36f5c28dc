"""Scaled dot-product attention backward (FlashAttention-2) for attention.py's forward.

Backward, recomputing the probabilities P = exp(scores - lse) tile by tile from the saved
lse (no second online softmax and no (L, S) matrix), with g = d loss / d out:

    delta = rowsum(g * out),  dv = P^T g,  dp = g v^T,  ds = P (dp - delta),
    dq = ds k * scale,        dk = ds^T q * scale

FlashAttention-2's split into two kernels, each owning one output so no atomics are needed:
- dq kernel: a program owns BLOCK_M query rows (like the forward) and loops over key blocks.
  It also computes delta for its rows from g and out, which it reads anyway, and writes it
  for the next kernel: no separate preprocessing launch.
- dk/dv kernel (launched after it): a program owns BLOCK_N keys and loops over query blocks,
  accumulating dk and dv in registers. Its tiles are computed transposed, (keys x queries),
  so P^T and ds^T feed the dv and dk products without a register transpose.

Both kernels mask scores with attention.py's `masked_scores` and take their tiles from its
CONFIGS; the launcher checks its operands with the forward's checks.
"""

from __future__ import annotations

import triton
import triton.language as tl

from tinygrad_like.kernels.triton.attention import (check_operands, masked_scores,
                                                    operand_pointers, tile_config)


@triton.jit
def attention_backward_dq_kernel(
    q_ptr, k_ptr, v_ptr, mask_ptr, out_ptr, grad_ptr, lse_ptr, delta_ptr, dq_ptr,
    scale: tl.float64,
    L, S, D, DV,
    stride_qz, stride_ql, stride_qd,
    stride_kz, stride_ks, stride_kd,
    stride_vz, stride_vs, stride_vd,
    stride_mz, stride_ml, stride_ms,
    stride_oz, stride_ol, stride_od,
    stride_gz, stride_gl, stride_gd,
    HAS_MASK: tl.constexpr, IS_CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
):
    """BLOCK_M query rows of one z: delta = rowsum(g out), then dq over the key blocks."""
    query_blocks = tl.cdiv(L, BLOCK_M)
    pid = tl.program_id(0)
    z = (pid // query_blocks).to(tl.int64)
    start_m = (query_blocks - 1 - pid % query_blocks) * BLOCK_M  # longest causal blocks first
    q_ptr += z * stride_qz
    k_ptr += z * stride_kz
    v_ptr += z * stride_vz
    out_ptr += z * stride_oz
    grad_ptr += z * stride_gz
    if HAS_MASK:
        mask_ptr += z * stride_mz
    compute = tl.float64 if q_ptr.dtype.element_ty == tl.float64 else tl.float32
    scale = tl.full([], scale, compute)  # exact in fp64: the argument is an fp64 scalar

    rows = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    dims = tl.arange(0, BLOCK_D)
    dims_v = tl.arange(0, BLOCK_DV)
    row_ok = rows < L
    q = tl.load(q_ptr + rows[:, None] * stride_ql + dims[None, :] * stride_qd,
                mask=row_ok[:, None] & (dims[None, :] < D), other=0.0)
    value_mask = row_ok[:, None] & (dims_v[None, :] < DV)
    g = tl.load(grad_ptr + rows[:, None] * stride_gl + dims_v[None, :] * stride_gd,
                mask=value_mask, other=0.0)
    out = tl.load(out_ptr + rows[:, None] * stride_ol + dims_v[None, :] * stride_od,
                  mask=value_mask, other=0.0)
    delta = tl.sum(g.to(compute) * out.to(compute), 1)
    tl.store(delta_ptr + z * L + rows, delta.to(delta_ptr.dtype.element_ty), mask=row_ok)
    # rows past L read lse = +inf: their probabilities are exactly 0
    lse = tl.load(lse_ptr + z * L + rows, mask=row_ok, other=float("inf")).to(compute)

    dq = tl.zeros([BLOCK_M, BLOCK_D], compute)
    end = tl.minimum(S, start_m + BLOCK_M) if IS_CAUSAL else S
    for start_n in range(0, end, BLOCK_N):
        keys = start_n + offs_n
        k = tl.load(k_ptr + keys[:, None] * stride_ks + dims[None, :] * stride_kd,
                    mask=(keys[:, None] < S) & (dims[None, :] < D), other=0.0)
        v = tl.load(v_ptr + keys[:, None] * stride_vs + dims_v[None, :] * stride_vd,
                    mask=(keys[:, None] < S) & (dims_v[None, :] < DV), other=0.0)
        scores = tl.dot(q, tl.trans(k), input_precision="ieee", out_dtype=compute) * scale
        scores = masked_scores(scores, mask_ptr, rows[:, None], keys[None, :], L, S,
                                stride_ml, stride_ms, HAS_MASK, IS_CAUSAL)
        p = tl.exp(scores - lse[:, None])
        dp = tl.dot(g, tl.trans(v), input_precision="ieee", out_dtype=compute)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision="ieee", out_dtype=compute)

    dq_ptrs = dq_ptr + z * L * D + rows[:, None] * D + dims[None, :]
    tl.store(dq_ptrs, (dq * scale).to(dq_ptr.dtype.element_ty),
             mask=row_ok[:, None] & (dims[None, :] < D))


@triton.jit
def attention_backward_dkdv_kernel(
    q_ptr, k_ptr, v_ptr, mask_ptr, grad_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
    scale: tl.float64,
    L, S, D, DV,
    stride_qz, stride_ql, stride_qd,
    stride_kz, stride_ks, stride_kd,
    stride_vz, stride_vs, stride_vd,
    stride_mz, stride_ml, stride_ms,
    stride_gz, stride_gl, stride_gd,
    HAS_MASK: tl.constexpr, IS_CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
):
    """BLOCK_N keys of one z: dk and dv accumulated over the query blocks that see them."""
    key_blocks = tl.cdiv(S, BLOCK_N)
    pid = tl.program_id(0)
    z = (pid // key_blocks).to(tl.int64)
    start_n = (pid % key_blocks) * BLOCK_N  # the first keys, seen by the most queries, first
    q_ptr += z * stride_qz
    k_ptr += z * stride_kz
    v_ptr += z * stride_vz
    grad_ptr += z * stride_gz
    if HAS_MASK:
        mask_ptr += z * stride_mz
    compute = tl.float64 if q_ptr.dtype.element_ty == tl.float64 else tl.float32
    scale = tl.full([], scale, compute)  # exact in fp64: the argument is an fp64 scalar

    keys = start_n + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    dims = tl.arange(0, BLOCK_D)
    dims_v = tl.arange(0, BLOCK_DV)
    key_ok = keys < S
    k = tl.load(k_ptr + keys[:, None] * stride_ks + dims[None, :] * stride_kd,
                mask=key_ok[:, None] & (dims[None, :] < D), other=0.0)
    v = tl.load(v_ptr + keys[:, None] * stride_vs + dims_v[None, :] * stride_vd,
                mask=key_ok[:, None] & (dims_v[None, :] < DV), other=0.0)

    dk = tl.zeros([BLOCK_N, BLOCK_D], compute)
    dv = tl.zeros([BLOCK_N, BLOCK_DV], compute)
    # causal: queries before this block's first key see none of it
    begin = (start_n // BLOCK_M) * BLOCK_M if IS_CAUSAL else 0
    for start_m in range(begin, L, BLOCK_M):
        rows = start_m + offs_m
        row_ok = rows < L
        q = tl.load(q_ptr + rows[:, None] * stride_ql + dims[None, :] * stride_qd,
                    mask=row_ok[:, None] & (dims[None, :] < D), other=0.0)
        g = tl.load(grad_ptr + rows[:, None] * stride_gl + dims_v[None, :] * stride_gd,
                    mask=row_ok[:, None] & (dims_v[None, :] < DV), other=0.0)
        lse = tl.load(lse_ptr + z * L + rows, mask=row_ok, other=float("inf")).to(compute)
        delta = tl.load(delta_ptr + z * L + rows, mask=row_ok, other=0.0).to(compute)
        # transposed tiles (keys x queries): P^T and ds^T are the dv and dk products' left side
        scores_t = tl.dot(k, tl.trans(q), input_precision="ieee", out_dtype=compute) * scale
        scores_t = masked_scores(scores_t, mask_ptr, rows[None, :], keys[:, None], L, S,
                                  stride_ml, stride_ms, HAS_MASK, IS_CAUSAL)
        p_t = tl.exp(scores_t - lse[None, :])
        dv = tl.dot(p_t.to(g.dtype), g, dv, input_precision="ieee", out_dtype=compute)
        dp_t = tl.dot(v, tl.trans(g), input_precision="ieee", out_dtype=compute)
        ds_t = p_t * (dp_t - delta[None, :])
        dk = tl.dot(ds_t.to(q.dtype), q, dk, input_precision="ieee", out_dtype=compute)

    dk_ptrs = dk_ptr + z * S * D + keys[:, None] * D + dims[None, :]
    tl.store(dk_ptrs, (dk * scale).to(dk_ptr.dtype.element_ty),
             mask=key_ok[:, None] & (dims[None, :] < D))
    dv_ptrs = dv_ptr + z * S * DV + keys[:, None] * DV + dims_v[None, :]
    tl.store(dv_ptrs, dv.to(dv_ptr.dtype.element_ty),
             mask=key_ok[:, None] & (dims_v[None, :] < DV))



def attention_backward(launcher, grad_out, q, k, v, out, lse, mask, is_causal: bool,
                       scale: float):
    """(dq, dk, dv) in the dtypes of q, k and v, from the forward's out and lse."""
    Z, L, S, D, DV = check_operands("attention_backward", q, k, v, mask)
    for name, array, shape in (("grad_out", grad_out, (Z, L, DV)), ("out", out, (Z, L, DV)),
                               ("lse", lse, (Z, L))):
        if tuple(array.shape) != shape:
            raise ValueError(f"attention_backward: {name} must have shape {shape} for q "
                             f"{q.shape} and v {v.shape}, got {tuple(array.shape)}")
    if grad_out.dtype != q.dtype:
        raise TypeError(f"attention_backward: expected a {q.dtype} grad_out, got {grad_out.dtype}")
    xp = launcher.xp
    dq = launcher.empty((Z, L, D), q.dtype)
    dk = launcher.empty((Z, S, D), k.dtype)
    dv = launcher.empty((Z, S, DV), v.dtype)
    if Z == 0:
        return dq, dk, dv
    lse = xp.ascontiguousarray(lse)  # (Z, L): read by its shape, like delta
    delta = launcher.empty((Z, L), lse.dtype)
    stats = [launcher.arg(lse), launcher.arg(delta)]
    flags = {"HAS_MASK": mask is not None, "IS_CAUSAL": bool(is_causal)}
    if L > 0:  # also writes delta, which the dk/dv kernel reads: launched first
        pointers, strides = operand_pointers(launcher, q, k, v, mask, out, grad_out)
        config = tile_config(launcher, "dq", q.dtype, D, DV)
        launcher.kernel(attention_backward_dq_kernel)[(Z * triton.cdiv(L, config["BLOCK_M"]),)](
            *pointers, *stats, launcher.arg(dq), float(scale), L, S, D, DV, *strides, **flags,
            **config)
    if S > 0:
        pointers, strides = operand_pointers(launcher, q, k, v, mask, grad_out)
        config = tile_config(launcher, "dkdv", q.dtype, D, DV)
        launcher.kernel(attention_backward_dkdv_kernel)[(Z * triton.cdiv(S, config["BLOCK_N"]),)](
            *pointers, *stats, launcher.arg(dk), launcher.arg(dv), float(scale), L, S, D, DV,
            *strides, **flags, **config)
    return dq, dk, dv

