"""The "cpu" device: NumPy arrays, with NumPy's BLAS-backed matmul.

The kernel table also holds the NumPy references that the GPU kernels are
tested against, so a kernel's reference lives in one place.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import scipy.special


def make_backend(seed: int):
    from tinygrad_like.backend import Backend

    kernels = SimpleNamespace(
        matmul=np.matmul,
        erf=scipy.special.erf,
    )
    return Backend("cpu", np, kernels, seed)
