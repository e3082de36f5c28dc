"""The seed models, each a Task that `tinygrad-like train NAME` runs."""

from __future__ import annotations

import importlib

from tinygrad_like.models.task import Task, TrainConfig, TrainResult, train  # noqa: F401

# task name -> "module:class", imported on demand so the CLI starts fast
TASKS = {
    "mlp": "mlp:MLPTask",
    "cnn": "cnn:CNNTask",
    "perceptron": "perceptron:PerceptronTask",
    "gru-lm": "gru_lm:GRULanguageModelTask",
    "bilstm": "bilstm:BiLSTMTask",
    "transformer": "transformer:TransformerTask",
    "gan": "gan:GANTask",
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(f"tinygrad_like.models.{module}"), cls)()
