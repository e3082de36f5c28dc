"""CNN classifier on scikit-learn's 8x8 digits.

Conv 32 3x3 ReLU, MaxPool 2, Conv 64 3x3 ReLU, MaxPool 2, Flatten, Dense 64 ReLU,
Dense 10. The convolutions pad by one so an 8x8 digit keeps its size until each
pool: 8x8 -> 4x4 -> 2x2, leaving 64 * 2 * 2 features.
"""

from __future__ import annotations

from tinygrad_like import nn
from tinygrad_like.data import load_digits
from tinygrad_like.models.classification import ClassificationTask


class CNN(nn.Module):
    def __init__(self, classes: int = 10, dropout: float = 0.0):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 2 * 2, 64), nn.ReLU(),
                                        nn.Dropout(dropout), nn.Linear(64, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class CNNTask(ClassificationTask):
    name = "cnn"
    defaults = {"epochs": 15, "batch_size": 32, "lr": 2e-3}

    def datasets(self, config):
        return load_digits("train"), load_digits("test")

    def build(self, config):
        return CNN(dropout=config.dropout)
