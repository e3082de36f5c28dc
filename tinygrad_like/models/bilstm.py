"""Bidirectional LSTM sentiment classifier on sentences whose label depends on word order.

Each sentence joins two review clauses, "the <subject> <verb> [<intensifier>] <adjective>",
one with a positive adjective and one with a negative, by a contrastive connector. The label
is the sentiment of the main clause, which the connector and its position decide:

    the food was good but the staff seemed really rude        -> negative (after "but")
    although the food was good the staff seemed really rude   -> negative (opening "although")
    the food was good although the staff seemed really rude   -> positive (middle "although")

"but", "however" and "yet" in the middle, and "although" or "while" opening the sentence, put
the main clause second; "although", "though" or "even though" in the middle put it first.
Both adjective orders are equally likely under every connector, so swapping the two adjectives
flips the label while keeping the bag of words: word counts carry no information about the label
(a bag-of-words classifier scores at chance), and only the order of the words decides.

Sentences are 9 to 12 words long; each is encoded with a vocabulary built from the template
word lists and padded at the end with id 0 to the longest. The model embeds the tokens, reads
them with a one-layer bidirectional LSTM (at each adjective, the forward pass knows which
connector came before it and the backward pass which came after, which together place it in its
clause), max-pools each feature over the real (non-padding) time steps and maps the result to
one logit.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

import tinygrad_like as tg
from tinygrad_like import nn
from tinygrad_like.data import TensorDataset
from tinygrad_like.models.classification import ClassificationTask

SUBJECTS = ("food", "service", "staff", "room", "music", "view", "coffee", "price", "location",
            "bed", "breakfast", "wifi")
VERBS = ("was", "is", "seemed", "felt")
INTENSIFIERS = ("", "really", "very", "quite", "truly")  # "": none
POSITIVE = ("good", "great", "excellent", "lovely", "superb", "friendly", "perfect", "wonderful")
NEGATIVE = ("awful", "bad", "terrible", "poor", "rude", "dirty", "bland", "horrible")
# (words before the first clause, words between the clauses, index of the main clause)
CONNECTORS = (
    ((), ("but",), 1), ((), ("however",), 1), ((), ("yet",), 1),
    (("although",), (), 1), (("while",), (), 1),
    ((), ("although",), 0), ((), ("though",), 0), ((), ("even", "though"), 0),
)
PAD = 0


class Vocabulary:
    """Word <-> id for every word the templates can produce; id 0 is padding."""

    def __init__(self, words: Iterable[str]):
        self.words = ["<pad>"] + sorted(set(words))
        self.ids = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: str, length: int) -> list[int]:
        """The ids of `sentence`'s words, padded with PAD to `length`."""
        words = sentence.split()
        unknown = [w for w in words if w not in self.ids]
        if unknown or len(words) > length:
            raise ValueError(f"cannot encode {sentence!r} in {length} tokens"
                             + (f": unknown words {unknown}" if unknown else ""))
        return [self.ids[w] for w in words] + [PAD] * (length - len(words))


def template_vocabulary() -> Vocabulary:
    connector_words = [w for before, between, _ in CONNECTORS for w in before + between]
    return Vocabulary(["the", *SUBJECTS, *VERBS, *(w for w in INTENSIFIERS if w), *POSITIVE,
                       *NEGATIVE, *connector_words])


def _clause(rng: np.random.Generator, subject: str, adjective: str) -> list[str]:
    intensifier = INTENSIFIERS[rng.integers(len(INTENSIFIERS))]
    return ["the", subject, VERBS[rng.integers(len(VERBS))]] + (
        [intensifier] if intensifier else []) + [adjective]


def contrastive_sentences(count: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """`count` distinct sentences and their labels (1 = the main clause is positive)."""
    rng = np.random.default_rng(seed)
    sentences: dict[str, int] = {}
    while len(sentences) < count:
        first, second = rng.choice(len(SUBJECTS), 2, replace=False)
        positive_first = bool(rng.integers(2))
        adjectives = (POSITIVE[rng.integers(len(POSITIVE))], NEGATIVE[rng.integers(len(NEGATIVE))])
        if not positive_first:
            adjectives = adjectives[::-1]
        before, between, main = CONNECTORS[rng.integers(len(CONNECTORS))]
        words = [*before, *_clause(rng, SUBJECTS[first], adjectives[0]), *between,
                 *_clause(rng, SUBJECTS[second], adjectives[1])]
        sentences.setdefault(" ".join(words), int(positive_first == (main == 0)))
    return list(sentences), np.array(list(sentences.values()), dtype=np.int64)


def order_task(samples: int = 3000, test_fraction: float = 0.2, seed: int = 0):
    """Train and test datasets of (token ids, label); no sentence is in both."""
    sentences, labels = contrastive_sentences(samples, seed)
    vocabulary = template_vocabulary()
    length = max(len(s.split()) for s in sentences)
    tokens = np.array([vocabulary.encode(s, length) for s in sentences], dtype=np.int64)
    split = int((1 - test_fraction) * samples)
    return (TensorDataset(tg.from_numpy(tokens[:split]), tg.from_numpy(labels[:split])),
            TensorDataset(tg.from_numpy(tokens[split:]), tg.from_numpy(labels[split:])))


class BiLSTMClassifier(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int = 32, hidden: int = 32,
                 dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, 1)

    def forward(self, tokens: tg.Tensor) -> tg.Tensor:
        outputs, _ = self.lstm(self.embedding(tokens))  # (N, L, 2 * hidden)
        real = (tokens != PAD).unsqueeze(-1)
        pooled = tg.where(real, outputs, float("-inf")).amax(1)  # padding never wins the max
        return self.head(self.dropout(pooled))


class BiLSTMTask(ClassificationTask):
    name = "bilstm"
    binary = True
    defaults = {"epochs": 3, "batch_size": 64, "lr": 5e-3}

    def datasets(self, config):
        return order_task()

    def build(self, config):
        return BiLSTMClassifier(len(template_vocabulary()), dropout=config.dropout)
