"""RNN, GRU, LSTM and their cells against torch.nn: outputs, final states and every gradient.

Each case builds the torch module, loads its state dict into ours, runs the same float64
input and compares outputs, final states, and the gradients of a random projection of them
with respect to the input, the initial states and every parameter.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import tinygrad_like as tg
from tinygrad_like.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

INPUT, HIDDEN, LENGTH, BATCH = 3, 4, 5, 2
TOL = {"rtol": 1e-10, "atol": 1e-10}

LAYERS = {  # name -> (ours, torch's, extra constructor arguments)
    "rnn_tanh": (RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "gru": (GRU, torch.nn.GRU, {}),
    "lstm": (LSTM, torch.nn.LSTM, {}),
}
CELLS = {
    "rnn_tanh": (RNNCell, torch.nn.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}),
    "gru": (GRUCell, torch.nn.GRUCell, {}),
    "lstm": (LSTMCell, torch.nn.LSTMCell, {}),
}

# (num_layers, bidirectional, batch_first, bias, initial_state, unbatched): every combination
# of the layout flags with bias, then bias=False and unbatched input on a few of them
CONFIGS = [(layers, bi, batch_first, True, state, False) for layers, bi, batch_first, state
           in itertools.product((1, 2), (False, True), (False, True), (False, True))]
CONFIGS += [(1, False, False, False, False, False), (2, True, True, False, True, False)]
CONFIGS += [(layers, bi, False, True, state, True)
            for layers, bi, state in itertools.product((1, 2), (False, True), (False, True))]


# ---- helpers ---------------------------------------------------------------------------------
def make_pair(table: dict, name: str, *args, **kwargs):
    """Ours and torch's module of the same kind, with torch's (float64) weights copied into ours."""
    ours_cls, torch_cls, extra = table[name]
    torch.manual_seed(0)
    reference = torch_cls(*args, **extra, **kwargs).double()
    ours = ours_cls(*args, **extra, **kwargs, dtype=tg.float64)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in reference.state_dict().items()]
    ours.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    return ours, reference


def flat(result) -> list:
    """(out, h) / (out, (h, c)) / (h, c) / h as a flat list of tensors."""
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in flat(item)]
    return [result]


def compare(ours, reference, x: np.ndarray, states: list[np.ndarray]) -> None:
    """Same outputs and the same gradients of a random projection of them, torch vs ours."""
    tg_in = [tg.Tensor(a, requires_grad=True) for a in [x, *states]]
    torch_in = [torch.tensor(a, requires_grad=True) for a in [x, *states]]
    pack = (lambda s: tuple(s)) if len(states) == 2 else (lambda s: s[0] if s else None)
    ours_out = flat(ours(tg_in[0], pack(tg_in[1:])))
    torch_out = flat(reference(torch_in[0], pack(torch_in[1:])))
    assert len(ours_out) == len(torch_out)
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(tuple(t.shape)) for t in torch_out]
    for a, b in zip(ours_out, torch_out):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), **TOL)
    sum((o * tg.Tensor(w)).sum() for o, w in zip(ours_out, weights)).backward()
    sum((o * torch.tensor(w)).sum() for o, w in zip(torch_out, weights)).backward()
    for a, b in zip(tg_in, torch_in):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **TOL)
    torch_params = dict(reference.named_parameters())
    for key, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), torch_params[key].grad.numpy(), **TOL,
                                   err_msg=key)


# ---- layers and cells against PyTorch --------------------------------------------------------
@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("layers,bidirectional,batch_first,bias,initial_state,unbatched", CONFIGS)
def test_layer_matches_torch(name, layers, bidirectional, batch_first, bias, initial_state,
                             unbatched):
    ours, reference = make_pair(LAYERS, name, INPUT, HIDDEN, num_layers=layers, bias=bias,
                                batch_first=batch_first, bidirectional=bidirectional)
    rng = np.random.default_rng(0)
    batch = () if unbatched else (BATCH,)
    x_shape = (BATCH, LENGTH, INPUT) if batch_first and not unbatched else (LENGTH, *batch, INPUT)
    state_shape = (layers * (2 if bidirectional else 1), *batch, HIDDEN)
    num_states = 2 if name == "lstm" else 1
    states = [rng.standard_normal(state_shape) for _ in range(num_states)] if initial_state else []
    compare(ours, reference, rng.standard_normal(x_shape), states)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("bias,initial_state,unbatched",
                         [(True, True, False), (False, False, False), (True, True, True),
                          (True, False, True)])
def test_cell_matches_torch(name, bias, initial_state, unbatched):
    ours, reference = make_pair(CELLS, name, INPUT, HIDDEN, bias=bias)
    rng = np.random.default_rng(0)
    batch = () if unbatched else (BATCH,)
    num_states = 2 if name == "lstm" else 1
    states = ([rng.standard_normal((*batch, HIDDEN)) for _ in range(num_states)]
              if initial_state else [])
    compare(ours, reference, rng.standard_normal((*batch, INPUT)), states)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_dropout_between_layers(name):
    ours, reference = make_pair(LAYERS, name, INPUT, HIDDEN, num_layers=2, dropout=0.5)
    x = np.random.default_rng(0).standard_normal((LENGTH, BATCH, INPUT))
    ours.eval(), reference.eval()
    compare(ours, reference, x, [])  # no dropout in eval mode
    ours.train()
    tg.manual_seed(0)
    first, _ = ours(tg.Tensor(x))
    second, _ = ours(tg.Tensor(x))
    assert not np.allclose(first.detach().numpy(), second.detach().numpy())
    # p=1 zeroes the second layer's input: deterministic, so torch gives the same answer
    ours.dropout = reference.dropout = 1.0
    reference.train()
    ours.zero_grad(), reference.zero_grad()
    compare(ours, reference, x, [])


# ---- gradients by finite differences ---------------------------------------------------------
@pytest.mark.parametrize("cell_cls", [GRUCell, LSTMCell])
def test_gradcheck_cell_over_three_steps(cell_cls):
    tg.manual_seed(0)
    cell = cell_cls(2, 2, dtype=tg.float64)
    rng = np.random.default_rng(0)
    xs = tg.Tensor(rng.standard_normal((3, 1, 2)), requires_grad=True)
    h0 = tg.Tensor(rng.standard_normal((1, 2)), requires_grad=True)

    def unrolled(xs, h0, *params):  # params are perturbed in place, so they are read via cell
        state = (h0, h0 * 0.5) if cell_cls is LSTMCell else h0
        for t in range(3):
            state = cell(xs[t], state)
        return state

    assert tg.gradcheck(unrolled, (xs, h0, *cell.parameters()))


@pytest.mark.parametrize("layer_cls", [GRU, LSTM])
def test_gradcheck_bidirectional_layer(layer_cls):
    tg.manual_seed(0)
    layer = layer_cls(2, 2, bidirectional=True, dtype=tg.float64)
    x = tg.Tensor(np.random.default_rng(0).standard_normal((3, 1, 2)), requires_grad=True)
    assert tg.gradcheck(lambda x: flat(layer(x)), (x,))


# ---- construction, initialisation and errors -------------------------------------------------
def test_init_is_uniform_within_one_over_sqrt_hidden():
    tg.manual_seed(0)
    layer = LSTM(8, 16, num_layers=2, bidirectional=True)
    values = np.concatenate([p.detach().numpy().ravel() for p in layer.parameters()])
    assert np.abs(values).max() <= 0.25 and np.abs(values).max() > 0.24
    assert abs(values.mean()) < 0.01
    assert len(list(GRU(3, 4, bias=False).parameters())) == 2


@pytest.mark.parametrize("ours,reference", [
    (GRU(3, 4, num_layers=2, batch_first=True, bidirectional=True),
     torch.nn.GRU(3, 4, num_layers=2, batch_first=True, bidirectional=True)),
    (RNN(3, 4, nonlinearity="relu", bias=False, dropout=0.5, num_layers=2),
     torch.nn.RNN(3, 4, nonlinearity="relu", bias=False, dropout=0.5, num_layers=2)),
    (RNNCell(3, 4, bias=False, nonlinearity="relu"),
     torch.nn.RNNCell(3, 4, bias=False, nonlinearity="relu")),
    (LSTMCell(3, 4), torch.nn.LSTMCell(3, 4)),
])
def test_repr_matches_torch(ours, reference):
    assert repr(ours) == repr(reference)


@pytest.mark.parametrize("call,message", [
    (lambda: GRU(3, 4)(tg.zeros(5, 2, 6)), r"GRU: input of shape \(5, 2, 6\) has 6 features"),
    (lambda: GRU(3, 4)(tg.zeros(5, 2, 3, 1)), r"GRU: expected input of 2 .* got shape"),
    (lambda: RNN(3, 4, num_layers=2)(tg.zeros(5, 2, 3), tg.zeros(1, 2, 4)),
     r"RNN: expected h0 of shape \(2, 2, 4\), got \(1, 2, 4\)"),
    (lambda: GRU(3, 4, batch_first=True)(tg.zeros(2, 5, 3), tg.zeros(1, 5, 4)),
     r"GRU: expected h0 of shape \(1, 2, 4\)"),
    (lambda: RNN(3, 4)(tg.zeros(5, 3), tg.zeros(1, 1, 4)),
     r"RNN: expected h0 of shape \(1, 4\), got \(1, 1, 4\)"),
    (lambda: LSTM(3, 4)(tg.zeros(5, 2, 3), tg.zeros(1, 2, 4)), r"LSTM: .*tuple \(h0, c0\)"),
    (lambda: LSTM(3, 4)(tg.zeros(5, 2, 3), (tg.zeros(1, 2, 4), tg.zeros(1, 2, 5))),
     r"LSTM: expected c0 of shape \(1, 2, 4\), got \(1, 2, 5\)"),
    (lambda: LSTM(3, 4)(tg.zeros(0, 2, 3)), r"LSTM: expected a sequence length of at least 1"),
    (lambda: GRUCell(3, 4)(tg.zeros(2, 5)), r"GRUCell: expected input of shape \(N, 3\)"),
    (lambda: LSTMCell(3, 4)(tg.zeros(2, 3), (tg.zeros(2, 4), tg.zeros(3, 4))),
     r"LSTMCell: expected c0 of shape \(2, 4\), got \(3, 4\)"),
    (lambda: RNN(3, 4, nonlinearity="gelu"), r"RNN: unknown nonlinearity 'gelu'"),
    (lambda: GRU(3, 4, dropout=1.5), r"GRU: dropout should be a number in \[0, 1\]"),
    (lambda: LSTM(3, 4, num_layers=0), r"LSTM: num_layers must be positive"),
    (lambda: GRUCell(3, 0), r"GRUCell: hidden_size must be positive"),
])
def test_bad_arguments_raise_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="num_layers=1"):
        GRU(3, 4, dropout=0.2)
