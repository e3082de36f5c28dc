"""Every registered op: gradcheck, gradgradcheck and PyTorch parity, from tests/op_registry.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tinygrad_like as tg
from tinygrad_like.autograd import Function
from tinygrad_like.ops import REGISTERED_NAMES
from op_registry import OPS
from tolerances import assert_as_accurate_as_reference

CASES = [(case, sample) for case in OPS for sample in case.samples]
IDS = [f"{case.name}-{sample!r}" for case, sample in CASES]
DIFFERENTIABLE = [(c, s) for c, s in CASES if c.differentiable]
CHECKED = [(c, s) for c, s in DIFFERENTIABLE if c.finite_differences]
CHECKED_IDS = [f"{c.name}-{s!r}" for c, s in CHECKED]
GRADGRAD = [(c, s) for c, s in CHECKED if c.gradgrad]
GRADGRAD_IDS = [f"{c.name}-{s!r}" for c, s in GRADGRAD]


def make_arrays(sample, seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for shape in sample.shapes:
        if sample.positive:
            values = rng.uniform(0.5, 2.0, shape)
        else:
            values = rng.uniform(-2.0, 2.0, shape)
        if sample.noncontiguous and len(shape) >= 2:
            # the same values, laid out transposed in memory: a non-contiguous view
            values = np.ascontiguousarray(values.swapaxes(-1, -2)).swapaxes(-1, -2)
        arrays.append(values)
    return arrays


def tg_inputs(arrays, requires_grad=True, constant=()):
    """float64 tensors sharing memory with `arrays`, so non-contiguous views stay views."""
    return [tg.from_numpy(a).requires_grad_(requires_grad and i not in constant)
            for i, a in enumerate(arrays)]


def torch_inputs(arrays, requires_grad=True, constant=()):
    return [torch.tensor(a, requires_grad=requires_grad and i not in constant)
            for i, a in enumerate(arrays)]


def as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


@pytest.mark.parametrize("case,sample", CHECKED, ids=CHECKED_IDS)
def test_gradcheck(case, sample):
    inputs = tg_inputs(make_arrays(sample), constant=sample.constant)
    assert tg.gradcheck(lambda *xs: case.fn(tg, *xs, **sample.kwargs), inputs, eps=case.eps,
                        atol=case.atol)


@pytest.mark.parametrize("case,sample", GRADGRAD, ids=GRADGRAD_IDS)
def test_gradgradcheck(case, sample):
    inputs = tg_inputs(make_arrays(sample), constant=sample.constant)
    assert tg.gradgradcheck(lambda *xs: case.fn(tg, *xs, **sample.kwargs), inputs, eps=case.eps,
                        atol=case.atol)


@pytest.mark.parametrize("case,sample", CASES, ids=IDS)
def test_forward_and_gradients_match_torch(case, sample):
    if not case.torch_parity:
        pytest.skip(f"{case.name} is random; tests/test_nn.py checks it against torch's semantics")
    arrays = make_arrays(sample)
    differentiable = case.differentiable
    ours = tg_inputs(arrays, differentiable, sample.constant)
    theirs = torch_inputs(arrays, differentiable, sample.constant)
    out_ours = as_tuple(case.fn(tg, *ours, **sample.kwargs))
    out_theirs = as_tuple(case.fn(torch, *theirs, **sample.kwargs))
    assert len(out_ours) == len(out_theirs)
    for a, b in zip(out_ours, out_theirs):
        assert a.shape == tuple(b.shape), f"{case.name}: shape {a.shape} != torch {tuple(b.shape)}"
        assert a.dtype.name == str(b.dtype).removeprefix("torch."), f"{a.dtype} vs {b.dtype}"
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-7, atol=1e-10)
    if not differentiable:
        return
    rng = np.random.default_rng(1)
    float_outputs = [(a, b) for a, b in zip(out_ours, out_theirs) if b.dtype.is_floating_point]
    seeds = [rng.standard_normal(b.shape) for _, b in float_outputs]
    ours = [t for t in ours if t.requires_grad]
    theirs = [t for t in theirs if t.requires_grad]
    grads_ours = tg.autograd.grad([a for a, _ in float_outputs], ours,
                                  [tg.tensor(s, dtype=tg.float64) for s in seeds],
                                  allow_unused=True)
    grads_theirs = torch.autograd.grad([b for _, b in float_outputs], theirs,
                                       [torch.tensor(s) for s in seeds], allow_unused=True)
    for g_ours, g_theirs in zip(grads_ours, grads_theirs):
        if g_theirs is None:
            assert g_ours is None or not np.asarray(g_ours._array).any()
            continue
        np.testing.assert_allclose(g_ours.numpy(), g_theirs.numpy(), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("case,sample", CASES, ids=IDS)
def test_float32_forward_matches_torch(case, sample):
    if not case.torch_parity:
        pytest.skip(f"{case.name} is random; tests/test_nn.py checks it against torch's semantics")
    arrays = [a.astype(np.float32) for a in make_arrays(sample)]
    ours = [tg.tensor(a) for a in arrays]
    theirs = [torch.tensor(a) for a in arrays]
    exact = [torch.tensor(a, dtype=torch.float64) for a in arrays]  # the same inputs
    for a, b, e in zip(as_tuple(case.fn(tg, *ours, **sample.kwargs)),
                       as_tuple(case.fn(torch, *theirs, **sample.kwargs)),
                       as_tuple(case.fn(torch, *exact, **sample.kwargs))):
        assert a.dtype.name == str(b.dtype).removeprefix("torch.")
        if b.dtype.is_floating_point:  # both round; how much depends on the CPU
            assert_as_accurate_as_reference(a.numpy(), b.numpy(), e.numpy(), err_msg=case.name)
        else:
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_every_registered_op_has_a_case():
    missing = (REGISTERED_NAMES | set(tg.nn.functional.__all__)) - {case.name for case in OPS}
    assert not missing, f"ops without a gradcheck/parity case in tests/op_registry.py: {missing}"


def _all_functions(cls=Function):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_functions(sub)


# Shared bases hold no op of their own
NOT_OPS = {"Binary", "Unary", "_Extreme", "_ArgExtreme", "_Compare"}


def test_every_function_is_exercised_by_the_registry(monkeypatch):
    seen = set()
    original = Function.apply.__func__

    def recording_apply(cls, *args, **kwargs):
        seen.add(cls)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Function, "apply", classmethod(recording_apply))
    for case, sample in DIFFERENTIABLE:
        inputs = tg_inputs(make_arrays(sample), constant=sample.constant)
        outputs = [o for o in as_tuple(case.fn(tg, *inputs, **sample.kwargs)) if o.requires_grad]
        inputs = [t for t in inputs if t.requires_grad]
        grads = tg.autograd.grad(outputs, inputs, [tg.ones_like(o) for o in outputs],
                                 create_graph=True, allow_unused=True)
        second = [g.sum() for g in grads if g is not None and g.requires_grad]
        if second:
            tg.autograd.grad(second, inputs, allow_unused=True)
    for case, sample in CASES:
        case.fn(tg, *tg_inputs(make_arrays(sample), requires_grad=False), **sample.kwargs)
    builtin = {f for f in _all_functions() if f.__module__.startswith("tinygrad_like.ops")}
    missed = {f.__name__ for f in builtin - seen} - NOT_OPS
    assert not missed, f"Functions no registry case exercises: {sorted(missed)}"
