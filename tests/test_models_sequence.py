"""The BiLSTM, Transformer and GAN seed models reach their targets with their default configs.

Each test trains end to end with the task's defaults and fixed seed, as `tinygrad-like train
NAME` does, and checks the target on held-out data (or, for the GAN, on generated samples).
"""

from __future__ import annotations

import numpy as np

from tinygrad_like import load
from tinygrad_like.models import TrainResult, get_task, train
from tinygrad_like.models.bilstm import contrastive_sentences


def train_with_defaults(name: str) -> TrainResult:
    task = get_task(name)
    result = train(task, task.config())
    assert len(result.history) == task.config().epochs
    assert all(row["seconds"] > 0 for row in result.history)  # each epoch's wall time
    return result


def test_bilstm_classifies_by_word_order():
    assert train_with_defaults("bilstm").final["test_accuracy"] >= 0.9


def test_bag_of_words_is_at_chance_on_the_bilstm_task():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    sentences, labels = contrastive_sentences(3000)
    counts = CountVectorizer(token_pattern=r"\S+").fit_transform(sentences)
    split = 2400
    model = LogisticRegression(max_iter=1000).fit(counts[:split], labels[:split])
    assert abs(labels.mean() - 0.5) < 0.05
    assert model.score(counts[split:], labels[split:]) < 0.65


def test_transformer_finds_the_repeated_first_token():
    assert train_with_defaults("transformer").final["test_accuracy"] >= 0.9


def test_gan_covers_the_modes():
    final = train_with_defaults("gan").final
    assert final["test_modes_covered"] >= 6
    assert 0.0 <= final["test_mode_quality"] <= 1.0


def test_gan_checkpoint_resumes_both_optimizers(tmp_path):
    task, path = get_task("gan"), str(tmp_path / "gan.safetensors")
    train(task, task.config(epochs=1), save_path=path)
    saved = load(path)["optimizer"]
    assert saved["generator"]["state"] and saved["discriminator"]["state"]
    resumed = train(task, task.config(epochs=1), resume_path=path)
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert np.isfinite(resumed.history[-1]["d_loss"])
