"""Launchers of segment_sum.cu: scatter-add without atomics, for deterministic mode.

`index_add_rows` is the deterministic form of embedding backward and max-pool backward (their
launchers call it under `tg.use_deterministic_algorithms(True)`); `scatter_add` is
np.add.at on the GPU, the backward of getitem and gather: CuPy's atomic `add.at`, or
`index_add_rows` over the flat positions under deterministic mode.
"""

from __future__ import annotations

import numpy as np

from tinygrad_like import determinism
from tinygrad_like.kernels.cuda.runtime import BLOCK, FLOAT_SUFFIX, float_suffix, grid_1d

SOURCE = "segment_sum.cu"


def index_add_rows(runtime, values, rows, num_rows: int, skip_row: int = -1):
    """out (num_rows, D): row r sums the rows i of values (N, D) with rows[i] == r, in
    increasing i; row `skip_row` is zero and entries of rows outside [0, num_rows) add nothing.

    The stable sort puts each row's contributions together in their original order, so the
    kernel's sums are the sequential ones on every run (segment_sum.cu).
    """
    suffix = float_suffix("index_add_rows", values.dtype)
    xp = runtime.xp
    values = xp.ascontiguousarray(values)
    rows = xp.ascontiguousarray(rows, dtype=np.int64)
    if values.ndim != 2 or rows.shape != values.shape[:1]:
        raise ValueError(f"index_add_rows: expected values (N, D) and rows (N,), got "
                         f"{tuple(values.shape)} and {tuple(rows.shape)}")
    order = xp.argsort(rows, kind="stable")
    run_starts = xp.searchsorted(rows[order], xp.arange(int(num_rows) + 1, dtype=np.int64))
    out = xp.empty((int(num_rows), int(values.shape[1])), dtype=values.dtype)
    if out.size:
        runtime.launch(SOURCE, f"segment_sum_{suffix}", grid_1d(out.size), BLOCK,
                       [values, order.astype(np.int64, copy=False),
                        run_starts.astype(np.int64, copy=False), out, np.int64(out.shape[0]),
                        np.int64(out.shape[1]), np.int64(skip_row)])
    return out


def scatter_add(runtime, out, index, values) -> None:
    """out[index] += values in place, repeated positions adding up (np.add.at); `index` is
    anything getitem takes. Deterministic mode sums each position's values in order."""
    if determinism.are_deterministic_algorithms_enabled():
        if np.dtype(out.dtype) in FLOAT_SUFFIX:
            positions = runtime.xp.arange(out.size).reshape(out.shape)[index]
            values = runtime.xp.broadcast_to(values, positions.shape).reshape(-1, 1)
            out += index_add_rows(runtime, values, positions.reshape(-1),
                                  out.size).reshape(out.shape)
            return
        determinism.alert_not_deterministic(f"scatter_add (getitem and gather backward) of "
                                            f"{out.dtype} on the GPU")
    runtime.xp.add.at(out, index, values)
