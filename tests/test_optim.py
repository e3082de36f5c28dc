"""Optimizers, gradient clipping and penalties against PyTorch (schedulers: test_lr_scheduler.py).

Every optimizer trains the same small tanh MLP (built from tg ops, parameters copied from
NumPy into both libraries) for 20 steps, and its parameters must match torch.optim's: in
float64 to a few ulps (the same algorithm, step for step), and in float32 as accurately as
torch.optim's own float32 run, both measured against the float64 run (tests/tolerances.py
says why float32 results cannot be compared more tightly across CPUs).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tinygrad_like as tg
from tinygrad_like import optim
from tinygrad_like.nn import utils
from tinygrad_like.nn.module import Parameter
from tolerances import assert_as_accurate_as_reference, assert_close_to_scale

RNG = np.random.default_rng(0)
INPUTS = RNG.standard_normal((16, 4)).astype(np.float32)
TARGETS = RNG.standard_normal((16, 3)).astype(np.float32)
INITIAL = [RNG.standard_normal(shape).astype(np.float32) * 0.5
           for shape in [(4, 8), (8,), (8, 3), (3,)]]
STEPS = 20


def mlp_loss(params, inputs, targets):
    """Mean squared error of a 4-8-3 tanh MLP; the same code runs on tg and torch tensors."""
    w1, b1, w2, b2 = params
    out = (inputs @ w1 + b1).tanh() @ w2 + b2
    return ((out - targets) ** 2).mean()


def tg_params(values=INITIAL, dtype=np.float32):
    return [Parameter(tg.tensor(value.astype(dtype))) for value in values]


def torch_params(values=INITIAL, dtype=np.float32):
    return [torch.nn.Parameter(torch.tensor(value.astype(dtype))) for value in values]


def train(library, optimizer, params, steps):
    make_tensor = tg.tensor if library is optim else torch.tensor
    dtype = params[0].detach().numpy().dtype
    inputs, targets = make_tensor(INPUTS.astype(dtype)), make_tensor(TARGETS.astype(dtype))
    for _ in range(steps):
        optimizer.zero_grad()
        mlp_loss(params, inputs, targets).backward()
        optimizer.step()
    return [p.detach().numpy().copy() for p in params]


def run_both(configure, steps=STEPS, dtype=np.float32):
    """`configure(optim_module, params)` builds the optimizer; it is called with both."""
    ours = train(optim, configure(optim, params := tg_params(dtype=dtype)), params, steps)
    theirs = train(torch.optim, configure(torch.optim, params := torch_params(dtype=dtype)),
                   params, steps)
    return ours, theirs


def assert_params_equal(ours, theirs):
    for index, (mine, reference) in enumerate(zip(ours, theirs)):
        np.testing.assert_array_equal(mine, reference, err_msg=f"parameter {index}")


def grouped(factory, second_group_options, **defaults):
    """Weights in one group, biases in a second group with its own options."""
    return lambda m, ps: factory(m)([{"params": [ps[0], ps[2]]},
                                     {"params": [ps[1], ps[3]], **second_group_options}],
                                    **defaults)


CASES = {
    "sgd": lambda m, ps: m.SGD(ps, lr=0.1),
    "sgd-momentum": lambda m, ps: m.SGD(ps, lr=0.1, momentum=0.9),
    "sgd-dampening": lambda m, ps: m.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5),
    "sgd-nesterov": lambda m, ps: m.SGD(ps, lr=0.1, momentum=0.8, nesterov=True),
    "sgd-weight-decay": lambda m, ps: m.SGD(ps, lr=0.1, momentum=0.5, weight_decay=0.1),
    "sgd-maximize": lambda m, ps: m.SGD(ps, lr=0.01, momentum=0.9, maximize=True),
    "sgd-groups": grouped(lambda m: m.SGD, {"lr": 0.01, "momentum": 0.5}, lr=0.1,
                          momentum=0.9),
    "adam": lambda m, ps: m.Adam(ps, lr=0.01),
    "adam-amsgrad": lambda m, ps: m.Adam(ps, lr=0.02, amsgrad=True),
    "adam-weight-decay": lambda m, ps: m.Adam(ps, lr=0.01, weight_decay=0.1),
    "adam-betas-eps": lambda m, ps: m.Adam(ps, lr=0.01, betas=(0.8, 0.9), eps=1e-3),
    "adam-maximize": lambda m, ps: m.Adam(ps, lr=0.01, maximize=True),
    "adam-groups": grouped(lambda m: m.Adam, {"lr": 0.001, "amsgrad": True}, lr=0.01),
    "adamw": lambda m, ps: m.AdamW(ps, lr=0.01),
    "adamw-amsgrad": lambda m, ps: m.AdamW(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
    "adagrad": lambda m, ps: m.Adagrad(ps, lr=0.1),
    "adagrad-options": lambda m, ps: m.Adagrad(ps, lr=0.1, lr_decay=0.05, weight_decay=0.1,
                                               initial_accumulator_value=0.1, eps=1e-6),
    "adagrad-groups": grouped(lambda m: m.Adagrad, {"lr": 0.01, "lr_decay": 0.1}, lr=0.1),
    "rmsprop": lambda m, ps: m.RMSprop(ps, lr=0.01),
    "rmsprop-centered": lambda m, ps: m.RMSprop(ps, lr=0.01, centered=True),
    "rmsprop-momentum": lambda m, ps: m.RMSprop(ps, lr=0.01, momentum=0.9, alpha=0.9),
    "rmsprop-all": lambda m, ps: m.RMSprop(ps, lr=0.01, momentum=0.5, centered=True,
                                           weight_decay=0.1, eps=1e-4),
    "rmsprop-groups": grouped(lambda m: m.RMSprop, {"lr": 0.001, "centered": True}, lr=0.01),
    "adadelta": lambda m, ps: m.Adadelta(ps),
    "adadelta-options": lambda m, ps: m.Adadelta(ps, lr=0.5, rho=0.8, eps=1e-4,
                                                 weight_decay=0.1),
    "adadelta-maximize": lambda m, ps: m.Adadelta(ps, lr=0.1, maximize=True),
    "adadelta-groups": grouped(lambda m: m.Adadelta, {"lr": 0.1, "rho": 0.5}, lr=1.0),
}


@pytest.mark.parametrize("case", CASES)
def test_20_steps_match_pytorch(case):
    ours64, theirs64 = run_both(CASES[case], dtype=np.float64)
    ours, theirs = run_both(CASES[case])
    assert not np.allclose(ours[0], INITIAL[0])  # the parameters did move
    for index, (mine64, reference64, mine, reference) in enumerate(
            zip(ours64, theirs64, ours, theirs)):
        assert mine64.dtype == np.float64 and mine.dtype == np.float32
        # float64: the same update, step for step (measured: within 6 ulps of the scale)
        assert_close_to_scale(mine64, reference64, ulps=64, err_msg=f"float64 parameter {index}")
        assert_as_accurate_as_reference(mine, reference, exact=reference64,
                                        err_msg=f"float32 parameter {index}")


# ---- state dicts ----------------------------------------------------------------------
ROUND_TRIP_CASES = ["sgd-momentum", "adam-groups", "adamw-amsgrad", "adagrad-options",
                    "rmsprop-all", "adadelta-options"]


@pytest.mark.parametrize("case", ROUND_TRIP_CASES)
def test_state_dict_round_trip_continues_the_run(case):
    configure = CASES[case]
    uninterrupted, _ = run_both(configure)
    first_params = tg_params()
    first = configure(optim, first_params)
    halfway = train(optim, first, first_params, STEPS // 2)
    saved = first.state_dict()
    resumed_params = tg_params(halfway)
    resumed = configure(optim, resumed_params)
    for group in resumed.param_groups:
        group["lr"] = 123.0  # the saved options must win
    resumed.load_state_dict(saved)
    train(optim, first, first_params, 1)  # the loaded state must be a copy, not shared
    # the same computation from the same state: the same bits
    assert_params_equal(train(optim, resumed, resumed_params, STEPS // 2), uninterrupted)


@pytest.mark.parametrize("case", ROUND_TRIP_CASES + ["sgd"])
def test_state_dict_layout_matches_pytorch(case):
    configure = CASES[case]
    ours_params, theirs_params = tg_params(), torch_params()
    ours, theirs = configure(optim, ours_params), configure(torch.optim, theirs_params)
    train(optim, ours, ours_params, 3)
    train(torch.optim, theirs, theirs_params, 3)
    ours_dict, theirs_dict = ours.state_dict(), theirs.state_dict()
    assert list(ours_dict["state"]) == list(theirs_dict["state"])
    for index, their_state in theirs_dict["state"].items():
        assert set(ours_dict["state"][index]) == set(their_state)
        for key, value in their_state.items():
            np.testing.assert_allclose(ours_dict["state"][index][key].numpy(), value.numpy(),
                                       rtol=1e-5, atol=1e-5)
    for our_group, their_group in zip(ours_dict["param_groups"], theirs_dict["param_groups"]):
        assert our_group["params"] == their_group["params"]
        assert set(our_group) <= set(their_group)
        assert all(our_group[key] == their_group[key] for key in our_group)


def test_load_state_dict_rejects_mismatched_groups():
    one_group = optim.SGD(tg_params(), lr=0.1, momentum=0.9)
    params = tg_params()
    two_groups = optim.SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.1)
    with pytest.raises(ValueError, match="SGD.load_state_dict: the state dict has 2 parameter "
                                         "groups, this optimizer has 1"):
        one_group.load_state_dict(two_groups.state_dict())
    three_params = optim.SGD(tg_params()[:3], lr=0.1)
    with pytest.raises(ValueError, match="parameter group 0 has 4 parameters in the state dict "
                                         "but 3 in this optimizer"):
        three_params.load_state_dict(one_group.state_dict())
    with pytest.raises(KeyError, match="no \\['state'\\] entry"):
        one_group.load_state_dict({"param_groups": []})


def test_load_state_dict_rejects_state_of_the_wrong_shape():
    params = tg_params()
    source = optim.Adam(params, lr=0.01)
    train(optim, source, params, 1)
    saved = source.state_dict()
    saved["state"][0]["exp_avg"] = tg.zeros(2, 2)
    with pytest.raises(ValueError, match="parameter 0: state 'exp_avg' has shape \\(2, 2\\), "
                                         "but the parameter has shape \\(4, 8\\)"):
        optim.Adam(tg_params(), lr=0.01).load_state_dict(saved)


# ---- the optimizer API ----------------------------------------------------------------
def test_zero_grad_sets_none_or_zeros():
    params = tg_params()
    optimizer = optim.SGD(params, lr=0.1)
    mlp_loss(params, tg.tensor(INPUTS), tg.tensor(TARGETS)).backward()
    optimizer.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in params)
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


def test_parameters_without_gradients_are_left_alone():
    used, unused = Parameter(tg.tensor([1.0, 2.0])), Parameter(tg.tensor([3.0]))
    optimizer = optim.Adam([used, unused], lr=0.1)
    (used * used).sum().backward()
    optimizer.step()
    np.testing.assert_array_equal(unused.detach().numpy(), [3.0])
    assert list(optimizer.state_dict()["state"]) == [0]


def test_step_runs_the_closure_and_returns_its_loss():
    params = tg_params()
    optimizer = optim.SGD(params, lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = mlp_loss(params, tg.tensor(INPUTS), tg.tensor(TARGETS))
        loss.backward()
        return loss

    with tg.no_grad():
        loss = optimizer.step(closure)
    assert loss.item() > 0 and not np.allclose(params[0].detach().numpy(), INITIAL[0])


def test_step_invalidates_graphs_that_saved_the_old_parameter():
    w = Parameter(tg.tensor([1.0, 2.0]))
    optimizer = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    stale = (w * w).sum()
    optimizer.step()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        stale.backward()


def test_add_param_group_and_repr():
    params = tg_params()
    optimizer = optim.Adagrad(params[:2], lr=0.1)
    optimizer.add_param_group({"params": params[2:], "lr": 0.5})
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.5]
    assert len(optimizer.state) == 4  # Adagrad's state starts with its group, as in PyTorch
    assert "Parameter Group 1\n" in repr(optimizer) and "lr: 0.5" in repr(optimizer)


# ---- hyper-parameter and argument errors ----------------------------------------------
BAD_OPTIONS = [
    (optim.SGD, {"lr": -0.1}, "SGD: invalid lr -0.1"),
    (optim.SGD, {"lr": float("nan")}, "SGD: invalid lr nan"),
    (optim.SGD, {"momentum": -0.5}, "SGD: invalid momentum"),
    (optim.SGD, {"weight_decay": -1.0}, "SGD: invalid weight_decay"),
    (optim.SGD, {"nesterov": True}, "SGD: Nesterov momentum requires a momentum"),
    (optim.SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "zero dampening"),
    (optim.Adam, {"lr": -1.0}, "Adam: invalid lr"),
    (optim.Adam, {"betas": (1.0, 0.999)}, "Adam: invalid beta parameter at index 0: 1.0"),
    (optim.Adam, {"betas": (0.9, -0.1)}, "Adam: invalid beta parameter at index 1"),
    (optim.Adam, {"betas": (0.9,)}, "Adam: betas must be a pair"),
    (optim.Adam, {"eps": -1e-8}, "Adam: invalid eps"),
    (optim.AdamW, {"weight_decay": -0.1}, "AdamW: invalid weight_decay"),
    (optim.Adagrad, {"lr_decay": -0.1}, "Adagrad: invalid lr_decay"),
    (optim.Adagrad, {"initial_accumulator_value": -1.0}, "invalid initial_accumulator_value"),
    (optim.RMSprop, {"alpha": -0.9}, "RMSprop: invalid alpha"),
    (optim.RMSprop, {"momentum": -0.9}, "RMSprop: invalid momentum"),
    (optim.Adadelta, {"lr": -1.0}, "Adadelta: invalid lr -1.0"),
    (optim.Adadelta, {"rho": 1.5}, "Adadelta: invalid rho 1.5; expected 0 <= rho <= 1"),
    (optim.Adadelta, {"rho": -0.1}, "Adadelta: invalid rho -0.1"),
    (optim.Adadelta, {"eps": -1e-6}, "Adadelta: invalid eps"),
    (optim.Adadelta, {"weight_decay": -0.1}, "Adadelta: invalid weight_decay"),
]


@pytest.mark.parametrize("optimizer_class, options, message", BAD_OPTIONS)
def test_bad_hyper_parameters_raise(optimizer_class, options, message):
    with pytest.raises(ValueError, match=message):
        optimizer_class(tg_params(), **options)


def test_a_bad_option_in_one_group_raises():
    params = tg_params()
    with pytest.raises(ValueError, match="Adam: invalid lr -0.5"):
        optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": -0.5}])


def test_bad_parameter_lists_raise():
    w = Parameter(tg.tensor([1.0]))
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="not a single Tensor"):
        optim.SGD(w, lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors, but one of the params is "
                                        "ndarray"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([w * 2], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)
    with pytest.raises(ValueError, match="lists the same parameter twice"):
        optim.SGD([w, w], lr=0.1)


# ---- clip_grad_norm_ ------------------------------------------------------------------
def grads_after_backward(library_params, library):
    make_tensor = tg.tensor if library is tg else torch.tensor
    mlp_loss(library_params, make_tensor(INPUTS), make_tensor(TARGETS) * 10).backward()


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.05, 1e3])
def test_clip_grad_norm_matches_pytorch(norm_type, max_norm):
    ours, theirs = tg_params(), torch_params()
    grads_after_backward(ours, tg)
    grads_after_backward(theirs, torch)
    our_norm = utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    their_norm = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(our_norm, tg.Tensor) and our_norm.shape == ()
    np.testing.assert_allclose(our_norm.numpy(), their_norm.numpy(), rtol=1e-5)
    for mine, reference in zip(ours, theirs):
        # each gradient sums 16 samples' products: rounding of up to ~32 ulps of its scale
        assert_close_to_scale(mine.grad.numpy(), reference.grad.numpy(), ulps=32, rtol=1e-5)


def test_clip_grad_norm_edge_cases():
    assert utils.clip_grad_norm_([Parameter(tg.tensor([1.0]))], 1.0).item() == 0.0
    w = Parameter(tg.tensor([3.0, 4.0]))
    w.grad = tg.tensor([3.0, 4.0])
    assert utils.clip_grad_norm_(w, 1.0).item() == pytest.approx(5.0)  # a lone Tensor works
    np.testing.assert_allclose(w.grad.numpy(), [0.6, 0.8], rtol=1e-5)
    w.grad = tg.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm of order 2.0"):
        utils.clip_grad_norm_([w], 1.0, error_if_nonfinite=True)
    assert math.isnan(utils.clip_grad_norm_([w], 1.0).item())


def test_clip_grad_norm_scales_a_shared_gradient_once():
    a, b = Parameter(tg.tensor([3.0])), Parameter(tg.tensor([4.0]))
    (a + b).sum().backward()  # add's backward may hand both leaves the same gradient
    utils.clip_grad_norm_([a, b], 0.5 * math.sqrt(2))
    np.testing.assert_allclose([a.grad.item(), b.grad.item()], [0.5, 0.5], rtol=1e-5)


# ---- penalties ------------------------------------------------------------------------
@pytest.mark.parametrize("penalty, reference", [
    (utils.l1_penalty, lambda ps: sum(p.abs().sum() for p in ps)),
    (utils.l2_penalty, lambda ps: sum(p.pow(2).sum() for p in ps)),
])
def test_penalties_match_pytorch(penalty, reference):
    values = [v.copy() for v in INITIAL]
    values[1][:3] = 0.0  # |w| at zero: both libraries take the subgradient 0
    ours, theirs = tg_params(values), torch_params(values)
    our_value, their_value = penalty(ours), reference(theirs)
    np.testing.assert_allclose(our_value.item(), their_value.item(), rtol=1e-6)
    our_value.backward()
    their_value.backward()
    for mine, expected in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad.numpy(), expected.grad.numpy(), rtol=1e-6)


def test_penalties_add_to_a_loss_and_accept_generators():
    params = tg_params()
    loss = mlp_loss(params, tg.tensor(INPUTS), tg.tensor(TARGETS))
    (loss + 0.01 * utils.l2_penalty(p for p in params)).backward()
    assert all(p.grad is not None for p in params)
    assert utils.l1_penalty([]).item() == 0.0
