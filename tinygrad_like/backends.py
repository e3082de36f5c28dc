"""`tg.backends`: PyTorch's switches that programs set at start-up.

- `cuda.matmul.allow_tf32` is real: it switches the float32 Triton matmul and linear on
  the "cuda" device to TF32 tensor-core products (backend/flags.py).
- `cudnn.*` are accepted and kept, but no cuDNN runs here: the Triton convolution always
  multiplies float32 in IEEE precision (so `allow_tf32` cannot make it less precise) and has
  no algorithm search for `benchmark` to tune; for deterministic kernels use
  `tg.use_deterministic_algorithms`, which covers every kernel with atomics.
- `mps.is_available()` is False: there is no Apple GPU device.
"""

from __future__ import annotations

from types import SimpleNamespace

from tinygrad_like.backend.flags import MATMUL

cuda = SimpleNamespace(matmul=MATMUL, is_built=lambda: True)
cudnn = SimpleNamespace(enabled=True, benchmark=False, deterministic=False, allow_tf32=True,
                        is_available=lambda: False, version=lambda: None)
mps = SimpleNamespace(is_available=lambda: False, is_built=lambda: False)


def set_float32_matmul_precision(precision: str) -> None:
    """tg.set_float32_matmul_precision: "highest" multiplies float32 in IEEE precision,
    "high" and "medium" allow TF32 (the same switch as cuda.matmul.allow_tf32)."""
    if precision not in ("highest", "high", "medium"):
        raise ValueError(f"set_float32_matmul_precision: expected 'highest', 'high' or "
                         f"'medium', got {precision!r}")
    MATMUL.allow_tf32 = precision != "highest"


def get_float32_matmul_precision() -> str:
    return "high" if MATMUL.allow_tf32 else "highest"
