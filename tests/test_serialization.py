"""tg.save / tg.load: exact round trips, atomic writes, and clear errors for bad files."""

import inspect
import math
import os
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.numpy

import tinygrad_like as tg
from tinygrad_like import serialization
from tinygrad_like.serialization import load, save
from tinygrad_like.torch_format import unpickler


def assert_same(loaded, saved):
    """Equal values with equal types all the way down; tensors by dtype, shape and contents."""
    if isinstance(saved, tg.Tensor):
        assert isinstance(loaded, tg.Tensor)
        assert (loaded.dtype, loaded.shape) == (saved.dtype, saved.shape)
        assert loaded.requires_grad == saved.requires_grad
        np.testing.assert_array_equal(loaded.detach().numpy(), saved.detach().numpy())
    elif isinstance(saved, dict):
        assert isinstance(loaded, dict) and list(loaded) == list(saved)
        assert all(type(a) is type(b) for a, b in zip(loaded, saved))
        for key in saved:
            assert_same(loaded[key], saved[key])
    elif isinstance(saved, (list, tuple)):
        assert type(loaded) is type(saved) and len(loaded) == len(saved)
        for a, b in zip(loaded, saved):
            assert_same(a, b)
    elif isinstance(saved, float) and math.isnan(saved):
        assert isinstance(loaded, float) and math.isnan(loaded)
    else:
        assert type(loaded) is type(saved) and loaded == saved


@pytest.mark.parametrize("tensor", [
    tg.randn(3, 4),
    tg.randn(2, 3, dtype=tg.float64),
    tg.randn(5, dtype=tg.float16),
    tg.arange(6, dtype=tg.int32).reshape(2, 3),
    tg.arange(4),
    tg.tensor([True, False]),
    tg.tensor(2.5),
    tg.zeros(0, 3),
    tg.randn(3, 4).T,  # not contiguous
    tg.randn(2, 2, requires_grad=True),
], ids=["f32", "f64", "f16", "i32", "i64", "bool", "0d", "empty", "transposed", "grad"])
def test_tensor_round_trip(tmp_path, tensor):
    save(tensor, tmp_path / "t.safetensors")
    assert_same(load(tmp_path / "t.safetensors"), tensor)


def test_state_dict_round_trip_keeps_order_and_names(tmp_path):
    state = OrderedDict([("layers.0.weight", tg.randn(4, 3)), ("layers.0.bias", tg.zeros(4)),
                         ("norm.running_mean", tg.ones(4)), ("norm.num_batches", tg.tensor(7))])
    save(state, tmp_path / "model.safetensors")
    assert_same(load(tmp_path / "model.safetensors"), dict(state))
    # other safetensors readers see the tensors under their state-dict names
    assert sorted(safetensors.numpy.load_file(tmp_path / "model.safetensors")) == sorted(state)


def test_nested_optimizer_state_round_trip(tmp_path):
    state = {
        "state": {0: {"step": 3, "exp_avg": tg.randn(4, 3), "exp_avg_sq": tg.rand(4, 3)},
                  1: {"step": 3, "exp_avg": tg.randn(4), "exp_avg_sq": tg.rand(4)}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False,
                          "params": [0, 1], "name": None, "schedule": [0.5, float("inf")],
                          "nan": float("nan")}],
        "history": [tg.tensor([1.0]), {"note": "ok", 2: [True, -1]}],
    }
    save(state, tmp_path / "optim.safetensors")
    assert_same(load(tmp_path / "optim.safetensors"), state)


def test_numpy_values_come_back_as_tensors_and_numbers(tmp_path):
    save({"array": np.arange(3, dtype=np.float32), "lr": np.float64(0.1)}, tmp_path / "n")
    loaded = load(tmp_path / "n")
    assert isinstance(loaded["array"], tg.Tensor) and loaded["array"].dtype == tg.float32
    assert loaded["lr"] == 0.1 and type(loaded["lr"]) is float


def test_loaded_tensors_are_writable_copies(tmp_path):
    save({"w": tg.zeros(3)}, tmp_path / "w")
    weight = load(tmp_path / "w")["w"]
    weight.fill_(2.0)
    assert weight.tolist() == [2.0, 2.0, 2.0]


def test_file_from_another_tool_loads_as_a_flat_dict(tmp_path):
    safetensors.numpy.save_file({"b": np.ones(2, np.float32), "a": np.zeros(1)}, tmp_path / "x")
    loaded = load(tmp_path / "x")
    assert set(loaded) == {"a", "b"} and loaded["a"].dtype == tg.float64


def test_atomic_write_leaves_only_the_target(tmp_path):
    save({"w": tg.ones(2)}, tmp_path / "ckpt.safetensors")
    save({"w": tg.zeros(2)}, tmp_path / "ckpt.safetensors")  # overwrite in place
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]
    assert load(tmp_path / "ckpt.safetensors")["w"].tolist() == [0.0, 0.0]


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save({"w": tg.ones(2)}, path)

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(serialization.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save({"w": tg.zeros(2)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]
    assert load(path)["w"].tolist() == [1.0, 1.0]


def _saved_bytes(tmp_path):
    save({"w": tg.randn(8, 8), "step": 1}, tmp_path / "good")
    return (tmp_path / "good").read_bytes()


def test_truncated_file_raises_naming_the_path(tmp_path):
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(_saved_bytes(tmp_path)[:-10])
    with pytest.raises(ValueError, match=r"truncated\.safetensors is not a valid safetensors"):
        load(path)


@pytest.mark.parametrize("payload", [os.urandom(256), b"", b"\x05\x00"],
                         ids=["random", "empty", "tiny"])
def test_non_safetensors_file_raises(tmp_path, payload):
    (tmp_path / "junk").write_bytes(payload)
    with pytest.raises(ValueError, match="junk is not a valid safetensors file"):
        load(tmp_path / "junk")


def test_corrupted_header_raises(tmp_path):
    raw = bytearray(_saved_bytes(tmp_path))
    start = raw.index(b'"dtype"')
    raw[start:start + 7] = b'"dtyqe"'
    (tmp_path / "bad").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="bad is not a valid safetensors file.*dtype"):
        load(tmp_path / "bad")


def test_corrupted_structure_metadata_raises(tmp_path):
    metadata = {"tinygrad_like": '{"version": 1, "tree": {"tensor": "missing"}}'}
    safetensors.numpy.save_file({"w": np.ones(2)}, tmp_path / "m", metadata=metadata)
    with pytest.raises(ValueError, match="m has corrupted tinygrad_like metadata"):
        load(tmp_path / "m")


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.safetensors")


def test_unsupported_values_and_colliding_names_raise(tmp_path):
    with pytest.raises(TypeError, match="cannot store a set at opt.x"):
        save({"opt": {"x": {1, 2}}}, tmp_path / "s")
    with pytest.raises(TypeError, match="dict key"):
        save({(1, 2): tg.ones(1)}, tmp_path / "s")
    with pytest.raises(ValueError, match="same name 'a.b'"):
        save({"a.b": tg.ones(1), "a": {"b": tg.ones(1)}}, tmp_path / "s")
    assert not os.listdir(tmp_path)


def test_safetensors_files_never_reach_an_unpickler(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a safetensors load built an unpickler")

    monkeypatch.setattr(unpickler.RestrictedUnpickler, "__init__", refuse)
    save({"w": tg.ones(2), "step": 3}, tmp_path / "ckpt.pt", format="safetensors")
    assert load(tmp_path / "ckpt.pt")["step"] == 3  # the content decides, not the suffix
    assert "import pickle" not in inspect.getsource(serialization)
