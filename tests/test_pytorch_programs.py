"""Programs written in ordinary PyTorch style run on tinygrad_like with only the import changed.

Each program in tests/pytorch_programs/ imports torch. It runs twice: as written, under
PyTorch, and with its import lines rewritten to tinygrad_like (`port` below changes nothing
else, which the first test checks). The second run starts from the first run's initial
weights, copied through NumPy, and both must give the same losses, first-step gradients,
final state and sampled tokens.

Tolerance: both run in float32, where each op's result may differ in its last bits
(summation order, BLAS blocking); a few hundred ops per step and a handful of steps
amplify that to at most ~1e-5 relative in these small programs, so 1e-4 relative (of each
quantity's own scale) leaves a margin without hiding a wrong formula, which shows as O(1).
"""

from __future__ import annotations

import difflib
import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import tinygrad_like as tg

PROGRAMS = Path(__file__).parent / "pytorch_programs"
RTOL = 1e-4


def port(source: str) -> str:
    """The program with `torch` replaced by `tinygrad_like` in its import lines only."""
    lines = []
    for line in source.splitlines():
        if re.match(r"(import|from) torch\b", line):
            line = re.sub(r"\btorch\b", "tinygrad_like", line, count=1)
            if line == "import tinygrad_like":
                line = "import tinygrad_like as torch"
        lines.append(line)
    return "\n".join(lines) + "\n"


def load(name: str, ported: bool) -> types.ModuleType:
    source = (PROGRAMS / f"{name}.py").read_text()
    module = types.ModuleType(f"{name}_{'tg' if ported else 'torch'}")
    exec(compile(port(source) if ported else source, str(PROGRAMS / f"{name}.py"), "exec"),
         module.__dict__)
    return module


def twins(name: str):
    """(torch program, its model), (ported program, a model holding the same weights)."""
    theirs, ours = load(name, ported=False), load(name, ported=True)
    torch_model, our_model = theirs.build_model(), ours.build_model()
    state = {k: tg.tensor(v.numpy()) for k, v in torch_model.state_dict().items()}
    our_model.load_state_dict(state)
    return (theirs, torch_model), (ours, our_model)


def assert_close(ours, theirs, what: str):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    scale = max(np.abs(theirs).max(initial=0.0), 1e-30)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def assert_same_results(ours: dict, theirs: dict):
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if key == "grads":
            assert ours[key].keys() == value.keys()
            for name in value:
                assert_close(ours[key][name], value[name], f"gradient of {name}")
        elif key == "params":
            for name in value:
                assert_close(ours[key][name], value[name], f"parameter {name}")
        elif key in ("tokens", "correct"):
            assert ours[key] == value, key
        elif key == "hidden":
            for a, b in zip(ours[key], value):
                assert_close(a, b, "final hidden state")
        else:
            assert_close(ours[key], value, key)


@pytest.mark.parametrize("name", sorted(p.stem for p in PROGRAMS.glob("*.py")))
def test_port_changes_only_import_lines(name):
    source = (PROGRAMS / f"{name}.py").read_text()
    changed = [line for line in difflib.ndiff(source.splitlines(), port(source).splitlines())
               if line.startswith("+ ")]
    assert changed and all(re.match(r"\+ (import|from) tinygrad_like\b", c) for c in changed)


@pytest.mark.parametrize("name", ["gpt", "cnn_mnist", "lstm_lm"])
def test_program_gives_pytorchs_results(name):
    (theirs, torch_model), (ours, our_model) = twins(name)
    assert_same_results(ours.train(our_model), theirs.train(torch_model))


def test_checkpoint_save_and_resume_gives_pytorchs_results(tmp_path):
    (theirs, torch_model), (ours, our_model) = twins("checkpoint_resume")
    expected = theirs.train(torch_model, tmp_path / "torch.pt")
    assert_same_results(ours.train(our_model, tmp_path / "tg.pt"), expected)
    # and each side reads the other's file
    ours_read_by_torch = torch.load(tmp_path / "tg.pt", weights_only=True)
    theirs_read_by_us = tg.load(tmp_path / "torch.pt", weights_only=True)
    assert ours_read_by_torch["step"] == theirs_read_by_us["step"] == 4
    assert ours_read_by_torch["config"] == theirs_read_by_us["config"] == {"lr": 0.01,
                                                                           "name": "mlp"}
    for key, value in ours_read_by_torch["model"].items():
        assert_close(value.numpy(), theirs_read_by_us["model"][key].numpy(), key)
