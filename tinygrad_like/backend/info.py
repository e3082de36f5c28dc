"""`tg.backend_info()`: which kernel serves each op, per device and dtype."""

from __future__ import annotations

from tinygrad_like import determinism

# op -> the kernel-table entries it calls (forward and backward)
OPS = {
    "add, sub, mul, div": ("add", "sub", "mul", "div"),
    "relu": ("relu", "relu_backward"),
    "matmul": ("matmul",),
    "linear": ("linear", "matmul"),
    "softmax": ("softmax", "softmax_backward"),
    "log_softmax": ("log_softmax", "log_softmax_backward"),
    "cross_entropy": ("cross_entropy", "cross_entropy_backward"),
    "conv2d (+ backward data, weight)": ("conv2d", "conv2d_backward_input",
                                         "conv2d_backward_weight"),
    "im2col, col2im (cpu conv2d)": ("im2col", "col2im"),
    "max_pool2d": ("max_pool2d", "max_pool2d_backward"),
    "avg_pool2d": ("avg_pool2d", "avg_pool2d_backward"),
    "embedding backward": ("embedding_backward",),
    "attention (+ backward)": ("attention", "attention_backward"),
    "dropout": ("dropout",),
    "gru/lstm gates (+ backward)": ("gru_gates", "gru_gates_backward"),
    "layer_norm": ("layer_norm", "layer_norm_backward"),
    "sgd step": ("sgd_step",),
    "adam step": ("adam_step",),
    "elementwise, reduce, movement": (),
}
DTYPES = ("float16", "bfloat16", "float32", "float64")


def _describe(kernel, device: str, dtype: str) -> str:
    module = getattr(getattr(kernel, "func", kernel), "__module__", "") or ""
    if dtype == "bfloat16" and device != "cuda":
        return "-- (no NumPy bfloat16)"
    if getattr(kernel, "native", False) and device != "cuda" and dtype in ("float32", "float64"):
        return getattr(kernel, "native_label", "native _C")
    if "kernels.triton" in module:
        return f"Triton {module.rsplit('.', 1)[-1]}.py"
    if "kernels.cuda" in module:
        return f"CUDA C {module.rsplit('.', 1)[-1]}.cu"
    return {"cpu": "NumPy", "interp": "NumPy", "cuda": "CuPy"}[device]


def _native_status() -> str:
    from tinygrad_like.backend import native

    if not native.available():
        return f"native extension _C not loaded: {native.reason()}; all kernels are NumPy"
    from tinygrad_like.backend import native_blas

    info = native.build_info()
    return (f"native extension _C loaded ({info['threads']} threads, {info['isa']} build of "
            f"the kernels; this CPU runs {', '.join(native.cpu_isa_levels())}); "
            f"Winograd GEMMs on {native_blas.status()}")


def backend_info(devices=("cpu", "interp", "cuda"), print_table: bool = True) -> str:
    """A table of op x device x dtype -> kernel; devices that cannot load here are noted."""
    from tinygrad_like.backend import get_backend

    lines = [f"{'device':<8} {'op':<34} " + " ".join(f"{d:<24}" for d in DTYPES)]
    if determinism.are_deterministic_algorithms_enabled():
        lines.append("deterministic algorithms on: embedding, max_pool2d, getitem and gather "
                     "backward on cuda run segment_sum.cu, not atomics")
    for device in devices:
        try:
            kernels = get_backend(device).kernels
        except (RuntimeError, ImportError) as error:
            lines.append(f"{device:<8} unavailable: {error}")
            continue
        if device == "cpu":
            lines.append(f"{device:<8} {_native_status()}")
        for op, entries in OPS.items():
            if entries and not hasattr(kernels, entries[0]):
                continue  # an op this device does not have a kernel-table entry for
            kernel = getattr(kernels, entries[0]) if entries else None
            cells = [_describe(kernel, device, dtype) for dtype in DTYPES]
            lines.append(f"{device:<8} {op:<34} " + " ".join(f"{c:<24}" for c in cells))
    table = "\n".join(lines)
    if print_table:
        print(table)
    return table
