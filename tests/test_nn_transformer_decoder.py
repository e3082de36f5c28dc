"""TransformerDecoderLayer, TransformerDecoder and Transformer against torch.nn, weights copied.

The same construction runs under both libraries (dropout=0); the state-dict keys must be
PyTorch's, and outputs and every gradient must agree in float64 and float32.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tinygrad_like as tg
from tolerances import assert_close_to_scale

D_MODEL, HEADS, FEEDFORWARD = 8, 2, 16
# float32: both libraries round differently (vector widths, fused multiply-adds), through
# about a dozen matmuls, softmaxes and norms; the bound is in ulps of each result's scale
ULPS = {"float64": 16, "float32": 64}


def copy_weights(ours: tg.nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def make_decoder_layer(lib, **options):
    return lib.nn.TransformerDecoderLayer(D_MODEL, HEADS, FEEDFORWARD, dropout=0.0, **options)


def make_decoder(lib, **options):
    norm = lib.nn.LayerNorm(D_MODEL)
    return lib.nn.TransformerDecoder(make_decoder_layer(lib, **options), 2, norm)


def make_transformer(lib, **options):
    return lib.nn.Transformer(D_MODEL, HEADS, 2, 2, FEEDFORWARD, dropout=0.0, **options)


def _inputs(rng, batch_first: bool, target: int = 5, source: int = 7, batch: int = 3):
    def shaped(length):
        shape = (batch, length, D_MODEL) if batch_first else (length, batch, D_MODEL)
        return rng.standard_normal(shape)

    return shaped(target), shaped(source)


def _run(lib, module, arrays, dtype, call):
    tensors = [lib.tensor(a, dtype=getattr(lib, dtype), requires_grad=True) for a in arrays]
    out = call(lib, module, *tensors)
    seed = np.random.default_rng(7).standard_normal(tuple(out.shape))
    (out * lib.tensor(seed, dtype=getattr(lib, dtype))).sum().backward()
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return out.detach().numpy(), [t.grad.numpy() for t in tensors], grads


def check_parity(make, call, arrays, dtype="float64", **options):
    tg.manual_seed(0)
    torch.manual_seed(0)
    ours, theirs = make(tg, **options), make(torch, **options)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    getattr(ours, "double" if dtype == "float64" else "float")()
    getattr(theirs, "double" if dtype == "float64" else "float")()
    copy_weights(ours, theirs)
    out_a, inputs_a, grads_a = _run(tg, ours, arrays, dtype, call)
    out_b, inputs_b, grads_b = _run(torch, theirs, arrays, dtype, call)
    ulps = ULPS[dtype]
    assert_close_to_scale(out_a, out_b, ulps)
    for a, b in zip(inputs_a, inputs_b):
        assert_close_to_scale(a, b, ulps)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_b:
        assert_close_to_scale(grads_a[name], grads_b[name], ulps, err_msg=name)


def causal(lib, length: int):
    """A bool causal mask (True = blocked), the kind that goes with bool padding masks."""
    return lib.tensor(np.triu(np.ones((length, length), dtype=bool), 1))


def call_with_masks(lib, module, tgt, memory):
    length = tgt.shape[0] if not module_batch_first(module) else tgt.shape[1]
    batch = tgt.shape[1] if not module_batch_first(module) else tgt.shape[0]
    source = memory.shape[0] if not module_batch_first(module) else memory.shape[1]
    padding = np.zeros((batch, source), dtype=bool)
    padding[0, -2:] = True
    target_padding = np.zeros((batch, length), dtype=bool)
    target_padding[1, -1] = True
    return module(tgt, memory, tgt_mask=causal(lib, length),
                  tgt_key_padding_mask=lib.tensor(target_padding),
                  memory_key_padding_mask=lib.tensor(padding), tgt_is_causal=True)


def module_batch_first(module) -> bool:
    layer = module.layers[0] if hasattr(module, "layers") else module
    return layer.self_attn.batch_first


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_decoder_layer_matches_torch(dtype, norm_first, batch_first):
    arrays = _inputs(np.random.default_rng(0), batch_first)
    check_parity(make_decoder_layer, call_with_masks, arrays, dtype, norm_first=norm_first,
                 batch_first=batch_first)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_decoder_stack_matches_torch(dtype):
    arrays = _inputs(np.random.default_rng(1), batch_first=False)
    check_parity(make_decoder, call_with_masks, arrays, dtype, activation="gelu")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_decoder_with_an_additive_causal_mask_matches_torch(dtype):
    def call(lib, module, tgt, memory):
        mask = lib.nn.Transformer.generate_square_subsequent_mask(tgt.shape[0],
                                                                  dtype=getattr(lib, dtype))
        return module(tgt, memory, tgt_mask=mask, tgt_is_causal=True)

    arrays = _inputs(np.random.default_rng(4), batch_first=False)
    check_parity(make_decoder, call, arrays, dtype)


def test_decoder_with_memory_mask_and_no_bias_matches_torch():
    def call(lib, module, tgt, memory):
        memory_mask = np.zeros((tgt.shape[0], memory.shape[0]), dtype=bool)
        memory_mask[:, 0] = True
        return module(tgt, memory, memory_mask=lib.tensor(memory_mask))

    arrays = _inputs(np.random.default_rng(2), batch_first=False)
    check_parity(make_decoder_layer, call, arrays, bias=False)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_matches_torch(dtype, batch_first):
    def call(lib, module, src, tgt):
        length = tgt.shape[1] if batch_first else tgt.shape[0]
        batch, source = (src.shape[0], src.shape[1]) if batch_first else src.shape[1::-1]
        padding = np.zeros((batch, source), dtype=bool)
        padding[2, -3:] = True
        return module(src, tgt, tgt_mask=causal(lib, length),
                      src_key_padding_mask=lib.tensor(padding),
                      memory_key_padding_mask=lib.tensor(padding))

    target, source = _inputs(np.random.default_rng(3), batch_first)
    check_parity(make_transformer, call, (source, target), dtype, batch_first=batch_first,
                 norm_first=True)


def test_transformer_state_dict_and_init_follow_torch():
    ours, theirs = make_transformer(tg), make_transformer(torch)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape)
                                                          for p in theirs.parameters()]
    # every matrix is re-drawn Xavier-uniform, as PyTorch's _reset_parameters does
    weight = ours.decoder.layers[1].linear1.weight.detach().numpy()
    bound = np.sqrt(6.0 / (D_MODEL + FEEDFORWARD))
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.8 * bound
    assert_close_to_scale(ours.encoder.norm.weight.detach().numpy(),
                          theirs.encoder.norm.weight.detach().numpy())


def test_generate_square_subsequent_mask_matches_torch():
    ours = tg.nn.Transformer.generate_square_subsequent_mask(4)
    theirs = torch.nn.Transformer.generate_square_subsequent_mask(4)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert ours.dtype is tg.float32
    assert tg.nn.Transformer.generate_square_subsequent_mask(3, dtype=tg.float64).dtype \
        is tg.float64


def test_transformer_rejects_mismatched_inputs():
    model = make_transformer(tg)
    with pytest.raises(RuntimeError, match="batch number"):
        model(tg.randn(5, 2, D_MODEL), tg.randn(4, 3, D_MODEL))
    with pytest.raises(RuntimeError, match="d_model=8"):
        model(tg.randn(5, 2, D_MODEL), tg.randn(4, 2, D_MODEL + 1))
    with pytest.raises(RuntimeError, match="relu/gelu"):
        tg.nn.TransformerDecoderLayer(D_MODEL, HEADS, activation="tanh")


def test_dropout_is_active_in_training_and_off_in_eval():
    tg.manual_seed(0)
    layer = tg.nn.TransformerDecoderLayer(D_MODEL, HEADS, FEEDFORWARD, dropout=0.5)
    tgt, memory = (tg.randn(4, 2, D_MODEL) for _ in range(2))
    assert not np.allclose(layer(tgt, memory).detach().numpy(),
                           layer(tgt, memory).detach().numpy())
    layer.eval()
    np.testing.assert_array_equal(layer(tgt, memory).detach().numpy(),
                                  layer(tgt, memory).detach().numpy())
