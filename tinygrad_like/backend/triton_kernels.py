"""The Triton kernels of the GPU path: which entry of backend/table.py each launcher serves.

"cuda" and "interp" share these; only the Launcher differs (compiled or
interpreted), so the interpreter exercises exactly the launch code the GPU runs.
`tinygrad-like kernels` (kernel_report.py) compiles the modules named here.
"""

from __future__ import annotations

import functools
import importlib

from tinygrad_like.backend.flags import MATMUL
from tinygrad_like.kernels.triton import launch

# entry of backend/table.py -> (module in tinygrad_like.kernels.triton, launcher function)
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
    "attention_backward": ("attention_backward", "attention_backward"),
    "conv2d": ("conv2d", "conv2d"),
    "conv2d_backward_input": ("conv2d", "conv2d_backward_input"),
    "conv2d_backward_weight": ("conv2d", "conv2d_backward_weight"),
}


def triton_kernels(interpret: bool) -> dict:
    """{entry: its Triton launcher}, launched compiled or by Triton's interpreter."""
    launcher = launch.Launcher(interpret)
    kernels = {}
    for name, (module, function) in TRITON_KERNELS.items():
        source = importlib.import_module(f"tinygrad_like.kernels.triton.{module}")
        kernels[name] = functools.partial(getattr(source, function), launcher)
    for name in ("matmul", "linear"):
        kernels[name] = _reading_tf32_flag(kernels[name])
    return kernels


def _reading_tf32_flag(kernel):
    """The launcher, told at each call whether tg.backends.cuda.matmul.allow_tf32 is on."""
    @functools.wraps(kernel)
    def launch_with_flag(*args, **kwargs):
        return kernel(*args, allow_tf32=MATMUL.allow_tf32, **kwargs)

    launch_with_flag.func = kernel.func  # as on the partial: backend_info names the Triton module
    return launch_with_flag
