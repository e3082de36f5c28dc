"""Matrix multiplication, batched and broadcast like torch.matmul.

The primitive multiplies stacks of matrices (both inputs at least 2-D) with the
backend's matmul kernel; 1-D operands are lifted to matrices around it, as
NumPy and PyTorch define. Both gradients are matmuls too:
dA = dC @ B^T and dB = A^T @ dC, summed over broadcast batch dimensions.
"""

from __future__ import annotations

from tinygrad_like.amp.autocast import autocast_op
from tinygrad_like.autograd import Function
from tinygrad_like.ops.checks import broadcasts_to, check_number, check_optional_tensor, check_tensor
from tinygrad_like.ops.operands import unbroadcast
from tinygrad_like.ops.selection import where
from tinygrad_like.tensor import Tensor


class Matmul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a.backend.kernels.matmul(a._array, b._array)

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
        return x.backend.kernels.linear(x._array, weight._array, None if bias is None else bias._array)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        rows = grad.reshape(-1, weight.shape[0])  # (batch, out): leading dims folded together
        grad_x = (rows @ weight).reshape(x.shape) if ctx.needs_input_grad[0] else None
        grad_weight = rows.T @ x.reshape(-1, weight.shape[1]) if ctx.needs_input_grad[1] else None
        grad_bias = rows.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


@autocast_op("linear")
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


@autocast_op("matmul")
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


def _check_ndim(op: str, **tensors) -> None:
    for name, (t, ndim) in tensors.items():
        check_tensor(op, name, t)
        if t.ndim != ndim:
            shapes = ", ".join(f"{n} {v[0].shape}" for n, v in tensors.items())
            raise ValueError(f"{op}: {name} must be {ndim}-D, got shapes {shapes}")


def outer(a: Tensor, b: Tensor) -> Tensor:
    """out[i, j] = a[i] * b[j] for 1-D a and b."""
    _check_ndim("outer", input=(a, 1), vec2=(b, 1))
    return a.unsqueeze(1) * b.unsqueeze(0)


@autocast_op("bmm")
def bmm(a: Tensor, b: Tensor) -> Tensor:
    """A batch of matrix products; both inputs 3-D with one batch size (no broadcasting)."""
    _check_ndim("bmm", input=(a, 3), mat2=(b, 3))
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: batch sizes differ: shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def _scaled_sum(op: str, x: Tensor, product: Tensor, beta, alpha) -> Tensor:
    check_tensor(op, "input", x)
    if not broadcasts_to(x.shape, product.shape):
        raise ValueError(f"{op}: input of shape {x.shape} does not broadcast to the product's "
                         f"shape {product.shape}")
    product = product if alpha == 1 else product * check_number(op, "alpha", alpha)
    if check_number(op, "beta", beta) == 0:  # input is ignored, its NaNs included (PyTorch),
        # but still receives a (zero) gradient
        nowhere = Tensor._wrap(x.backend.xp.zeros(x.shape, dtype=bool), x.backend)
        return product + where(nowhere, x, 0.0)
    return product + (x if beta == 1 else x * beta)


@autocast_op("addmm")
def addmm(x: Tensor, mat1: Tensor, mat2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """beta * x + alpha * (mat1 @ mat2), x broadcast to the product's shape."""
    _check_ndim("addmm", mat1=(mat1, 2), mat2=(mat2, 2))
    return _scaled_sum("addmm", x, matmul(mat1, mat2), beta, alpha)


@autocast_op("baddbmm")
def baddbmm(x: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """beta * x + alpha * bmm(batch1, batch2), x broadcast to the product's shape."""
    _check_ndim("baddbmm", batch1=(batch1, 3), batch2=(batch2, 3))
    return _scaled_sum("baddbmm", x, bmm(batch1, batch2), beta, alpha)
