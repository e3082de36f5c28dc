"""Parameter initialisation as torch.nn.init, drawing from the device's seeded generator.

Each function fills its tensor in place (without recording a graph) and returns it.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special

from tinygrad_like import autograd
from tinygrad_like.creation import generator_rng
from tinygrad_like.tensor import Tensor


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    gains = {"linear": 1.0, "conv2d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0),
             "selu": 3.0 / 4}
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in gains:
        raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")
    return gains[nonlinearity]


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(f"init: fan in and fan out need at least 2 dimensions, got shape "
                         f"{tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fill(tensor: Tensor, values) -> Tensor:
    with autograd.no_grad():
        tensor.copy_(Tensor._wrap(tensor.backend.xp.asarray(values, dtype=tensor._array.dtype),
                                  tensor.backend))
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    rng = generator_rng("init.uniform_", tensor.backend, generator)
    return _fill(tensor, rng.uniform(a, b, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    rng = generator_rng("init.normal_", tensor.backend, generator)
    return _fill(tensor, rng.normal(mean, std, tensor.shape))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator=None) -> Tensor:
    """Fill with N(mean, std²) conditioned on [a, b] (a and b are values, not numbers of
    standard deviations), by PyTorch's inverse-CDF method: uniform draws between the normal
    CDF at a and at b mapped back through the inverse CDF, so every draw counts and lies in
    [a, b] however far into a tail the interval is."""
    if not a < b:
        raise ValueError(f"init.trunc_normal_: the interval [a, b] = [{a}, {b}] is empty")
    if not std > 0:
        raise ValueError(f"init.trunc_normal_: std must be positive, got {std}")
    alpha, beta = (a - mean) / std, (b - mean) / std
    # an interval above the mean is drawn mirrored, in the lower tail, where the CDF's values
    # are tiny rather than next to 1 and keep their precision
    sign = -1.0 if alpha > 0 else 1.0
    alpha, beta = sorted((sign * alpha, sign * beta))
    rng = generator_rng("init.trunc_normal_", tensor.backend, generator)
    uniform = rng.uniform(scipy.special.ndtr(alpha), scipy.special.ndtr(beta), tensor.shape)
    standard = sign * scipy.special.ndtri(tensor.backend.to_numpy(uniform))
    return _fill(tensor, np.clip(mean + std * standard, a, b))  # ndtri's rounding at the ends


def constant_(tensor: Tensor, value: float) -> Tensor:
    with autograd.no_grad():
        return tensor.fill_(value)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity) -> float:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def default_linear_init_(weight: Tensor, bias: Tensor | None) -> None:
    """nn.Linear's and nn.Conv2d's PyTorch init: kaiming-uniform(a=sqrt 5), bias U(±1/sqrt fan_in)."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
