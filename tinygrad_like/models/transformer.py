"""Transformer encoder classifier: does the first token appear again later in the sequence?

Every sequence has `length` tokens drawn from a vocabulary of `vocab_size`, and exactly one
value in it occurs twice; the others are distinct. In a positive sequence the repeated value is
the first token (its copy sits at a uniform position after it); in a negative one it is a
value from the rest of the sequence, its two copies at positions after the first. So both
classes have the same token counts (one pair, the rest singletons) and the same uniform
distribution of tokens at every position: no token, count or position says the label, only
whether the token at position 0 matches a later one. Deciding that means comparing position 0
with every other position, which is what self-attention does (and what a bag of tokens cannot).

The model adds sinusoidal positional encodings to token embeddings (both of unit scale), runs a
two-layer `TransformerEncoder` (batch_first) and pools by reading out the first position, as a
[CLS] token is read: the question is about the first token, so its position is where attention
gathers the answer (mean- or max-pooling over all positions learns the task several times slower).
"""

from __future__ import annotations

import math

import numpy as np

import tinygrad_like as tg
from tinygrad_like import nn
from tinygrad_like.data import TensorDataset
from tinygrad_like.models.classification import ClassificationTask

VOCAB_SIZE, LENGTH = 16, 10


def repeated_first_token(count: int, length: int = LENGTH, vocab_size: int = VOCAB_SIZE,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` distinct sequences (count, length) and balanced labels (1 = first token repeats)."""
    if not 3 <= length <= vocab_size + 1:
        raise ValueError(f"length must be in [3, vocab_size + 1], got {length}")
    rng = np.random.default_rng(seed)
    sequences: dict[tuple, int] = {}
    while len(sequences) < count:
        label = len(sequences) % 2
        distinct = rng.choice(vocab_size, length - 1, replace=False)
        repeated = distinct[0] if label else distinct[rng.integers(1, length - 1)]
        sequence = np.insert(distinct, rng.integers(1, length), repeated)
        sequences.setdefault(tuple(sequence), label)
    return (np.array(list(sequences), dtype=np.int64),
            np.array(list(sequences.values()), dtype=np.int64))


def repeat_task(samples: int = 3000, test_fraction: float = 0.2, seed: int = 0):
    """Train and test datasets of (tokens, label); no sequence is in both."""
    tokens, labels = repeated_first_token(samples, seed=seed)
    split = int((1 - test_fraction) * samples)
    return (TensorDataset(tg.from_numpy(tokens[:split]), tg.from_numpy(labels[:split])),
            TensorDataset(tg.from_numpy(tokens[split:]), tg.from_numpy(labels[split:])))


def sinusoidal_encoding(length: int, d_model: int) -> tg.Tensor:
    """(length, d_model): sin and cos of position / 10000^(2i / d_model), interleaved."""
    position = tg.arange(length, dtype="float32").unsqueeze(1)
    frequency = (tg.arange(0, d_model, 2, dtype="float32")
                 * (-math.log(10000.0) / d_model)).exp()
    angle = position * frequency
    return tg.stack([angle.sin(), angle.cos()], -1).reshape(length, d_model)


class TransformerClassifier(nn.Module):
    def __init__(self, vocab_size: int, max_length: int, d_model: int = 32, heads: int = 4,
                 layers: int = 2, feedforward: int = 64, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.register_buffer("positions", sinusoidal_encoding(max_length, d_model),
                             persistent=False)
        layer = nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.head = nn.Linear(d_model, 1)

    def forward(self, tokens: tg.Tensor) -> tg.Tensor:
        length = tokens.shape[1]
        x = self.embedding(tokens) + self.positions[:length]
        return self.head(self.encoder(x)[:, 0])


class TransformerTask(ClassificationTask):
    name = "transformer"
    binary = True
    defaults = {"epochs": 10, "batch_size": 64, "lr": 3e-3}

    def datasets(self, config):
        return repeat_task()

    def build(self, config):
        return TransformerClassifier(VOCAB_SIZE, LENGTH, dropout=config.dropout)
