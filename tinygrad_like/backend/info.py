"""`tg.backend_info()`: which kernel serves each op, per device and dtype."""

from __future__ import annotations

# op -> the kernel-table entries it calls (forward and backward)
OPS = {
    "matmul": ("matmul",),
    "linear": ("linear", "matmul"),
    "softmax": ("softmax", "softmax_backward"),
    "log_softmax": ("log_softmax", "log_softmax_backward"),
    "cross_entropy": ("cross_entropy", "cross_entropy_backward"),
    "conv2d, pooling": ("matmul",),  # unfold (a strided view) + the matmul kernel
    "elementwise, reduce, movement": (),
}
DTYPES = ("float16", "bfloat16", "float32", "float64")


def _describe(kernel, device: str, dtype: str) -> str:
    module = getattr(getattr(kernel, "func", kernel), "__module__", "") or ""
    if dtype == "bfloat16" and device != "cuda":
        return "-- (no NumPy bfloat16)"
    if "kernels.triton" in module:
        return f"Triton {module.rsplit('.', 1)[-1]}.py"
    return {"cpu": "NumPy", "interp": "NumPy", "cuda": "CuPy"}[device]


def backend_info(devices=("cpu", "interp", "cuda"), print_table: bool = True) -> str:
    """A table of op x device x dtype -> kernel; devices that cannot load here are noted."""
    from tinygrad_like.backend import get_backend

    lines = [f"{'device':<8} {'op':<30} " + " ".join(f"{d:<24}" for d in DTYPES)]
    for device in devices:
        try:
            kernels = get_backend(device).kernels
        except (RuntimeError, ImportError) as error:
            lines.append(f"{device:<8} unavailable: {error}")
            continue
        for op, entries in OPS.items():
            kernel = getattr(kernels, entries[0]) if entries else None
            prefix = "unfold + " if op.startswith("conv") else ""
            cells = [_describe(kernel, device, dtype) for dtype in DTYPES]
            cells = [cell if cell.startswith("--") else prefix + cell for cell in cells]
            lines.append(f"{device:<8} {op:<30} " + " ".join(f"{c:<24}" for c in cells))
    table = "\n".join(lines)
    if print_table:
        print(table)
    return table
