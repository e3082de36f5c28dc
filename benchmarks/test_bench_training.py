"""One training step (zero_grad, forward, backward, optimizer step): tinygrad_like, PyTorch, JAX.

Each model is written once against the API the two libraries share and built with
`lib` = tinygrad_like or torch, so both run the same architecture on the same data. JAX runs
the same architectures, batches and optimizer settings written in plain JAX, one jitted step
(jax_workloads.py). NumPy has no autograd or optimizers, so it is no fair floor here and is
left out.

- MLP 784-256-10, batch 128, Adam
- CNN (Conv 32 3x3, pool, Conv 64 3x3, pool, Dense 64, Dense 10), batch 64 of 1x28x28, Adam
- GRU LM: Embedding(65, 64), GRU(64, 256), Linear(256, 65), batch 32, sequence 64, Adam
- 2-layer TransformerEncoder (d_model 128, 4 heads, ff 512), batch 32, sequence 64, AdamW

Each case first checks that the step runs and lowers the loss on its fixed batch, so under
--benchmark-disable (CI) the suite still proves the steps work.
"""

from __future__ import annotations

import numpy as np
import pytest

import frameworks
from test_bench_core import library

FRAMEWORKS = ("tinygrad_like", "torch", "jax")


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def cnn(lib, pool: str = "MaxPool2d"):
    """The CNN; `pool` names another pooling layer (test_bench_native.py's AvgPool2d)."""
    nn = lib.nn
    pooling = getattr(nn, pool)
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), pooling(2), nn.Conv2d(32, 64, 3),
                         nn.ReLU(), pooling(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 64),
                         nn.ReLU(), nn.Linear(64, 10))


def gru_lm(lib, recurrent: str = "GRU"):
    """The character LM; `recurrent` names another layer (test_bench_native.py's LSTM)."""
    nn = lib.nn

    class CharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(65, 64)
            self.rnn = getattr(nn, recurrent)(64, 256, batch_first=True)
            self.head = nn.Linear(256, 65)

        def forward(self, ids):
            out, _ = self.rnn(self.embed(ids))
            return self.head(out).reshape(-1, 65)

    return CharLM()


def transformer(lib):
    nn = lib.nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(100, 128)
            layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, batch_first=True)
            extra = {"enable_nested_tensor": False} if lib.__name__ == "torch" else {}
            self.encoder = nn.TransformerEncoder(layer, 2, **extra)
            self.head = nn.Linear(128, 100)

        def forward(self, ids):
            return self.head(self.encoder(self.embed(ids))).reshape(-1, 100)

    return Encoder()


def batch(name: str, rng: np.random.Generator):
    """A fixed (input, target) batch for each workload, as NumPy arrays."""
    if name == "mlp":
        return rng.standard_normal((128, 784), dtype=np.float32), rng.integers(0, 10, 128)
    if name == "cnn":
        return rng.standard_normal((64, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 64)
    vocab = 65 if name == "gru_lm" else 100
    ids = rng.integers(0, vocab, (32, 65))
    return ids[:, :-1], ids[:, 1:].reshape(-1)


# workload -> (model builder, optimizer name, optimizer options)
WORKLOADS = {"mlp": (mlp, "Adam", {"lr": 1e-3}), "cnn": (cnn, "Adam", {"lr": 1e-3}),
             "gru_lm": (gru_lm, "Adam", {"lr": 1e-3}),
             "transformer": (transformer, "AdamW", {"lr": 1e-3})}


def make_step(framework: str, workload: str, build=None, optimizer_spec=None):
    """The workload's training step; `build` (a model builder) and `optimizer_spec` ((name,
    options)) replace its own, keeping its batch (test_bench_native.py's variants); JAX runs
    the workload's own model (jax_workloads.MODELS)."""
    default_build, *default_spec = WORKLOADS[workload]
    optimizer_name, options = optimizer_spec or default_spec
    if framework == "jax":
        return frameworks.load("jax_workloads").make_step(
            workload, optimizer_name, options, *batch(workload, np.random.default_rng(0)))
    lib = library(framework)
    lib.manual_seed(0)
    model = (build or default_build)(lib)
    optimizer = getattr(lib.optim, optimizer_name)(model.parameters(), **options)
    inputs, targets = (lib.tensor(a) for a in batch(workload, np.random.default_rng(0)))
    return step_on_batch(lib, model, optimizer, inputs, targets)


def step_on_batch(lib, model, optimizer, inputs, targets):
    """One training step on a fixed batch (zero_grad, forward, cross-entropy, backward,
    optimizer step), returning the loss; scaling_cases.py's steps at other batch sizes too."""
    def step() -> float:
        optimizer.zero_grad()
        loss = lib.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


@pytest.mark.parametrize("framework", frameworks.params(*FRAMEWORKS))
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_training_step(benchmark, framework, workload):
    step = make_step(framework, workload)
    first = step()
    assert np.isfinite(first) and step() < first, "a step on a fixed batch lowers its loss"
    benchmark.group = f"training step: {workload}"
    benchmark.extra_info["framework"] = framework
    benchmark(step)
