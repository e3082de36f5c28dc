"""Autocast: inside `tg.autocast(device_type)`, each listed op runs in the dtype that suits it,
as torch.autocast (torch/amp/autocast_mode.py, aten/src/ATen/autocast_mode.cpp).

An op carries a policy by name (`autocast_op("linear")`); on entry it looks the name up in
its device's lists below and casts its floating Tensor arguments on that device:
"lower_precision_fp" ops (matrix products, convolutions, attention) to the autocast dtype,
"fp32" ops (losses, and on CUDA also softmax, normalisations, exp, log, sums) to float32.
float64 tensors, tensors on other devices and ops given an explicit `dtype=` are left alone,
and the op itself runs with autocast off, so the ops it is built from are not cast again
(PyTorch excludes the autocast dispatch key the same way). Every cast is the differentiable
`Tensor.to`, so gradients reach float32 parameters in float32.

Lower-precision copies of float32 leaf tensors that require grad (the parameters) are cached
until the outermost autocast region exits, so a weight used at several steps of a loop is
cast once; in-place writes to a parameter inside the region are not seen by its cached copy,
as in PyTorch. The state is thread-local, like grad mode.

Tensors on "interp" (the GPU kernels run by Triton's interpreter) follow `autocast("cuda")`:
that device stands in for "cuda" wherever no GPU is present, so CI runs the CUDA policy on
the very kernels a GPU would.
"""

from __future__ import annotations

import functools
import threading
import warnings

from tinygrad_like import dtypes
from tinygrad_like.tensor import Tensor

DEVICE_TYPES = ("cpu", "cuda")
AUTOCAST_TYPE = {"cpu": "cpu", "cuda": "cuda", "interp": "cuda"}  # device -> autocast type
DEFAULT_DTYPES = {"cpu": dtypes.bfloat16, "cuda": dtypes.float16}
LOWER, FP32 = "lower_precision_fp", "fp32"

# The ops of PyTorch's lists that exist here (autocast_mode.cpp, PyTorch 2.x)
_CPU_LOWER = ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "bmm", "mm",
              "baddbmm", "addmm", "linear", "matmul", "scaled_dot_product_attention")
_CPU_FP32 = ("mse_loss", "l1_loss", "nll_loss", "cross_entropy", "binary_cross_entropy",
             "binary_cross_entropy_with_logits", "smooth_l1_loss", "huber_loss", "kl_div",
             "prod")
_CUDA_LOWER = ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "bmm", "mm",
               "baddbmm", "addmm", "linear", "matmul", "scaled_dot_product_attention")
_CUDA_FP32 = ("softmax", "log_softmax", "layer_norm", "group_norm", "exp", "log", "pow",
              "rsqrt", "sum", "prod", "cumsum", "cumprod", "norm", "softplus", "mse_loss",
              "l1_loss", "nll_loss", "cross_entropy", "binary_cross_entropy_with_logits",
              "smooth_l1_loss", "huber_loss", "kl_div")
POLICIES = {
    "cpu": {**dict.fromkeys(_CPU_LOWER, LOWER), **dict.fromkeys(_CPU_FP32, FP32)},
    "cuda": {**dict.fromkeys(_CUDA_LOWER, LOWER), **dict.fromkeys(_CUDA_FP32, FP32)},
}
# PyTorch refuses these under CUDA autocast: float16 probabilities lose too much
_CUDA_BANNED = {"binary_cross_entropy": "binary_cross_entropy_with_logits (BCEWithLogitsLoss), "
                                        "which is safe to autocast"}


class _AutocastState(threading.local):
    """This thread's autocast settings. Class attributes are every thread's starting values:
    `enabled` maps each device type with autocast on to its dtype (empty when off, the one
    check every hooked op makes), `dtypes` the dtype each device would use."""

    enabled: dict = {}
    dtypes: dict = DEFAULT_DTYPES
    cache_enabled = True
    nesting = 0
    cache: dict = {}  # id(parameter) -> (parameter, its lower-precision copy); set on entry


state = _AutocastState()


def _check_device_type(op: str, device_type) -> str:
    device_type = getattr(device_type, "type", device_type)  # a tg.device names its type
    if device_type not in DEVICE_TYPES:
        raise RuntimeError(f"{op}: unsupported autocast device_type {device_type!r}; expected "
                           f"one of {', '.join(DEVICE_TYPES)}")
    return device_type


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """Whether autocast is on for `device_type` in this thread (CUDA when not given, as in
    PyTorch)."""
    return _check_device_type("is_autocast_enabled", device_type) in state.enabled


def get_autocast_dtype(device_type: str):
    """The dtype autocast uses on `device_type` (bfloat16 on cpu, float16 on cuda unless set)."""
    return state.dtypes[_check_device_type("get_autocast_dtype", device_type)]


def is_autocast_cache_enabled() -> bool:
    return state.cache_enabled


