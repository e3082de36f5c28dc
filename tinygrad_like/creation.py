"""Tensor creation functions: tg.zeros, tg.randn, tg.arange, ... with PyTorch's signatures.

Random draws come from the device's generator, seeded by `tg.manual_seed`, so
they are reproducible and independent of NumPy's and PyTorch's global seeds.
"""

from __future__ import annotations

import numpy as np

from tinygrad_like import dtypes
from tinygrad_like.backend import get_backend, manual_seed  # noqa: F401  (re-exported)
from tinygrad_like.grad_mode import is_inference_mode_enabled, mark_inference
from tinygrad_like.ops.checks import check_int, check_number
from tinygrad_like.tensor import Tensor


def _shape(op: str, size: tuple) -> tuple:
    """f(2, 3) or f((2, 3)) as a shape: ints (TypeError otherwise), none negative."""
    shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
    if any(not isinstance(n, (int, np.integer)) for n in shape):
        raise TypeError(f"{op}: invalid shape {tuple(shape)!r}: sizes must be integers")
    if any(n < 0 for n in shape):
        raise ValueError(f"{op}: invalid shape {tuple(shape)}: sizes must be non-negative")
    return tuple(int(n) for n in shape)


def _make(array_fn, dtype, device, requires_grad, default=None) -> Tensor:
    backend = get_backend(device)
    dtype = dtypes.to_dtype(dtype) if dtype is not None else (default or dtypes.default_float())
    if dtype.np_dtype is None:
        raise TypeError(f"dtype {dtype.name} is not supported on device {backend.name!r}")
    t = Tensor._wrap(array_fn(backend, dtype.np_dtype), backend)
    if is_inference_mode_enabled():
        mark_inference(t)
    return t.requires_grad_(requires_grad) if requires_grad else t


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return Tensor._from_data(data, requires_grad, dtype, device)


