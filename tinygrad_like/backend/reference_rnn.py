"""The GRU and LSTM gate arithmetic of one time step, fused: the NumPy reference of the
`gru_gates` and `lstm_gates` kernel-table entries (ops/recurrent.py).

The matmuls stay outside (x_proj = W_ih x + b_ih for every step at once, h_proj = W_hh h +
b_hh per step); what is fused is the ~15 elementwise ops between them, which as separate
autograd ops cost more in per-op overhead than in arithmetic at recurrent batch sizes.
Gate order is PyTorch's: (r, z, n) and (i, f, g, o), stacked along the last axis.

    GRU:  r = sigma(x_r + h_r)   z = sigma(x_z + h_z)   n = tanh(x_n + r * h_n)
          h' = n + z * (h - n)
    LSTM: i, f, g, o = sigma, sigma, tanh, sigma of (x_proj + h_proj)
          c' = f * c + i * g     h' = o * tanh(c')

Forward returns the new state and what backward needs; backward is the chain rule written
out. sigma(x) = (tanh(x / 2) + 1) / 2 never overflows. Only ufuncs and `empty_like` are
used (both dispatch to CuPy for CuPy arrays), so the "cuda" device shares these kernels.
kernels/cpu/recurrent.cpp has the native versions of the four gate kernels, and
`make_sequence_kernels` builds the whole-sequence GRU on either.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1)


def gru_gates(x_proj, h_proj, h):
    """(N, 3H) x_proj and h_proj, (N, H) h -> (h', saved for gru_gates_backward)."""
    hidden = h.shape[-1]
    rz = _sigmoid(x_proj[..., :2 * hidden] + h_proj[..., :2 * hidden])
    r, z = rz[..., :hidden], rz[..., hidden:]
    h_n = h_proj[..., 2 * hidden:]
    n = np.tanh(x_proj[..., 2 * hidden:] + r * h_n)
    return n + z * (h - n), (r, z, n, h_n, h)


def gru_gates_backward(grad, saved):
    """(d x_proj, d h_proj, d h) of gru_gates for the upstream gradient of h'."""
    r, z, n, h_n, h = saved
    hidden = h.shape[-1]
    d_x = np.empty_like(grad, shape=h.shape[:-1] + (3 * hidden,))
    d_n = grad * (1 - z) * (1 - n * n)
    d_x[..., 2 * hidden:] = d_n
    d_x[..., :hidden] = d_n * h_n * r * (1 - r)
    d_x[..., hidden:2 * hidden] = grad * (h - n) * z * (1 - z)
    d_h_proj = d_x.copy()
    d_h_proj[..., 2 * hidden:] *= r
    return d_x, d_h_proj, grad * z


def lstm_gates(x_proj, h_proj, c):
    """(N, 4H) x_proj and h_proj, (N, H) c -> ((h', c') stacked as (2, N, H), saved)."""
    hidden = c.shape[-1]
    pre = x_proj + h_proj
    gates = _sigmoid(pre)
    gates[..., 2 * hidden:3 * hidden] = np.tanh(pre[..., 2 * hidden:3 * hidden])
    i, f, g, o = (gates[..., k * hidden:(k + 1) * hidden] for k in range(4))
    state = np.empty_like(gates, shape=(2,) + c.shape)
    state[1] = f * c + i * g
    tanh_c = np.tanh(state[1])
    state[0] = o * tanh_c
    return state, (gates, c, tanh_c)


def lstm_gates_backward(grad, saved):
    """(d gates pre-activation (= d x_proj = d h_proj), d c) for the gradient of (h', c')."""
    gates, c, tanh_c = saved
    hidden = c.shape[-1]
    i, f, g, o = (gates[..., k * hidden:(k + 1) * hidden] for k in range(4))
    d_h, d_c_new = grad[0], grad[1]
    d_c = d_c_new + d_h * o * (1 - tanh_c * tanh_c)
    d_pre = np.empty_like(gates)
    d_pre[..., :hidden] = d_c * g * i * (1 - i)
    d_pre[..., hidden:2 * hidden] = d_c * c * f * (1 - f)
    d_pre[..., 2 * hidden:3 * hidden] = d_c * i * (1 - g * g)
    d_pre[..., 3 * hidden:] = d_h * tanh_c * o * (1 - o)
    return d_pre, d_c * f


def previous_states(h0, out, reverse: bool):
    """h_{t-1} for every t of the loop order, as one (L, N, H) array."""
    if reverse:
        return np.concatenate([out[1:], h0[None]])
    return np.concatenate([h0[None], out[:-1]])


def weight_gradients(d_h_proj, previous, gemm=np.matmul) -> tuple:
    """(d W_hh, d b_hh) from every step's d h_proj (L, N, 3H) and h_{t-1} (L, N, H): sums over
    the steps, one GEMM and one column sum."""
    flat = d_h_proj.reshape(-1, d_h_proj.shape[-1])
    return gemm(flat.T, previous.reshape(-1, previous.shape[-1])), flat.sum(axis=0)


def make_sequence_kernels(step=gru_gates, step_backward=gru_gates_backward,
                          gemm=np.matmul) -> dict:
    """gru_sequence and gru_sequence_backward built on the given one-step gate kernels and
    GEMM (these NumPy ones, or the native ones: backend/native_kernels.py)."""

    def gru_sequence(x_proj, h0, weight_hh, bias_hh, reverse: bool):
        """A whole GRU layer direction: x_proj (L, N, 3H), h0 (N, H) -> (out (L, N, H), saved).

        The time loop runs here, so a sequence is one autograd node instead of L of them; each
        step is h @ W_hh^T (BLAS) and `step`. Gates are kept per step for backward.
        """
        length = x_proj.shape[0]
        out = np.empty_like(h0, shape=(length,) + h0.shape)
        gates = np.empty_like(h0, shape=(4, length) + h0.shape)  # r, z, n, h_n per step
        h = h0
        for t in (reversed(range(length)) if reverse else range(length)):
            h_proj = gemm(h, weight_hh.T)
            if bias_hh is not None:
                h_proj += bias_hh
            h, (r, z, n, h_n, _) = step(x_proj[t], h_proj, h)
            out[t] = h
            gates[0, t], gates[1, t], gates[2, t], gates[3, t] = r, z, n, h_n
        return out, (gates, h0, out, weight_hh, reverse)

    def gru_sequence_backward(grad_out, saved):
        """(d x_proj, d h0, d W_hh, d b_hh) of gru_sequence for the gradient of its output.

        Backward through time step by step; the weight gradient is then one GEMM over all
        steps, sum_t dh_proj_t^T h_{t-1}, instead of L small ones.
        """
        gates, h0, out, weight_hh, reverse = saved
        length = out.shape[0]
        previous = previous_states(h0, out, reverse)
        d_x_proj = np.empty_like(h0, shape=(length,) + h0.shape[:-1] + (weight_hh.shape[0],))
        d_h_proj = np.empty_like(d_x_proj)
        d_h = np.zeros_like(h0)
        for t in (range(length) if reverse else reversed(range(length))):
            step_saved = (gates[0, t], gates[1, t], gates[2, t], gates[3, t], previous[t])
            d_x_proj[t], d_h_proj[t], d_h_direct = step_backward(grad_out[t] + d_h, step_saved)
            d_h = d_h_direct + gemm(d_h_proj[t], weight_hh)
        return (d_x_proj, d_h) + weight_gradients(d_h_proj, previous, gemm)

    return {"gru_sequence": gru_sequence, "gru_sequence_backward": gru_sequence_backward}


_sequence_kernels = make_sequence_kernels()
gru_sequence = _sequence_kernels["gru_sequence"]
gru_sequence_backward = _sequence_kernels["gru_sequence_backward"]
