"""MLP classifier on scikit-learn's digits: Flatten, Dense 128 ReLU, Dense 10."""

from __future__ import annotations

from tinygrad_like import nn
from tinygrad_like.data import load_digits
from tinygrad_like.models.classification import ClassificationTask


class MLP(nn.Module):
    def __init__(self, in_features: int = 64, hidden: int = 128, classes: int = 10,
                 dropout: float = 0.0):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                                    nn.Dropout(dropout), nn.Linear(hidden, classes))

    def forward(self, x):
        return self.layers(x)


class MLPTask(ClassificationTask):
    name = "mlp"
    defaults = {"epochs": 20, "batch_size": 32, "lr": 1e-3}

    def datasets(self, config):
        return load_digits("train"), load_digits("test")

    def build(self, config):
        return MLP(dropout=config.dropout)
