"""Fused log-softmax + negative log-likelihood over the rows of (N, C) logits.

Forward: one program per row walks the row in BLOCK-column steps, each lane keeping a running
max m, a running sum s of exp(x - m) (rescaled by exp(m - m') when its max grows to m';
Milakov & Gimelshein's online normalizer) and a running sum of x for label smoothing; the
lanes are combined by one block-wide reduction after the loop (softmax.py's online_update).
Rows are split as softmax.py's row_split does, so an unaligned width (50,257) is still read
with 16-byte vector loads. Then

    lse  = m + log s
    loss = lse - (1 - eps) x[y] - (eps / C) sum_c x[c],   0 where y == ignore_index

and only loss (N,) and lse (N,) are written. The logits are read exactly once, whatever C:
the (N, C) log-probabilities that log_softmax + nll_loss would write and read back (two more
passes over the largest tensor of a language model's step) never exist.

Backward: d loss / d x = g (exp(x - lse) - (1 - eps) onehot(y) - eps / C), zero on ignored
rows. It needs no reduction, since lse is saved, so each program owns one (row, BLOCK-column)
tile of a 2-D grid: x is read once and dx written once, the ideal traffic, and even a few
rows of a 50,257-wide vocabulary spread over many programs. The tiles cover a row's aligned
body, so they too move 16-byte vectors; a row's first tile also does its head and tail.

The same recipe as the fused cross-entropy kernels of Apex (xentropy), FlashAttention
(ops/triton/cross_entropy.py) and Liger-Kernel. Half-precision logits are computed in fp32
(fp64 in fp64) and lse is kept in float32 (float64 for fp64 logits), as the NumPy reference
in backend/cpu.py does; the losses and dx have the logits' dtype. label_smoothing reaches the
kernels as scalars (see _smoothing), not as an array uploaded on every call.
"""

from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from tinygrad_like.kernels.triton.launch import check_floating, num_warps_for
from tinygrad_like.kernels.triton.softmax import (LOWEST_FP32, LOWEST_FP64, alignment,
                                                  edge_columns, merge_edge, online_update,
                                                  row_split)

BLOCK_COLS = 4096  # columns per forward step and per backward tile (8 per thread, 16 warps)


@triton.jit
def cross_entropy_forward_kernel(logits_ptr, target_ptr, loss_ptr, lse_ptr, n_cols,
                                 row_stride, col_stride, target_stride, ignore_index,
                                 smoothing, smoothing_low, BLOCK: tl.constexpr,
                                 ALIGN: tl.constexpr):
    """One row: per-lane online log-sum-exp over column blocks, then its loss; x read once."""
    row = tl.program_id(0).to(tl.int64)
    x_start = row * row_stride
    compute = tl.float64 if logits_ptr.dtype.element_ty == tl.float64 else tl.float32
    smoothing = tl.cast(smoothing, compute) + tl.cast(smoothing_low, compute)
    aligned, head, body = row_split(x_start, n_cols, ALIGN)
    x_body = logits_ptr + (aligned if ALIGN > 1 else x_start)
    offsets = tl.arange(0, BLOCK)
    lane_max = tl.full([BLOCK], LOWEST_FP64 if compute == tl.float64 else LOWEST_FP32, compute)
    lane_sum = tl.zeros([BLOCK], compute)
    lane_total = tl.zeros([BLOCK], compute)  # the sum of x, for label smoothing
    for start in range(0, body, BLOCK):
        k = start + offsets
        mask = k < body
        x = tl.load(x_body + k * col_stride, mask=mask, other=float("-inf")).to(compute)
        lane_max, lane_sum = online_update(lane_max, lane_sum, x)
        lane_total += tl.where(mask, x, 0.0)
    row_max = tl.max(lane_max, 0)
    row_sum = tl.sum(lane_sum * tl.exp(lane_max - row_max), 0)
    total = tl.sum(lane_total, 0)
    if ALIGN > 1:
        cols, edge_mask = edge_columns(head, body, n_cols, ALIGN)
        edge = tl.load(logits_ptr + x_start + cols, mask=edge_mask, other=float("-inf"))
        edge = edge.to(compute)
        row_max, row_sum = merge_edge(row_max, row_sum, edge)
        total += tl.sum(tl.where(edge_mask, edge, 0.0), 0)
    lse = row_max + tl.log(row_sum)
    target = tl.load(target_ptr + row * target_stride)
    kept = target != ignore_index
    # an out-of-range class is not read (NaN loss), so a bad target cannot fault the GPU
    picked = tl.load(logits_ptr + x_start + target * col_stride,
                     mask=kept & (target >= 0) & (target < n_cols), other=float("nan"))
    # without smoothing the sum of x is not used: a -inf logit would make 0 * -inf = NaN
    spread = tl.where(smoothing != 0, smoothing / n_cols * total, 0.0)
    loss = lse - (1 - smoothing) * picked.to(compute) - spread
    tl.store(loss_ptr + row, tl.where(kept, loss, 0.0).to(loss_ptr.dtype.element_ty))
    tl.store(lse_ptr + row, lse.to(lse_ptr.dtype.element_ty))


