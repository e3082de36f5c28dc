"""The kernel table of the GPU path: Triton kernels where they exist, references elsewhere.

"cuda" and "interp" share this table; only the Launcher differs (compiled or
interpreted), so the interpreter exercises exactly the launch code the GPU runs.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from tinygrad_like.kernels.triton import launch

# kernel-table entry -> (module in tinygrad_like.kernels.triton, launcher function)
TRITON_KERNELS = {
    "matmul": ("matmul", "matmul"),
    "linear": ("matmul", "linear"),  # the matmul with a fused bias epilogue
    "softmax": ("softmax", "softmax"),
    "log_softmax": ("softmax", "log_softmax"),
    "softmax_backward": ("softmax", "softmax_backward"),
    "log_softmax_backward": ("softmax", "log_softmax_backward"),
    "cross_entropy": ("cross_entropy", "cross_entropy"),
    "cross_entropy_backward": ("cross_entropy", "cross_entropy_backward"),
    "attention": ("attention", "attention"),
    "attention_backward": ("attention", "attention_backward"),
    "conv2d": ("conv2d", "conv2d"),
    "conv2d_backward_input": ("conv2d", "conv2d_backward_input"),
    "conv2d_backward_weight": ("conv2d", "conv2d_backward_weight"),
}


def triton_kernel_table(fallback: SimpleNamespace, interpret: bool) -> SimpleNamespace:
    """`fallback`'s kernels with every entry of TRITON_KERNELS replaced by its Triton launcher."""
    import importlib

    launcher = launch.Launcher(interpret)
    table = SimpleNamespace(**vars(fallback))
    for name, (module, function) in TRITON_KERNELS.items():
        source = importlib.import_module(f"tinygrad_like.kernels.triton.{module}")
        setattr(table, name, functools.partial(getattr(source, function), launcher))
    return table
