"""The layers of PyTorch's API added for ported programs (Conv1d, ConvTranspose2d, GroupNorm,
RMSNorm, Upsample, Unfold, Fold) and F.one_hot, against torch's modules with copied weights.

The op registry (tests/op_registry.py) checks the functional forms in float64 (gradcheck,
exact parity, devices); here the modules run in float32 as programs use them, so their outputs
and gradients must be as close to the float64 answer as torch's own float32 result is.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import tinygrad_like as tg
from tolerances import assert_as_accurate_as_reference


def _copy_weights(ours: tg.nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict({k: tg.tensor(v.detach().numpy()) for k, v in
                          theirs.state_dict().items()})


def _run(module, lib, x: np.ndarray, seed: np.ndarray, **forward_kwargs):
    """The module's output and the gradients of <output, seed> for the input and each
    parameter, as NumPy arrays."""
    inp = lib.tensor(x, requires_grad=True)
    out = module(inp, **forward_kwargs)
    (out * lib.tensor(seed, dtype=out.dtype)).sum().backward()
    grads = [inp.grad] + [p.grad for _, p in sorted(module.named_parameters())]
    return [out.detach().numpy()] + [g.numpy() for g in grads]


def assert_module_matches_torch(ours, theirs, shape, seed=0, **forward_kwargs):
    """Same weights, same float32 input: outputs and gradients as accurate as torch's."""
    _copy_weights(ours, theirs)
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    exact_module = copy.deepcopy(theirs).double()
    out_shape = theirs(torch.tensor(x), **forward_kwargs).shape
    grad_seed = rng.standard_normal(out_shape).astype(np.float32)
    results = zip(_run(ours, tg, x, grad_seed, **forward_kwargs),
                  _run(theirs, torch, x, grad_seed, **forward_kwargs),
                  _run(exact_module, torch, x.astype(np.float64), grad_seed, **forward_kwargs))
    for index, (a, b, exact) in enumerate(results):
        assert a.shape == b.shape and a.dtype == b.dtype, (index, a.shape, b.shape)
        assert_as_accurate_as_reference(a, b, exact, err_msg=f"{type(ours).__name__} #{index}")


# ---- convolutions ------------------------------------------------------------------------------
@pytest.mark.parametrize("args,kwargs,shape", [
    ((3, 5, 3), {}, (4, 3, 16)),
    ((4, 6, 4), {"stride": 2, "padding": 3, "dilation": 2, "groups": 2}, (2, 4, 19)),
    ((2, 4, 5), {"padding": "same", "bias": False}, (3, 2, 11)),
    ((2, 4, 4), {"padding": "same", "dilation": 3}, (2, 2, 12)),
    ((3, 2, 3), {"padding": "valid"}, (3, 9)),  # unbatched
])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_conv1d_matches_torch(args, kwargs, shape):
    torch.manual_seed(0)
    assert_module_matches_torch(tg.nn.Conv1d(*args, **kwargs), torch.nn.Conv1d(*args, **kwargs),
                                shape)