def zeros(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    shape = _shape("zeros", size)
    return _make(lambda b, dt: b.xp.zeros(shape, dtype=dt), dtype, device, requires_grad)


def ones(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    shape = _shape("ones", size)
    return _make(lambda b, dt: b.xp.ones(shape, dtype=dt), dtype, device, requires_grad)


def empty(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    shape = _shape("empty", size)
    return _make(lambda b, dt: b.xp.empty(shape, dtype=dt), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    shape = _shape("full", size if isinstance(size, (tuple, list)) else (size,))
    check_number("full", "fill_value", fill_value)
    default = dtypes.result_type(fill_value)
    return _make(lambda b, dt: b.xp.full(shape, fill_value, dtype=dt), dtype, device,
                 requires_grad, default)


def eye(n: int, m: int | None = None, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    n = check_int("eye", "n", n, minimum=0)
    m = None if m is None else check_int("eye", "m", m, minimum=0)
    return _make(lambda b, dt: b.xp.eye(n, m, dtype=dt), dtype, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    for name, value in (("start", start), ("end", end), ("step", step)):
        check_number("arange", name, value)
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(f"arange: step {step} points away from end {end} (start {start})")
    default = dtypes.result_type(start, end, step)
    if default is dtypes.bool_:  # tg.arange(True) counts in int64, as PyTorch
        default = dtypes.int64
    return _make(lambda b, dt: b.xp.astype(b.xp.arange(start, end, step), dt), dtype, device,
                 requires_grad, default)


def linspace(start, end, steps: int, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    check_number("linspace", "start", start)
    check_number("linspace", "end", end)
    steps = check_int("linspace", "steps", steps, minimum=0)
    return _make(lambda b, dt: b.xp.linspace(start, end, steps, dtype=dt), dtype, device,
                 requires_grad)


def zeros_like(x: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return zeros(x.shape, dtype=dtype or x.dtype, device=device or x.device,
                 requires_grad=requires_grad)


def ones_like(x: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return ones(x.shape, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


def full_like(x: Tensor, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


def generator_rng(op: str, backend, generator):
    """The generator a draw uses: `generator` if given (it must be on the tensor's device, as
    PyTorch requires), else the device's global one."""
    if generator is None:
        return backend.rng
    if generator.device != backend.name:
        raise RuntimeError(f"{op}: expected a {backend.name!r} generator for a tensor on "
                           f"{backend.name!r}, but the generator is on {generator.device!r}")
    return generator.rng


def _random_floats(op: str, draw, size, generator, dtype, device, requires_grad) -> Tensor:
    shape = _shape(op, size)
    # drawn in float64 then cast, so a seed gives the same numbers in every float dtype
    return _make(lambda b, dt: b.xp.astype(draw(generator_rng(op, b, generator), shape), dt),
                 dtype, device, requires_grad)


def rand(*size, generator=None, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _random_floats("rand", lambda rng, s: rng.random(s), size, generator, dtype, device,
                          requires_grad)


def randn(*size, generator=None, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _random_floats("randn", lambda rng, s: rng.standard_normal(s), size, generator, dtype,
                          device, requires_grad)


def rand_like(x: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return rand(x.shape, dtype=dtype or x.dtype, device=x.device, requires_grad=requires_grad)


def randn_like(x: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return randn(x.shape, dtype=dtype or x.dtype, device=x.device, requires_grad=requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device="cpu",
            requires_grad: bool = False) -> Tensor:
    """randint(high, size) or randint(low, high, size): integers in [low, high), int64 unless
    `dtype` says otherwise."""
    if size is None and isinstance(high, (tuple, list)):
        high, size = None, high  # randint(high, size)
    if size is None:
        raise TypeError("randint: missing the size argument; call randint(high, size) or "
                        "randint(low, high, size)")
    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    shape = _shape("randint", tuple(size))

    def draw(backend, np_dtype):
        rng = generator_rng("randint", backend, generator)
        return backend.xp.astype(rng.integers(low, high, shape), np_dtype)

    return _make(draw, dtype, device, requires_grad, dtypes.int64)


def randperm(n: int, dtype=None, device="cpu", *, generator=None) -> Tensor:
    def draw(backend, np_dtype):
        permutation = generator_rng("randperm", backend, generator).permutation(n)
        return backend.xp.astype(permutation, np_dtype)

    return _make(draw, dtype, device, False, dtypes.int64)


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor that shares memory with `array` (writes show in both)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    dtypes.from_numpy_dtype(array.dtype)  # raises for dtypes with no equivalent
    return Tensor._wrap(array, get_backend("cpu"))


def from_dlpack(obj) -> Tensor:
    """A tensor sharing memory with any DLPack producer (NumPy, PyTorch, CuPy, ...)."""
    device_type, _ = obj.__dlpack_device__()
    if device_type == 1:  # kDLCPU
        return from_numpy(np.from_dlpack(obj))
    if device_type == 2:  # kDLCUDA
        import cupy

        return Tensor._wrap(cupy.from_dlpack(obj), get_backend("cuda"))
    raise RuntimeError(f"from_dlpack: unsupported DLPack device type {device_type}")


# ---- x.new_*: a tensor with x's dtype and device unless told otherwise ----------------------
def _new(maker, x: Tensor, dtype, device, requires_grad, *args) -> Tensor:
    return maker(*args, dtype=x.dtype if dtype is None else dtype,
                 device=x.device if device is None else device, requires_grad=requires_grad)


def new_zeros(x: Tensor, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(zeros, x, dtype, device, requires_grad, *size)


def new_ones(x: Tensor, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(ones, x, dtype, device, requires_grad, *size)


def new_empty(x: Tensor, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(empty, x, dtype, device, requires_grad, *size)


def new_full(x: Tensor, size, fill_value, *, dtype=None, device=None,
             requires_grad=False) -> Tensor:
    return _new(full, x, dtype, device, requires_grad, size, fill_value)


def new_tensor(x: Tensor, data, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A copy of `data` (a Tensor's values included, detached), in x's dtype and device."""
    return _new(tensor, x, dtype, device, requires_grad, data)


for _method in (new_zeros, new_ones, new_empty, new_full, new_tensor):
    setattr(Tensor, _method.__name__, _method)