@triton.jit
def cross_entropy_backward_kernel(grad_ptr, logits_ptr, target_ptr, lse_ptr, out_ptr, n_cols,
                                  row_stride, col_stride, grad_stride, target_stride,
                                  lse_stride, ignore_index, smoothing, smoothing_low,
                                  BLOCK: tl.constexpr, ALIGN: tl.constexpr):
    """One (row, column block) tile: g (exp(x - lse) - smoothed one-hot), zero if ignored.

    The tiles cover the row's aligned body (row_split), so they load and store 16-byte
    vectors; the first tile of a row also does the head and tail columns."""
    row = tl.program_id(0).to(tl.int64)
    compute = tl.float64 if logits_ptr.dtype.element_ty == tl.float64 else tl.float32
    smoothing = tl.cast(smoothing, compute) + tl.cast(smoothing_low, compute)
    target = tl.load(target_ptr + row * target_stride)
    grad = tl.load(grad_ptr + row * grad_stride).to(compute)
    grad = tl.where(target != ignore_index, grad, 0.0)
    lse = tl.load(lse_ptr + row * lse_stride).to(compute)
    x_start = row * row_stride
    aligned, head, body = row_split(x_start, n_cols, ALIGN)
    if ALIGN > 1:  # the launcher checked that dx has the logits' layout: the same offsets
        x_body, out_body, first = logits_ptr + aligned, out_ptr + aligned, head
    else:
        x_body, out_body, first = logits_ptr + x_start, out_ptr + row * n_cols, 0
    k = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = k < body
    x = tl.load(x_body + k * col_stride, mask=mask, other=0.0).to(compute)
    dx = _logit_gradient(x, first + k, grad, lse, target, smoothing, n_cols)
    tl.store(out_body + k, dx.to(out_ptr.dtype.element_ty), mask=mask)
    if ALIGN > 1:
        if tl.program_id(1) == 0:
            cols, edge_mask = edge_columns(head, body, n_cols, ALIGN)
            edge = tl.load(logits_ptr + x_start + cols, mask=edge_mask, other=0.0)
            edge_dx = _logit_gradient(edge.to(compute), cols, grad, lse, target, smoothing,
                                      n_cols)
            tl.store(out_ptr + x_start + cols, edge_dx.to(out_ptr.dtype.element_ty),
                     mask=edge_mask)


@triton.jit
def _logit_gradient(x, cols, grad, lse, target, smoothing, n_cols):
    dx = tl.exp(x - lse) - smoothing / n_cols
    return grad * (dx - tl.where(cols == target, 1 - smoothing, 0.0))


