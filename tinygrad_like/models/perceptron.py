"""Two-layer perceptron (sigmoid hidden layer, one logit) with binary cross-entropy.

The data is a 5-feature binary task from scikit-learn's `make_classification`
(three informative features, two redundant), generated offline from a fixed seed.
"""

from __future__ import annotations

import numpy as np

import tinygrad_like as tg
from tinygrad_like import nn
from tinygrad_like.data import TensorDataset
from tinygrad_like.models.classification import ClassificationTask


def five_feature_task(samples: int = 2000, seed: int = 0):
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=samples, n_features=5, n_informative=3, n_redundant=2,
                               n_clusters_per_class=1, class_sep=1.5, flip_y=0.0,
                               random_state=seed)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    split = int(0.8 * samples)
    def make(a, b):
        return TensorDataset(tg.from_numpy(a), tg.from_numpy(b.astype(np.int64)))
    return make(x[:split], y[:split]), make(x[split:], y[split:])


class Perceptron(nn.Module):
    def __init__(self, in_features: int = 5, hidden: int = 16, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.Sigmoid(),
                                    nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.layers(x)


class PerceptronTask(ClassificationTask):
    name = "perceptron"
    binary = True
    report_f1 = True
    defaults = {"epochs": 30, "batch_size": 32, "lr": 1e-2}

    def datasets(self, config):
        return five_feature_task()

    def build(self, config):
        return Perceptron(dropout=config.dropout)
