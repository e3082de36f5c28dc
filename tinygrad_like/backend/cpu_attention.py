"""Attention on the tuned "cpu" device, tiled the FlashAttention way: O(T) extra memory, BLAS
block products.

q (Z, L, D), k (Z, S, D) and v (Z, S, Dv), with Z the flattened batch and heads. The
(L, S) score matrix is never stored whole. Queries are taken in blocks of QUERY_BLOCK
rows; for each, the key blocks stream past with an online softmax (Milakov &
Gimelshein 2018; Dao, FlashAttention-2, 2023): a running row max m, a running sum l of
exp(s - m) and an output accumulator, all rescaled by exp(m_old - m_new) when the max
grows. The heads are taken in groups (see _over_heads) and each block product is one
batched GEMM over a group, so BLAS still does the FLOPs and the Python loop runs
(L / QUERY_BLOCK) * (S / KEY_BLOCK) times per group at most (groups of few heads take taller
query blocks, MIN_GROUP_HEADS). Blocks of 64 keep a block's scores, probabilities and
operands in L2 (measured fastest of 32 to 512). The groups are spread over one thread per
core, with BLAS held to one thread: NumPy releases the GIL, so this is what uses every core
(PyTorch's CPU flash attention parallelises the same way). The elementwise work between the
GEMMs (the online-softmax update; the backward's P and dS) is one function each, which the
native extension replaces with a fused pass per row (backend/native_kernels.py).

Forward returns the output and each row's log-sum-exp (lse). Backward recomputes each
block's probabilities P = exp(s - lse) instead of saving them, then
    dV += P^T dO,   dP = dO V^T,   dS = P * (dP - delta),   dQ += dS K * scale,
    dK += dS^T Q * scale,   with delta = rowsum(dO * O).
Causal attention (key j visible to query i iff j <= i, PyTorch's top-left alignment)
skips the key blocks entirely above the diagonal. `mask` is an additive float array
broadcastable to (Z, L, S) (-inf hides a key). A row whose every key is hidden gets
output 0 and lse = +inf, so that its recomputed probabilities are exactly 0.

This is the tuned path, tested (tests/test_cpu_attention.py) against the plain reference
that writes the whole score matrix out, backend/reference_attention.py. Where the native
extension is built, unmasked attention over short key sequences skips it for a fused kernel
(backend/native_kernels.py, SHORT_ATTENTION_MAX_KEYS).
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

QUERY_BLOCK = 64
KEY_BLOCK = 64
# A group of fewer heads than this takes taller query blocks, QUERY_BLOCK rows times the
# shortfall: a block step is the same few NumPy calls whatever their size, so with one or two
# heads and 64-row blocks the Python loop, not BLAS, set the time (docs/performance.md,
# "CPU attention: few heads").
MIN_GROUP_HEADS = 8
PARALLEL_SCORES = 1 << 18  # Z * L * S from which heads are split across threads
GROUP_SCORE_BYTES = 1 << 19  # a group of heads' block of scores: 512 KiB measured fastest


def _compute_dtype(dtype):
    return np.float64 if dtype == np.float64 else np.float32


def _scaled_copy(q_block, scale: float, dtype):
    """A query block times scale, C-ordered: scaling q costs D per row, scaling scores S.

    One block at a time, so that no scaled copy of the whole of q is held (16 MiB at the
    benchmark's T 2048)."""
    return np.multiply(q_block, scale, dtype=dtype, order="C")


def _block_scores(q_block, k, mask, is_causal, rows: slice, keys: slice):
    """Scores of one (already scaled) query block against one key block, (Z, bq, bk)."""
    scores = q_block @ k[:, keys].transpose(0, 2, 1)
    if mask is not None:
        scores += mask[:, rows, keys]
    if is_causal and keys.stop - 1 > rows.start:  # the block straddles the diagonal
        scores += _causal_bias(rows.stop - rows.start, keys.stop - keys.start,
                               rows.start - keys.start, scores.dtype)
    return scores


@functools.lru_cache(maxsize=64)
def _causal_bias(query_rows: int, key_columns: int, offset: int, dtype) -> np.ndarray:
    """(bq, bk) of 0 and -inf hiding key j from query i where j > i + offset.

    Adding it is one broadcast pass, several times faster than assigning -inf through a
    boolean index over the Z heads (docs/performance.md, "CPU attention: causal bias and
    head groups").
    """
    hidden = np.arange(key_columns) > np.arange(query_rows)[:, None] + offset
    bias = np.where(hidden, -np.inf, 0.0).astype(dtype)
    bias.flags.writeable = False
    return bias


def _query_blocks(length: int, heads: int):
    """Query-row slices for a group of `heads` heads (see MIN_GROUP_HEADS)."""
    height = QUERY_BLOCK * max(1, MIN_GROUP_HEADS // max(heads, 1))
    for start in range(0, length, height):
        yield slice(start, min(start + height, length))


def _key_blocks(length: int, rows: slice, is_causal: bool):
    """Key-block slices a query block must visit: all of them, or those left of the diagonal."""
    end = min(length, rows.stop) if is_causal else length
    for start in range(0, end, KEY_BLOCK):
        yield slice(start, min(start + KEY_BLOCK, length))


def _broadcast_mask(mask, shape):
    return None if mask is None else np.broadcast_to(mask, shape)


def online_softmax_step(scores, row_max, row_sum):
    """One key block of the online softmax, in place; returns the accumulator's rescale factor.

    scores (Z, bq, bk) become exp(scores - m_new), and the running max and sum row_max,
    row_sum (Z, bq) move on to include the block; the factor exp(m_old - m_new), (Z, bq),
    is what the output accumulated so far must be multiplied by. The native extension has
    the same step fused into one pass over the scores (backend/native_kernels.py).
    """
    new_max = np.maximum(row_max, scores.max(axis=2))
    # a row with no visible key so far keeps max -inf; shift it by 0 to avoid -inf - -inf
    shift = np.where(np.isneginf(new_max), 0.0, new_max)
    np.subtract(scores, shift[:, :, None], out=scores)
    np.exp(scores, out=scores)
    rescale = np.exp(row_max - shift)
    row_sum *= rescale
    row_sum += scores.sum(axis=2)
    row_max[...] = new_max
    return rescale


def probabilities_and_score_grads(scores, lse, dscores, delta):
    """One key block of the backward, in place: scores (Z, bq, bk) become the probabilities
    P = exp(scores - lse), and dscores, holding dO V^T, become dS = P * (dscores - delta);
    lse and delta = rowsum(dO * O) are (Z, bq). The native extension fuses the same into one
    pass (backend/native_kernels.py)."""
    np.subtract(scores, lse[:, :, None], out=scores)
    np.exp(scores, out=scores)  # rows with lse = +inf give exactly 0
    dscores -= delta[:, :, None]
    dscores *= scores


def _attention_chunk(q, k, v, mask, out, lse, is_causal: bool, scale: float, softmax_step):
    """softmax(q k^T * scale + mask) v, tiled, into out (Z, L, Dv) and lse (Z, L)."""
    compute = out.dtype
    k, v = (np.ascontiguousarray(a, dtype=compute) for a in (k, v))
    z, length_q, length_k = q.shape[0], q.shape[1], k.shape[1]
    mask = _broadcast_mask(mask, (z, length_q, length_k))
    for rows in _query_blocks(length_q, z):
        q_block = _scaled_copy(q[:, rows], scale, compute)
        row_max = np.full((z, rows.stop - rows.start), -np.inf, dtype=compute)
        row_sum = np.zeros_like(row_max)
        acc = np.zeros((z, rows.stop - rows.start, v.shape[2]), dtype=compute)
        for keys in _key_blocks(length_k, rows, is_causal):
            scores = _block_scores(q_block, k, mask, is_causal, rows, keys)
            acc *= softmax_step(scores, row_max, row_sum)[:, :, None]  # scores -> probabilities
            acc += scores @ v[:, keys]
        empty = row_sum == 0
        out[:, rows] = acc / np.where(empty, 1.0, row_sum)[:, :, None]
        with np.errstate(divide="ignore"):
            lse[:, rows] = np.where(empty, np.inf, row_max + np.log(row_sum))


def _attention_backward_chunk(grad_out, q, k, v, out, lse, mask, dq, dk, dv, is_causal: bool,
                              scale: float, backward_step):
    """Adds the gradients of `attention` into the zeroed dq, dk, dv, recomputing each block's
    probabilities from lse."""
    compute = dq.dtype
    grad_out, k, v, out = (np.ascontiguousarray(a, dtype=compute) for a in (grad_out, k, v, out))
    z, length_q, length_k = q.shape[0], q.shape[1], k.shape[1]
    mask = _broadcast_mask(mask, (z, length_q, length_k))
    delta = np.einsum("zld,zld->zl", grad_out, out)
    for rows in _query_blocks(length_q, z):
        q_block, grad_block = _scaled_copy(q[:, rows], scale, compute), grad_out[:, rows]
        lse_block, delta_block = (np.ascontiguousarray(a[:, rows], dtype=compute)
                                  for a in (lse, delta))
        for keys in _key_blocks(length_k, rows, is_causal):
            scores = _block_scores(q_block, k, mask, is_causal, rows, keys)
            dscores = grad_block @ v[:, keys].transpose(0, 2, 1)
            backward_step(scores, lse_block, dscores, delta_block)  # -> P and dS, in place
            dv[:, keys] += scores.transpose(0, 2, 1) @ grad_block
            dq[:, rows] += dscores @ k[:, keys]
            dk[:, keys] += dscores.transpose(0, 2, 1) @ q_block  # q_block carries the scale
    dq *= scale


_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()  # one pool, even when several threads start attention at once


def _thread_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(_workers(), "tinygrad_like-attention")
        return _pool


@functools.cache
def _blas_libraries() -> ThreadpoolController:
    """The process's BLAS libraries, found once: finding them reads the process's memory map
    (a millisecond), limiting them afterwards costs microseconds."""
    return ThreadpoolController().select(user_api="blas")


def _workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _head_groups(z: int, block_bytes: int, workers: int) -> list[tuple[int, int]]:
    """Ranges of heads, each small enough that its block of scores stays in cache."""
    size = max(1, GROUP_SCORE_BYTES // block_bytes)
    size = min(size, -(-z // workers))  # at least one group per worker
    return [(lo, min(lo + size, z)) for lo in range(0, z, size)]


def _over_heads(kernel, shape: tuple, arrays: tuple, options: tuple) -> None:
    """Run `kernel` on groups of the (batch x head) axis, in threads, one per core; each
    group reads and writes its own slice of `arrays` (inputs and outputs alike).

    Every block step is a NumPy call over all heads of a group at once, so a group's
    (heads, bq, bk) scores are kept near GROUP_SCORE_BYTES: passes over all heads at once
    fall out of cache and ran slower (docs/performance.md, "CPU attention: causal bias and
    head groups").
    NumPy releases the GIL in ufuncs and matmul, so threads over heads, each running its
    block GEMMs on one BLAS thread, are what uses every core (as PyTorch's CPU flash
    attention does). Small problems (below PARALLEL_SCORES scores) stay on one thread,
    where handing work over would cost more than it saves.
    """
    z, length_q, length_k = shape
    itemsize = np.dtype(_compute_dtype(arrays[0].dtype)).itemsize
    block_bytes = min(QUERY_BLOCK, length_q) * min(KEY_BLOCK, length_k) * itemsize
    workers = min(_workers(), z) if z * length_q * length_k >= PARALLEL_SCORES else 1
    groups = _head_groups(z, block_bytes, workers)

    def run(lo: int, hi: int):
        kernel(*(None if a is None else a[lo:hi] for a in arrays), *options)

    if workers <= 1:
        for lo, hi in groups:
            run(lo, hi)
        return
    pool = _thread_pool()
    # The threads are the parallelism: BLAS threading each block GEMM as well (OpenBLAS does
    # from 2^18 multiply-adds, which widened blocks pass) oversubscribes the cores and leaves
    # its workers spinning between the GEMMs (docs/performance.md, "CPU attention: few heads")
    with _blas_libraries().limit(limits=1):
        for future in [pool.submit(run, lo, hi) for lo, hi in groups]:
            future.result()


def attention(q, k, v, mask, is_causal: bool, scale: float, softmax_step=online_softmax_step):
    """softmax(q k^T * scale + mask) v, tiled; returns (out (Z, L, Dv), lse (Z, L)).

    `softmax_step` is `online_softmax_step` or a drop-in replacement (the native one).
    """
    shape = (q.shape[0], q.shape[1], k.shape[1])
    if mask is not None:
        mask = np.broadcast_to(mask, shape)
    compute = _compute_dtype(q.dtype)
    out = np.empty(shape[:2] + v.shape[2:], dtype=compute)  # the groups write their slices
    lse = np.empty(shape[:2], dtype=compute)
    _over_heads(_attention_chunk, shape, (q, k, v, mask, out, lse),
                (is_causal, scale, softmax_step))
    return out.astype(q.dtype, copy=False), lse


def attention_backward(grad_out, q, k, v, out, lse, mask, is_causal: bool, scale: float,
                       backward_step=probabilities_and_score_grads):
    """(dq, dk, dv) of `attention`, recomputing each block's probabilities from lse.

    `backward_step` is `probabilities_and_score_grads` or a drop-in replacement (the native one).
    """
    shape = (q.shape[0], q.shape[1], k.shape[1])
    if mask is not None:
        mask = np.broadcast_to(mask, shape)
    compute = _compute_dtype(q.dtype)
    grads = tuple(np.zeros(a.shape, dtype=compute) for a in (q, k, v))  # accumulated per group
    _over_heads(_attention_backward_chunk, shape, (grad_out, q, k, v, out, lse, mask, *grads),
                (is_causal, scale, backward_step))
    return tuple(g.astype(a.dtype, copy=False) for g, a in zip(grads, (q, k, v)))
