"""Launcher of embedding.cu: the weight gradient of an embedding lookup.

The kernel adds with atomics, so under deterministic mode the launcher runs the sorted
segmented sum of segment_sum.cu instead.
"""

from __future__ import annotations

import numpy as np

from tinygrad_like import determinism
from tinygrad_like.kernels.cuda.runtime import BLOCK, float_suffix, grid_1d
from tinygrad_like.kernels.cuda.segment_sum_launch import index_add_rows

SOURCE = "embedding.cu"


def embedding_backward(runtime, grad, indices, num_weights: int, padding_idx: int | None):
    """dweight (num_weights, D): row k sums the rows of grad (..., D) whose index is k.

    `indices` has grad's shape without the last axis; the row of padding_idx (None or -1
    for none) gets no gradient.
    """
    if grad.ndim < 1 or tuple(grad.shape[:-1]) != tuple(indices.shape):
        raise ValueError(f"embedding_backward: grad of shape {tuple(grad.shape)} must be the "
                         f"indices' shape {tuple(indices.shape)} plus the embedding dimension")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding_backward: indices must be integers, got {indices.dtype}")
    suffix = float_suffix("embedding_backward", grad.dtype)
    xp = runtime.xp
    dim = int(grad.shape[-1])
    grad = xp.ascontiguousarray(grad)
    indices = xp.ascontiguousarray(indices, dtype=np.int64)
    padding_idx = -1 if padding_idx is None else int(padding_idx)
    if determinism.are_deterministic_algorithms_enabled():
        return index_add_rows(runtime, grad.reshape(-1, dim), indices.reshape(-1), num_weights,
                              padding_idx)
    dweight = xp.zeros((int(num_weights), dim), dtype=grad.dtype)
    if grad.size:
        runtime.launch(SOURCE, f"embedding_backward_{suffix}", grid_1d(grad.size), BLOCK,
                       [grad, indices, dweight, np.int64(indices.size), np.int64(dim),
                        np.int64(num_weights), np.int64(padding_idx)])
    return dweight