@pytest.mark.parametrize("args,kwargs,shape,output_size", [
    ((3, 5, 3), {}, (2, 3, 6, 5), None),
    ((4, 6, 3), {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, (2, 4, 5, 4),
     None),
    ((3, 2, (3, 2)), {"stride": (2, 3), "dilation": (1, 2), "bias": False}, (1, 3, 4, 5), None),
    ((2, 4, 4), {"stride": 2, "padding": 1}, (2, 2, 7, 7), (15, 14)),  # output_size picks
    ((2, 3, 2), {"dilation": 3, "output_padding": 2}, (2, 5, 5), None),  # unbatched
])
def test_conv_transpose2d_matches_torch(args, kwargs, shape, output_size):
    torch.manual_seed(0)
    forward = {} if output_size is None else {"output_size": output_size}
    assert_module_matches_torch(tg.nn.ConvTranspose2d(*args, **kwargs),
                                torch.nn.ConvTranspose2d(*args, **kwargs), shape, **forward)


def test_conv_transpose2d_is_the_adjoint_of_conv2d():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 4, 10, 8)), rng.standard_normal((2, 6, 5, 4))
    w = rng.standard_normal((6, 2, 3, 3))
    options = {"stride": 2, "padding": 1, "groups": 2}
    conv = tg.nn.functional.conv2d(tg.tensor(x), tg.tensor(w), **options)
    back = tg.nn.functional.conv_transpose2d(tg.tensor(y), tg.tensor(w), output_padding=1,
                                             **options)
    assert back.shape == x.shape
    # <conv2d(x), y> == <x, conv_transpose2d(y)>
    np.testing.assert_allclose((conv * tg.tensor(y)).sum().item(),
                               (tg.tensor(x) * back).sum().item(), rtol=1e-12)


