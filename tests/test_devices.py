"""Device parity: every registry op on "interp" (the GPU kernels, interpreted) equals "cpu".

Also the device contract: moving tensors between devices is differentiable, and mixing
devices in one op names both.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_like as tg
from op_registry import OPS
from test_ops import as_tuple, make_arrays

pytest.importorskip("triton")

CASES = [(case, sample) for case in OPS for sample in case.samples if case.torch_parity]
IDS = [f"{case.name}-{sample!r}" for case, sample in CASES]


def run(case, sample, device: str):
    """Forward outputs and input gradients of one registry case on `device`, as NumPy."""
    inputs = [tg.tensor(a, dtype=tg.float64, device=device,
                        requires_grad=case.differentiable and i not in sample.constant)
              for i, a in enumerate(make_arrays(sample))]
    outputs = as_tuple(case.fn(tg, *inputs, **sample.kwargs))
    floating = [o for o in outputs if o.requires_grad]
    grads = []
    if floating:
        rng = np.random.default_rng(1)
        seeds = [tg.tensor(rng.standard_normal(o.shape), device=device) for o in floating]
        wanted = [t for t in inputs if t.requires_grad]
        grads = tg.autograd.grad(floating, wanted, seeds, allow_unused=True)
    return ([o.detach().cpu().numpy() for o in outputs],
            [None if g is None else g.cpu().numpy() for g in grads])


@pytest.mark.parametrize("case,sample", CASES, ids=IDS)
def test_interp_matches_cpu(case, sample):
    if any(s == () for s in sample.shapes) and case.name == "matmul":
        pytest.skip("0-d matmul operands are rejected before any kernel runs")
    out_cpu, grads_cpu = run(case, sample, "cpu")
    out_interp, grads_interp = run(case, sample, "interp")
    for a, b in zip(out_interp, out_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(grads_interp, grads_cpu):
        if b is None:
            assert a is None or not a.any()
        else:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_to_moves_between_devices_and_is_differentiable():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.to("interp")
    assert y.device == "interp" and y.requires_grad
    z = (y * y).sum().cpu()
    assert z.device == "cpu"
    z.backward()
    assert x.grad.device == "cpu" and x.grad.tolist() == [2.0, 4.0, 6.0]
    assert tg.randn(2, 3, device="interp").device == "interp"


def test_mixing_devices_names_both():
    with pytest.raises(RuntimeError, match="add: expected all tensors on one device, but got "
                                           "cpu and interp"):
        tg.ones(2) + tg.ones(2, device="interp")
    with pytest.raises(RuntimeError, match="matmul: .*cpu and interp"):
        tg.ones(2, 2) @ tg.ones(2, 2, device="interp")


def test_modules_move_to_a_device():
    model = tg.nn.Sequential(tg.nn.Linear(3, 2), tg.nn.ReLU()).to("interp")
    assert all(p.device == "interp" for p in model.parameters())
    out = model(tg.randn(4, 3, device="interp"))
    out.sum().backward()
    assert all(p.grad.device == "interp" for p in model.parameters())


def test_backend_info_names_the_kernel_of_each_op():
    table = tg.backend_info(print_table=False)
    rows = {tuple(line.split()[:2]): line for line in table.splitlines()}
    assert "Triton matmul.py" in rows[("interp", "matmul")]
    assert "Triton cross_entropy.py" in rows[("interp", "cross_entropy")]
    assert "NumPy" in rows[("cpu", "softmax")]
    if not tg.cuda.is_available():
        assert "cuda     unavailable: device 'cuda' is not available" in table

