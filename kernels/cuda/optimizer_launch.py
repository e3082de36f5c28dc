"""Launchers of optimizer.cu: one fused SGD or Adam/AdamW step over many tensors.

Each call updates every array in place with one kernel launch per dtype present (one in
the usual all-float32 model). The tensors travel as one int64 table in device memory,
`multi_tensor_table`: row 0 the chunk starts, row 1 the sizes, then one row of addresses
per role (params, grads, state buffers), 0 where a role is absent.

Every scalar is rounded to the arrays' dtype here, the way NumPy rounds a Python float
that meets a float32 array, so the kernel repeats tinygrad_like/optim/sgd.py and adam.py
operation for operation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tinygrad_like.kernels.cuda.runtime import BLOCK, float_suffix, grid_1d

SOURCE = "optimizer.cu"
CHUNK_SIZE = 16384  # elements per chunk: 64 per thread of a 256-thread block

SGD_MAXIMIZE, SGD_WEIGHT_DECAY, SGD_MOMENTUM, SGD_NESTEROV, SGD_FIRST_STEP = 1, 2, 4, 8, 16
ADAM_MAXIMIZE, ADAM_WEIGHT_DECAY, ADAM_DECOUPLED_WEIGHT_DECAY, ADAM_AMSGRAD = 1, 2, 4, 8


def chunk_starts(sizes: Sequence[int], chunk_size: int = CHUNK_SIZE) -> list[int]:
    """The number of each tensor's first chunk, and the total number of chunks last."""
    starts = [0]
    for size in sizes:
        starts.append(starts[-1] + -(-int(size) // chunk_size))
    return starts


def multi_tensor_table(runtime, roles: Sequence[Sequence], chunk_size: int = CHUNK_SIZE):
    """The device table of `roles` (lists of equally long lists of arrays, or None for a
    role that is absent) and the total number of chunks."""
    sizes = [int(array.size) for array in roles[0]]
    starts = chunk_starts(sizes, chunk_size)
    host = np.zeros((2 + len(roles), len(sizes) + 1), dtype=np.int64)
    host[0] = starts
    host[1, :-1] = sizes
    for row, arrays in enumerate(roles, start=2):
        if arrays is not None:
            host[row, :-1] = [runtime.pointer(array) for array in arrays]
    return runtime.to_device(host), starts[-1]


def _check_lists(op: str, params, named_lists: dict[str, Sequence | None]) -> None:
    for name, arrays in named_lists.items():
        if arrays is None:
            continue
        if len(arrays) != len(params):
            raise ValueError(f"{op}: got {len(params)} params but {len(arrays)} {name}")
        for index, (param, array) in enumerate(zip(params, arrays)):
            if array.shape != param.shape:
                raise ValueError(f"{op}: {name}[{index}] has shape {tuple(array.shape)}, but "
                                 f"its parameter has shape {tuple(param.shape)}")


def _in_place(op: str, name: str, arrays, dtype) -> None:
    for index, array in enumerate(arrays):
        if array.dtype != dtype or not array.flags.c_contiguous:
            raise ValueError(f"{op}: {name}[{index}] is updated in place, so it must be a "
                             f"C-contiguous {dtype} array like its parameter (got "
                             f"{array.dtype}, contiguous={array.flags.c_contiguous})")


def _by_dtype(params):
    """Positions of the params grouped by dtype, in first-seen order."""
    groups: dict[np.dtype, list[int]] = {}
    for index, param in enumerate(params):
        groups.setdefault(np.dtype(param.dtype), []).append(index)
    return groups.items()


def _launch(runtime, kernel: str, suffix: str, roles, scalars) -> None:
    table, total_chunks = multi_tensor_table(runtime, roles)
    if total_chunks == 0:
        return
    rows = [table[row] for row in range(table.shape[0])]  # chunk starts, sizes, roles
    # one block per chunk, up to the grid cap
    runtime.launch(SOURCE, f"{kernel}_{suffix}", grid_1d(total_chunks, block=1), BLOCK,
                   [*rows, np.int32(len(roles[0])), np.int64(CHUNK_SIZE), *scalars])


def sgd_step(runtime, params, grads, momentum_buffers, lr: float, momentum: float,
             dampening: float, nesterov: bool, weight_decay: float, maximize: bool,
             first_step: bool) -> None:
    """One SGD step in place; momentum_buffers (ignored when momentum == 0) are written on
    the first step (the buffer becomes the gradient) and updated afterwards."""
    op = "sgd_step"
    if momentum != 0 and momentum_buffers is None:
        raise ValueError(f"{op}: momentum={momentum} needs momentum_buffers")
    _check_lists(op, params, {"grads": grads,
                              "momentum_buffers": momentum_buffers if momentum != 0 else None})
    flags = ((SGD_MAXIMIZE if maximize else 0) | (SGD_WEIGHT_DECAY if weight_decay != 0 else 0)
             | (SGD_MOMENTUM if momentum != 0 else 0) | (SGD_NESTEROV if nesterov else 0)
             | (SGD_FIRST_STEP if first_step else 0))
    for dtype, members in _by_dtype(params):
        suffix = float_suffix(op, dtype)
        group_params = [params[i] for i in members]
        _in_place(op, "params", group_params, dtype)
        buffers = None
        if momentum != 0:
            buffers = [momentum_buffers[i] for i in members]
            _in_place(op, "momentum_buffers", buffers, dtype)
        group_grads = [runtime.xp.ascontiguousarray(grads[i], dtype=dtype) for i in members]
        scalar = dtype.type
        _launch(runtime, op, suffix, [group_params, group_grads, buffers],
                [scalar(lr), scalar(momentum), scalar(1 - dampening), scalar(weight_decay),
                 np.int32(flags)])


def adam_step(runtime, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step: float,
              lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
              decoupled_weight_decay: bool, amsgrad: bool, maximize: bool) -> None:
    """One Adam (AdamW with decoupled_weight_decay) step in place at step count `step`
    (1 on the first step); max_exp_avg_sqs is used only with amsgrad."""
    op = "adam_step"
    _check_lists(op, params, {"grads": grads, "exp_avgs": exp_avgs, "exp_avg_sqs": exp_avg_sqs,
                              "max_exp_avg_sqs": max_exp_avg_sqs if amsgrad else None})
    if amsgrad and max_exp_avg_sqs is None:
        raise ValueError(f"{op}: amsgrad=True needs max_exp_avg_sqs")
    decay = weight_decay != 0
    flags = ((ADAM_MAXIMIZE if maximize else 0)
             | (ADAM_WEIGHT_DECAY if decay and not decoupled_weight_decay else 0)
             | (ADAM_DECOUPLED_WEIGHT_DECAY if decay and decoupled_weight_decay else 0)
             | (ADAM_AMSGRAD if amsgrad else 0))
    step_size = lr / (1 - beta1**step)
    bias_correction2_sqrt = math.sqrt(1 - beta2**step)
    for dtype, members in _by_dtype(params):
        suffix = float_suffix(op, dtype)
        roles = [[params[i] for i in members],
                 [runtime.xp.ascontiguousarray(grads[i], dtype=dtype) for i in members]]
        for name, arrays in (("exp_avgs", exp_avgs), ("exp_avg_sqs", exp_avg_sqs),
                             ("max_exp_avg_sqs", max_exp_avg_sqs if amsgrad else None)):
            if arrays is not None:
                arrays = [arrays[i] for i in members]
                _in_place(op, name, arrays, dtype)
            roles.append(arrays)
        _in_place(op, "params", roles[0], dtype)
        scalar = dtype.type
        _launch(runtime, op, suffix, roles,
                [scalar(step_size), scalar(bias_correction2_sqrt), scalar(1 - beta1),
                 scalar(beta2), scalar(1 - beta2), scalar(eps), scalar(weight_decay),
                 scalar(1 - lr * weight_decay), np.int32(flags)])
