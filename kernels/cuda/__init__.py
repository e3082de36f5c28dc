"""CUDA C kernels (.cu) for the jobs a plain CUDA kernel does best, with their launchers.

pooling.cu (max/average pooling, forward and backward), embedding.cu (embedding backward
by atomic scatter-add), segment_sum.cu (scatter-add without atomics: what embedding and
max-pool backward and `scatter_add` run under tg.use_deterministic_algorithms(True), see
tinygrad_like/determinism.py), dropout.cu (Philox4x32-10 counter-based masks) and
optimizer.cu (fused multi-tensor SGD and Adam/AdamW steps). On "cuda" they compile with
NVRTC through cupy.RawModule (`runtime.CupyRuntime`); tests also compile them as C++ with
cpu_shim.h and run them on the CPU (`runtime.CpuShimRuntime`). Each launcher takes the
runtime first and then the kernel-table entry's arguments.
"""

from __future__ import annotations

import functools
import importlib

# entry of tinygrad_like/backend/table.py -> (launcher module in this package, function): each
# <family>_launch.py launches <family>.cu
KERNELS = {
    "max_pool2d": ("pooling_launch", "max_pool2d"),
    "max_pool2d_backward": ("pooling_launch", "max_pool2d_backward"),
    "avg_pool2d": ("pooling_launch", "avg_pool2d"),
    "avg_pool2d_backward": ("pooling_launch", "avg_pool2d_backward"),
    "embedding_backward": ("embedding_launch", "embedding_backward"),
    "scatter_add": ("segment_sum_launch", "scatter_add"),  # getitem / gather backward
    "dropout": ("dropout_launch", "dropout"),
    "sgd_step": ("optimizer_launch", "sgd_step"),
    "adam_step": ("optimizer_launch", "adam_step"),
}


def kernel_table(runtime, references: dict | None = None) -> dict:
    """Every entry of KERNELS as a function of the entry's arguments, run on `runtime`.

    The kernels cover float32 and float64. Where `references` ({entry: kernel}) has the same
    entry, a call with arrays of another dtype (float16, bfloat16) runs that kernel instead.
    """
    table = {}
    for name, (module, function) in KERNELS.items():
        launcher = getattr(importlib.import_module(f"{__name__}.{module}"), function)
        launcher = functools.partial(launcher, runtime)
        reference = (references or {}).get(name)
        table[name] = launcher if reference is None else functools.partial(
            _covered_or_reference, launcher, reference)
    return table


def _covered_or_reference(launcher, reference, first, *args, **kwargs):
    """`launcher` if the first argument (an array, or a list of arrays for the optimizer
    steps) is float32 or float64 throughout, else `reference`."""
    arrays = first if isinstance(first, (list, tuple)) else [first]
    covered = all(str(array.dtype) in ("float32", "float64") for array in arrays)
    return (launcher if covered else reference)(first, *args, **kwargs)
