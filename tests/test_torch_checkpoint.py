"""PyTorch checkpoints both ways: torch.save -> tg.load and tg.save -> torch.load(weights_only=True),
with real PyTorch as the oracle (hostile and damaged files: test_torch_checkpoint_safety.py)."""

from __future__ import annotations

import io
from collections import OrderedDict

import numpy as np
import pytest
import torch

import tinygrad_like as tg
import tinygrad_like.nn.functional as F

DTYPES = ["float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "bool"]


def plain(value):
    """A comparable form of what torch.load or tg.load returned: tensors become (dtype name,
    shape, values), containers keep their kind (OrderedDict compares as a dict)."""
    if isinstance(value, (torch.Tensor, tg.Tensor)):
        name = str(value.dtype).split(".")[-1]
        array = value.float().numpy() if name == "bfloat16" else np.asarray(value.detach())
        return "tensor", name, tuple(value.shape), array.tolist(), bool(value.requires_grad)
    if isinstance(value, (torch.dtype, tg.DType)):
        return "dtype", str(value).split(".")[-1]
    if isinstance(value, (torch.device, tg.device)):
        return "device", str(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    return value


def torch_model():
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 8), nn.LayerNorm(8), nn.Linear(8, 5))


def our_model():
    nn = tg.nn
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 8), nn.LayerNorm(8), nn.Linear(8, 5))


def batch(seed=0):
    return np.random.default_rng(seed).standard_normal((6, 3, 8, 8)).astype(np.float32)


def trained_torch_model():
    torch.manual_seed(0)
    model = torch_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(2):  # moves the weights and BatchNorm's running statistics
        optimizer.zero_grad()
        model(torch.from_numpy(batch(step))).square().mean().backward()
        optimizer.step()
    return model.eval(), optimizer


# ---- torch.save -> tg.load ----------------------------------------------------------------
def test_a_torch_models_checkpoint_gives_the_same_outputs_in_tinygrad_like(tmp_path):
    model, _ = trained_torch_model()
    torch.save(model.state_dict(), tmp_path / "model.pth")
    ours = our_model()
    state = tg.load(tmp_path / "model.pth", map_location="cpu", weights_only=True)
    assert isinstance(state, OrderedDict) and list(state) == list(model.state_dict())
    ours.load_state_dict(state)
    with torch.no_grad():
        expected = model(torch.from_numpy(batch(5))).numpy()
    np.testing.assert_allclose(ours.eval()(tg.tensor(batch(5))).detach().numpy(), expected,
                               rtol=1e-5, atol=1e-5)


def test_a_training_checkpoint_loads_with_its_structure_and_values(tmp_path):
    model, optimizer = trained_torch_model()
    torch_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.from_numpy(batch())).sum().backward()
    torch_optimizer.step()
    checkpoint = {"model": model.state_dict(), "optimizer": torch_optimizer.state_dict(),
                  "iter_num": 3, "best_val_loss": 1.25, "rng": torch.get_rng_state(),
                  "config": {"name": "gpt", "layers": [1, 2, 3], "dropout": None,
                             "flags": (True, False), "bias": b"\x00\xff", "tags": {"a"}}}
    torch.save(checkpoint, tmp_path / "ckpt.pt")
    loaded = tg.load(tmp_path / "ckpt.pt")
    assert plain(loaded) == plain(torch.load(tmp_path / "ckpt.pt", weights_only=True))
    assert isinstance(loaded["optimizer"]["state"][0]["exp_avg"], tg.Tensor)
    assert loaded["iter_num"] == 3 and loaded["config"]["tags"] == {"a"}


