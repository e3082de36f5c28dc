"""tg.autocast and tg.amp.GradScaler against torch.autocast and torch.amp.GradScaler running
the same programs on the CPU."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch

import tinygrad_like as tg
from tinygrad_like.models import get_task

RNG = np.random.default_rng(7)
X = RNG.standard_normal((6, 8)).astype(np.float32)
W = RNG.standard_normal((5, 8)).astype(np.float32)
BIAS = RNG.standard_normal(5).astype(np.float32)
IMAGES = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
KERNEL = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
TARGET = np.array([1, 2, 3, 0, 4, 1])
START = RNG.standard_normal((3, 4)).astype(np.float32)  # the GradScaler runs' first weight


def as_float32(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().float().numpy()
    return np.asarray(t.detach().float().numpy())


# name -> program(lib, F, x, w, b): each op PyTorch's CPU autocast lists, and some it does not
PROGRAMS = {
    "linear": lambda lib, F, x, w, b: F.linear(x, w, b),
    "matmul": lambda lib, F, x, w, b: x @ w.T,
    "matmul method": lambda lib, F, x, w, b: x.matmul(w.T),
    "bmm": lambda lib, F, x, w, b: lib.bmm(x[None], w.T[None]),
    "addmm": lambda lib, F, x, w, b: lib.addmm(b, x, w.T),
    "baddbmm": lambda lib, F, x, w, b: lib.baddbmm(b[None, None], x[None], w.T[None]),
    "conv2d": lambda lib, F, x, w, b: F.conv2d(lib.tensor(IMAGES), lib.tensor(KERNEL),
                                               padding=1),
    "conv1d": lambda lib, F, x, w, b: F.conv1d(lib.tensor(IMAGES[:, :, 0]),
                                               lib.tensor(KERNEL[:, :, 0])),
    "conv_transpose2d": lambda lib, F, x, w, b: F.conv_transpose2d(
        lib.tensor(IMAGES), lib.tensor(KERNEL.transpose(1, 0, 2, 3).copy())),
    "attention": lambda lib, F, x, w, b: F.scaled_dot_product_attention(
        x[None], x[None], x[None], is_causal=True),
    # not on the CPU lists: they follow their (bfloat16) inputs
    "softmax": lambda lib, F, x, w, b: F.softmax(F.linear(x, w), -1),
    "log_softmax": lambda lib, F, x, w, b: F.log_softmax(F.linear(x, w), -1),
    "layer_norm": lambda lib, F, x, w, b: F.layer_norm(F.linear(x, w), (5,), b, b),
    "group_norm": lambda lib, F, x, w, b: F.group_norm(F.linear(x, w)[..., None], 1),
    "relu": lambda lib, F, x, w, b: F.relu(F.linear(x, w)),
    "gelu": lambda lib, F, x, w, b: F.gelu(F.linear(x, w)),
    "exp": lambda lib, F, x, w, b: F.linear(x, w).exp(),
    "sum": lambda lib, F, x, w, b: F.linear(x, w).sum(1),
    "bfloat16 + float32": lambda lib, F, x, w, b: F.linear(x, w) + b,
    "float64 matmul": lambda lib, F, x, w, b: x.double() @ w.double().T,
    # the CPU fp32 list
    "cross_entropy": lambda lib, F, x, w, b: F.cross_entropy(F.linear(x, w),
                                                             lib.tensor(TARGET)),
    "nll_loss": lambda lib, F, x, w, b: F.nll_loss(F.log_softmax(F.linear(x, w), 1),
                                                   lib.tensor(TARGET)),
    "mse_loss": lambda lib, F, x, w, b: F.mse_loss(F.linear(x, w), F.linear(x, w).relu()),
    "l1_loss": lambda lib, F, x, w, b: F.l1_loss(F.linear(x, w), lib.zeros(6, 5)),
    "binary_cross_entropy": lambda lib, F, x, w, b: F.binary_cross_entropy(
        F.linear(x, w).sigmoid(), lib.ones(6, 5)),
    "bce_with_logits": lambda lib, F, x, w, b: F.binary_cross_entropy_with_logits(
        F.linear(x, w), lib.ones(6, 5)),
}


def run_both(program):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = program(torch, torch.nn.functional, *map(torch.tensor, (X, W, BIAS)))
    with tg.autocast("cpu", dtype=tg.bfloat16):
        mine = program(tg, tg.nn.functional, *map(tg.tensor, (X, W, BIAS)))
    return mine, reference


@pytest.mark.parametrize("name", PROGRAMS)
def test_output_dtypes_and_values_follow_torch_autocast(name):
    mine, reference = run_both(PROGRAMS[name])
    assert mine.dtype.name == str(reference.dtype).removeprefix("torch."), name
    expected = as_float32(reference)
    np.testing.assert_allclose(as_float32(mine), expected, rtol=2 ** -7,
                               atol=2 ** -6 * np.abs(expected).max(), err_msg=name)


def make_models():
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16),
                                    torch.nn.GELU(), torch.nn.Linear(16, 5))
    mine = tg.nn.Sequential(tg.nn.Linear(8, 16), tg.nn.LayerNorm(16), tg.nn.GELU(),
                            tg.nn.Linear(16, 5))
    mine.load_state_dict({k: tg.tensor(v.detach().numpy())
                          for k, v in reference.state_dict().items()})
    return mine, reference


def test_gradients_reach_float32_parameters_in_float32_like_torch():
    mine, reference = make_models()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_ref = reference(torch.tensor(X))
        loss_ref = torch.nn.functional.cross_entropy(out_ref, torch.tensor(TARGET))
    with tg.autocast("cpu"):
        out = mine(tg.tensor(X))
        loss = tg.nn.functional.cross_entropy(out, tg.tensor(TARGET))
    assert out.dtype is tg.bfloat16 and loss.dtype is tg.float32
    loss.backward()
    loss_ref.backward()
    assert abs(loss.item() - loss_ref.item()) < 1e-2
    for (name, p), p_ref in zip(mine.named_parameters(), reference.parameters()):
        assert p.dtype is tg.float32 and p.grad.dtype is tg.float32, name
        expected = p_ref.grad.numpy()
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=2 ** -5,
                                   atol=2 ** -5 * np.abs(expected).max(), err_msg=name)


def test_cuda_policy_runs_the_gpu_kernels_in_float16_on_the_interp_device():
    # "interp" runs the Triton kernels a GPU would, interpreted, and follows autocast("cuda"):
    # linear in float16, softmax and the loss in float32, gradients in float32
    pytest.importorskip("triton")
    rng = np.random.default_rng(0)
    x32, w32 = rng.standard_normal((4, 16)), rng.standard_normal((3, 16)) / 4
    target = tg.tensor([0, 1, 2, 0], device="interp")
    x = tg.tensor(x32, dtype=tg.float32, device="interp")
    w = tg.tensor(w32, dtype=tg.float32, device="interp", requires_grad=True)
    with tg.autocast("cuda"):
        logits = tg.nn.functional.linear(x, w)
        probabilities = tg.nn.functional.softmax(logits, -1)
        loss = tg.nn.functional.cross_entropy(logits, target)
    assert (logits.dtype, probabilities.dtype, loss.dtype) == (tg.float16, tg.float32,
                                                               tg.float32)
    loss.backward()
    assert w.grad.dtype is tg.float32 and w.grad.device == "interp"
    # float16 keeps 11 significant bits: the inputs round to 2**-11 relative, and the
    # float32-accumulated products of 16 terms stay within a few of those roundings
    expected = x32 @ w32.T
    np.testing.assert_allclose(logits.detach().float().numpy(), expected, rtol=0,
                               atol=2 ** -8 * np.abs(expected).max())


def test_nested_disabled_region_decorator_and_queries():
    x, w = tg.tensor(X), tg.tensor(W)
    assert not tg.is_autocast_enabled("cpu")
    with tg.autocast("cpu"):
        assert tg.is_autocast_enabled("cpu") and not tg.is_autocast_enabled()  # cuda's
        assert tg.get_autocast_dtype("cpu") is tg.bfloat16
        with tg.autocast("cpu", enabled=False):
            assert not tg.is_autocast_enabled("cpu")
            assert (x @ w.T).dtype is tg.float32
        assert (x @ w.T).dtype is tg.bfloat16
        with tg.autocast("cpu", dtype=tg.float16):
            assert (x @ w.T).dtype is tg.float16
    assert not tg.is_autocast_enabled("cpu") and (x @ w.T).dtype is tg.float32

    @tg.autocast("cpu")
    def product(a, b):
        return a @ b

    assert product(x, w.T).dtype is tg.bfloat16 and (x @ w.T).dtype is tg.float32
    assert tg.amp.autocast is tg.autocast
    with tg.cpu.amp.autocast():
        assert (x @ w.T).dtype is tg.bfloat16
    with tg.cuda.amp.autocast():  # a CUDA region leaves CPU tensors alone
        assert tg.is_autocast_enabled() and (x @ w.T).dtype is tg.float32
    with tg.autocast("cuda"):
        assert tg.get_autocast_dtype("cuda") is tg.float16


def test_autocast_state_is_thread_local():
    seen = {}

    def other_thread():
        seen["enabled"] = tg.is_autocast_enabled("cpu")
        seen["dtype"] = (tg.tensor(X) @ tg.tensor(W).T).dtype

    with tg.autocast("cpu"):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert seen == {"enabled": False, "dtype": tg.float32}


def test_parameter_casts_are_cached_within_the_outermost_region():
    w = tg.tensor(W, requires_grad=True)
    x = tg.tensor(X)
    with tg.autocast("cpu"):
        first = tg.nn.functional.linear(x, w)
        second = tg.nn.functional.linear(x, w)
        # both products read one bfloat16 copy of w: one Cast node (their only input node)
        assert first.grad_fn.next_functions[0] is second.grad_fn.next_functions[0]
        with tg.autocast("cpu", cache_enabled=False):
            third = tg.nn.functional.linear(x, w)
        assert third.grad_fn.next_functions[0] is not first.grad_fn.next_functions[0]
    (first.float().sum() + second.float().sum()).backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * X.sum(0)[None].repeat(5, 0), rtol=1e-2)
    with tg.autocast("cpu"):
        fourth = tg.nn.functional.linear(x, w)
    assert fourth.grad_fn.next_functions[0] is not first.grad_fn.next_functions[0]


def test_bad_arguments():
    with pytest.raises(RuntimeError, match="unsupported autocast device_type 'tpu'"):
        tg.autocast("tpu")
    with pytest.warns(UserWarning, match="float64 is not supported.*Disabling"):
        region = tg.autocast("cpu", dtype=tg.float64)
    with region:
        assert (tg.tensor(X) @ tg.tensor(W).T).dtype is tg.float32


# ---- GradScaler ------------------------------------------------------------------------------
def scaler_run(lib, inject: set, steps: int = 12, **options):
    """A linear model trained by SGD through a GradScaler; at the steps in `inject` one
    gradient is overwritten with inf (or NaN). Returns the scale after each update, which
    steps ran, and the final weight."""
    x = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)
    w = lib.tensor(START.copy(), requires_grad=True)
    optimizer = lib.optim.SGD([w], lr=0.1, momentum=0.9)
    scaler = (torch.amp.GradScaler("cpu", **options) if lib is torch
              else tg.amp.GradScaler("cpu", **options))
    scales, stepped = [], []
    for step in range(steps):
        optimizer.zero_grad()
        loss = ((lib.tensor(x) @ w.T) ** 2).mean()
        scaler.scale(loss).backward()
        if step in inject:
            with lib.no_grad():
                w.grad[0, 1] = float("nan") if step % 2 else float("inf")
        before = w.detach().numpy().copy()
        scaler.step(optimizer)
        stepped.append(not np.array_equal(before, w.detach().numpy()))
        scaler.update()
        scales.append(scaler.get_scale())
    return scales, stepped, w.detach().numpy(), scaler.state_dict()


@pytest.mark.parametrize("inject", [set(), {0, 1, 5}, {2, 3, 4, 9}, set(range(12))])
def test_grad_scaler_follows_torch_step_for_step(inject):
    options = dict(init_scale=2.0 ** 10, growth_interval=3)
    scales, stepped, weight, state = scaler_run(tg, inject, **options)
    scales_ref, stepped_ref, weight_ref, state_ref = scaler_run(torch, inject, **options)
    assert scales == scales_ref
    assert stepped == stepped_ref == [step not in inject for step in range(12)]
    assert state == state_ref
    np.testing.assert_allclose(weight, weight_ref, rtol=1e-5, atol=1e-6)


def test_grad_scaler_growth_stops_at_float32_overflow_as_torch():
    options = dict(init_scale=2.0 ** 126, growth_interval=1)
    assert scaler_run(tg, set(), 4, **options)[0] == scaler_run(torch, set(), 4, **options)[0]


def test_unscale_then_clip_and_stage_errors():
    w = tg.tensor(W, requires_grad=True)
    optimizer = tg.optim.SGD([w], lr=0.1)
    scaler = tg.amp.GradScaler("cpu", init_scale=4.0)
    scaler.scale((tg.tensor(X) @ w.T).sum()).backward()
    scaler.unscale_(optimizer)
    np.testing.assert_allclose(w.grad.numpy(), X.sum(0)[None].repeat(5, 0), rtol=1e-6)
    with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called"):
        scaler.unscale_(optimizer)
    tg.nn.utils.clip_grad_norm_([w], 1.0)
    scaler.step(optimizer)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(optimizer)
    with pytest.raises(RuntimeError, match="after step"):
        scaler.unscale_(optimizer)
    scaler.update()
    with pytest.raises(RuntimeError, match="no inf checks"):
        scaler.update()
    scaler.update(8.0)
    assert scaler.get_scale() == 8.0
    half = tg.tensor(W).half().requires_grad_()
    half.grad = tg.ones(5, 8, dtype=tg.float16)
    with pytest.raises(ValueError, match="unscale float16 gradients"):
        scaler.unscale_(tg.optim.SGD([half], lr=0.1))


def test_grad_scaler_state_dict_round_trip_and_disabled_scaler():
    scaler = tg.amp.GradScaler("cpu", init_scale=2.0 ** 8, growth_interval=7)
    other = tg.amp.GradScaler("cpu")
    other.load_state_dict(scaler.state_dict())
    assert other.state_dict() == scaler.state_dict() == torch.amp.GradScaler(
        "cpu", init_scale=2.0 ** 8, growth_interval=7).state_dict()
    off = tg.amp.GradScaler("cpu", enabled=False)
    loss = tg.tensor(3.0)
    assert off.scale(loss) is loss and off.get_scale() == 1.0 and off.state_dict() == {}
    assert not off.is_enabled()
    with pytest.raises(ValueError, match="growth_factor"):
        tg.amp.GradScaler("cpu", growth_factor=0.5)
    if not tg.cuda.is_available():
        with pytest.warns(UserWarning, match="CUDA is not available"):
            assert not tg.amp.GradScaler().is_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert tg.cpu.amp.GradScaler().is_enabled()


def test_seed_mlp_trained_under_autocast_and_grad_scaler_reaches_its_target():
    task = get_task("mlp")
    config = task.config()
    tg.manual_seed(config.seed)
    model = task.build(config)
    optimizer = task.make_optimizer(model, config)
    scaler = tg.amp.GradScaler("cpu")
    train_set, _ = task.datasets(config)
    for _ in range(config.epochs):
        model.train()
        for inputs, targets in task.train_loader(train_set, config):
            with tg.autocast("cpu", dtype=tg.bfloat16):
                logits = model(inputs)
                loss = task.loss(logits, targets)
            assert logits.dtype is tg.bfloat16 and loss.dtype is tg.float32
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    model.eval()
    with tg.no_grad(), tg.autocast("cpu"):
        accuracy = task.evaluate(model, config)["test_accuracy"]
    assert accuracy >= 0.95
    assert all(p.dtype is tg.float32 for p in model.parameters())
