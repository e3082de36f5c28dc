"""In-place versions of the elementwise ops (`x.exp_()`, `x.index_add_(...)`), as PyTorch's.

Each computes the out-of-place op and writes the result into x's memory through
`Tensor._inplace`, which refuses tensors that need grad while grad mode is on (autograd does
not record in-place ops here) and bumps the version counter that saved tensors check.
PyTorch keeps the tensor's dtype: `int_tensor.mul_(0.5)` is an error there, and a float
result written into an integer tensor is refused here too.
"""

from __future__ import annotations

from tinygrad_like.tensor import Tensor


def _inplace_version(name: str, op):
    def method(x: Tensor, *args, **kwargs) -> Tensor:
        result = op(x, *args, **kwargs)
        if result.dtype.category > x.dtype.category:
            raise RuntimeError(f"{name}_: result type {result.dtype.name} can't be cast to the "
                               f"desired output type {x.dtype.name}")
        return x._inplace(f"{name}_", result)

    method.__name__ = method.__qualname__ = f"{name}_"
    method.__doc__ = f"{name} in place (Tensor.{name}_), on tensors that need no grad."
    return method


def inplace_methods(ops: dict) -> dict:
    """name_ -> in-place method for each of `ops` (name -> out-of-place op)."""
    return {f"{name}_": _inplace_version(name, op) for name, op in ops.items()}
