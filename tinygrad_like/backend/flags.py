"""Process-wide switches that pick a kernel variant, set through `tg.backends` as in PyTorch.

They are read at each launch, so a program may flip them at any time.
"""

from __future__ import annotations


class MatmulFlags:
    """tg.backends.cuda.matmul: `allow_tf32` lets the float32 Triton matmul/linear multiply on
    the tensor cores in TF32 (10-bit mantissa products, float32 accumulation), PyTorch's
    trade of precision for speed; off by default, as in PyTorch since 1.12."""

    allow_tf32 = False


MATMUL = MatmulFlags()
