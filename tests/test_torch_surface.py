"""PyTorch's tensor surface beyond the op registry: `.data`, in-place methods, `new_*`,
sampling, default dtypes and the runtime namespaces programs touch at start-up. Each test
runs the same expression on torch and tinygrad_like and compares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tinygrad_like as tg


# ---- Tensor.data ---------------------------------------------------------------------------
@pytest.mark.parametrize("lib", [torch, tg], ids=["torch", "tg"])
def test_data_is_a_detached_tensor_on_the_same_memory(lib):
    p = lib.ones(3, requires_grad=True)
    data = p.data
    assert isinstance(data, lib.Tensor) and data is not p
    assert not data.requires_grad and data.is_leaf
    data.add_(lib.full((3,), 0.5), alpha=-2.0)  # the manual SGD idiom
    np.testing.assert_array_equal(p.detach().numpy(), [0.0, 0.0, 0.0])
    p.data.copy_(lib.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(p.detach().numpy(), [1.0, 2.0, 3.0])
    assert p.requires_grad


@pytest.mark.parametrize("lib", [torch, tg], ids=["torch", "tg"])
def test_writes_through_data_are_invisible_to_autograd_version_checks(lib):
    # torch: a write through .data does not bump the version counter, so backward runs and
    # sees the new value (exp saves its output).
    x = lib.tensor([0.0, 1.0], requires_grad=True)
    y = x.exp()
    y.data.mul_(2.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([0.0, 1.0]), rtol=1e-6)


@pytest.mark.parametrize("lib", [torch, tg], ids=["torch", "tg"])
def test_assigning_data_replaces_the_memory(lib):
    p = lib.zeros(2, 2, requires_grad=True)
    p.data = lib.ones(3)
    assert tuple(p.shape) == (3,) and p.requires_grad
    np.testing.assert_array_equal(p.detach().numpy(), [1.0, 1.0, 1.0])


def test_assigning_data_rejects_what_is_not_a_tensor():
    p = tg.zeros(2, requires_grad=True)
    with pytest.raises(TypeError, match="data: expected a Tensor, got ndarray"):
        p.data = np.ones(2)


# ---- in-place methods ----------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    "exp_()", "log_()", "sqrt_()", "abs_()", "neg_()", "sigmoid_()", "tanh_()", "relu_()",
    "pow_(2)", "clamp_min_(0.7)", "clamp_max_(0.7)", "tril_()", "triu_(1)",
    "add_(y, alpha=-0.5)", "sub_(y)", "mul_(y)", "div_(y)", "clamp_(0.6, 0.9)", "fill_(2.5)",
    "zero_()", "copy_(y)", "index_add_(0, lib.tensor([2, 0]), y[:2], alpha=2.0)",
    "masked_fill_(y > 1, -1.0)",
])
def test_inplace_methods_write_what_torch_writes(call):
    rng = np.random.default_rng(0)
    x0, y0 = rng.uniform(0.5, 1.5, (3, 3)), rng.uniform(0.5, 1.5, (3, 3))
    results = []
    for lib in (torch, tg):
        x, y = lib.tensor(x0), lib.tensor(y0)
        before = x
        returned = eval(f"x.{call}", {"lib": lib, "x": x, "y": y})
        assert returned is before  # in place: the method returns the tensor itself
        results.append(x.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-15, atol=0)


def test_inplace_methods_refuse_a_leaf_that_requires_grad_and_a_float_into_an_int():
    x = tg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="exp_: cannot modify a leaf tensor that requires"):
        x.exp_()
    with tg.no_grad():
        x.exp_()
    np.testing.assert_allclose(x.detach().numpy(), np.e)
    with pytest.raises(RuntimeError, match="sqrt_: result type float32 can't be cast to the "
                                           "desired output type int64"):
        tg.tensor([4, 9]).sqrt_()


# ---- new_* ----------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    "new_zeros(2, 3)", "new_zeros((2,))", "new_ones(4)", "new_full((2, 2), 7)",
    "new_full((2,), 1.5)", "new_tensor([1, 2])", "new_tensor([[1.5]])", "new_empty((3, 1))",
    "new_zeros(2, dtype=lib.int64)", "new_ones(2, requires_grad=True)",
])
@pytest.mark.parametrize("base_dtype", ["float64", "int32"])
def test_new_methods_take_dtype_and_device_from_the_tensor(call, base_dtype):
    made = []
    for lib in (torch, tg):
        base = lib.zeros(1, dtype=getattr(lib, base_dtype))
        if "requires_grad" in call and base_dtype == "int32":
            pytest.skip("only floating-point tensors can require gradients")
        out = eval(f"base.{call}", {"lib": lib, "base": base})
        made.append((tuple(out.shape), str(out.dtype).split(".")[-1], out.requires_grad,
                     None if "empty" in call else out.detach().numpy().tolist()))
    assert made[1] == made[0]


# ---- einsum and index_add: errors (values and gradients are in tests/op_registry.py) -------
@pytest.mark.parametrize("equation,shapes,message", [
    ("ij,jk->ik", [(2, 3), (4, 5)], "subscript 'j' has size 4 in an operand of shape"),
    ("ij->ik", [(2, 3)], "output subscripts 'ik' must be distinct letters"),
    ("ij,jk", [(2, 3)], "has 2 operand\\(s\\) but 1 tensor\\(s\\) were given"),
    ("ijk->i", [(2, 3)], "subscripts 'ijk' do not fit an operand of shape"),
    ("i1->i", [(2, 3)], "invalid character"),
])
def test_einsum_explains_a_bad_equation(equation, shapes, message):
    with pytest.raises(ValueError, match=message):
        tg.einsum(equation, *[tg.ones(*s) for s in shapes])


def test_einsum_takes_a_list_of_operands_as_torch_does():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    ours = tg.einsum("ij,jk", [tg.tensor(a), tg.tensor(b)])
    np.testing.assert_array_equal(ours.numpy(), torch.einsum("ij,jk", [torch.tensor(a),
                                                                      torch.tensor(b)]).numpy())


def test_index_add_explains_bad_shapes_and_indices():
    x = tg.zeros(3, 4)
    with pytest.raises(ValueError, match=r"source of shape \(2, 4\) does not fit input of "
                                         r"shape \(3, 4\) with an index of shape \(3,\)"):
        x.index_add(0, tg.tensor([0, 1, 2]), tg.ones(2, 4))
    with pytest.raises(IndexError, match=r"index values must lie in \[0, 2\]"):
        x.index_add(0, tg.tensor([3]), tg.ones(1, 4))
    with pytest.raises(TypeError, match="source must be a tensor of the input's dtype float32"):
        x.index_add(0, tg.tensor([0]), tg.ones(1, 4, dtype=tg.float64))


# ---- sampling ------------------------------------------------------------------------------
def _frequencies(samples: np.ndarray, categories: int) -> np.ndarray:
    return np.bincount(samples.ravel(), minlength=categories) / samples.size


def test_multinomial_with_replacement_draws_each_category_in_proportion_to_its_weight():
    weights = np.array([[1.0, 0.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]])
    tg.manual_seed(0)
    draws = tg.multinomial(tg.tensor(weights), 40_000, replacement=True).numpy()
    assert draws.shape == (2, 40_000) and draws.dtype == np.int64
    for row, w in zip(draws, weights):
        # 5 standard errors of a frequency from 40,000 draws is under 0.0125
        np.testing.assert_allclose(_frequencies(row, 4), w / w.sum(), atol=0.0125)
    assert not (draws[0] == 1).any()  # a zero weight is never drawn


def test_multinomial_without_replacement_matches_torchs_first_draw_distribution():
    weights = [0.1, 0.2, 0.3, 0.4]
    tg.manual_seed(1)
    torch.manual_seed(1)
    ours = np.stack([tg.multinomial(tg.tensor(weights), 4).numpy() for _ in range(3000)])
    theirs = np.stack([torch.multinomial(torch.tensor(weights), 4).numpy()
                       for _ in range(3000)])
    assert all(sorted(row) == [0, 1, 2, 3] for row in ours)  # each index once per row
    for position in range(2):  # first and second draws follow the same laws as torch's
        np.testing.assert_allclose(_frequencies(ours[:, position], 4),
                                   _frequencies(theirs[:, position], 4), atol=0.05)


def test_multinomial_repeats_for_a_generator_seed_and_leaves_the_global_generator_alone():
    probs = tg.tensor([0.2, 0.5, 0.3])
    tg.manual_seed(5)
    expected_global = tg.rand(3).numpy()
    tg.manual_seed(5)
    first = tg.multinomial(probs, 8, True, generator=tg.Generator().manual_seed(9)).numpy()
    second = probs.multinomial(8, True, generator=tg.Generator().manual_seed(9)).numpy()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(tg.rand(3).numpy(), expected_global)


@pytest.mark.parametrize("weights,samples,replacement,message", [
    ([0.5, -0.1], 1, True, "contains either inf, nan or element < 0"),
    ([0.0, 0.0], 1, True, "sums to zero"),
    ([0.5, 0.5], 3, False, "cannot sample 3 > 2 categories without replacement"),
])
def test_multinomial_refuses_what_torch_refuses(weights, samples, replacement, message):
    with pytest.raises(RuntimeError):
        torch.multinomial(torch.tensor(weights), samples, replacement)
    with pytest.raises(RuntimeError, match=message):
        tg.multinomial(tg.tensor(weights), samples, replacement)


def test_multinomial_without_replacement_continues_with_zero_weights_as_torch():
    weights = [0.5, 0.0, 0.0]
    assert tg.multinomial(tg.tensor(weights), 2).tolist() == \
        torch.multinomial(torch.tensor(weights), 2).tolist() == [0, 1]


def test_topk_then_multinomial_samples_only_the_top_k_tokens():
    # the GPT sampling idiom: keep the k largest logits, softmax, draw one token
    logits = tg.tensor([[2.0, -1.0, 0.5, 3.0, 0.0]])
    values, _ = logits.topk(2)
    logits = logits.masked_fill(logits < values[:, [-1]], float("-inf"))
    probs = logits.softmax(-1)
    tokens = tg.multinomial(probs, 2000, replacement=True).numpy()
    assert set(np.unique(tokens)) == {0, 3}
    np.testing.assert_allclose(_frequencies(tokens, 5)[[0, 3]],
                               probs.numpy()[0, [0, 3]], atol=0.06)


def test_random_fills_have_their_distributions():
    tg.manual_seed(0)
    n = 100_000
    u = tg.empty(n, dtype=tg.float64).uniform_(-2.0, 3.0).numpy()
    assert -2.0 <= u.min() and u.max() < 3.0 and abs(u.mean() - 0.5) < 5 * 5 / np.sqrt(12 * n)
    g = tg.empty(n).normal_(1.0, 2.0).numpy()
    assert abs(g.mean() - 1.0) < 5 * 2 / np.sqrt(n) and abs(g.std() - 2.0) < 0.05
    e = tg.empty(n).exponential_(4.0).numpy()
    assert e.min() >= 0 and abs(e.mean() - 0.25) < 5 * 0.25 / np.sqrt(n)
    b = tg.empty(n).bernoulli_(0.3).numpy()
    assert set(np.unique(b)) == {0.0, 1.0} and abs(b.mean() - 0.3) < 5 * 0.46 / np.sqrt(n)
    p = tg.tensor([0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(tg.bernoulli(p).numpy(), p.numpy())
    r = tg.zeros(n, dtype=tg.int64).random_(3, 7).numpy()
    assert set(np.unique(r)) == {3, 4, 5, 6}


def test_random_fills_refuse_bad_arguments():
    with pytest.raises(RuntimeError, match="normal_: expected std >= 0.0, got -1"):
        tg.empty(2).normal_(0, -1)
    with pytest.raises(RuntimeError, match="bernoulli_: p must lie in \\[0, 1\\], got 1.5"):
        tg.empty(2).bernoulli_(1.5)
    with pytest.raises(TypeError, match="uniform_: expected a floating-point tensor, got int64"):
        tg.zeros(2, dtype=tg.int64).uniform_()


# ---- shapes, dtypes, defaults --------------------------------------------------------------
def test_shape_is_a_size_as_torch_size():
    ours, theirs = tg.zeros(2, 3, 4).shape, torch.zeros(2, 3, 4).shape
    assert isinstance(ours, tg.Size) and isinstance(ours, tuple)
    assert ours == theirs and ours.numel() == theirs.numel() == 24
    assert isinstance(ours[1:], tg.Size) and ours[1:] == theirs[1:] and ours[-1] == 4
    assert isinstance(ours + (5,), tg.Size) and repr(ours) == "tinygrad_like.Size([2, 3, 4])"
    assert tg.zeros(2, 3).size() == (2, 3) and tg.zeros(2, 3).size(-1) == 3


@pytest.mark.parametrize("name", ["int8", "int16", "uint8"])
def test_small_integer_dtypes_promote_as_in_torch(name):
    values = [-3, 5, 100] if name != "uint8" else [3, 5, 100]
    for other in ("int8", "int16", "int32", "uint8", "float16"):
        ours = tg.tensor(values, dtype=getattr(tg, name)) + tg.tensor([1, 2, 3],
                                                                      dtype=getattr(tg, other))
        theirs = torch.tensor(values, dtype=getattr(torch, name)) + torch.tensor(
            [1, 2, 3], dtype=getattr(torch, other))
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_default_dtype_can_be_changed_and_restored():
    assert tg.get_default_dtype() is tg.float32
    try:
        tg.set_default_dtype(tg.float64)
        assert tg.tensor([1.5]).dtype is tg.float64 and tg.zeros(2).dtype is tg.float64
        assert (tg.tensor([1, 2]) * 0.5).dtype is tg.float64
        assert tg.tensor([1, 2]).dtype is tg.int64
    finally:
        tg.set_default_dtype(tg.float32)
    assert tg.rand(2).dtype is tg.float32
    with pytest.raises(TypeError, match="only floating-point types .* got int64"):
        tg.set_default_dtype(tg.int64)


def test_is_tensor_numel_and_is_floating_point():
    assert tg.is_tensor(tg.ones(1)) and not tg.is_tensor(np.ones(1))
    assert tg.numel(tg.ones(2, 3)) == 6 and tg.is_floating_point(tg.ones(1))


# ---- runtime namespaces --------------------------------------------------------------------
def test_start_up_calls_run_on_a_machine_without_a_gpu():
    tg.cuda.manual_seed(0)
    tg.cuda.manual_seed_all(0)
    tg.cuda.synchronize()
    assert tg.cuda.device_count() == (torch.cuda.device_count() if tg.cuda.is_available() else 0)
    accelerator = tg.accelerator.current_accelerator()
    assert (accelerator is None) == (not tg.accelerator.is_available())
    assert tg.backends.mps.is_available() is False
    tg.backends.cudnn.benchmark = True  # accepted: there is no cuDNN algorithm search here
    model = tg.nn.Linear(2, 2)
    assert tg.compile(model) is model and tg.compile(mode="max-autotune")(model) is model


def test_cuda_manual_seed_waits_for_the_device_and_manual_seed_overrides_it():
    from tinygrad_like import backend

    backend.manual_seed_device("interp", 123)
    if "interp" in backend.loaded_devices():
        first = tg.rand(3, device="interp").numpy()
        backend.manual_seed_device("interp", 123)
        np.testing.assert_array_equal(tg.rand(3, device="interp").numpy(), first)
    tg.manual_seed(0)
    assert backend._device_seeds == {}


def test_allow_tf32_reaches_the_triton_matmul_launch(monkeypatch):
    from tinygrad_like.kernels.triton import matmul as triton_matmul

    seen = []
    real_launch = triton_matmul._launch
    monkeypatch.setattr(triton_matmul, "_launch",
                        lambda *args: seen.append(args[-1]) or real_launch(*args))
    a = tg.ones(16, 16, device="interp")
    for flag in (False, True):
        tg.backends.cuda.matmul.allow_tf32 = flag
        try:
            (a @ a).numpy()
            tg.nn.functional.linear(a, a).numpy()
        finally:
            tg.backends.cuda.matmul.allow_tf32 = False
    assert seen == [False, False, True, True]
    tg.set_float32_matmul_precision("high")
    assert tg.backends.cuda.matmul.allow_tf32 and tg.get_float32_matmul_precision() == "high"
    tg.set_float32_matmul_precision("highest")
    assert not tg.backends.cuda.matmul.allow_tf32


def test_pytorch_names_with_no_counterpart_say_so():
    with pytest.raises(NotImplementedError, match="tinygrad_like.jit: TorchScript"):
        tg.jit.script
    assert not hasattr(tg, "distributions")  # probing code (hasattr, getattr default) runs on
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        tg.no_such_name


@pytest.mark.parametrize("layer", ["ReLU(inplace=True)", "SiLU(inplace=True)",
                                   "LeakyReLU(0.1, inplace=True)"])
def test_inplace_activations_write_into_their_input_as_torch(layer):
    values = [-1.0, 0.5, 2.0]
    written = []
    for lib in (torch, tg):
        x = lib.tensor(values)
        out = eval(f"lib.nn.{layer}", {"lib": lib})(x)
        assert out is x or lib is torch
        written.append(x.numpy().copy())
    np.testing.assert_allclose(written[1], written[0], rtol=1e-6)
    # a tensor autograd tracks gets the same result and gradient (here without the write)
    x = tg.tensor(values, requires_grad=True)
    reference = tg.tensor(values, requires_grad=True)
    eval(f"tg.nn.{layer}", {"tg": tg})(x * 1).sum().backward()
    eval(f"tg.nn.{layer.replace('inplace=True', 'inplace=False')}", {"tg": tg})(
        reference * 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), reference.grad.numpy())


# ---- inference tensors ---------------------------------------------------------------------
@pytest.mark.parametrize("lib", [torch, tg], ids=["torch", "tg"])
def test_inference_mode_makes_inference_tensors(lib):
    weight = lib.ones(2, requires_grad=True)
    with lib.inference_mode():
        made, computed = lib.zeros(2), lib.ones(2) * 2
        view = computed.view(2, 1)
        assert not lib.is_grad_enabled()
        computed.add_(1)  # in place inside the mode is fine
    assert made.is_inference() and computed.is_inference() and view.is_inference()
    assert not lib.ones(2).is_inference() and not computed.clone().is_inference()
    with pytest.raises(RuntimeError, match="(?i)in-?place update to (an )?inference tensor"):
        computed.add_(1)
    with pytest.raises(RuntimeError, match="(?i)inference tensors cannot be saved for backward"):
        weight * computed
    (weight + computed).sum().backward()  # add saves no tensor: allowed, as in torch
    np.testing.assert_array_equal(weight.grad.numpy(), [1.0, 1.0])
    (weight * computed.clone()).sum().backward()
