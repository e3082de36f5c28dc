"""Argument checks for the public ops: each refusal names the op and the argument.

Ops validate their arguments at the public boundary, once, so that a wrong call fails with
a message a person can act on rather than an AttributeError or a NumPy message from inside
a kernel. Python bools pass as ints and numbers, as they do for NumPy.
"""

from __future__ import annotations

import numbers

from tinygrad_like.tensor import Tensor


def check_tensor(op: str, name: str, value) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(value).__name__}")
    return value


def check_optional_tensor(op: str, name: str, value) -> Tensor | None:
    return None if value is None else check_tensor(op, name, value)


def check_per_channel(op: str, name: str, param: Tensor | None, shape: tuple, x: Tensor) -> None:
    """A normalization's weight, bias or running statistic: None, or a floating tensor of
    `shape` on x's device."""
    if check_optional_tensor(op, name, param) is None:
        return
    if not param.dtype.is_floating_point:
        raise TypeError(f"{op}: {name} must be floating point, got {param.dtype.name}")
    if param.shape != shape:
        raise ValueError(f"{op}: {name} of shape {param.shape} should have shape {shape} for "
                         f"the input of shape {x.shape}")
    if param.backend is not x.backend:
        raise RuntimeError(f"{op}: {name} on {param.device} and input on {x.device} must be on "
                           "one device")


def check_weighted_operands(op: str, x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    """A layer's input, weight and optional bias: tensors of one dtype on one device."""
    check_tensor(op, "input", x)
    check_tensor(op, "weight", weight)
    check_optional_tensor(op, "bias", bias)
    if x.dtype is not weight.dtype or (bias is not None and bias.dtype is not x.dtype):
        raise TypeError(f"{op}: input ({x.dtype.name}), weight ({weight.dtype.name}) and bias "
                        f"({bias.dtype.name if bias is not None else None}) must share a dtype")
    if x.backend is not weight.backend or (bias is not None and bias.backend is not x.backend):
        raise RuntimeError(f"{op}: input on {x.device} and weight on {weight.device} (and "
                           "bias) must be on one device")


def check_int(op: str, name: str, value, minimum: int | None = None) -> int:
    """`value` as an int (floats are refused rather than truncated), at least `minimum`."""
    if not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{op}: {name} must be at least {minimum}, got {value}")
    return int(value)


def check_ints(op: str, name: str, values) -> tuple:
    """A sequence of ints (a shape, a list of dims) as a tuple."""
    if not isinstance(values, (tuple, list)):
        raise TypeError(f"{op}: {name} must be a sequence of ints, got {type(values).__name__} "
                        f"{values!r}")
    if not all(isinstance(v, numbers.Integral) for v in values):
        raise TypeError(f"{op}: {name} must hold only ints, got {tuple(values)!r}")
    return tuple(int(v) for v in values)


def check_number(op: str, name: str, value, optional: bool = False):
    """A Python or NumPy real number (a fill value, a bound, a scale), or None if `optional`."""
    if value is None and optional:
        return None
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__} {value!r}")
    return value


def broadcasts_to(shape: tuple, target: tuple) -> bool:
    """Whether an operand of `shape` broadcasts to `target` without enlarging it."""
    return len(shape) <= len(target) and all(
        n in (1, m) for n, m in zip(reversed(shape), reversed(target)))