def clear_autocast_cache() -> None:
    state.cache = {}


class autocast:  # noqa: N801  (torch.autocast's name)
    """Run the ops of a region (or of a decorated function) in mixed precision on one device
    type: `with tg.autocast("cpu"):` or `@tg.autocast("cuda", dtype=tg.bfloat16)`.

    dtype defaults to bfloat16 on cpu and float16 on cuda; `enabled=False` turns autocast off
    inside an enabled region; cache_enabled=None keeps the current cache setting.
    """

    def __init__(self, device_type: str, dtype=None, enabled: bool = True,
                 cache_enabled: bool | None = None):
        if not isinstance(enabled, bool):
            raise TypeError(f"autocast: enabled must be a bool, got {type(enabled).__name__}")
        self.device_type = _check_device_type("autocast", device_type)
        self.fast_dtype = get_autocast_dtype(self.device_type) if dtype is None \
            else dtypes.to_dtype(dtype)
        self._enabled = enabled
        self._cache_enabled = state.cache_enabled if cache_enabled is None else cache_enabled
        if enabled and self.fast_dtype not in (dtypes.bfloat16, dtypes.float16):
            warnings.warn(f"In {self.device_type} autocast, but the target dtype "
                          f"{self.fast_dtype.name} is not supported (only bfloat16 and "
                          "float16 are). Disabling autocast.", stacklevel=2)
            self._enabled = False

    def __enter__(self):
        self._previous = (state.enabled, state.dtypes, state.cache_enabled)
        enabled = dict(state.enabled)
        if self._enabled:
            enabled[self.device_type] = self.fast_dtype
        else:
            enabled.pop(self.device_type, None)
        state.enabled = enabled
        state.dtypes = {**state.dtypes, self.device_type: self.fast_dtype}
        state.cache_enabled = self._cache_enabled
        if state.nesting == 0:
            state.cache = {}  # this thread's own (the class attribute is every thread's)
        state.nesting += 1
        return self

    def __exit__(self, *exc):
        state.nesting -= 1
        if state.nesting == 0:  # as PyTorch: the cached casts live as long as the outermost region
            state.cache = {}
        state.enabled, state.dtypes, state.cache_enabled = self._previous
        return False

    def __call__(self, function):
        """As a decorator: each call runs in a region of its own (safe under recursion)."""
        settings = (self.device_type, self.fast_dtype, self._enabled, self._cache_enabled)

        @functools.wraps(function)
        def run(*args, **kwargs):
            with autocast(*settings):
                return function(*args, **kwargs)

        return run


def autocast_op(name: str):
    """Decorate the public op `name` so that it follows its autocast policy (see the module
    docstring); outside autocast it costs one check."""

    def decorate(op):
        @functools.wraps(op)
        def run(*args, **kwargs):
            if not state.enabled or kwargs.get("dtype") is not None:
                return op(*args, **kwargs)
            return _run_autocast(name, op, args, kwargs)

        return run

    return decorate


def _run_autocast(name: str, op, args: tuple, kwargs: dict):
    device_type = _device_of(args, kwargs)
    if device_type not in state.enabled:
        return op(*args, **kwargs)
    if device_type == "cuda" and name in _CUDA_BANNED:
        raise RuntimeError(f"{name} is unsafe to autocast on cuda; use "
                           f"{_CUDA_BANNED[name]}, or disable autocast around it")
    policy = POLICIES[device_type].get(name)
    if policy is None:  # listed on the other device only: its building blocks may be listed
        return op(*args, **kwargs)
    target = state.enabled[device_type] if policy == LOWER else dtypes.float32
    args = tuple(_cast(a, target, device_type) for a in args)
    kwargs = {k: _cast(v, target, device_type) for k, v in kwargs.items()}
    outer = state.enabled
    state.enabled = {}  # the op's own building blocks are not autocast again
    try:
        return op(*args, **kwargs)
    finally:
        state.enabled = outer


def _device_of(args: tuple, kwargs: dict) -> str | None:
    """The device type of the op's first Tensor argument."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor):
            return AUTOCAST_TYPE.get(value.backend.name)
    return None


def _cast(value, target, device_type: str):
    """`value` in `target` if it is an eligible Tensor: floating, not float64, on the
    device; lists and tuples of tensors are cast element by element."""
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, target, device_type) for v in value)
    if not isinstance(value, Tensor):
        return value
    dtype = value.dtype
    if (dtype is target or not dtype.is_floating_point or dtype is dtypes.float64
            or AUTOCAST_TYPE.get(value.backend.name) != device_type):
        return value
    cacheable = (state.cache_enabled and target is not dtypes.float32
                 and dtype is dtypes.float32 and value.requires_grad and value.is_leaf)
    if not cacheable:
        return value.to(target)
    cached = state.cache.get(id(value))
    if cached is None or cached[0] is not value:
        cached = state.cache[id(value)] = (value, value.to(target))
    return cached[1]