def test_views_and_shared_storages_load_as_views_of_one_buffer(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    saved = {"base": base, "transposed": base.t(), "strided": base[1:, ::2],
             "expanded": base[0, :3].expand(5, 3), "tied": base, "scalar": base[2, 3]}
    torch.save(saved, tmp_path / "views.pt")
    loaded = tg.load(tmp_path / "views.pt")
    for key, tensor in saved.items():
        assert loaded[key].shape == tuple(tensor.shape)
        np.testing.assert_array_equal(loaded[key].numpy(), tensor.numpy())
        strides = tuple(s // 4 for s in np.asarray(loaded[key]).strides)
        assert strides == tensor.stride(), key
    assert loaded["tied"] is loaded["base"]  # one object in the pickle, one tensor here
    loaded["base"][1, 2] = -1.0  # as in PyTorch, a write shows through every view
    assert loaded["transposed"][2, 1].item() == -1.0 and loaded["strided"][0, 1].item() == -1.0


@pytest.mark.parametrize("name", DTYPES)
def test_every_dtype_loads_from_torch(tmp_path, name):
    tensor = _sample(getattr(torch, name))
    torch.save({"t": tensor}, tmp_path / "t.pt")
    if tg.bfloat16.np_dtype is None and name == "bfloat16":
        with pytest.raises(TypeError, match="bfloat16"):
            tg.load(tmp_path / "t.pt")
        return
    assert plain(tg.load(tmp_path / "t.pt")) == plain({"t": tensor})


@pytest.mark.parametrize("name", DTYPES)
def test_every_dtype_saves_for_torch(tmp_path, name):
    if tg.bfloat16.np_dtype is None and name == "bfloat16":
        pytest.skip("tinygrad_like holds bfloat16 on the CPU only through ml_dtypes")
    expected = _sample(getattr(torch, name))
    if name == "bfloat16":
        ours = tg.tensor(expected.float().numpy()).to(tg.bfloat16)
    else:
        ours = tg.tensor(expected.numpy())
    tg.save({"t": ours}, tmp_path / "t.pt")
    assert plain(torch.load(tmp_path / "t.pt", weights_only=True)) == plain({"t": expected})


def _sample(dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    if dtype == torch.bool:
        return torch.randint(0, 2, (3, 4), generator=generator).bool()
    if dtype.is_floating_point:
        return (torch.randn(3, 4, generator=generator) * 100).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(info.min, info.max, (3, 4), generator=generator, dtype=dtype)


def test_mmap_maps_the_storages_copy_on_write(tmp_path):
    saved = {"w": torch.randn(64, 32), "b": torch.arange(5)}
    torch.save(saved, tmp_path / "big.pt")
    before = (tmp_path / "big.pt").read_bytes()
    loaded = tg.load(tmp_path / "big.pt", mmap=True, weights_only=None)
    assert plain(loaded) == plain(saved)
    base = np.asarray(loaded["w"])
    while not isinstance(base, np.memmap):
        base = base.base
    loaded["w"][0, 0] = 123.0
    assert (tmp_path / "big.pt").read_bytes() == before  # torch's mmap is private too
    with pytest.raises(ValueError, match="mmap=True needs a file path"):
        tg.load(io.BytesIO(before), mmap=True)
    with pytest.raises(TypeError, match="unexpected keyword arguments mmap_mode"):
        tg.load(tmp_path / "big.pt", mmap_mode="r")


# ---- tg.save -> torch.load -----------------------------------------------------------------
def test_a_tinygrad_like_checkpoint_gives_the_same_outputs_in_torch(tmp_path):
    torch_reference, _ = trained_torch_model()
    ours = our_model()
    ours.load_state_dict(tg.load(_saved_by_torch(tmp_path, torch_reference.state_dict())))
    ours.eval()
    tg.save(ours.state_dict(), tmp_path / "ours.pt")
    model = torch_model().eval()
    model.load_state_dict(torch.load(tmp_path / "ours.pt", weights_only=True))
    with torch.no_grad():
        result = model(torch.from_numpy(batch(3))).numpy()
    np.testing.assert_allclose(result, ours(tg.tensor(batch(3))).detach().numpy(), rtol=1e-5,
                               atol=1e-5)


def _saved_by_torch(tmp_path, obj):
    torch.save(obj, tmp_path / "torch.pt")
    return tmp_path / "torch.pt"


def test_nested_values_views_and_parameters_reach_torch_intact(tmp_path):
    base = tg.arange(24.0).reshape(4, 6)
    saved = {"model": OrderedDict(w=tg.nn.Parameter(tg.ones(2, 3))), "iter_num": 3,
             "lr": np.float32(0.5), "names": ["a", "b"], "shape": (2, 3), "none": None,
             "blob": b"", "set": {1, 2}, "dtype": tg.float16, "device": tg.device("cpu"),
             "base": base, "t": base.T, "strided": base[1:, ::2], "grad": tg.ones(2).requires_grad_()}
    tg.save(saved, tmp_path / "ours.pt")
    loaded = torch.load(tmp_path / "ours.pt", weights_only=True)
    assert isinstance(loaded["model"]["w"], torch.nn.Parameter)
    assert loaded["dtype"] is torch.float16 and loaded["device"] == torch.device("cpu")
    assert loaded["lr"] == 0.5 and loaded["blob"] == b"" and loaded["set"] == {1, 2}
    assert loaded["t"].stride() == (1, 6) and loaded["strided"].stride() == (6, 2)
    assert loaded["t"].untyped_storage().data_ptr() == loaded["base"].untyped_storage().data_ptr()
    converted = {key: tg.tensor(value) if isinstance(value, np.ndarray) else value
                 for key, value in saved.items() if key not in ("dtype", "device")}
    converted["lr"] = 0.5
    assert plain({k: loaded[k] for k in converted}) == plain(converted)
    assert plain(tg.load(tmp_path / "ours.pt")) == plain(loaded)  # and back again


@pytest.mark.parametrize("target", ["ckpt.pt", "ckpt.safetensors", "bytesio"])
def test_our_optimizer_resumes_exactly_through_either_format(tmp_path, target):
    x, y = tg.tensor(batch()), tg.randn(6, 5)

    def steps(model, optimizer, n):
        for _ in range(n):
            optimizer.zero_grad()
            F.mse_loss(model(x), y).backward()
            optimizer.step()

    tg.manual_seed(3)
    straight = our_model()
    straight_optimizer = tg.optim.Adam(straight.parameters(), lr=0.01)
    steps(straight, straight_optimizer, 4)
    tg.manual_seed(3)
    first = our_model()
    optimizer = tg.optim.Adam(first.parameters(), lr=0.01)
    steps(first, optimizer, 2)
    file = io.BytesIO() if target == "bytesio" else tmp_path / target
    tg.save({"model": first.state_dict(), "optimizer": optimizer.state_dict(), "iter": 2}, file)
    if target == "bytesio":
        file.seek(0)
    checkpoint = tg.load(file)
    resumed = our_model()
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer = tg.optim.Adam(resumed.parameters(), lr=0.01)
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    steps(resumed, resumed_optimizer, 2)
    for (name, ours), theirs in zip(resumed.state_dict().items(), straight.state_dict().values()):
        np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy(), err_msg=name)


def test_file_objects_default_to_torchs_format_and_take_either(tmp_path):
    buffer = io.BytesIO()
    tg.save({"w": tg.ones(2, 3)}, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["w"].tolist() == [[1.0] * 3] * 2
    buffer = io.BytesIO()
    tg.save({"w": tg.ones(2)}, buffer, format="safetensors")
    assert buffer.getvalue()[8:9] == b"{"  # a safetensors header, not a zip
    buffer.seek(0)
    assert tg.load(buffer)["w"].tolist() == [1.0, 1.0]
    torch_buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, torch_buffer)
    torch_buffer.seek(0)
    assert tg.load(torch_buffer)["w"].tolist() == [0.0, 0.0]


def test_the_format_is_read_from_the_content_not_the_name(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "torch.safetensors")
    tg.save({"w": tg.ones(2)}, tmp_path / "ours.pt", format="safetensors")
    tg.save({"w": tg.ones(2)}, tmp_path / "ours.bin", format="torch")
    assert torch.load(tmp_path / "ours.bin", weights_only=True)["w"].tolist() == [1.0, 1.0]
    for name in ("torch.safetensors", "ours.pt", "ours.bin"):
        assert tg.load(tmp_path / name)["w"].tolist() == [1.0, 1.0]
