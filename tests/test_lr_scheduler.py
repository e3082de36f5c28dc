"""Learning-rate schedulers against torch.optim.lr_scheduler.

Each case builds the same scheduler over the same two-group optimizer in both libraries, steps
both ~40 times and compares every group's lr (and momentum or betas, which OneCycleLR cycles)
at every step. The schedules are plain Python float arithmetic done in PyTorch's order, so
they agree to the last bit. ReduceLROnPlateau is fed the same metric sequence. State dicts
round-trip within each library and across the two.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import tinygrad_like as tg
from tinygrad_like import optim
from tinygrad_like.nn.module import Parameter

STEPS = 40


def two_group_optimizer(library, kind="sgd", dtype=np.float32):
    """Weights at lr 0.1 and biases at lr 0.3, in `library` (optim or torch.optim)."""
    values = [np.array([1.0, 2.0], dtype), np.array([0.5], dtype)]
    if library is optim:
        w, b = (Parameter(tg.tensor(value)) for value in values)
    else:
        w, b = (torch.nn.Parameter(torch.tensor(value)) for value in values)
    groups = [{"params": [w]}, {"params": [b], "lr": 0.3}]
    if kind == "adam":
        return library.Adam(groups, lr=0.1, betas=(0.9, 0.99))
    return library.SGD(groups, lr=0.1, momentum=0.9)


def snapshot(optimizer):
    """What a scheduler may change in each group: lr, momentum, betas."""
    return [(group["lr"], group.get("momentum"), group.get("betas"))
            for group in optimizer.param_groups]


def sched(library):
    return library.lr_scheduler


# name -> (optimizer kind, factory(library, optimizer) -> scheduler)
CASES = {
    "step": ("sgd", lambda m, o: sched(m).StepLR(o, step_size=3, gamma=0.5)),
    "step-default-gamma": ("sgd", lambda m, o: sched(m).StepLR(o, 7)),
    "multistep": ("sgd", lambda m, o: sched(m).MultiStepLR(o, [3, 7, 7, 12], gamma=0.5)),
    "multistep-unsorted": ("sgd", lambda m, o: sched(m).MultiStepLR(o, (20, 5))),
    "exponential": ("sgd", lambda m, o: sched(m).ExponentialLR(o, gamma=0.9)),
    "lambda": ("sgd", lambda m, o: sched(m).LambdaLR(o, lambda epoch: 0.95 ** epoch)),
    "lambda-per-group": ("sgd", lambda m, o: sched(m).LambdaLR(
        o, [lambda epoch: 1 / (epoch + 1), lambda epoch: min(1.0, (epoch + 1) / 10)])),
    "multiplicative": ("sgd", lambda m, o: sched(m).MultiplicativeLR(o, lambda epoch: 0.95)),
    "constant": ("sgd", lambda m, o: sched(m).ConstantLR(o, factor=0.5, total_iters=4)),
    "constant-default": ("sgd", lambda m, o: sched(m).ConstantLR(o)),
    "linear": ("sgd", lambda m, o: sched(m).LinearLR(o, start_factor=0.25, total_iters=8)),
    "linear-decay": ("sgd", lambda m, o: sched(m).LinearLR(o, start_factor=1.0, end_factor=0.1,
                                                           total_iters=30)),
    "linear-default": ("sgd", lambda m, o: sched(m).LinearLR(o)),
    "polynomial": ("sgd", lambda m, o: sched(m).PolynomialLR(o, total_iters=25, power=2.0)),
    "cosine": ("sgd", lambda m, o: sched(m).CosineAnnealingLR(o, T_max=5, eta_min=0.01)),
    "cosine-to-zero": ("sgd", lambda m, o: sched(m).CosineAnnealingLR(o, T_max=12)),
    "warm-restarts": ("sgd", lambda m, o: sched(m).CosineAnnealingWarmRestarts(o, T_0=5)),
    "warm-restarts-mult": ("sgd", lambda m, o: sched(m).CosineAnnealingWarmRestarts(
        o, T_0=3, T_mult=2, eta_min=0.01)),
    "one-cycle": ("sgd", lambda m, o: sched(m).OneCycleLR(o, max_lr=1.0, total_steps=STEPS)),
    "one-cycle-linear": ("sgd", lambda m, o: sched(m).OneCycleLR(
        o, max_lr=[1.0, 2.0], total_steps=STEPS + 5, anneal_strategy="linear")),
    "one-cycle-three-phase": ("sgd", lambda m, o: sched(m).OneCycleLR(
        o, max_lr=0.5, epochs=4, steps_per_epoch=10, three_phase=True, pct_start=0.25)),
    "one-cycle-factors": ("sgd", lambda m, o: sched(m).OneCycleLR(
        o, max_lr=0.8, total_steps=STEPS, pct_start=0.4, div_factor=10.0,
        final_div_factor=100.0, base_momentum=[0.8, 0.7], max_momentum=0.99)),
    "one-cycle-no-momentum": ("sgd", lambda m, o: sched(m).OneCycleLR(
        o, max_lr=1.0, total_steps=STEPS, cycle_momentum=False)),
    "one-cycle-adam": ("adam", lambda m, o: sched(m).OneCycleLR(o, max_lr=0.01,
                                                                total_steps=STEPS)),
    "one-cycle-adam-three-phase": ("adam", lambda m, o: sched(m).OneCycleLR(
        o, max_lr=0.01, total_steps=STEPS, three_phase=True, anneal_strategy="linear")),
    "cyclic": ("sgd", lambda m, o: sched(m).CyclicLR(o, base_lr=0.01, max_lr=0.1,
                                                      step_size_up=4)),
    "cyclic-triangular2": ("sgd", lambda m, o: sched(m).CyclicLR(
        o, base_lr=[0.01, 0.02], max_lr=[0.1, 0.3], step_size_up=3, step_size_down=6,
        mode="triangular2", base_momentum=0.7, max_momentum=[0.9, 0.95])),
    "cyclic-exp-range": ("adam", lambda m, o: sched(m).CyclicLR(
        o, base_lr=0.001, max_lr=0.01, step_size_up=5, mode="exp_range", gamma=0.97)),
    "cyclic-scale-fn": ("sgd", lambda m, o: sched(m).CyclicLR(
        o, base_lr=0.01, max_lr=0.1, step_size_up=2, scale_fn=lambda x: 0.9 ** x,
        scale_mode="iterations", cycle_momentum=False)),
    "sequential": ("sgd", lambda m, o: sched(m).SequentialLR(
        o, [sched(m).LinearLR(o, start_factor=0.1, total_iters=5),
            sched(m).CosineAnnealingLR(o, T_max=20)], milestones=[5])),
    "sequential-three": ("sgd", lambda m, o: sched(m).SequentialLR(
        o, [sched(m).ConstantLR(o, factor=0.2, total_iters=10),
            sched(m).ExponentialLR(o, gamma=0.9), sched(m).StepLR(o, step_size=4)],
        milestones=[4, 15])),
    "chained": ("sgd", lambda m, o: sched(m).ChainedScheduler(
        [sched(m).ConstantLR(o, factor=0.5, total_iters=5),
         sched(m).ExponentialLR(o, gamma=0.9)])),
    "chained-with-optimizer": ("sgd", lambda m, o: sched(m).ChainedScheduler(
        [sched(m).LinearLR(o, start_factor=0.5, total_iters=4),
         sched(m).MultiStepLR(o, [6, 9])], optimizer=o)),
}


def run(library, name, steps=STEPS):
    kind, make = CASES[name]
    optimizer = two_group_optimizer(library, kind)
    scheduler = make(library, optimizer)
    seen = [snapshot(optimizer)]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        seen.append(snapshot(optimizer))
        assert scheduler.get_last_lr() == [group["lr"] for group in optimizer.param_groups]
    return seen, scheduler


def assert_same_schedule(ours, theirs):
    """The same lrs and momenta, bit for bit: the same float operations in the same order."""
    assert len(ours) == len(theirs)
    for epoch, (our_groups, their_groups) in enumerate(zip(ours, theirs)):
        assert our_groups == their_groups, f"epoch {epoch}: (lr, momentum, betas) per group"


@pytest.mark.parametrize("name", CASES)
def test_schedule_matches_pytorch(name):
    ours, _ = run(optim, name)
    theirs, _ = run(torch.optim, name)
    assert len({groups[0][0] for groups in theirs}) > 1  # the case does change the lr
    assert_same_schedule(ours, theirs)


@pytest.mark.parametrize("name", CASES)
def test_state_dict_round_trip_continues_the_schedule(name):
    kind, make = CASES[name]
    uninterrupted, _ = run(optim, name)
    first = two_group_optimizer(optim, kind)
    scheduler = make(optim, first)
    for _ in range(7):
        first.step()
        scheduler.step()
    optimizer_state, scheduler_state = first.state_dict(), scheduler.state_dict()
    assert "optimizer" not in scheduler_state
    resumed_optimizer = two_group_optimizer(optim, kind)
    resumed = make(optim, resumed_optimizer)
    resumed_optimizer.load_state_dict(optimizer_state)
    resumed.load_state_dict(scheduler_state)
    seen = [snapshot(resumed_optimizer)]
    for _ in range(STEPS - 7):
        resumed_optimizer.step()
        resumed.step()
        seen.append(snapshot(resumed_optimizer))
    assert seen == uninterrupted[7:]


def resume(library, name, groups, state):
    """A fresh optimizer and scheduler of case `name` in `library`, given the saved group
    options and scheduler state (of either library), stepped to the end of the run."""
    kind, make = CASES[name]
    optimizer = two_group_optimizer(library, kind)
    scheduler = make(library, optimizer)
    for group, saved in zip(optimizer.param_groups, groups):
        group.update({key: value for key, value in saved.items() if key != "params"})
    scheduler.load_state_dict(state)
    seen = []
    for _ in range(STEPS - 9):
        optimizer.step()
        scheduler.step()
        seen.append(snapshot(optimizer))
    return seen


@pytest.mark.parametrize("name", CASES)
def test_state_dicts_have_pytorchs_keys_and_load_across_libraries(name):
    _, ours = run(optim, name, steps=9)
    _, theirs = run(torch.optim, name, steps=9)
    our_state, their_state = ours.state_dict(), theirs.state_dict()

    def keys(state):  # PyTorch's flag that get_lr() is inside step() is no state
        return set(state) - {"_get_lr_called_within_step"}

    assert keys(our_state) == keys(their_state)
    for our_inner, their_inner in zip(our_state.get("_schedulers", []),
                                      their_state.get("_schedulers", [])):
        assert keys(our_inner) == keys(their_inner)
    our_groups = ours.optimizer.state_dict()["param_groups"]
    their_groups = theirs.optimizer.state_dict()["param_groups"]
    uninterrupted = resume(torch.optim, name, their_groups, their_state)
    assert_same_schedule(resume(optim, name, their_groups, their_state), uninterrupted)
    assert_same_schedule(resume(torch.optim, name, our_groups, our_state), uninterrupted)


def test_multistep_milestones_survive_a_checkpoint_without_counter():
    optimizer = two_group_optimizer(optim)
    scheduler = optim.lr_scheduler.MultiStepLR(optimizer, [2, 5, 5])
    state = scheduler.state_dict()
    state["milestones"] = dict(state["milestones"])  # as safetensors' JSON header returns it
    scheduler.load_state_dict(state)
    with pytest.warns(UserWarning, match="deprecated"):
        scheduler.step(6)
    assert scheduler.get_last_lr() == pytest.approx([0.1 * 0.1 ** 3, 0.3 * 0.1 ** 3])


# ---- step(epoch) and resuming with last_epoch ------------------------------------------
CLOSED_FORM = ["step", "multistep", "exponential", "lambda", "constant", "linear",
               "linear-decay", "polynomial", "cosine", "cosine-to-zero"]


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_step_with_an_epoch_uses_the_closed_form(name):
    def jumps(library):
        kind, make = CASES[name]
        optimizer = two_group_optimizer(library, kind)
        scheduler = make(library, optimizer)
        lrs = []
        with pytest.warns(UserWarning, match="deprecated"):
            for epoch in (4, 9, 2, 30, 0, 11):
                optimizer.step()
                scheduler.step(epoch)
                lrs.append(scheduler.get_last_lr())
        return lrs

    assert jumps(optim) == jumps(torch.optim)


@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_warm_restarts_take_fractional_epochs(T_mult):
    def lrs(library):
        optimizer = two_group_optimizer(library)
        scheduler = library.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=4,
                                                                     T_mult=T_mult)
        seen = []
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # fractional epochs are the documented use
            for epoch in range(25):
                for batch in range(3):
                    scheduler.step(epoch + batch / 3)
                    seen.append(scheduler.get_last_lr())
        return seen

    assert lrs(optim) == lrs(torch.optim)


# each resumes at epoch 6 (the optimizer's groups carry "initial_lr", as a checkpoint's do)
RESUMED = {
    "step": lambda m, o: sched(m).StepLR(o, 3, gamma=0.5, last_epoch=6),
    "exponential": lambda m, o: sched(m).ExponentialLR(o, 0.9, last_epoch=6),
    "cosine": lambda m, o: sched(m).CosineAnnealingLR(o, T_max=10, eta_min=0.01, last_epoch=6),
    "linear": lambda m, o: sched(m).LinearLR(o, start_factor=0.2, total_iters=10, last_epoch=6),
    "multiplicative": lambda m, o: sched(m).MultiplicativeLR(o, lambda e: 0.9, last_epoch=6),
    "polynomial": lambda m, o: sched(m).PolynomialLR(o, total_iters=12, last_epoch=6),
    "warm-restarts": lambda m, o: sched(m).CosineAnnealingWarmRestarts(o, T_0=4, last_epoch=6),
}


@pytest.mark.parametrize("name", RESUMED)
def test_resuming_at_last_epoch_matches_pytorch(name):
    def lrs(library):
        optimizer = two_group_optimizer(library)
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"] * 2
        scheduler = RESUMED[name](library, optimizer)
        seen = [scheduler.get_last_lr()]
        for _ in range(15):
            optimizer.step()
            scheduler.step()
            seen.append(scheduler.get_last_lr())
        return seen

    assert lrs(optim) == lrs(torch.optim)


class Warmup:
    """A schedule function with state, which a scheduler's state dict carries."""

    def __init__(self, epochs):
        self.epochs = epochs

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.epochs)


