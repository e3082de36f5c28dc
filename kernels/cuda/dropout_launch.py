"""Launcher of dropout.cu: dropout whose mask is a pure function of (seed, offset, index).

Element i is kept iff the uniform u = (word >> 8) / 2^24 >= p, where word is word i % 4 of
Philox4x32-10 with counter (offset + i // 4, 0, 0) (its two low 32-bit words) and key
(seed & 0xFFFFFFFF, seed >> 32). A call consumes `counters_used(n)` counters: advance
offset by that much for the next independent mask.
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_like.kernels.cuda.runtime import BLOCK, float_suffix, grid_1d

SOURCE = "dropout.cu"
UNIFORM_BITS = 24  # bits of each 32-bit Philox word that form the uniform
UINT64 = 2**64


def counters_used(numel: int) -> int:
    """Philox counters one dropout call over `numel` elements consumes (four elements each)."""
    return -(-int(numel) // 4)


def keep_threshold(p: float) -> int:
    """The integer t with (word >> 8) >= t  <=>  (word >> 8) / 2^24 >= p."""
    return math.ceil(p * 2**UNIFORM_BITS)


def dropout(runtime, x, p: float, seed: int, offset: int):
    """(out, mask): mask is 1 / (1 - p) where kept and 0 elsewhere, in x's dtype; out = x * mask."""
    suffix = float_suffix("dropout", x.dtype)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be in [0, 1], got {p!r}")
    if not 0 <= offset < UINT64:
        raise ValueError(f"dropout: offset must be in [0, 2**64), got {offset!r}")
    seed = int(seed) % UINT64
    x = runtime.xp.ascontiguousarray(x)
    out = runtime.xp.empty_like(x)
    mask = runtime.xp.empty_like(x)
    if x.size:
        scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
        runtime.launch(SOURCE, f"dropout_forward_{suffix}", grid_1d(counters_used(x.size)),
                       BLOCK, [x, out, mask, np.int64(x.size), np.uint32(seed & 0xFFFFFFFF),
                               np.uint32(seed >> 32), np.uint64(offset),
                               np.uint32(keep_threshold(p)), x.dtype.type(scale)])
    return out, mask


def philox4x32_10(runtime, counters, keys):
    """The raw generator: (n, 4) uint32 counters and (n, 2) uint32 keys -> (n, 4) uint32 words."""
    xp = runtime.xp
    counters = xp.ascontiguousarray(counters, dtype=np.uint32)
    keys = xp.ascontiguousarray(keys, dtype=np.uint32)
    if counters.ndim != 2 or counters.shape[1] != 4 or keys.shape != (counters.shape[0], 2):
        raise ValueError(f"philox4x32_10: expected counters (n, 4) and keys (n, 2), got "
                         f"{tuple(counters.shape)} and {tuple(keys.shape)}")
    out = xp.empty_like(counters)
    if counters.size:
        runtime.launch(SOURCE, "philox4x32_10_blocks", grid_1d(counters.shape[0]), BLOCK,
                       [counters, keys, out, np.int64(counters.shape[0])])
    return out
