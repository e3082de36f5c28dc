"""The seed models reach their targets with their default configuration, and the CLI works."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tinygrad_like as tg
from tinygrad_like import autograd
from tinygrad_like.cli import main
from tinygrad_like.models import get_task, train


@pytest.mark.parametrize("name,target", [("mlp", 0.95), ("cnn", 0.97), ("perceptron", 0.95)])
def test_classifier_reaches_its_target(name, target):
    task = get_task(name)
    result = train(task, task.config())
    assert result.final["test_accuracy"] >= target, result.history
    assert len(result.history) == task.config().epochs


def test_perceptron_reports_precision_recall_and_f1():
    task = get_task("perceptron")
    final = train(task, task.config(epochs=5)).final
    assert {"test_precision", "test_recall", "test_f1"} <= set(final)
    assert all(0.8 < final[k] <= 1 for k in ("test_precision", "test_recall", "test_f1"))


def test_gru_language_model_halves_its_loss_and_generates_text():
    task = get_task("gru-lm")
    config = task.config()
    tg.manual_seed(config.seed)
    untrained = task.build(config)
    with autograd.no_grad():
        initial = task.evaluate(untrained.eval(), config)["test_loss"]
    result = train(task, config)
    assert result.final["test_loss"] < initial / 2, (initial, result.history)
    text = result.model.generate(task.corpus, "The ", length=50)
    assert text.startswith("The ") and len(text) == 54
    assert set(text) <= set(task.corpus.vocab)


def test_training_is_reproducible_under_a_seed():
    task = get_task("perceptron")
    first = train(task, task.config(epochs=2)).history
    second = train(task, task.config(epochs=2)).history
    assert [row["train_loss"] for row in first] == [row["train_loss"] for row in second]


def test_cli_trains_saves_resumes_and_plots(tmp_path, capsys):
    checkpoint, plot = tmp_path / "ckpt.safetensors", tmp_path / "curves.png"
    assert main(["train", "perceptron", "--epochs", "2", "--save", str(checkpoint), "--plot",
                 str(plot), "--quiet", "--optimizer", "sgd", "--lr", "0.1", "--l1", "1e-4",
                 "--weight-decay", "1e-4", "--dropout", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "final test metrics" in out and "test accuracy" in out
    assert checkpoint.stat().st_size > 0 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["train", "perceptron", "--epochs", "1", "--resume", str(checkpoint), "--quiet",
                 "--optimizer", "sgd", "--lr", "0.1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert any(row and row[0] == "3" for row in rows), "resumed training continues at epoch 3"


@pytest.mark.parametrize("args,message", [
    (["train", "mlp", "--lr", "-1"], "lr must be positive"),
    (["train", "mlp", "--epochs", "0"], "epochs must be at least 1"),
    (["train", "mlp", "--resume", "/nonexistent.safetensors"], "nonexistent"),
    (["train", "mlp", "--device", "cuda"], "cuda"),
])
def test_cli_bad_arguments_give_one_line_errors(args, message, capsys):
    if "cuda" in args and tg.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinygrad-like: error:") and message in err and "\n" not in err


def test_cli_rejects_unknown_models_without_a_traceback():
    result = subprocess.run([sys.executable, "-m", "tinygrad_like", "train", "resnet"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr
