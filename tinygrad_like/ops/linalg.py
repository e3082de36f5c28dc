"""Matrix multiplication, batched and broadcast like torch.matmul.

The primitive multiplies stacks of matrices (both inputs at least 2-D) with the
backend's matmul kernel; 1-D operands are lifted to matrices around it, as
NumPy and PyTorch define. Both gradients are matmuls too:
dA = dC @ B^T and dB = A^T @ dC, summed over broadcast batch dimensions.
"""

from __future__ import annotations

from tinygrad_like.autograd import Function
from tinygrad_like.ops.checks import check_optional_tensor, check_tensor
from tinygrad_like.ops.operands import unbroadcast
from tinygrad_like.tensor import Tensor


class Matmul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a.backend.kernels.matmul(a.data, b.data)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = unbroadcast(grad @ b.mT, a.shape)
        if ctx.needs_input_grad[1]:
            grad_b = unbroadcast(a.mT @ grad, b.shape)
        return grad_a, grad_b


class Linear(Function):
    """x @ weight.T + bias as one kernel call (on the GPU path, the bias is the matmul's epilogue)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x.backend.kernels.linear(x.data, weight.data, None if bias is None else bias.data)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        rows = grad.reshape(-1, weight.shape[0])  # (batch, out): leading dims folded together
        grad_x = (rows @ weight).reshape(x.shape) if ctx.needs_input_grad[0] else None
        grad_weight = rows.T @ x.reshape(-1, weight.shape[1]) if ctx.needs_input_grad[1] else None
        grad_bias = rows.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, with weight of shape (out_features, in_features)."""
    check_tensor("linear", "input", x)
    check_tensor("linear", "weight", weight)
    check_optional_tensor("linear", "bias", bias)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape "
                         f"{weight.shape} (input of shape {x.shape})")
    if x.ndim == 0 or x.shape[-1] != weight.shape[-1]:
        raise ValueError(f"linear: input of shape {x.shape} has {x.shape[-1] if x.ndim else 0} "
                         f"features but the weight of shape {weight.shape} expects "
                         f"{weight.shape[-1]}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"linear: input is {x.dtype.name} but {name} is {t.dtype.name}")
        if t is not None and t.backend is not x.backend:
            raise RuntimeError(f"linear: input on {x.device}, {name} on {t.device}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias of shape {bias.shape} does not fit a weight of shape "
                         f"{weight.shape} (input of shape {x.shape})")
    return Linear.apply(x, weight, bias)


def _check(a: Tensor, b: Tensor) -> None:
    check_tensor("matmul", "the first operand", a)
    check_tensor("matmul", "the second operand", b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both arguments need at least one dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    if a.backend is not b.backend:
        raise RuntimeError(f"matmul: expected both tensors on one device, got {a.device} and "
                           f"{b.device}")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: expected both tensors to have one dtype, got {a.dtype.name} "
                        f"and {b.dtype.name}")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                         f"({a.shape[-1]} != {inner_b})")
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    for m, n in zip(reversed(batch_a), reversed(batch_b)):
        if m != n and m != 1 and n != 1:
            raise ValueError(f"matmul: batch dimensions {batch_a} and {batch_b} of shapes "
                             f"{a.shape} and {b.shape} cannot be broadcast together")


def matmul(a: Tensor, b: Tensor) -> Tensor:
    _check(a, b)
    if a.ndim >= 2 and b.ndim >= 2:
        return Matmul.apply(a, b)
    # 1-D operands: a vector on the left is a row, on the right a column; the unit
    # dimension is removed again afterwards.
    lifted_a = a.unsqueeze(0) if a.ndim == 1 else a
    lifted_b = b.unsqueeze(-1) if b.ndim == 1 else b
    out = Matmul.apply(lifted_a, lifted_b)
    if b.ndim == 1:
        out = out.squeeze(-1)
    if a.ndim == 1:
        out = out.squeeze(-2 if b.ndim > 1 else -1)
    return out
