"""`tg.backend_info()`: which kernel serves each op, per device and dtype."""

from __future__ import annotations

from tinygrad_like import determinism
from tinygrad_like.backend.table import entries

# op -> the entries of backend/table.py it calls (forward and backward); the first names
# the kernel shown
OPS = {
    "add, sub, mul, div": entries("add", "sub", "mul", "div"),
    "sum": entries("sum"),
    "erf (gelu)": entries("erf"),
    "relu": entries("relu", "relu_backward"),
    "matmul": entries("matmul"),
    "linear": entries("linear", "matmul"),
    "softmax": entries("softmax", "softmax_backward"),
    "log_softmax": entries("log_softmax", "log_softmax_backward"),
    "cross_entropy": entries("cross_entropy", "cross_entropy_backward"),
    "conv2d (+ backward data, weight)": entries("conv2d", "conv2d_backward_input",
                                                "conv2d_backward_weight"),
    "max_pool2d": entries("max_pool2d", "max_pool2d_backward"),
    "avg_pool2d": entries("avg_pool2d", "avg_pool2d_backward"),
    "embedding backward": entries("embedding_backward"),
    "getitem, gather backward": entries("scatter_add"),
    "attention (+ backward)": entries("attention", "attention_backward"),
    "dropout": entries("dropout"),
    "gru/lstm gates (+ backward)": entries("gru_gates", "gru_gates_backward", "lstm_gates",
                                           "lstm_gates_backward"),
    "gru sequence (+ backward)": entries("gru_sequence", "gru_sequence_backward"),
    "layer_norm": entries("layer_norm", "layer_norm_backward"),
    "sgd step": entries("sgd_step"),
    "adam step": entries("adam_step"),
    "elementwise, reduce, movement": (),
}
DTYPES = ("float16", "bfloat16", "float32", "float64")


def _describe(kernel, device: str, dtype: str, lender: str | None) -> str:
    module = getattr(getattr(kernel, "func", kernel), "__module__", "") or ""
    if dtype == "bfloat16" and device != "cuda":
        # ml_dtypes' bfloat16 never reaches the native kernels (backend/cpu_bfloat16.py), and
        # Triton's interpreter cannot run it
        return "-- (interpreter)" if "kernels.triton" in module else "NumPy, float32 math"
    if lender:
        return f"fallback: {lender}"
    if getattr(kernel, "native", False) and device != "cuda" and dtype in ("float32", "float64"):
        return getattr(kernel, "native_label", "native _C")
    if "kernels.triton" in module:
        return f"Triton {module.rsplit('.', 1)[-1]}.py"
    if "kernels.cuda" in module:
        return f"CUDA C {module.rsplit('.', 1)[-1].removesuffix('_launch')}.cu"
    return {"cpu": "NumPy", "interp": "NumPy", "cuda": "CuPy"}[device]


def _native_status() -> str:
    from tinygrad_like.backend import native

    if not native.available():
        return f"native extension _C not loaded: {native.reason()}; all kernels are NumPy"
    from tinygrad_like.backend import native_blas

    info = native.build_info()
    return (f"native extension _C loaded ({info['threads']} threads, {info['isa']} build of "
            f"the kernels; this CPU runs {', '.join(native.cpu_isa_levels())}); "
            f"large GEMMs on {native_blas.status()}")


def backend_info(devices=("cpu", "interp", "cuda"), print_table: bool = True) -> str:
    """A table of op x device x dtype -> kernel; devices that cannot load here are noted."""
    from tinygrad_like.backend import get_backend

    lines = [f"{'device':<8} {'op':<34} " + " ".join(f"{d:<24}" for d in DTYPES)]
    if determinism.are_deterministic_algorithms_enabled():
        lines.append("deterministic algorithms on: embedding, max_pool2d, getitem and gather "
                     "backward on cuda run segment_sum.cu, not atomics")
    for device in devices:
        try:
            backend = get_backend(device)
        except (RuntimeError, ImportError) as error:
            lines.append(f"{device:<8} unavailable: {error}")
            continue
        if device == "cpu":
            lines.append(f"{device:<8} {_native_status()}")
        for op, names in OPS.items():
            kernel = getattr(backend.kernels, names[0]) if names else None
            lender = backend.kernel_fallbacks.get(names[0]) if names else None
            cells = [_describe(kernel, device, dtype, lender) for dtype in DTYPES]
            lines.append(f"{device:<8} {op:<34} " + " ".join(f"{c:<24}" for c in cells))
    table = "\n".join(lines)
    if print_table:
        print(table)
    return table
