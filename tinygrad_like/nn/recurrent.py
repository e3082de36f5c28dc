"""Recurrent layers RNN, GRU, LSTM and their single-step cells, as in torch.nn.

Each step function below takes x_proj = W_ih x + b_ih (already computed) and the state, and
returns the new state; the layers and the cells share them, so each gate equation is written
once. With h the hidden state and c the LSTM cell state (sigma is the logistic sigmoid):

    RNN:  h' = act(W_ih x + b_ih + W_hh h + b_hh)           act = tanh or relu
    GRU:  r  = sigma(W_ir x + b_ir + W_hr h + b_hr)
          z  = sigma(W_iz x + b_iz + W_hz h + b_hz)
          n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))
          h' = (1 - z) * n + z * h
    LSTM: i, f, g, o = sigma, sigma, tanh, sigma of (W_ih x + b_ih + W_hh h + b_hh), in that order
          c' = f * c + i * g
          h' = o * tanh(c')

Gates are stacked along the rows of W_ih / W_hh in PyTorch's order ((r, z, n) and
(i, f, g, o)), so a PyTorch state dict loads unchanged. A layer computes x_proj for every time
step with one matmul per layer and direction; only h @ W_hh^T and the gates run per step,
the gates as one fused op each (ops/recurrent.py).
"""

from __future__ import annotations

import functools
import math
import warnings

from tinygrad_like import creation
from tinygrad_like.nn import functional as F
from tinygrad_like.nn import init
from tinygrad_like.nn.module import Module, Parameter
from tinygrad_like.ops.unary import relu, tanh
from tinygrad_like.ops.movement import cat, stack
from tinygrad_like.ops.recurrent import GRUGates, GRUSequence, LSTMGates
from tinygrad_like.tensor import Tensor

State = tuple  # (h,) for RNN and GRU, (h, c) for LSTM


# ---- step functions: the gate equations, shared by layers and cells ------------------------
def _hidden_projection(h: Tensor, weight_hh_t: Tensor, bias_hh: Tensor | None) -> Tensor:
    out = h @ weight_hh_t
    return out if bias_hh is None else out + bias_hh


def _rnn_step(activation, x_proj: Tensor, state: State, weight_hh_t: Tensor,
              bias_hh: Tensor | None) -> State:
    (h,) = state
    return (activation(x_proj + _hidden_projection(h, weight_hh_t, bias_hh)),)


def _gru_step(x_proj: Tensor, state: State, weight_hh_t: Tensor, bias_hh: Tensor | None) -> State:
    (h,) = state
    return (GRUGates.apply(x_proj, _hidden_projection(h, weight_hh_t, bias_hh), h),)


def _lstm_step(x_proj: Tensor, state: State, weight_hh_t: Tensor,
               bias_hh: Tensor | None) -> State:
    h, c = state
    new_state = LSTMGates.apply(x_proj, _hidden_projection(h, weight_hh_t, bias_hh), c)
    return new_state[0], new_state[1]


_RNN_STEPS = {"tanh": functools.partial(_rnn_step, tanh),
              "relu": functools.partial(_rnn_step, relu)}