# ---- launchers: the kernel table's entries, called as fn(launcher, *reference args) ----------
def cross_entropy(launcher, logits, target, ignore_index: int, label_smoothing: float):
    """Per-row losses (N,) in the logits' dtype and each row's log-sum-exp (N,), >= float32."""
    rows, n_cols = _check("cross_entropy", logits, target)
    xp = launcher.xp
    logits, (row_stride, col_stride) = _strided(xp, logits)
    target, (target_stride,) = _strided(xp, target)
    losses = launcher.empty((rows,), logits.dtype)
    lse = launcher.empty((rows,), xp.float64 if logits.dtype == xp.float64 else xp.float32)
    if rows == 0:
        return losses, lse
    block = min(BLOCK_COLS, triton.next_power_of_2(n_cols))
    launcher.kernel(cross_entropy_forward_kernel)[(rows,)](
        launcher.arg(logits), launcher.arg(target), launcher.arg(losses), launcher.arg(lse),
        n_cols, row_stride, col_stride, target_stride, int(ignore_index),
        *_smoothing(label_smoothing), BLOCK=block, num_warps=num_warps_for(block),
        ALIGN=alignment([logits], [(row_stride, col_stride)]))
    return losses, lse


def cross_entropy_backward(launcher, grad_loss, logits, target, lse, ignore_index: int,
                           label_smoothing: float):
    """d loss / d logits (N, C) in the logits' dtype, from the per-row upstream gradient."""
    rows, n_cols = _check("cross_entropy_backward", logits, target)
    for name, array in (("grad_loss", grad_loss), ("lse", lse)):
        if array.shape != (rows,):
            raise ValueError(f"cross_entropy_backward: {name} must have shape ({rows},) for "
                             f"logits of shape {logits.shape}, got {array.shape}")
    xp = launcher.xp
    logits, (row_stride, col_stride) = _strided(xp, logits)
    grad_loss, (grad_stride,) = _strided(xp, grad_loss)
    target, (target_stride,) = _strided(xp, target)
    lse, (lse_stride,) = _strided(xp, lse)
    dlogits = launcher.empty((rows, n_cols), logits.dtype)
    if dlogits.size == 0:
        return dlogits
    block = min(BLOCK_COLS, triton.next_power_of_2(n_cols))
    launcher.kernel(cross_entropy_backward_kernel)[(rows, triton.cdiv(n_cols, block))](
        launcher.arg(grad_loss), launcher.arg(logits), launcher.arg(target), launcher.arg(lse),
        launcher.arg(dlogits), n_cols, row_stride, col_stride, grad_stride, target_stride,
        lse_stride, int(ignore_index), *_smoothing(label_smoothing), BLOCK=block,
        num_warps=num_warps_for(block),
        ALIGN=alignment([logits, dlogits], [(row_stride, col_stride), (n_cols, 1)]))
    return dlogits


def _smoothing(label_smoothing: float) -> tuple[float, float]:
    """label_smoothing as two scalars the kernels add in their compute dtype: Triton passes a
    Python float as fp32, so the fp32 rounding and its remainder together carry a float64
    value (fp64 losses then match the reference to the last digits); fp32 sums to the first."""
    high = float(np.float32(label_smoothing))
    return high, float(label_smoothing) - high


def _check(op: str, logits, target) -> tuple[int, int]:
    check_floating(op, logits)
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"{op}: expected (N, C) logits and (N,) targets, got logits of shape "
                         f"{logits.shape} and targets of shape {target.shape}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: targets must be class indices (an integer array), got "
                        f"{target.dtype.name}")
    if logits.shape[1] == 0:
        raise ValueError(f"{op}: logits of shape {logits.shape} have no classes")
    return logits.shape


def _strided(xp, array):
    """The array and its element strides, copied first if a stride is negative (a flip) or a
    row of logits spans 2**31 elements (the kernels' column offsets are int32)."""
    strides = [s // array.itemsize for s in array.strides]
    if min(strides, default=0) < 0 or (array.ndim == 2 and array.shape[1] * strides[1] >= 2**31):
        array = xp.ascontiguousarray(array)
        strides = [s // array.itemsize for s in array.strides]
    return array, tuple(strides)
