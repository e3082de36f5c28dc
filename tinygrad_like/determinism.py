"""Deterministic mode: `tg.use_deterministic_algorithms`, as `torch.use_deterministic_algorithms`.

With the mode on, every kernel that would accumulate with atomics runs a deterministic
variant instead, and an op that has none raises RuntimeError (warns, with warn_only=True),
in PyTorch's words. The flag is process-wide, as PyTorch's is (not thread-local like grad
mode): the "cuda" launchers read it each time they pick a kernel.

What accumulates with atomics, and what runs under deterministic mode ("cuda" only):

- embedding backward (embedding.cu: atomicAdd per element): the segmented sum of
  segment_sum.cu over the indices sorted stably, each weight row adding its rows of grad in
  index order.
- max_pool2d backward (pooling.cu: atomicAdd at each window's argmax): the same segmented
  sum over the argmax positions, so each input element adds the gradients of the windows
  that picked it in output order.
- getitem / gather backward (`scatter_add`, CuPy's `add.at`: atomicAdd): the same segmented
  sum over the flat positions, for float32 and float64; float16 and bfloat16 have no
  deterministic variant and raise (warn).
- No Triton kernel uses atomics (conv2d's split-K partial sums are added by the launcher in
  order, their count set by the shapes; attention's backward gives each output to one
  program). CuPy's matmul, where it serves, is cuBLAS on one stream, which repeats its bits on
  one GPU model and toolkit version (PyTorch's CUBLAS_WORKSPACE_CONFIG is for several streams).

The "cpu" device has no atomics: its NumPy kernels run on one thread (BLAS aside), and the
native extension (kernels/cpu/, backend/native.py) shares work out in ranges over its worker
pool such that the thread count never changes a result. Most kernels have one task sum each
output element in a fixed order (embedding and pooling, forward and backward, im2col/col2im,
softmax, cross-entropy, the recurrent gates, optimizer steps, sums over all but one block of
axes); the two that add per-range partial sums (`sum_all`, a whole float32 tensor's sum, and
`layer_norm_backward`'s dweight and dbias) cut their ranges by size alone, never by thread
count (`tg::fixed_range_count`, kernels/cpu/parallel.h). Attention's Python threads over
heads compute each head alike whatever the grouping. The instruction-set level does change
roundings (backend/native.py, TINYGRAD_LIKE_ISA), as PyTorch's CPU capability does.

GEMMs go to BLAS: NumPy's matmul on BLAS's threads, the Winograd conv2d's batched GEMMs in
row blocks whose number follows the thread count. Each element is one BLAS dot product over
the whole inner dimension; OpenBLAS gives the same bits for 1 to 4 threads here, but BLAS
promises no summation order. tests/test_determinism.py checks the native kernels above
with 1 and 3 threads.
"""

from __future__ import annotations

import warnings

# (enabled, warn_only), replaced as one tuple so that a reader never sees half an update
_mode = (False, False)


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Make every op use a deterministic algorithm where one exists, and raise RuntimeError
    where none does (warn instead with warn_only=True)."""
    for name, value in (("mode", mode), ("warn_only", warn_only)):
        if not isinstance(value, bool):
            raise TypeError(f"use_deterministic_algorithms: {name} must be a bool, got "
                            f"{type(value).__name__}")
    global _mode
    _mode = (mode, warn_only)


def are_deterministic_algorithms_enabled() -> bool:
    return _mode[0]


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    return _mode[1]


def alert_not_deterministic(caller: str) -> None:
    """Under deterministic mode, raise RuntimeError (or warn, with warn_only) that `caller`
    has no deterministic implementation; do nothing otherwise."""
    enabled, warn_only = _mode
    if not enabled:
        return
    if warn_only:
        warnings.warn(f"{caller} does not have a deterministic implementation, but you set "
                      "'tg.use_deterministic_algorithms(True, warn_only=True)'.",
                      UserWarning, stacklevel=2)
        return
    raise RuntimeError(f"{caller} does not have a deterministic implementation, but you set "
                       "'tg.use_deterministic_algorithms(True)'. You can turn off determinism "
                       "just for this operation, or you can use the 'warn_only=True' option, "
                       "if that's acceptable for your application.")