# ---- parameters and initialisation, shared by layers and cells -----------------------------
class _Recurrent(Module):
    """Creates the weight_ih/weight_hh/bias_ih/bias_hh parameters and initialises them."""

    gates = 1  # gate blocks stacked in the weights' rows: 3 for GRU, 4 for LSTM
    num_states = 1  # tensors in the recurrent state: 2 for LSTM (h and c)

    def _add_weights(self, suffix: str, input_size: int, gate_size: int, bias: bool, device,
                     dtype) -> tuple[str, ...]:
        def param(*shape) -> Parameter:
            return Parameter(creation.empty(*shape, device=device, dtype=dtype))

        names = tuple(kind + suffix for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        values = (param(gate_size, input_size), param(gate_size, self.hidden_size),
                  param(gate_size) if bias else None, param(gate_size) if bias else None)
        for name, value in zip(names, values):
            self.register_parameter(name, value)
        return names

    def reset_parameters(self) -> None:
        """PyTorch's init: every weight and bias drawn from U(-1/sqrt(hidden), 1/sqrt(hidden))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound)


def _check_hidden_size(name: str, hidden_size: int) -> None:
    if hidden_size <= 0:
        raise ValueError(f"{name}: hidden_size must be positive, got {hidden_size}")


def _initial_states(name: str, hx, num_states: int, expected: tuple, like: Tensor) -> State:
    """hx as a tuple of states, each checked to have the shape `expected`; zeros if None."""
    if hx is None:
        return (creation.zeros(*expected, dtype=like.dtype, device=like.device),) * num_states
    labels = ("h0",) if num_states == 1 else ("h0", "c0")
    if num_states == 1:
        hx = (hx,)
    elif not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise ValueError(f"{name}: expected the initial state as a tuple (h0, c0), got "
                         f"{type(hx).__name__}")
    for label, state in zip(labels, hx):
        if not isinstance(state, Tensor) or state.shape != expected:
            shape = getattr(state, "shape", type(state).__name__)
            raise ValueError(f"{name}: expected {label} of shape {expected}, got {shape}")
    return tuple(hx)


def _time_steps(x: Tensor) -> list[Tensor]:
    """[x[0], ..., x[L-1]], cut by halving.

    The backward of a slice is a gradient of its whole source, so L slices of x would cost
    O(L^2) in backward; slices of halves cost O(L log L).
    """
    if x.shape[0] == 1:
        return [x[0]]
    half = x.shape[0] // 2
    return _time_steps(x[:half]) + _time_steps(x[half:])


# ---- layers ---------------------------------------------------------------------------------
class _RNNBase(_Recurrent):
    _sequence = None  # a fused op running a whole layer direction, where one exists

    def __init__(self, step, input_size: int, hidden_size: int, num_layers: int, bias: bool,
                 batch_first: bool, dropout: float, bidirectional: bool, device, dtype):
        super().__init__()
        name = type(self).__name__
        _check_hidden_size(name, hidden_size)
        if num_layers <= 0:
            raise ValueError(f"{name}: num_layers must be positive, got {num_layers}")
        if isinstance(dropout, bool) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout should be a number in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} only acts between layers, so it does "
                          "nothing with num_layers=1", stacklevel=3)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self._step = step
        directions = 2 if bidirectional else 1
        # parameter names per (layer, direction), in PyTorch's registration order
        self._weight_names = [
            self._add_weights(f"_l{layer}" + ("_reverse" if direction else ""),
                              input_size if layer == 0 else hidden_size * directions,
                              self.gates * hidden_size, bias, device, dtype)
            for layer in range(num_layers) for direction in range(directions)]
        self.reset_parameters()

    def forward(self, input: Tensor, hx: Tensor | tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        """(output, h_n), or (output, (h_n, c_n)) for LSTM."""
        x, states, unbatched = self._prepare(input, hx)
        directions = 2 if self.bidirectional else 1
        length, batch = x.shape[:2]
        final_states = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                weight_ih, weight_hh, bias_ih, bias_hh = (
                    getattr(self, name) for name in self._weight_names[index])
                # the input projection of every time step at once: one (L*N, in) x (in, G*H) GEMM
                x_proj = F.linear(x.reshape(length * batch, x.shape[2]), weight_ih, bias_ih)
                x_proj = x_proj.reshape(length, batch, x_proj.shape[1])
                state = tuple(s[index] for s in states)
                if self._sequence is not None:  # the whole time loop as one fused op
                    hidden = self._sequence(x_proj, state[0], weight_hh, bias_hh, bool(direction))
                    outputs.append(hidden)
                    final_states.append((hidden[0 if direction else length - 1],))
                    continue
                x_steps, weight_hh_t = _time_steps(x_proj), weight_hh.T
                hidden = [None] * length
                for t in reversed(range(length)) if direction else range(length):
                    state = self._step(x_steps[t], state, weight_hh_t, bias_hh)
                    hidden[t] = state[0]
                outputs.append(stack(hidden))
                final_states.append(state)
            x = outputs[0] if directions == 1 else cat(outputs, 2)
            if layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, self.training)
        finals = tuple(stack([state[k] for state in final_states])
                       for k in range(self.num_states))
        if unbatched:
            x, finals = x.squeeze(1), tuple(s.squeeze(1) for s in finals)
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, finals if self.num_states == 2 else finals[0]

    def _prepare(self, input: Tensor, hx) -> tuple[Tensor, State, bool]:
        """Checks shapes; returns input as (L, N, H_in), the initial states, and unbatched."""
        name = type(self).__name__
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: expected input of 2 (unbatched) or 3 dimensions, got shape "
                             f"{input.shape}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input of shape {input.shape} has {input.shape[-1]} "
                             f"features, expected input_size={self.input_size}")
        unbatched = input.ndim == 2
        x = input.transpose(0, 1) if self.batch_first and not unbatched else input
        x = x.unsqueeze(1) if unbatched else x
        if x.shape[0] == 0:
            raise ValueError(f"{name}: expected a sequence length of at least 1, got input of "
                             f"shape {input.shape}")
        batch = x.shape[1]
        expected = (self.num_layers * (2 if self.bidirectional else 1),) + (
            () if unbatched else (batch,)) + (self.hidden_size,)
        states = _initial_states(name, hx, self.num_states, expected, x)
        return x, tuple(s.unsqueeze(1) for s in states) if unbatched else states, unbatched

    def flatten_parameters(self) -> None:
        """Nothing to do, as on PyTorch's CPU: it packs the weights into one cuDNN buffer,
        and no device here keeps the weights anywhere but in the parameters themselves."""

    def extra_repr(self) -> str:
        options = [("num_layers", self.num_layers, 1), ("bias", self.bias, True),
                   ("batch_first", self.batch_first, False), ("dropout", self.dropout, 0.0),
                   ("bidirectional", self.bidirectional, False)]
        return f"{self.input_size}, {self.hidden_size}" + "".join(
            f", {key}={value}" for key, value, default in options if value != default)


class RNN(_RNNBase):
    """Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu.

    forward(input, h0=None) -> (output, h_n); input (L, N, H_in), or (N, L, H_in) with
    batch_first, or unbatched (L, H_in); h0 and h_n (num_layers * num_directions, N, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device="cpu", dtype=None):
        if nonlinearity not in _RNN_STEPS:
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; select 'tanh' or "
                             "'relu'")
        super().__init__(_RNN_STEPS[nonlinearity], input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, device, dtype)
        self.nonlinearity = nonlinearity


