"""The "cpu" kernel-table entries of the recurrent layers that the native extension replaces:
the GRU and LSTM gates (one fused pass over a step's gate pre-activations, both ways) and
the GRU's whole sequence (kernels/cpu/recurrent.cpp: the time loop, the recurrent GEMMs on
the pool and the gates in one call each way).

As in native_kernels.py, each entry takes the arguments of the NumPy reference it replaces
and hands it whatever the extension does not take (other dtypes, shapes).
"""

from __future__ import annotations

from tinygrad_like.backend import native_blas, reference_rnn
from tinygrad_like.backend.native import _C
from tinygrad_like.backend.native_kernels import contiguous, same_float_dtype


def _gru_gates(reference):
    def gru_gates(x_proj, h_proj, h):
        if h.ndim != 2 or not same_float_dtype(h, x_proj, h_proj):
            return reference(x_proj, h_proj, h)
        out, (r, z, n, h_n) = _C.gru_gates(contiguous(x_proj), contiguous(h_proj),
                                           contiguous(h))
        return out, (r, z, n, h_n, h)
    return gru_gates


def _gru_gates_backward(reference):
    def gru_gates_backward(grad, saved):
        if saved[-1].ndim != 2 or not same_float_dtype(grad, *saved):
            return reference(grad, saved)
        return _C.gru_gates_backward(*(contiguous(a) for a in (grad, *saved)))
    return gru_gates_backward


def _gru_sequence(reference):
    """A GRU layer direction's forward as one _C call: the time loop, the GEMMs on the pool and
    the gates (kernels/cpu/recurrent.cpp), where native_blas gives _C a BLAS; `reference`
    (the Python loop over the native gates) for anything else."""
    def gru_sequence(x_proj, h0, weight_hh, bias_hh, reverse):
        if (h0.ndim != 2 or x_proj.ndim != 3 or 0 in x_proj.shape or 0 in h0.shape
                or not same_float_dtype(h0, x_proj, weight_hh, bias_hh)
                or not native_blas.available()):
            return reference(x_proj, h0, weight_hh, bias_hh, reverse)
        out, gates = _C.gru_sequence(contiguous(x_proj), contiguous(h0),
                                     contiguous(weight_hh),
                                     None if bias_hh is None else contiguous(bias_hh),
                                     bool(reverse))
        return out, (gates, h0, out, weight_hh, reverse)
    return gru_sequence


def _gru_sequence_backward(reference):
    """gru_sequence's backward through time as one _C call (as _gru_sequence), then the
    weight and bias gradients as the Python loop computes them (weight_gradients)."""
    def gru_sequence_backward(grad_out, saved):
        gates, h0, out, weight_hh, reverse = saved
        if (h0.ndim != 2 or 0 in out.shape or 0 in h0.shape
                or not same_float_dtype(h0, grad_out, gates, out, weight_hh)
                or not native_blas.available()):
            return reference(grad_out, saved)
        d_x_proj, d_h_proj, d_h0 = _C.gru_sequence_backward(
            *(contiguous(a) for a in (grad_out, gates, h0, out, weight_hh)), bool(reverse))
        previous = reference_rnn.previous_states(h0, out, reverse)
        return (d_x_proj, d_h0) + reference_rnn.weight_gradients(d_h_proj, previous,
                                                                  native_blas.matmul)
    return gru_sequence_backward


def _lstm_gates(reference):
    def lstm_gates(x_proj, h_proj, c):
        if c.ndim != 2 or not same_float_dtype(c, x_proj, h_proj):
            return reference(x_proj, h_proj, c)
        state, gates, tanh_c = _C.lstm_gates(contiguous(x_proj), contiguous(h_proj),
                                             contiguous(c))
        return state, (gates, c, tanh_c)
    return lstm_gates


def _lstm_gates_backward(reference):
    def lstm_gates_backward(grad, saved):
        if saved[1].ndim != 2 or not same_float_dtype(grad, *saved):
            return reference(grad, saved)
        return _C.lstm_gates_backward(*(contiguous(a) for a in (grad, *saved)))
    return lstm_gates_backward


NATIVE = {
    "gru_gates": _gru_gates,
    "gru_gates_backward": _gru_gates_backward,
    "lstm_gates": _lstm_gates,
    "lstm_gates_backward": _lstm_gates_backward,
}


def make_kernels(reference: dict) -> dict:
    """The native recurrent entries, as native_kernels.make_kernels; empty without the
    extension. The whole-sequence GRU is one native call each way (_gru_sequence,
    _gru_sequence_backward), which hands what it does not take to the Python loop over the
    native gates."""
    if _C is None:
        return {}
    kernels = {name: make(reference[name]) for name, make in NATIVE.items()}
    kernels.update(reference_rnn.make_sequence_kernels(kernels["gru_gates"],
                                                       kernels["gru_gates_backward"],
                                                       native_blas.matmul))
    kernels["gru_sequence"] = _gru_sequence(kernels["gru_sequence"])
    kernels["gru_sequence_backward"] = _gru_sequence_backward(kernels["gru_sequence_backward"])
    return kernels
