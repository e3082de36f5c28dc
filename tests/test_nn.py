"""nn modules against torch.nn with copied weights, and the Module API."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import tinygrad_like as tg
from tinygrad_like import nn
from tolerances import assert_close_to_scale

F = nn.functional


def copy_weights(ours: nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def compare(ours, theirs, x: np.ndarray, *extra, rtol=1e-9, atol=1e-10, **kwargs):
    """Same float64 input through both; outputs and every parameter gradient must agree."""
    ours.double()
    theirs.double()
    copy_weights(ours, theirs)
    a = tg.tensor(x, dtype=tg.float64, requires_grad=True)
    b = torch.tensor(x, requires_grad=True)
    out_a, out_b = ours(a, *extra, **kwargs), theirs(b, *extra, **kwargs)
    out_a = out_a[0] if isinstance(out_a, tuple) else out_a
    out_b = out_b[0] if isinstance(out_b, tuple) else out_b
    np.testing.assert_allclose(out_a.detach().numpy(), out_b.detach().numpy(), rtol=rtol, atol=atol)
    seed = np.random.default_rng(3).standard_normal(out_b.shape)
    (out_a * tg.tensor(seed)).sum().backward()
    (out_b * torch.tensor(seed)).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-7, atol=1e-9)
    grads_b = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads_b[name].grad.numpy(), rtol=1e-7,
                                   atol=1e-9, err_msg=name)


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("make", [
    lambda lib: lib.nn.Linear(5, 3),
    lambda lib: lib.nn.Linear(5, 3, bias=False),
    lambda lib: lib.nn.Sequential(lib.nn.Linear(5, 8), lib.nn.GELU(), lib.nn.Linear(8, 2),
                                  lib.nn.LogSoftmax(-1)),
    lambda lib: lib.nn.Sequential(lib.nn.Linear(5, 4), lib.nn.Tanh(), lib.nn.LayerNorm(4)),
])
def test_feed_forward_modules_match_torch(make):
    compare(make(tg), make(torch), data(6, 5))


@pytest.mark.parametrize("make,shape", [
    (lambda lib: lib.nn.Conv2d(3, 4, 3), (2, 3, 5, 5)),
    (lambda lib: lib.nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=2, bias=False), (2, 3, 6, 5)),
    (lambda lib: lib.nn.Conv2d(4, 6, (3, 1), padding="same", groups=2), (2, 4, 5, 5)),
    (lambda lib: lib.nn.Sequential(lib.nn.Conv2d(3, 4, 3, padding=1), lib.nn.ReLU(),
                                   lib.nn.MaxPool2d(2), lib.nn.Flatten(), lib.nn.Linear(16, 3)),
     (2, 3, 4, 4)),
    (lambda lib: lib.nn.Sequential(lib.nn.AvgPool2d(2), lib.nn.BatchNorm2d(3)), (2, 3, 4, 4)),
])
def test_conv_modules_match_torch(make, shape):
    compare(make(tg), make(torch), data(*shape))


def test_batchnorm_running_stats_and_eval_mode_match_torch():
    ours, theirs = nn.BatchNorm1d(3, momentum=0.3), torch.nn.BatchNorm1d(3, momentum=0.3)
    for step in range(3):
        x = data(8, 3, seed=step) * (step + 1)
        ours(tg.tensor(x, dtype=tg.float32))
        theirs(torch.tensor(x, dtype=torch.float32))
    for key, value in theirs.state_dict().items():
        # means of 8 samples of up to ~3 can end near zero: a bound on the scale, not on them
        assert_close_to_scale(ours.state_dict()[key].numpy(), value.numpy(), ulps=16, rtol=1e-5)
    ours.eval()
    theirs.eval()
    x = data(4, 3, seed=9)
    assert_close_to_scale(ours(tg.tensor(x, dtype=tg.float32)).detach().numpy(),
                          theirs(torch.tensor(x, dtype=torch.float32)).detach().numpy(),
                          ulps=16, rtol=1e-5)


def test_embedding_with_padding_idx_matches_torch():
    ours, theirs = nn.Embedding(6, 3, padding_idx=1), torch.nn.Embedding(6, 3, padding_idx=1)
    copy_weights(ours, theirs)
    indices = [[0, 1, 5], [1, 1, 2]]
    a, b = ours(tg.tensor(indices)), theirs(torch.tensor(indices))
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy())
    a.sum().backward()
    b.sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy())
    assert not ours.weight.grad.numpy()[1].any()


def masks():
    key_padding = np.array([[False, False, True, False, True], [False] * 5])
    causal_blocked = ~np.tril(np.ones((5, 5), dtype=bool))
    return key_padding, causal_blocked


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("with_masks", [False, True])
def test_multihead_attention_matches_torch(batch_first, need_weights, with_masks):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    ours = nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    copy_weights(ours, theirs)
    x = data(2, 5, 8) if batch_first else data(5, 2, 8)
    kwargs = {"need_weights": need_weights}
    if with_masks:
        key_padding, blocked = masks()
        kwargs_t = dict(kwargs, key_padding_mask=torch.tensor(key_padding),
                        attn_mask=torch.tensor(blocked))
        kwargs_o = dict(kwargs, key_padding_mask=tg.tensor(key_padding),
                        attn_mask=tg.tensor(blocked))
    else:
        kwargs_t = kwargs_o = kwargs
    a = tg.tensor(x, dtype=tg.float64, requires_grad=True)
    b = torch.tensor(x, requires_grad=True)
    out_a, w_a = ours(a, a, a, **kwargs_o)
    out_b, w_b = theirs(b, b, b, **kwargs_t)
    np.testing.assert_allclose(out_a.detach().numpy(), out_b.detach().numpy(), atol=1e-10)
    if need_weights:
        np.testing.assert_allclose(w_a.detach().numpy(), w_b.detach().numpy(), atol=1e-10)
    else:
        assert w_a is None and w_b is None
    out_a.sum().backward()
    out_b.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-9)
    np.testing.assert_allclose(ours.in_proj_weight.grad.numpy(), theirs.in_proj_weight.grad.numpy(),
                               atol=1e-9)


@pytest.mark.parametrize("layout", ["batch_first", "sequence_first", "unbatched"])
@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_cross_attention_with_another_key_length_matches_torch(layout, need_weights):
    torch.manual_seed(1)
    batch_first = layout == "batch_first"
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    ours = nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    copy_weights(ours, theirs)
    shapes = {"batch_first": ((3, 5, 8), (3, 7, 8)), "sequence_first": ((5, 3, 8), (7, 3, 8)),
              "unbatched": ((5, 8), (7, 8))}[layout]
    query, memory = data(*shapes[0]), data(*shapes[1], seed=1)
    mine = [tg.tensor(a, dtype=tg.float64, requires_grad=True) for a in (query, memory)]
    reference = [torch.tensor(a, requires_grad=True) for a in (query, memory)]
    out_a, w_a = ours(mine[0], mine[1], mine[1], need_weights=need_weights)
    out_b, w_b = theirs(reference[0], reference[1], reference[1], need_weights=need_weights)
    np.testing.assert_allclose(out_a.detach().numpy(), out_b.detach().numpy(), atol=1e-10)
    if need_weights:
        np.testing.assert_allclose(w_a.detach().numpy(), w_b.detach().numpy(), atol=1e-10)
    upstream = data(*out_b.shape, seed=2)
    out_a.backward(tg.tensor(upstream))
    out_b.backward(torch.tensor(upstream))
    for a, b in zip(mine, reference, strict=True):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-9)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_matches_torch(norm_first, activation):
    def make(lib):
        layer = lib.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=activation,
                                               batch_first=True, norm_first=norm_first)
        extra = {"enable_nested_tensor": False} if lib is torch else {}
        return lib.nn.TransformerEncoder(layer, 2, norm=lib.nn.LayerNorm(8), **extra)

    torch.manual_seed(1)
    theirs = make(torch)
    ours = make(tg)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    padding = torch.tensor([[False, False, False, True], [False] * 4])
    ours.double()
    theirs.double()
    copy_weights(ours, theirs)
    x = data(2, 4, 8)
    a = ours(tg.tensor(x), src_key_padding_mask=tg.tensor(padding.numpy()))
    b = theirs(torch.tensor(x), src_key_padding_mask=padding)
    keep = ~padding.numpy()
    np.testing.assert_allclose(a.detach().numpy()[keep], b.detach().numpy()[keep], atol=1e-9)


def test_state_dict_keys_match_torch():
    def make(lib):
        return lib.nn.Sequential(lib.nn.Conv2d(1, 2, 3), lib.nn.BatchNorm2d(2), lib.nn.Flatten(),
                                 lib.nn.Linear(2, 2), lib.nn.Embedding(3, 2), lib.nn.LayerNorm(2))

    ours, theirs = make(tg).state_dict(), make(torch).state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


# bad checkpoints for a Linear(3, 2): (weight shape or None to leave it out, extra key?)
BAD_CHECKPOINTS = {
    "missing": ((2, 3), False, False),
    "unexpected": ((2, 3), True, True),
    "size mismatch": ((3, 2), True, False),
    "all three": ((3, 2), False, True),
}


def _checkpoint(lib, weight_shape, with_bias: bool, with_extra: bool) -> dict:
    state = {"weight": lib.zeros(*weight_shape)}
    if with_bias:
        state["bias"] = lib.zeros(2)
    if with_extra:
        state["extra"] = lib.zeros(1)
    return state


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_load_state_dict_errors_read_like_torch(case):
    def message(lib) -> str:
        with pytest.raises(RuntimeError) as error:
            lib.nn.Linear(3, 2).load_state_dict(_checkpoint(lib, *BAD_CHECKPOINTS[case]))
        return str(error.value)

    # the same text, but for how a shape prints and torch's trailing spaces
    expected = re.sub(r"torch\.Size\(\[(\d+), (\d+)\]\)", r"(\1, \2)", message(torch))
    assert message(tg) == "\n".join(line.rstrip() for line in expected.split("\n"))


def test_load_state_dict_is_all_or_nothing_and_lenient_only_about_keys():
    model = nn.Linear(3, 2)
    before = model.weight.tolist()
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with "
                                           r"shape \(3, 2\) from checkpoint, the shape in "
                                           r"current model is \(2, 3\)"):
        model.load_state_dict({"weight": tg.zeros(3, 2), "bias": tg.zeros(2)}, strict=False)
    assert model.weight.tolist() == before and model.bias.tolist() != [0.0, 0.0]
    result = model.load_state_dict({"weight": tg.ones(2, 3), "extra": tg.ones(1)}, strict=False)
    assert result == (["bias"], ["extra"])
    assert (result.missing_keys, result.unexpected_keys) == (["bias"], ["extra"])
    assert model.weight.tolist() == [[1.0] * 3] * 2
    with pytest.raises(TypeError, match='load_state_dict: .*"weight".*received str'):
        model.load_state_dict({"weight": "checkpoint", "bias": tg.zeros(2)})
    with pytest.raises(TypeError, match="load_state_dict for Linear: expected a dict-like"):
        model.load_state_dict([("weight", tg.zeros(2, 3))])


def test_module_api():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Dropout(0.2), nn.Linear(3, 1))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert len(list(model.children())) == 4 and len(list(model.modules())) == 5
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    out = model(tg.randn(2, 4)).sum()
    out.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.to(tg.float64)
    assert all(p.dtype is tg.float64 for p in model.parameters())
    assert "(0): Linear(in_features=4, out_features=3, bias=True)" in repr(model)
    assert isinstance(model[0].weight, nn.Parameter) and model[0].weight.requires_grad


def test_module_containers():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    blocks = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.ReLU()})
    holder = nn.Module()
    holder.layers, holder.blocks = layers, blocks
    names = [name for name, _ in holder.named_parameters()]
    assert names[:2] == ["layers.0.weight", "layers.0.bias"] and "blocks.a.weight" in names
    assert len(layers) == 3 and "a" in blocks and list(blocks.keys()) == ["a", "b"]


def test_dropout_masks_scale_and_reproduce():
    x = tg.ones(100_000)
    tg.manual_seed(5)
    first = F.dropout(x, 0.3)
    np.testing.assert_allclose(np.unique(first.numpy()), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((first.numpy() == 0).mean() - 0.3) < 0.01
    tg.manual_seed(5)
    assert np.array_equal(F.dropout(x, 0.3).numpy(), first.numpy())
    layer = nn.Dropout(0.3).eval()
    assert layer(x) is x
    w = tg.ones(10, requires_grad=True)
    tg.manual_seed(1)
    out = F.dropout(w, 0.5)
    out.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), out.detach().numpy())


def test_default_initialisation_follows_torch_bounds():
    tg.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    weights = layer.weight.detach().numpy()
    assert np.abs(weights).max() <= bound and np.abs(weights).max() > 0.95 * bound
    assert abs(weights.std() - bound / np.sqrt(3)) < 0.01 * bound
    assert np.abs(layer.bias.detach().numpy()).max() <= bound
    tg.manual_seed(0)
    assert np.array_equal(nn.Linear(400, 300).weight.detach().numpy(), weights)


def test_layer_errors_are_clear():
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 3\) has 3 features"):
        nn.Linear(4, 2)(tg.ones(2, 3))
    with pytest.raises(ValueError, match=r"conv2d: input of shape \(1, 3, 5, 5\) \(3 channels\)"):
        nn.Conv2d(2, 4, 3)(tg.ones(1, 3, 5, 5))
    with pytest.raises(ValueError, match="BatchNorm2d: expected input of"):
        nn.BatchNorm2d(3)(tg.ones(2, 3))
    with pytest.raises(IndexError, match=r"embedding: indices must lie in \[0, 4\]"):
        nn.Embedding(5, 2)(tg.tensor([5]))
    with pytest.raises(IndexError, match="cross_entropy|nll_loss"):
        F.cross_entropy(tg.ones(2, 3), tg.tensor([0, 3]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.mse_loss(tg.ones(2), tg.ones(2), reduction="avg")
    with pytest.raises(ValueError, match="binary_cross_entropy: all input values"):
        F.binary_cross_entropy(tg.tensor([1.5]), tg.tensor([1.0]))
    with pytest.raises(ValueError, match="MultiheadAttention: embed_dim 10"):
        nn.MultiheadAttention(10, 3)