def test_conv_transpose2d_double_backward_matches_torch():
    """A gradient penalty: the input gradient is differentiated again."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((3, 2, 3, 3))
    results = []
    for lib in (tg, torch):
        xt, wt = lib.tensor(x, requires_grad=True), lib.tensor(w, requires_grad=True)
        out = lib.nn.functional.conv_transpose2d(xt, wt, stride=2, padding=1)
        (gx,) = lib.autograd.grad((out * out).sum(), [xt], create_graph=True)
        (gx * gx).sum().backward()
        results.append([xt.grad.numpy(), wt.grad.numpy()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_conv_transpose2d_initialisation_follows_torch():
    layer = tg.nn.ConvTranspose2d(8, 16, 3, groups=2)
    assert layer.weight.shape == (8, 8, 3, 3) and layer.bias.shape == (16,)
    bound = 1 / np.sqrt(8 * 3 * 3)  # fan_in from weight.shape[1] * kh * kw, as PyTorch
    weight, bias = (np.abs(p.detach().numpy()) for p in (layer.weight, layer.bias))
    assert weight.max() <= bound and weight.max() > 0.9 * bound and bias.max() <= bound


# ---- normalization -----------------------------------------------------------------------------
@pytest.mark.parametrize("args,kwargs,shape", [
    ((3, 6), {}, (4, 6, 5)),
    ((2, 4), {"eps": 1e-3}, (2, 4, 3, 3)),
    ((4, 4), {"affine": False}, (3, 4, 6)),
    ((1, 3), {"bias": False}, (2, 3, 2, 2)),
])
def test_group_norm_matches_torch(args, kwargs, shape):
    module = torch.nn.GroupNorm(*args, **kwargs)
    with torch.no_grad():  # weights other than the ones/zeros defaults
        for p in module.parameters():
            p.normal_()
    assert_module_matches_torch(tg.nn.GroupNorm(*args, **kwargs), module, shape)


@pytest.mark.parametrize("args,kwargs,shape", [
    ((5,), {}, (3, 4, 5)),
    (((4, 5),), {"eps": 1e-3}, (2, 4, 5)),
    ((6,), {"elementwise_affine": False}, (3, 6)),
])
def test_rms_norm_matches_torch(args, kwargs, shape):
    module = torch.nn.RMSNorm(*args, **kwargs)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    assert_module_matches_torch(tg.nn.RMSNorm(*args, **kwargs), module, shape)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rms_norm_default_eps_is_the_dtypes_epsilon(dtype):
    # mean(x^2) ~ 1e-10 is far below float32's epsilon, so eps sets the result's scale
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(dtype) * 1e-5
    ours = tg.nn.functional.rms_norm(tg.tensor(x), (8,)).numpy()
    theirs = torch.nn.functional.rms_norm(torch.tensor(x), (8,)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5 if dtype == "float32" else 1e-12)
    assert tg.nn.RMSNorm(8)(tg.tensor(x)).dtype.name == dtype


def test_rms_norm_half_precision_is_normalised_in_float32():
    # small values, where the default eps (float32's, not float16's) matters
    x = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float16) * 0.01
    ours = tg.nn.functional.rms_norm(tg.tensor(x), (16,))
    theirs = torch.nn.functional.rms_norm(torch.tensor(x), (16,))
    assert ours.dtype is tg.float16
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# ---- resampling, unfold and fold ---------------------------------------------------------------
@pytest.mark.parametrize("kwargs,shape", [
    ({"scale_factor": 2}, (2, 3, 5)),
    ({"size": (7, 5)}, (1, 2, 4, 6)),
    ({"scale_factor": (1.5, 0.5), "mode": "nearest-exact"}, (2, 2, 5, 6)),
    ({"scale_factor": 2, "mode": "bilinear"}, (2, 3, 5, 4)),
    ({"size": 9, "mode": "bilinear", "align_corners": True}, (1, 2, 4, 7)),
    ({"scale_factor": 0.6, "mode": "bilinear", "recompute_scale_factor": True}, (1, 1, 9, 8)),
    ({"size": 11, "mode": "linear"}, (2, 3, 4)),
])
def test_upsample_matches_torch(kwargs, shape):
    assert_module_matches_torch(tg.nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs), shape)


def test_unfold_and_fold_match_torch_and_fold_sums_overlaps():
    options = {"kernel_size": (3, 2), "dilation": (1, 2), "padding": 1, "stride": (2, 1)}
    assert_module_matches_torch(tg.nn.Unfold(**options), torch.nn.Unfold(**options),
                                (2, 3, 7, 6))
    assert_module_matches_torch(tg.nn.Fold((7, 6), **options),
                                torch.nn.Fold((7, 6), **options), (2, 18, 24))
    # fold(unfold(x)) is x times how many blocks cover each pixel: fold of unfolded ones
    x = tg.randn(1, 2, 5, 5)
    ones = tg.ones(1, 2, 5, 5)
    counts = tg.nn.functional.fold(tg.nn.functional.unfold(ones, 2), (5, 5), 2)
    round_trip = tg.nn.functional.fold(tg.nn.functional.unfold(x, 2), (5, 5), 2)
    np.testing.assert_allclose(round_trip.numpy(), (x * counts).numpy(), rtol=1e-6)
    assert counts.numpy()[0, 0, 2, 2] == 4 and counts.numpy()[0, 0, 0, 0] == 1


def test_a_small_decoder_trains_like_torch():
    """ConvTranspose2d, GroupNorm, bilinear Upsample and RMSNorm in one model, three SGD
    steps with momentum under copied weights: the losses agree to float32 precision."""
    def build(lib):
        nn = lib.nn
        return nn.Sequential(nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
                             nn.GroupNorm(2, 6), nn.SiLU(), nn.Upsample(scale_factor=2,
                                                                        mode="bilinear"),
                             nn.Conv2d(6, 2, 3, padding=1), nn.RMSNorm(16))

    torch.manual_seed(0)
    theirs, ours = build(torch), build(tg)
    _copy_weights(ours, theirs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 4, 4)).astype(np.float32)
    target = rng.standard_normal((3, 2, 16, 16)).astype(np.float32)
    losses = []
    for lib, model in ((tg, ours), (torch, theirs)):
        optimizer = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        run = []
        for _ in range(3):
            optimizer.zero_grad()
            loss = lib.nn.functional.mse_loss(model(lib.tensor(x)), lib.tensor(target))
            loss.backward()
            optimizer.step()
            run.append(loss.item())
        losses.append(run)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    assert losses[0][-1] < losses[0][0]


def test_conv1d_serves_a_sequence_model():
    """Conv1d over (N, C, L) as language and audio models use it, with a channels-last input
    transposed into place (a non-contiguous view)."""
    torch.manual_seed(0)
    theirs = torch.nn.Conv1d(8, 8, 3, padding=1, groups=8)
    ours = tg.nn.Conv1d(8, 8, 3, padding=1, groups=8)
    _copy_weights(ours, theirs)
    x = np.random.default_rng(0).standard_normal((2, 10, 8)).astype(np.float32)
    out = ours(tg.tensor(x).transpose(1, 2)).detach().numpy()
    np.testing.assert_allclose(out, theirs(torch.tensor(x).transpose(1, 2)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


# ---- one_hot -----------------------------------------------------------------------------------
@pytest.mark.parametrize("values,num_classes", [([[0, 3], [2, 1]], -1), ([1, 0, 4], 6),
                                                ([], 3)])
def test_one_hot_matches_torch(values, num_classes):
    ours = tg.nn.functional.one_hot(tg.tensor(values, dtype=tg.int64), num_classes)
    theirs = torch.nn.functional.one_hot(torch.tensor(values, dtype=torch.int64), num_classes)
    assert ours.dtype is tg.int64 and ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("values,num_classes,message", [
    ([1, -1], -1, "class values must be non-negative, got -1"),
    ([1, 5], 5, "class values must be smaller than num_classes=5, got 5"),
    ([], -1, "cannot infer the number of classes from an empty tensor"),
])
def test_one_hot_refuses_classes_as_torch(values, num_classes, message):
    with pytest.raises(RuntimeError):
        torch.nn.functional.one_hot(torch.tensor(values, dtype=torch.int64), num_classes)
    with pytest.raises(RuntimeError, match=f"one_hot: {message}"):
        tg.nn.functional.one_hot(tg.tensor(values, dtype=tg.int64), num_classes)


# ---- errors name the op and the shapes ---------------------------------------------------------
F = tg.nn.functional


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.conv1d(tg.ones(2, 5, 7), tg.ones(4, 3, 3)), ValueError,
     r"conv1d: input of shape \(2, 5, 7\) does not fit the weight of shape \(4, 3, 3\)"),
    (lambda: F.conv1d(tg.ones(2, 3, 7, 7), tg.ones(4, 3, 3)), ValueError,
     r"conv1d: expected a 2-D \(C, L\) or 3-D \(N, C, L\) input"),
    (lambda: F.conv1d(tg.ones(1, 3, 2), tg.ones(4, 3, 3)), ValueError,
     r"conv1d: kernel of size 3 .* larger than the padded input length 2"),
    (lambda: F.conv1d(tg.ones(1, 3, 8), tg.ones(4, 3, 3), padding="same", stride=2), ValueError,
     "conv1d: padding must be 'valid', 'same' \\(with stride 1\\)"),
    (lambda: F.conv1d(tg.ones(1, 3, 8), tg.ones(4, 3, 3), tg.ones(3)), ValueError,
     r"conv1d: bias of shape \(3,\) does not match the 4 output channels"),
    (lambda: F.conv1d(tg.ones(1, 3, 8), tg.ones(4, 3, 3, dtype=tg.float64)), TypeError,
     r"conv1d: input \(float32\), weight \(float64\)"),
    (lambda: F.conv_transpose2d(tg.ones(1, 3, 4, 4), tg.ones(4, 2, 3, 3)), ValueError,
     r"conv_transpose2d: the weight of shape \(4, 2, 3, 3\) .* input of shape \(1, 3, 4, 4\)"),
    (lambda: F.conv_transpose2d(tg.ones(1, 4, 4, 4), tg.ones(4, 2, 3, 3), stride=2,
                                output_padding=2), ValueError,
     r"conv_transpose2d: output_padding \(2, 2\) must be smaller than either stride"),
    (lambda: F.conv_transpose2d(tg.ones(1, 4, 1, 1), tg.ones(4, 2, 1, 1), padding=1),
     ValueError, r"conv_transpose2d: .* gives output size \(-1, -1\), which is too small"),
    (lambda: F.conv_transpose2d(tg.ones(1, 4, 3, 3), tg.ones(4, 2, 3, 3), tg.ones(3)),
     ValueError, r"conv_transpose2d: bias of shape \(3,\) does not match the 2 output"),
    (lambda: F.group_norm(tg.ones(2, 6, 4), 4), ValueError,
     r"group_norm: expected the number of channels of the input of shape \(2, 6, 4\) \(6\) "
     "to be divisible by num_groups=4"),
    (lambda: F.group_norm(tg.ones(2, 6), 3, tg.ones(3)), ValueError,
     r"group_norm: weight of shape \(3,\) should have shape \(6,\)"),
    (lambda: F.rms_norm(tg.ones(2, 6), (5,)), ValueError,
     r"rms_norm: normalized_shape \(5,\) does not match .* shape \(2, 6\)"),
    (lambda: F.interpolate(tg.ones(1, 2, 4), size=3, scale_factor=2), ValueError,
     "interpolate: exactly one of size or scale_factor should be defined"),
    (lambda: F.interpolate(tg.ones(1, 2, 4), size=3, mode="bilinear"), NotImplementedError,
     r"interpolate: got 3-D input of shape \(1, 2, 4\), but mode 'bilinear' needs 4-D"),
    (lambda: F.interpolate(tg.ones(1, 2, 4, 4), size=3, align_corners=True), ValueError,
     "interpolate: align_corners can only be set with the interpolating modes"),
    (lambda: F.interpolate(tg.ones(1, 2, 4, 4), size=(3, 3, 3)), ValueError,
     r"interpolate: input with spatial dimensions \(4, 4\) and size \(3, 3, 3\)"),
    (lambda: F.interpolate(tg.ones(1, 2, 4, 4), size=3, mode="bicubic"), NotImplementedError,
     "interpolate: mode='bicubic' is not implemented"),
    (lambda: F.interpolate(tg.ones(4, 4), size=3), ValueError,
     r"interpolate: expected a 3-D, 4-D or 5-D .* got shape \(4, 4\)"),
    (lambda: F.unfold(tg.ones(2, 3), 2), ValueError,
     r"unfold: expected a 3-D \(C, H, W\) or 4-D \(N, C, H, W\) input .* got shape \(2, 3\)"),
    (lambda: F.unfold(tg.ones(1, 2, 3, 3), 4), ValueError,
     r"unfold: kernel_size \(4, 4\) with dilation \(1, 1\) does not fit"),
    (lambda: F.fold(tg.ones(1, 12, 7), (4, 5), 2), ValueError,
     r"fold: output_size \(4, 5\), .* give 3 \* 4 = 12 blocks, but the input of shape "
     r"\(1, 12, 7\) has 7"),
    (lambda: F.fold(tg.ones(1, 10, 12), (4, 5), 2), ValueError,
     r"fold: .* non-zero multiple of the kernel's 4 taps"),
    (lambda: tg.nn.GroupNorm(4, 6), ValueError,
     r"GroupNorm: num_channels \(6\) must be divisible by num_groups \(4\)"),
    (lambda: tg.nn.ConvTranspose2d(2, 2, 3, stride=2)(tg.ones(1, 2, 4, 4), output_size=(5, 5)),
     ValueError, r"ConvTranspose2d: requested an output size of \(5, 5\), but valid sizes range "
     r"from \(9, 9\) to \(10, 10\)"),
    (lambda: tg.nn.Conv1d(2, 2, 3, padding="same", stride=2), ValueError,
     "Conv1d: padding='same' is not supported for strided convolutions"),
    (lambda: tg.nn.Conv1d(2, 2, 3, padding_mode="reflect"), NotImplementedError,
     "Conv1d: padding_mode='reflect' is not implemented"),
])
def test_bad_calls_name_the_op_and_the_shapes(call, error, message):
    with pytest.raises(error, match=message):
        call()
