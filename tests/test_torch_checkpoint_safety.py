"""tg.load against hostile, damaged and unusual PyTorch checkpoints: the restricted unpickler
refuses what torch.load(weights_only=True) refuses, before anything runs, and damage gives a
clear error naming the file."""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import zipfile

import numpy as np
import pytest
import torch
from torch._weights_only_unpickler import _get_allowed_globals

import tinygrad_like as tg
from tinygrad_like.torch_format import unpickler


def rezip(raw: bytes, **replaced: bytes) -> bytes:
    """A checkpoint's zip with some records (named without the archive folder) replaced."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            record = name.partition("/")[2]
            target.writestr(name, replaced.get(record, source.read(name)))
    return out.getvalue()


def checkpoint_with_pickle(path, pickled: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/version", "3\n")


def test_map_location_chooses_the_device(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "cpu.pt")
    with zipfile.ZipFile(tmp_path / "cpu.pt") as archive:
        pickled = archive.read("cpu/data.pkl")
    on_gpu = pickled.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
    (tmp_path / "gpu.pt").write_bytes(rezip((tmp_path / "cpu.pt").read_bytes(), **{
        "data.pkl": on_gpu}))
    for location in ("cpu", tg.device("cpu"), {"cuda:0": "cpu"}, lambda storage, loc: storage,
                     lambda storage, loc: storage.cpu()):
        assert tg.load(tmp_path / "gpu.pt", map_location=location)["w"].device == "cpu"
    expected = torch.load(tmp_path / "gpu.pt", map_location="cpu", weights_only=True)
    assert tg.load(tmp_path / "gpu.pt", map_location="cpu")["w"].tolist() == expected["w"].tolist()
    if tg.cuda.is_available():
        assert tg.load(tmp_path / "gpu.pt")["w"].device == "cuda"
    else:
        with pytest.raises(RuntimeError, match=r"saved on 'cuda:0'.*map_location='cpu'"):
            tg.load(tmp_path / "gpu.pt")
    with pytest.raises(TypeError, match="map_location must be"):
        tg.load(tmp_path / "cpu.pt", map_location=3)


# ---- what tg.load refuses ------------------------------------------------------------------
class RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class CallsEval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return eval, (self.code,)


@pytest.mark.parametrize("weights_only", [True, False])
def test_a_pickle_that_runs_a_command_is_refused_and_nothing_runs(tmp_path, weights_only):
    marker = tmp_path / "pwned"
    checkpoint_with_pickle(tmp_path / "evil.pt", pickle.dumps(
        {"model": {"w": RunsShell(f"touch {marker}")}}, protocol=2))
    name = re.escape(f"{os.system.__module__}.system")
    with pytest.raises(pickle.UnpicklingError, match=f"global {name}, which is refused"):
        tg.load(tmp_path / "evil.pt", weights_only=weights_only)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # PyTorch refuses it too
        torch.load(tmp_path / "evil.pt", weights_only=True)
    assert not marker.exists()


def test_eval_and_opcodes_on_the_wrong_objects_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w')"
    hostile = {
        "eval": (pickle.dumps(CallsEval(code), protocol=2), "global builtins.eval"),
        # BUILD would set the attributes of the tg.float32 singleton itself
        "build": (b"\x80\x02ctorch\nfloat32\n}X\x04\x00\x00\x00nameX\x06\x00\x00\x00hacked"
                  b"sb.", "applies BUILD to a DType"),
        "append": (b"\x80\x02ccollections\nOrderedDict\n)RK\x01a.",
                   "applies APPEND to a OrderedDict"),
    }
    for kind, (pickled, message) in hostile.items():
        checkpoint_with_pickle(tmp_path / f"{kind}.pt", pickled)
        with pytest.raises(pickle.UnpicklingError, match=re.escape(message)):
            tg.load(tmp_path / f"{kind}.pt")
    assert tg.float32.name == "float32" and not marker.exists()


def test_what_torch_admits_but_tinygrad_like_cannot_hold_is_named(tmp_path):
    torch.save({"s": torch.eye(3).to_sparse()}, tmp_path / "sparse.pt")
    with pytest.raises(NotImplementedError, match=r"sparse tensors \(torch._utils._rebuild_spar"):
        tg.load(tmp_path / "sparse.pt")
    torch.save({"c": torch.ones(2, dtype=torch.complex64)}, tmp_path / "complex.pt")
    with pytest.raises(TypeError, match="complex64"):
        tg.load(tmp_path / "complex.pt")


def test_every_admitted_global_is_one_torch_admits():
    ours = {f"{module}.{name}" for module, name in (*unpickler._ADMITTED, *unpickler._UNSUPPORTED)}
    ours |= {f"torch.{name}" for name in unpickler.TORCH_DTYPES}
    assert ours <= set(_get_allowed_globals())


def test_nothing_but_the_restricted_unpickler_reads_a_pickle():
    package = os.path.dirname(tg.__file__)
    reading = sorted(os.path.relpath(os.path.join(folder, name), package)
                     for folder, _, names in os.walk(package) for name in names
                     if name.endswith(".py") and re.search(r"pickle\.(_?Unpickler|loads?)\b",
                                                           open(os.path.join(folder, name)).read()))
    assert reading == [os.path.join("torch_format", "unpickler.py")]


# ---- damaged files -------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    torch.save({"w": torch.zeros(4), "step": 7}, tmp_path / "good.pt")
    return (tmp_path / "good.pt").read_bytes()


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_a_truncated_checkpoint_raises_a_clear_error_naming_it(tmp_path, saved, keep):
    (tmp_path / "cut.pt").write_bytes(saved[:int(len(saved) * keep)])
    with pytest.raises(ValueError, match=r"cut\.pt is (a corrupted|not a valid)"):
        tg.load(tmp_path / "cut.pt")


def test_corrupted_records_raise_clear_errors(tmp_path, saved):
    with zipfile.ZipFile(io.BytesIO(saved)) as archive:
        pickled = archive.read("good/data.pkl")
        header = archive.getinfo("good/data/0").header_offset
    name_size, extra_size = struct.unpack("<HH", saved[header + 26:header + 30])
    flipped = bytearray(saved)
    flipped[header + 30 + name_size + extra_size + 3] ^= 0xFF  # the CRC no longer matches
    cases = {
        "flipped": (bytes(flipped), "record good/data/0"),
        "half_pickle": (rezip(saved, **{"data.pkl": pickled[:len(pickled) // 2]}),
                        "data.pkl does not parse"),
        "past_storage": (rezip(saved, **{"data.pkl": pickled.replace(b"K\x04\x85", b"Kd\x85")}),
                         "reaches past the end of storage 0"),
        "short_storage": (rezip(saved, **{"data.pkl": pickled.replace(b"K\x04t", b"K\x05t")}),
                          "should hold 5 float32 elements"),
    }
    for name, (raw, message) in cases.items():
        (tmp_path / f"{name}.pt").write_bytes(raw)
        with pytest.raises(ValueError, match=f"{name}.pt is a corrupted.*{message}"):
            tg.load(tmp_path / f"{name}.pt")


def test_other_zips_and_the_legacy_format_are_refused_clearly(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        tg.load(tmp_path / "other.zip")
    torch.save({"w": torch.ones(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match=r"old\.pt is in PyTorch's legacy"):
        tg.load(tmp_path / "old.pt")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "scripted.pt")
    with pytest.raises(ValueError, match="TorchScript archive"):
        tg.load(tmp_path / "scripted.pt")
    with pytest.raises(RuntimeError, match="pickle_module"):
        tg.load(tmp_path / "scripted.pt", pickle_module=pickle)


def test_values_torch_cannot_load_are_refused_before_the_file_is_written(tmp_path):
    for value, error in [(frozenset({1}), TypeError), (object(), TypeError),
                         (np.complex64(1j), TypeError),
                         (tg.device("interp"), ValueError)]:
        with pytest.raises(error, match="save: "):
            tg.save({"x": value}, tmp_path / "x.pt")
    assert not os.listdir(tmp_path)
