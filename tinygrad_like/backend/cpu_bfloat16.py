"""bfloat16 on the "cpu" device: the kernels that NumPy cannot run well on ml_dtypes' bfloat16.

ml_dtypes gives NumPy a bfloat16 whose ufuncs compute each element in float32 and round once,
which is what PyTorch's CPU kernels do, so elementwise ops need nothing here. What it lacks,
PyTorch does in float32 ("opmath") and rounds once at the end; the wrappers below do the same:

- sums, matrix products, convolutions, softmax and pooling accumulate in float32 (ml_dtypes
  would round every partial sum, and runs its matmul without BLAS);
- a Python float factor or divisor is taken as float32, not first rounded to bfloat16
  (NumPy's rule for a "weak" scalar), so `x * 0.3` multiplies by 0.3f as PyTorch does; add
  and sub are left to ml_dtypes, since PyTorch rounds their scalar operand to bfloat16;
- erf (SciPy's) would return float64.

Each wrapper costs one dtype test on the NumPy path; the native kernels see float32 and
float64 only and hand every other dtype to these (backend/native_kernels.py).
"""

from __future__ import annotations

import functools

import ml_dtypes
import numpy as np

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

# kernels computed in float32 whenever an array argument is bfloat16; every float32 array
# they return is rounded back to bfloat16, in tuples too (their other results are indices)
_THROUGH_FLOAT32 = ("mul", "div", "erf", "matmul", "linear", "softmax",
                    "log_softmax", "softmax_backward", "log_softmax_backward", "conv2d",
                    "conv2d_backward_input", "conv2d_backward_weight", "max_pool2d",
                    "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward")


def _upcast(value):
    if type(value) is np.ndarray and value.dtype == BFLOAT16:
        return value.astype(np.float32)
    if type(value) is float:
        return np.float32(value)  # a NumPy scalar is not "weak": the sum stays float32
    return value


def _round(value):
    if type(value) is np.ndarray and value.dtype == np.float32:
        return value.astype(BFLOAT16)
    if isinstance(value, tuple):
        return tuple(_round(v) for v in value)
    return value


def through_float32(kernel):
    """`kernel`, computed in float32 and rounded once when an argument is a bfloat16 array."""

    @functools.wraps(kernel)
    def run(*args):
        for arg in args:
            if type(arg) is np.ndarray and arg.dtype == BFLOAT16:
                return _round(kernel(*map(_upcast, args)))
        return kernel(*args)

    return run


def reduce_sum(reference):
    """The `sum` entry: bfloat16 accumulates in float32, as PyTorch's sum does."""

    @functools.wraps(reference)
    def run(x, axes, keepdims, dtype=None):
        if dtype is None and x.dtype == BFLOAT16:
            return reference(x, axes, keepdims, np.float32).astype(BFLOAT16)
        return reference(x, axes, keepdims, dtype)

    return run


def bfloat16_kernels(kernels: dict) -> dict:
    """`kernels` (NumPy's, by entry name) with the entries above made bfloat16-aware."""
    wrapped = {name: through_float32(kernels[name]) for name in _THROUGH_FLOAT32}
    return {**kernels, **wrapped, "sum": reduce_sum(kernels["sum"])}
