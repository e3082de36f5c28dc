"""Character-level GRU language model (Embedding, GRU, Linear) on an offline corpus.

The corpus is the English text of scikit-learn's bundled dataset descriptions
(`tg.data.char_corpus`); the last tenth is held out. An epoch is a fixed number
of random windows rather than a pass over every window (there are ~40,000 of
them, mostly overlapping).
"""

from __future__ import annotations

import numpy as np

import tinygrad_like as tg
from tinygrad_like.data import CharCorpus, char_corpus
from tinygrad_like.models.task import Task, TrainConfig
from tinygrad_like.nn import GRU, Embedding, Linear, Module
from tinygrad_like.nn import functional as F

SEQ_LEN = 32
STEPS_PER_EPOCH = 30


class CharGRU(Module):
    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden: int = 256,
                 dropout: float = 0.0):
        super().__init__()
        self.embed = Embedding(vocab_size, embed_dim)
        self.gru = GRU(embed_dim, hidden, batch_first=True)
        self.head = Linear(hidden, vocab_size)
        self.dropout = dropout

    def forward(self, ids, state=None):
        """ids (N, T) -> logits (N, T, vocab) and the final hidden state."""
        out, state = self.gru(self.embed(ids), state)
        return self.head(F.dropout(out, self.dropout, self.training)), state

    def generate(self, corpus: CharCorpus, prefix: str, length: int = 200,
                 temperature: float = 0.8) -> str:
        """Continue `prefix` by sampling one character at a time from the model."""
        with tg.no_grad():
            ids = corpus.encode(prefix).reshape(1, -1).to(self.head.weight.device)
            logits, state = self(ids)
            chars = []
            rng = self.head.weight.backend.rng
            for _ in range(length):
                probs = F.softmax(logits[:, -1] / temperature, -1)
                probs = probs.cpu().numpy()[0].astype(np.float64)
                next_id = int(rng.choice(len(probs), p=probs / probs.sum()))
                chars.append(next_id)
                ids = tg.from_numpy(np.array([[next_id]])).to(self.head.weight.device)
                logits, state = self(ids, state)
        return prefix + corpus.decode(chars)


class GRULanguageModelTask(Task):
    name = "gru-lm"
    defaults = {"epochs": 5, "batch_size": 32, "lr": 3e-3}
    summary_metric = "test_loss"

    def __init__(self):
        self.corpus = char_corpus()
        split = int(0.9 * len(self.corpus.ids))
        self.train_ids, self.test_ids = self.corpus.ids[:split], self.corpus.ids[split:]

    def build(self, config: TrainConfig) -> CharGRU:
        return CharGRU(self.corpus.vocab_size, dropout=config.dropout)

    def _starts(self, ids: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, len(ids) - SEQ_LEN - 1, count)

    def _windows(self, ids: np.ndarray, starts: np.ndarray, device: str):
        windows = ids[starts[:, None] + np.arange(SEQ_LEN + 1)]
        return (tg.from_numpy(windows[:, :-1].copy()).to(device),
                tg.from_numpy(windows[:, 1:].copy()).to(device))

    def _loss(self, model, inputs, targets):
        logits, _ = model(inputs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def train_epoch(self, model, optimizer, config, progress) -> dict:
        # under `train --nproc` every rank draws the same global batch of windows and trains
        # on its rows of it, so the ranks together see what a single process sees
        rng = np.random.default_rng(tg.randint(0, 2**31, (), device=config.device).item())
        total = 0.0
        for _ in progress(range(STEPS_PER_EPOCH), total=STEPS_PER_EPOCH):
            starts = self.rank_rows(self._starts(self.train_ids, config.batch_size, rng))
            inputs, targets = self._windows(self.train_ids, starts, config.device)
            loss = self._loss(model, inputs, targets)
            optimizer.zero_grad()
            self.loss_with_penalty(loss, model, config).backward()
            optimizer.step()
            total += loss.item()
        (total,) = self.mean_over_ranks(total)
        return {"train_loss": total / STEPS_PER_EPOCH}

    def evaluate(self, model, config) -> dict:
        """Mean next-character cross-entropy on fixed held-out windows."""
        starts = self._starts(self.test_ids, 64, np.random.default_rng(0))
        inputs, targets = self._windows(self.test_ids, starts, config.device)
        return {"test_loss": self._loss(model, inputs, targets).item()}

    def sample_text(self, model: CharGRU, config: TrainConfig, length: int = 120) -> str:
        return model.generate(self.corpus, "The data", length)