def test_lambda_lr_saves_no_functions_but_callable_objects_state():
    optimizer = two_group_optimizer(optim)
    scheduler = optim.lr_scheduler.LambdaLR(optimizer, [lambda epoch: 0.5, Warmup(5)])
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [None, {"epochs": 5}]
    other_warmup = Warmup(50)
    other = optim.lr_scheduler.LambdaLR(two_group_optimizer(optim),
                                        [lambda epoch: 0.5, other_warmup])
    other.load_state_dict(state)
    assert other_warmup.epochs == 5 and "lr_lambdas" in state


def test_cyclic_lr_saves_a_scale_callable_objects_state():
    def make(scale_fn):
        return optim.lr_scheduler.CyclicLR(two_group_optimizer(optim), 0.01, 0.1,
                                           scale_fn=scale_fn)

    assert make(lambda x: 1.0).state_dict()["_scale_fn_custom"] is None
    state = make(Warmup(3)).state_dict()
    assert state["_scale_fn_custom"] == {"epochs": 3} and "_scale_fn_ref" not in state
    other_warmup = Warmup(30)
    make(other_warmup).load_state_dict(state)
    assert other_warmup.epochs == 3


# ---- ReduceLROnPlateau ------------------------------------------------------------------
# a loss that falls in steps, wobbling, then stalls from epoch 27 on
LOSSES = [1.0 / (1 + min(epoch, 30) // 9) + 0.01 * ((epoch * 37) % 5) for epoch in range(60)]

PLATEAU_CASES = {
    "default": {},
    "patience-factor": {"patience": 2, "factor": 0.5},
    "max": {"mode": "max", "patience": 3},
    "abs-threshold": {"threshold_mode": "abs", "threshold": 0.03, "patience": 1},
    "rel-threshold": {"threshold": 0.05, "patience": 2},
    "cooldown": {"patience": 1, "cooldown": 3, "factor": 0.7},
    "min-lr-per-group": {"patience": 1, "factor": 0.3, "min_lr": [0.01, 0.05]},
    "min-lr": {"patience": 0, "factor": 0.5, "min_lr": 0.02},
    "eps": {"patience": 1, "factor": 0.5, "eps": 0.02},
}


def plateau_run(library, options, metric_type=float):
    optimizer = two_group_optimizer(library)
    scheduler = library.lr_scheduler.ReduceLROnPlateau(optimizer, **options)
    sign = -1.0 if options.get("mode") == "max" else 1.0
    seen = [scheduler.get_last_lr()]
    for loss in LOSSES:
        optimizer.step()
        scheduler.step(metric_type(sign * loss))
        seen.append(scheduler.get_last_lr())
    return seen, scheduler


@pytest.mark.parametrize("name", PLATEAU_CASES)
def test_reduce_on_plateau_matches_pytorch(name):
    ours, our_scheduler = plateau_run(optim, PLATEAU_CASES[name])
    theirs, their_scheduler = plateau_run(torch.optim, PLATEAU_CASES[name])
    assert len({lrs[0] for lrs in theirs}) > 2  # the case does cut the lr, more than once
    assert ours == theirs
    for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
        assert getattr(our_scheduler, key) == getattr(their_scheduler, key), key


def test_reduce_on_plateau_takes_tensor_metrics_and_round_trips():
    options = PLATEAU_CASES["cooldown"]
    ours, scheduler = plateau_run(optim, options, metric_type=tg.tensor)
    assert ours == plateau_run(torch.optim, options, metric_type=torch.tensor)[0]
    assert isinstance(scheduler, optim.lr_scheduler.LRScheduler)
    state = scheduler.state_dict()
    assert "optimizer" not in state
    assert set(state) == set(plateau_run(torch.optim, options)[1].state_dict())
    resumed = optim.lr_scheduler.ReduceLROnPlateau(two_group_optimizer(optim), mode="max")
    resumed.load_state_dict(state)
    assert resumed.mode == "min" and resumed.mode_worse == math.inf and resumed.best == min(LOSSES)


# ---- the lr schedule drives training ----------------------------------------------------
@pytest.mark.parametrize("name", ["one-cycle", "one-cycle-adam", "cyclic-triangular2",
                                  "sequential", "chained"])
def test_a_scheduled_training_run_matches_pytorch(name):
    """The optimizers read the lr and momentum the scheduler set at every step."""
    inputs = np.linspace(-0.5, 0.5, 8).reshape(4, 2)
    targets = np.array([0.5, -1.0, 2.0, 0.0])

    def train(library):
        tensor = tg.tensor if library is optim else torch.tensor
        kind, make = CASES[name]
        optimizer = two_group_optimizer(library, kind, dtype=np.float64)
        w, b = (group["params"][0] for group in optimizer.param_groups)
        scheduler = make(library, optimizer)
        x, y = tensor(inputs), tensor(targets)
        for _ in range(STEPS):
            optimizer.zero_grad()
            ((x @ w + b - y) ** 2).mean().backward()
            optimizer.step()
            scheduler.step()
        return [p.detach().numpy().copy() for p in (w, b)]

    ours, theirs = train(optim), train(torch.optim)
    # float64 array arithmetic (matmul, reductions) may round differently in each library
    assert not np.allclose(theirs[0], [1.0, 2.0])
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-12)


# ---- bad arguments ----------------------------------------------------------------------
def _bad_arguments():
    lrs = optim.lr_scheduler
    return [
        (lambda o: lrs.StepLR(o, step_size=0), ValueError,
         "StepLR: step_size must be a positive int, got 0"),
        (lambda o: lrs.StepLR({}, step_size=2), TypeError, "StepLR: dict is not an Optimizer"),
        (lambda o: lrs.StepLR(o, step_size=2, last_epoch=5), KeyError,
         "needs 'initial_lr' in param_groups\\[0\\]"),
        (lambda o: lrs.MultiStepLR(o, [2, "5"]), TypeError, "MultiStepLR: milestones must be ints"),
        (lambda o: lrs.CosineAnnealingLR(o, T_max=0), ValueError,
         "CosineAnnealingLR: T_max must be positive"),
        (lambda o: lrs.LambdaLR(o, [lambda e: 1.0]), ValueError,
         "LambdaLR: lr_lambda must have one value per parameter group; got 1 values for 2"),
        (lambda o: lrs.LambdaLR(o, 0.5), TypeError, "LambdaLR: lr_lambda must be a function"),
        (lambda o: lrs.MultiplicativeLR(o, [None, None]), TypeError,
         "MultiplicativeLR: lr_lambda must be a function of the epoch, but entry 0 is NoneType"),
        (lambda o: lrs.ConstantLR(o, factor=1.5), ValueError,
         "ConstantLR: factor must be in \\[0, 1\\], got 1.5"),
        (lambda o: lrs.LinearLR(o, start_factor=0.0), ValueError,
         "LinearLR: start_factor must be in \\(0, 1\\], got 0.0"),
        (lambda o: lrs.LinearLR(o, end_factor=-0.1), ValueError, "LinearLR: end_factor"),
        (lambda o: lrs.LinearLR(o, total_iters=0), ValueError,
         "LinearLR: total_iters must be a positive int"),
        (lambda o: lrs.PolynomialLR(o, total_iters=-2), ValueError, "PolynomialLR: total_iters"),
        (lambda o: lrs.CosineAnnealingWarmRestarts(o, T_0=0), ValueError,
         "T_0 must be a positive int"),
        (lambda o: lrs.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), ValueError,
         "T_mult must be an int >= 1"),
        (lambda o: lrs.OneCycleLR(o, max_lr=1.0), ValueError,
         "OneCycleLR: give either total_steps, or both epochs and steps_per_epoch"),
        (lambda o: lrs.OneCycleLR(o, max_lr=1.0, total_steps=0), ValueError,
         "OneCycleLR: total_steps must be a positive int, got 0"),
        (lambda o: lrs.OneCycleLR(o, max_lr=1.0, epochs=2, steps_per_epoch=2.5), ValueError,
         "steps_per_epoch must be a positive int"),
        (lambda o: lrs.OneCycleLR(o, max_lr=1.0, total_steps=9, pct_start=1), ValueError,
         "pct_start must be a float in \\[0, 1\\], got 1"),
        (lambda o: lrs.OneCycleLR(o, max_lr=1.0, total_steps=9, anneal_strategy="exp"),
         ValueError, "anneal_strategy must be 'cos' or 'linear', got 'exp'"),
        (lambda o: lrs.OneCycleLR(o, max_lr=[1.0, 2.0, 3.0], total_steps=9), ValueError,
         "OneCycleLR: max_lr must have one value per parameter group; got 3 values for 2"),
        (lambda o: lrs.OneCycleLR(optim.Adagrad(o.param_groups[0]["params"]), max_lr=1.0,
                                  total_steps=9), ValueError,
         "cycle_momentum needs an optimizer with a momentum or betas option; Adagrad"),
        (lambda o: lrs.CyclicLR(o, 0.01, 0.1, step_size_up=0), ValueError,
         "CyclicLR: step_size_up and step_size_down must be positive, got 0 and None"),
        (lambda o: lrs.CyclicLR(o, 0.01, 0.1, mode="sawtooth"), ValueError,
         "CyclicLR: mode must be 'triangular', 'triangular2' or 'exp_range' when no scale_fn"),
        (lambda o: lrs.CyclicLR(o, 0.01, [0.1]), ValueError,
         "CyclicLR: max_lr must have one value per parameter group"),
        (lambda o: lrs.CyclicLR(o, 0.01, 0.1, scale_fn=abs, scale_mode="epochs"), ValueError,
         "CyclicLR: scale_mode must be 'cycle' or 'iterations', got 'epochs'"),
        (lambda o: lrs.ReduceLROnPlateau(o, factor=1.0), ValueError,
         "ReduceLROnPlateau: factor must be in \\[0, 1\\), got 1.0"),
        (lambda o: lrs.ReduceLROnPlateau(o, mode="lowest"), ValueError,
         "mode must be 'min' or 'max', got 'lowest'"),
        (lambda o: lrs.ReduceLROnPlateau(o, threshold_mode="relative"), ValueError,
         "threshold_mode must be 'rel' or 'abs'"),
        (lambda o: lrs.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError,
         "ReduceLROnPlateau: min_lr must have one value per parameter group"),
        (lambda o: lrs.ReduceLROnPlateau(o).step("low"), TypeError,
         "ReduceLROnPlateau.step: the metric must be a number or a one-element tensor"),
        (lambda o: lrs.SequentialLR(o, [], milestones=[]), ValueError,
         "SequentialLR expects at least one scheduler"),
        (lambda o: lrs.SequentialLR(o, [lrs.StepLR(o, 2), lrs.StepLR(o, 3)], milestones=[]),
         ValueError, "one milestone fewer than schedulers, but got 2 schedulers and 0"),
        (lambda o: lrs.SequentialLR(o, [lrs.ReduceLROnPlateau(o)], milestones=[]), ValueError,
         "SequentialLR does not support ReduceLROnPlateau \\(index 0\\)"),
        (lambda o: lrs.SequentialLR(o, [lrs.StepLR(two_group_optimizer(optim), 2)],
                                    milestones=[]), ValueError,
         "expects all schedulers to belong to the same optimizer, but the StepLR at index 0"),
        (lambda o: lrs.ChainedScheduler([lrs.StepLR(o, 2), "StepLR"]), TypeError,
         "ChainedScheduler: the entry at index 1 is a str, not an LRScheduler"),
    ]


@pytest.mark.parametrize("index", range(len(_bad_arguments())))
def test_bad_arguments_raise(index):
    make, error, message = _bad_arguments()[index]
    with pytest.raises(error, match=message):
        make(two_group_optimizer(optim))


def test_one_cycle_refuses_to_step_past_total_steps():
    optimizer = two_group_optimizer(optim)
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=3)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 4 times, but total_steps "
                                         "is 3"):
        scheduler.step()
