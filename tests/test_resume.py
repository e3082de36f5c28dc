"""A run resumed from a checkpoint ends bit-identically to one that never stopped.

The seed models trained here shuffle their data each epoch and use dropout, so every random
stream the loop has (shuffle seeds, dropout counters, the generators) must be in the
checkpoint for the parameters to match exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_like as tg
from tinygrad_like.cli import main
from tinygrad_like.models import get_task, train

CLI_OPTIONS = ["--dropout", "0.2", "--optimizer", "adam", "--lr", "0.01", "--quiet"]


def without_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same_parameters(expected: dict, actual: dict) -> None:
    assert list(expected) == list(actual)
    for name in expected:
        a, b = expected[name].numpy(), actual[name].numpy()
        assert a.dtype == b.dtype and np.array_equal(a, b), \
            f"{name}: max difference {np.abs(a - b).max()}"


@pytest.mark.parametrize("name", ["perceptron", "mlp"])
def test_train_resume_matches_an_uninterrupted_run(name, tmp_path):
    checkpoint = tmp_path / "epoch1.safetensors"
    task = get_task(name)
    uninterrupted = train(task, task.config(epochs=2, dropout=0.2))
    train(get_task(name), task.config(epochs=1, dropout=0.2), save_path=checkpoint)
    resumed = train(get_task(name), task.config(epochs=1, dropout=0.2), resume_path=checkpoint)
    assert_same_parameters(uninterrupted.model.state_dict(), resumed.model.state_dict())
    assert without_timings(resumed.history) == without_timings(uninterrupted.history)


def test_cli_resume_matches_an_uninterrupted_run(tmp_path, capsys):
    straight, first, second = (tmp_path / f"{n}.safetensors" for n in ("straight", "a", "b"))
    assert main(["train", "perceptron", "--epochs", "2", "--save", str(straight),
                 *CLI_OPTIONS]) == 0
    assert main(["train", "perceptron", "--epochs", "1", "--save", str(first), *CLI_OPTIONS]) == 0
    assert main(["train", "perceptron", "--epochs", "1", "--resume", str(first), "--save",
                 str(second), *CLI_OPTIONS]) == 0
    capsys.readouterr()
    expected, resumed = tg.load(straight), tg.load(second)
    assert resumed["epoch"] == expected["epoch"] == 2
    assert_same_parameters(expected["model"], resumed["model"])
    assert without_timings(resumed["history"]) == without_timings(expected["history"])
    for device, state in expected["rng"].items():
        assert np.array_equal(resumed["rng"][device].numpy(), state.numpy()), device


def test_resuming_a_checkpoint_without_generator_state_warns(tmp_path):
    checkpoint = tmp_path / "old.safetensors"
    task = get_task("perceptron")
    uninterrupted = train(task, task.config(epochs=2, dropout=0.2))
    train(task, task.config(epochs=1, dropout=0.2), save_path=checkpoint)
    old_style = {k: v for k, v in tg.load(checkpoint).items() if k != "rng"}
    tg.save(old_style, checkpoint)
    with pytest.warns(UserWarning, match="holds no generator state"):
        resumed = train(task, task.config(epochs=1, dropout=0.2), resume_path=checkpoint)
    weights = uninterrupted.model.state_dict(), resumed.model.state_dict()
    assert not all(np.array_equal(a.numpy(), b.numpy())
                   for a, b in zip(weights[0].values(), weights[1].values(), strict=True)), \
        "without the generator state the second epoch shuffles differently"