class GRU(_RNNBase):
    """Gated recurrent unit (gates r, z, n; see the module docstring).

    forward(input, h0=None) -> (output, h_n), with RNN's shapes.
    """

    gates = 3
    _sequence = staticmethod(GRUSequence.apply)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device="cpu", dtype=None):
        super().__init__(_gru_step, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)


class LSTM(_RNNBase):
    """Long short-term memory (gates i, f, g, o; see the module docstring).

    forward(input, (h0, c0)=None) -> (output, (h_n, c_n)); c0 and c_n have h0's shape.
    """

    gates = 4
    num_states = 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device="cpu", dtype=None):
        super().__init__(_lstm_step, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)


# ---- cells ----------------------------------------------------------------------------------
class _CellBase(_Recurrent):
    def __init__(self, step, input_size: int, hidden_size: int, bias: bool, device, dtype):
        super().__init__()
        _check_hidden_size(type(self).__name__, hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self._step = step
        self._add_weights("", input_size, self.gates * hidden_size, bias, device, dtype)
        self.reset_parameters()

    def forward(self, input: Tensor, hx: Tensor | tuple[Tensor, Tensor] | None = None
                ) -> Tensor | tuple[Tensor, Tensor]:
        """h', or (h', c') for LSTMCell."""
        name = type(self).__name__
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input of shape (N, {self.input_size}) or "
                             f"({self.input_size},), got {input.shape}")
        # the step functions work on any leading shape, so unbatched input needs no reshaping
        state = _initial_states(name, hx, self.num_states, input.shape[:-1] + (self.hidden_size,),
                                input)
        x_proj = F.linear(input, self.weight_ih, self.bias_ih)
        state = self._step(x_proj, state, self.weight_hh.T, self.bias_hh)
        return state if self.num_states == 2 else state[0]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """One Elman RNN step: h' = act(W_ih x + b_ih + W_hh h + b_hh); forward(x, h=None) -> h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device="cpu", dtype=None):
        if nonlinearity not in _RNN_STEPS:
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; select 'tanh' or "
                             "'relu'")
        super().__init__(_RNN_STEPS[nonlinearity], input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def extra_repr(self) -> str:
        relu_note = ", nonlinearity=relu" if self.nonlinearity == "relu" else ""
        return super().extra_repr() + relu_note


class GRUCell(_CellBase):
    """One GRU step (see the module docstring); forward(x, h=None) -> h'."""

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device="cpu",
                 dtype=None):
        super().__init__(_gru_step, input_size, hidden_size, bias, device, dtype)


class LSTMCell(_CellBase):
    """One LSTM step (see the module docstring); forward(x, (h, c)=None) -> (h', c')."""

    gates = 4
    num_states = 2

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device="cpu",
                 dtype=None):
        super().__init__(_lstm_step, input_size, hidden_size, bias, device, dtype)


__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell"]
