"""One recurrent time step's gate arithmetic as a single op (the kernels: backend/cpu_rnn.py).

A GRU or LSTM step is two matmuls and about fifteen elementwise ops on (batch, hidden)
arrays; as separate autograd ops their per-op overhead outweighs the arithmetic. These
Functions take the two projections and the previous state and return the new state in one
node, with the chain rule written out in the kernel. Double backward goes through the
composed gate equations (`differentiable_backward`).
"""

from __future__ import annotations

from tinygrad_like.autograd import Function, differentiable_backward, is_grad_enabled
from tinygrad_like.ops.elementwise import sigmoid, tanh
from tinygrad_like.ops.movement import stack
from tinygrad_like.tensor import Tensor


class GRUGates(Function):
    """x_proj, h_proj (N, 3H) and h (N, H) -> h' (N, H)."""

    @staticmethod
    def forward(ctx, x_proj, h_proj, h):
        out, saved = x_proj.backend.kernels.gru_gates(x_proj.data, h_proj.data, h.data)
        _save(ctx, (x_proj, h_proj, h), saved)
        return out

    @staticmethod
    def backward(ctx, grad):
        inputs, saved = _saved(ctx)
        if is_grad_enabled():
            return differentiable_backward(gru_gates_composed, inputs, ctx.needs_input_grad, grad)
        backend = grad.backend
        return tuple(Tensor._wrap(g, backend)
                     for g in backend.kernels.gru_gates_backward(grad.data, saved))


class LSTMGates(Function):
    """x_proj, h_proj (N, 4H) and c (N, H) -> (h', c') stacked as (2, N, H)."""

    @staticmethod
    def forward(ctx, x_proj, h_proj, c):
        out, saved = x_proj.backend.kernels.lstm_gates(x_proj.data, h_proj.data, c.data)
        _save(ctx, (x_proj, h_proj, c), saved)
        return out

    @staticmethod
    def backward(ctx, grad):
        inputs, saved = _saved(ctx)
        if is_grad_enabled():
            return differentiable_backward(lstm_gates_composed, inputs, ctx.needs_input_grad, grad)
        backend = grad.backend
        d_pre, d_c = backend.kernels.lstm_gates_backward(grad.data, saved)
        d_pre = Tensor._wrap(d_pre, backend)
        return d_pre, d_pre, Tensor._wrap(d_c, backend)


def _save(ctx, inputs: tuple, kernel_saved: tuple) -> None:
    """Keep the inputs and the kernel's intermediates where backward frees them."""
    backend = inputs[0].backend
    ctx.save_for_backward(*inputs, *(Tensor._wrap(a, backend) for a in kernel_saved))


def _saved(ctx) -> tuple:
    tensors = ctx.saved_tensors
    return tensors[:3], tuple(t.data for t in tensors[3:])


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
