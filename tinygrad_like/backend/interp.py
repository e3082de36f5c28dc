"""The "interp" device: NumPy storage, GPU kernels run by Triton's interpreter.

Every op that has a Triton kernel dispatches to exactly the kernel and launch
code that "cuda" uses; every other op runs as on "cpu". It is slow and exists so
that anyone, CI included, can run and debug the GPU path without a GPU.
"""

from __future__ import annotations

import numpy as np


def make_backend(seed: int, index: int | None = None):  # one device, as "cpu"
    from tinygrad_like.backend import Backend, cpu
    from tinygrad_like.backend.table import build_table
    from tinygrad_like.backend.triton_kernels import triton_kernels

    try:
        import torch  # noqa: F401  (the interpreter's carrier for NumPy memory)
        import triton  # noqa: F401
    except ImportError as error:
        raise RuntimeError("device 'interp' needs triton and torch (CPU build) installed: "
                           f"{error}") from None
    # every entry without a Triton kernel runs as on "cpu", native kernels included
    cpu_kernels = vars(cpu.make_backend(seed).kernels)
    table = build_table("interp", triton_kernels(interpret=True), fallbacks=cpu_kernels,
                        lender="cpu")
    return Backend("interp", np, table, seed)
