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

The "cpu" device has no atomics: its NumPy kernels run on one thread (BLAS aside), and
with a fixed thread count the native kernels repeat their bits from run to run. The native
extension (kernels/cpu/, backend/native.py)
shares work out in ranges over its worker pool, and most of its kernels give the same bits
whatever the thread count, because one task sums each output element in a fixed order
(embedding and pooling, forward and backward, im2col/col2im, softmax, cross-entropy, the
recurrent gates, optimizer steps, sums over all but one block of axes), and attention's
Python threads over heads compute each head alike whatever the grouping. Two kernels add
per-range partial sums in range order, with four ranges per thread (`native.set_num_threads`),
so their rounding changes with the thread count:

- `sum_all`: a whole float32 tensor's sum above 2M elements (double partials);
- `layer_norm_backward`'s dweight and dbias above 256K elements (double partials per range
  of rows; dx is per row and does not move).

GEMMs go to BLAS: NumPy's matmul on BLAS's threads, the Winograd conv2d's batched GEMMs in
row blocks whose number follows the thread count. Each element is one BLAS dot product over
the whole inner dimension; OpenBLAS gives the same bits for 1 to 4 threads here, but BLAS
promises no summation order. tests/test_determinism.py shows the two kernels that move and
checks a sample of those that do not. Fix the thread count for results that match between
machines with different numbers of cores, or set TINYGRAD_LIKE_NUMPY=1 for the NumPy kernels
alone.
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
