"""The "interp" device: NumPy storage, GPU kernels run by Triton's interpreter.

Every op that has a Triton kernel dispatches to exactly the kernel and launch
code that "cuda" uses; every other op runs as on "cpu". It is slow and exists so
that anyone, CI included, can run and debug the GPU path without a GPU.
"""

from __future__ import annotations

import numpy as np


def make_backend(seed: int):
    from tinygrad_like.backend import Backend, cpu
    from tinygrad_like.backend.triton_kernels import triton_kernel_table

    try:
        import torch  # noqa: F401  (the interpreter's carrier for NumPy memory)
        import triton  # noqa: F401
    except ImportError as error:
        raise RuntimeError("device 'interp' needs triton and torch (CPU build) installed: "
                           f"{error}") from None
    reference = cpu.make_backend(seed).kernels
    return Backend("interp", np, triton_kernel_table(reference, interpret=True), seed)
