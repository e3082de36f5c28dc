"""Recurrent steps as fused ops (the kernels: backend/reference_rnn.py).

A GRU or LSTM step is two matmuls and about fifteen elementwise ops on (batch, hidden)
arrays; as separate autograd ops their per-op overhead outweighs the arithmetic. GRUGates
and LSTMGates take the two projections and the previous state and return the new state in
one node; GRUSequence runs a whole GRU layer direction as one node, time loop included, as
PyTorch's own GRU does. The chain rule is written out in the kernels; double backward goes
through the composed equations (`differentiable_backward`).
"""

from __future__ import annotations

from tinygrad_like.autograd import Function, differentiable_backward
from tinygrad_like.grad_mode import is_grad_enabled
from tinygrad_like.ops.unary import sigmoid, tanh
from tinygrad_like.ops.movement import stack
from tinygrad_like.tensor import Tensor


class GRUGates(Function):
    """x_proj, h_proj (N, 3H) and h (N, H) -> h' (N, H)."""

    @staticmethod
    def forward(ctx, x_proj, h_proj, h):
        out, saved = x_proj.backend.kernels.gru_gates(x_proj._array, h_proj._array, h._array)
        _save(ctx, (x_proj, h_proj, h), saved)
        return out

    @staticmethod
    def backward(ctx, grad):
        inputs, saved = _saved(ctx)
        if is_grad_enabled():
            return differentiable_backward(gru_gates_composed, inputs, ctx.needs_input_grad, grad)
        backend = grad.backend
        return tuple(Tensor._wrap(g, backend)
                     for g in backend.kernels.gru_gates_backward(grad._array, saved))


class LSTMGates(Function):
    """x_proj, h_proj (N, 4H) and c (N, H) -> (h', c') stacked as (2, N, H)."""

    @staticmethod
    def forward(ctx, x_proj, h_proj, c):
        out, saved = x_proj.backend.kernels.lstm_gates(x_proj._array, h_proj._array, c._array)
        _save(ctx, (x_proj, h_proj, c), saved)
        return out

    @staticmethod
    def backward(ctx, grad):
        inputs, saved = _saved(ctx)
        if is_grad_enabled():
            return differentiable_backward(lstm_gates_composed, inputs, ctx.needs_input_grad, grad)
        backend = grad.backend
        d_pre, d_c = backend.kernels.lstm_gates_backward(grad._array, saved)
        d_pre = Tensor._wrap(d_pre, backend)
        return d_pre, d_pre, Tensor._wrap(d_c, backend)


def _save(ctx, inputs: tuple, kernel_saved: tuple) -> None:
    """Keep the inputs and the kernel's intermediates where backward frees them."""
    backend = inputs[0].backend
    ctx.save_for_backward(*inputs, *(Tensor._wrap(a, backend) for a in kernel_saved))


def _saved(ctx) -> tuple:
    tensors = ctx.saved_tensors
    return tensors[:3], tuple(t._array for t in tensors[3:])


def gru_gates_composed(x_proj: Tensor, h_proj: Tensor, h: Tensor) -> Tensor:
    x_r, x_z, x_n = x_proj.chunk(3, -1)
    h_r, h_z, h_n = h_proj.chunk(3, -1)
    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
    n = tanh(x_n + r * h_n)
    return n + z * (h - n)


def lstm_gates_composed(x_proj: Tensor, h_proj: Tensor, c: Tensor) -> Tensor:
    i, f, g, o = (x_proj + h_proj).chunk(4, -1)
    c = sigmoid(f) * c + sigmoid(i) * tanh(g)
    return stack([sigmoid(o) * tanh(c), c])


class GRUSequence(Function):
    """A GRU layer direction over a whole sequence as one node: x_proj (L, N, 3H), h0 (N, H),
    W_hh (3H, H) and b_hh (3H,) or None -> outputs (L, N, H)."""

    saves_output = True

    @staticmethod
    def forward(ctx, x_proj, h0, weight_hh, bias_hh, reverse):
        kernels = x_proj.backend.kernels
        out, saved = kernels.gru_sequence(x_proj._array, h0._array, weight_hh._array,
                                          None if bias_hh is None else bias_hh._array, reverse)
        gates = Tensor._wrap(saved[0], x_proj.backend)
        ctx.save_for_backward(x_proj, h0, weight_hh, bias_hh, gates)
        ctx.reverse = reverse
        return out

    @staticmethod
    def backward(ctx, grad):
        x_proj, h0, weight_hh, bias_hh, gates, out = ctx.saved_tensors
        if is_grad_enabled():
            return differentiable_backward(
                lambda *args: gru_sequence_composed(*args, ctx.reverse),
                (x_proj, h0, weight_hh, bias_hh), ctx.needs_input_grad[:4], grad)
        saved = (gates._array, h0._array, out._array, weight_hh._array, ctx.reverse)
        grads = grad.backend.kernels.gru_sequence_backward(grad._array, saved)
        return tuple(Tensor._wrap(g, grad.backend) if needed else None
                     for g, needed in zip(grads, ctx.needs_input_grad))


def gru_sequence_composed(x_proj: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor | None,
                          reverse: bool) -> Tensor:
    h, outputs = h0, [None] * x_proj.shape[0]
    for t in reversed(range(x_proj.shape[0])) if reverse else range(x_proj.shape[0]):
        h_proj = h @ weight_hh.T
        h = gru_gates_composed(x_proj[t], h_proj if bias_hh is None else h_proj + bias_hh, h)
        outputs[t] = h
    return stack(outputs)
