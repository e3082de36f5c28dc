"""Fused log-softmax + negative log-likelihood over the rows of (N, C) logits.

Forward: one program per row walks the row in BLOCK-column steps, keeping a running max m,
a running sum s of exp(x - m) (rescaled by exp(m - m') when the max grows to m'; Milakov &
Gimelshein's online normalizer) and a running sum of x for label smoothing. Then

    lse  = m + log s
    loss = lse - (1 - eps) x[y] - (eps / C) sum_c x[c],   0 where y == ignore_index

and only loss (N,) and lse (N,) are written. The logits are read exactly once, whatever C:
the (N, C) log-probabilities that log_softmax + nll_loss would write and read back (two more
passes over the largest tensor of a language model's step) never exist.

Backward: d loss / d x = g (exp(x - lse) - (1 - eps) onehot(y) - eps / C), zero on ignored
rows. It needs no reduction, since lse is saved, so each program owns one (row, BLOCK-column)
tile of a 2-D grid: x is read once and dx written once, the ideal traffic, and even a few
rows of a 50,257-wide vocabulary spread over many programs.

The same recipe as the fused cross-entropy kernels of Apex (xentropy), FlashAttention
(ops/triton/cross_entropy.py) and Liger-Kernel. Half-precision logits are computed in fp32
(fp64 in fp64) and lse is kept in float32 (float64 for fp64 logits), as the NumPy reference
in backend/cpu.py does; the losses and dx have the logits' dtype. label_smoothing reaches the
kernels through a one-element array of the compute dtype: as a Python float it would be fp32
in Triton, and fp64 losses would differ from the reference in about the 9th digit.
"""

from __future__ import annotations

import triton
import triton.language as tl

from tinygrad_like.kernels.triton.launch import check_floating, num_warps_for

BLOCK_COLS = 4096  # columns per forward step and per backward tile (8 per thread, 16 warps)


@triton.jit
def cross_entropy_forward_kernel(logits_ptr, target_ptr, loss_ptr, lse_ptr, n_cols,
                                 row_stride, col_stride, target_stride, ignore_index,
                                 smoothing_ptr, BLOCK: tl.constexpr):
    """One row: an online log-sum-exp over column blocks, then its loss; x read once."""
    row = tl.program_id(0).to(tl.int64)
    x_row = logits_ptr + row * row_stride
    compute = tl.float64 if logits_ptr.dtype.element_ty == tl.float64 else tl.float32
    smoothing = tl.load(smoothing_ptr).to(compute)
    offsets = tl.arange(0, BLOCK)
    running_max = tl.full([], float("-inf"), compute)
    running_sum = tl.full([], 0.0, compute)
    row_sum = tl.full([BLOCK], 0.0, compute)  # per lane; reduced once after the loop
    for start in range(0, n_cols, BLOCK):
        cols = start + offsets
        mask = cols < n_cols
        x = tl.load(x_row + cols * col_stride, mask=mask, other=float("-inf")).to(compute)
        new_max = tl.maximum(running_max, tl.max(x, 0))
        # while every logit so far is -inf, shift by 0: exp(-inf - 0) = 0 rather than NaN
        shift = tl.where(new_max == float("-inf"), 0.0, new_max).to(compute)
        running_sum = running_sum * tl.exp(running_max - shift) + tl.sum(tl.exp(x - shift), 0)
        running_max = new_max
        # summed only with smoothing: else a masked (-inf) logit would make 0 * -inf = NaN
        row_sum += tl.where(smoothing != 0, tl.where(mask, x, 0.0), 0.0)
    lse = running_max + tl.log(running_sum)
    target = tl.load(target_ptr + row * target_stride)
    kept = target != ignore_index
    # an out-of-range class is not read (NaN loss), so a bad target cannot fault the GPU
    picked = tl.load(x_row + target * col_stride, mask=kept & (target >= 0) & (target < n_cols),
                     other=float("nan")).to(compute)
    loss = lse - (1 - smoothing) * picked - smoothing / n_cols * tl.sum(row_sum, 0)
    tl.store(loss_ptr + row, tl.where(kept, loss, 0.0).to(loss_ptr.dtype.element_ty))
    tl.store(lse_ptr + row, lse.to(lse_ptr.dtype.element_ty))


@triton.jit
def cross_entropy_backward_kernel(grad_ptr, logits_ptr, target_ptr, lse_ptr, out_ptr, n_cols,
                                  row_stride, col_stride, grad_stride, target_stride,
                                  lse_stride, ignore_index, smoothing_ptr, BLOCK: tl.constexpr):
    """One (row, column block) tile: g (exp(x - lse) - smoothed one-hot), zero if ignored."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_cols
    compute = tl.float64 if logits_ptr.dtype.element_ty == tl.float64 else tl.float32
    smoothing = tl.load(smoothing_ptr).to(compute)
    target = tl.load(target_ptr + row * target_stride)
    grad = tl.load(grad_ptr + row * grad_stride).to(compute)
    grad = tl.where(target != ignore_index, grad, 0.0)
    lse = tl.load(lse_ptr + row * lse_stride).to(compute)
    x = tl.load(logits_ptr + row * row_stride + cols * col_stride, mask=mask, other=0.0)
    dx = tl.exp(x.to(compute) - lse) - smoothing / n_cols
    dx -= tl.where(cols == target, 1 - smoothing, 0.0)
    tl.store(out_ptr + row * n_cols + cols, (grad * dx).to(out_ptr.dtype.element_ty), mask=mask)


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
        launcher.arg(_smoothing(xp, label_smoothing, logits)), BLOCK=block,
        num_warps=num_warps_for(block))
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
        lse_stride, int(ignore_index), launcher.arg(_smoothing(xp, label_smoothing, logits)),
        BLOCK=block, num_warps=num_warps_for(block))
    return dlogits


def _smoothing(xp, label_smoothing: float, logits):
    """label_smoothing as a one-element array in the kernels' compute dtype (fp64 or fp32)."""
    return xp.asarray([label_smoothing], dtype=xp.float64 if logits.dtype == xp.float64
                      else xp.float32)


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
