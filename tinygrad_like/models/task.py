"""What every seed model shares: its training configuration, the epoch loop, checkpoints.

A `Task` knows how to build its model and data and how to run one training epoch
and one evaluation; `train()` drives the epochs, the optimizer, resuming and
saving, and reports each epoch's metrics to a callback (the CLI prints a table).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterable

import tinygrad_like as tg
from tinygrad_like import optim
from tinygrad_like import distributed as dist
from tinygrad_like.data import DataLoader, DistributedSampler
from tinygrad_like.nn.utils import l1_penalty

OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW,
              "adagrad": optim.Adagrad, "adadelta": optim.Adadelta, "rmsprop": optim.RMSprop}


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0  # coupled L2 through the optimizer (decoupled with adamw)
    l1: float = 0.0  # weight of the L1 penalty added to the loss
    dropout: float = 0.0
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from "
                             f"{', '.join(OPTIMIZERS)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.l1 < 0:
            raise ValueError("lr must be positive and weight_decay and l1 non-negative")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class TrainResult:
    model: tg.nn.Module
    history: list[dict] = field(default_factory=list)  # one row of metrics per epoch
    final: dict = field(default_factory=dict)  # the test metrics after the last epoch


def identity_progress(iterable: Iterable, **_) -> Iterable:
    return iterable


class Task:
    """A seed model, its data and how to train and evaluate it (subclasses fill these in)."""

    name = ""
    defaults: dict = {}  # this task's TrainConfig overrides (epochs, lr, ...)
    summary_metric = "test_accuracy"  # what the CLI announces at the end

    def config(self, **overrides) -> TrainConfig:
        return replace(TrainConfig(**self.defaults), **overrides)

    def build(self, config: TrainConfig) -> tg.nn.Module:
        raise NotImplementedError

    def train_epoch(self, model, optimizer, config, progress) -> dict:
        raise NotImplementedError

    def evaluate(self, model, config) -> dict:
        raise NotImplementedError

    def parameters_to_optimize(self, model):
        return model.parameters()

    def make_optimizer(self, model, config: TrainConfig):
        return OPTIMIZERS[config.optimizer](self.parameters_to_optimize(model), lr=config.lr,
                                            weight_decay=config.weight_decay)

    def train_loader(self, dataset, config: TrainConfig) -> DataLoader:
        """The shuffled training batches; under `train --nproc N` this rank's share of them.

        Each rank loads batch_size / N samples per step, so the global batch is batch_size.
        The sampler's seed is the draw a single-process loader makes from the global
        generator, so every epoch's order matches the single-process run's, and the N
        per-rank batches of step k together are exactly its batch k (DistributedSampler's
        strided split). Only a final partial batch differs: the sampler pads it by repeating
        samples, and DDP averages per-rank means."""
        if not dist.is_initialized():
            return DataLoader(dataset, config.batch_size, shuffle=True)
        seed = tg.randint(0, 2**31, ()).item()  # what DataLoader(shuffle=True) draws per epoch
        return DataLoader(dataset, config.batch_size // dist.get_world_size(),
                          sampler=DistributedSampler(dataset, shuffle=True, seed=seed))

    def data_parallel(self, model: tg.nn.Module) -> tg.nn.Module:
        """What `train --nproc N` trains in each rank: the model in DistributedDataParallel,
        which averages the gradients of each backward over the ranks."""
        return tg.nn.parallel.DistributedDataParallel(model)

    def world_size(self) -> int:
        return dist.get_world_size() if dist.is_initialized() else 1

    def rank_rows(self, batch):
        """This rank's rows of a global batch that every rank drew alike (all of them in a
        single process): every world_size-th row from the rank's own, as DistributedSampler
        splits the samples. For training loops that draw their batches rather than load them;
        randomness drawn inside the model per row (dropout masks) is still drawn per rank, so
        with dropout a parallel run differs from a single-process one."""
        if not dist.is_initialized():
            return batch
        return batch[dist.get_rank()::dist.get_world_size()]

    def sum_over_ranks(self, *values: float) -> tuple:
        """Per-rank running totals (loss, counts) summed over every rank of the job."""
        if not dist.is_initialized():
            return values
        totals = tg.Tensor([float(v) for v in values], dtype=tg.float64)
        dist.all_reduce(totals)
        return tuple(totals.tolist())

    def mean_over_ranks(self, *values: float) -> tuple:
        """Per-rank running means over equal shares of each batch, averaged over the ranks:
        the means of the global batches."""
        return tuple(total / self.world_size() for total in self.sum_over_ranks(*values))

    def loss_with_penalty(self, loss: tg.Tensor, model: tg.nn.Module,
                          config: TrainConfig) -> tg.Tensor:
        if config.l1:
            weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
            loss = loss + config.l1 * l1_penalty(weights)
        return loss


def train(task: Task, config: TrainConfig, on_epoch: Callable[[dict], None] | None = None,
          progress=identity_progress, save_path: str | None = None,
          resume_path: str | None = None) -> TrainResult:
    """Train `task`'s model for `config.epochs` epochs (continuing a checkpoint if given)."""
    tg.manual_seed(config.seed)
    model = task.build(config).to(config.device)
    optimizer = task.make_optimizer(model, config)
    trained = model  # what train_epoch runs: the model, or task.data_parallel's (`--nproc`)
    start_epoch, history = 0, []
    if resume_path is not None:
        checkpoint = tg.load(resume_path, map_location=config.device)
        if checkpoint.get("task") != task.name:
            raise ValueError(f"checkpoint {resume_path} was written by task "
                             f"{checkpoint.get('task')!r}, not {task.name!r}")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_epoch, history = checkpoint["epoch"], checkpoint["history"]
        _restore_generators(checkpoint, resume_path)
    if dist.is_initialized():
        trained = task.data_parallel(model)
    for epoch in range(start_epoch, start_epoch + config.epochs):
        started = time.perf_counter()
        trained.train()
        row = {"epoch": epoch + 1}
        row.update(task.train_epoch(trained, optimizer, config,
                                    lambda it, **kw: progress(it, desc=f"epoch {epoch + 1}", **kw)))
        trained.eval()
        with tg.no_grad():
            row.update(task.evaluate(model, config))
        row["seconds"] = time.perf_counter() - started
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    final = {k: v for k, v in history[-1].items() if k.startswith("test_")} if history else {}
    if save_path is not None:
        tg.save({"task": task.name, "epoch": start_epoch + config.epochs, "history": history,
              "config": asdict(config), "model": model.state_dict(),
              "optimizer": optimizer.state_dict(), "rng": tg.random.get_rng_states()}, save_path)
    return TrainResult(model, history, final)


def _restore_generators(checkpoint: dict, resume_path: str) -> None:
    """Put every device's generator where the saved run left it, so that the next epoch's
    shuffle (the loaders draw each epoch's seed from the "cpu" generator), dropout masks and
    noise are those an uninterrupted run would draw; building the model has just moved them."""
    if "rng" not in checkpoint:
        warnings.warn(f"checkpoint {resume_path} holds no generator state (written before "
                      "tinygrad_like saved it): training continues, but not exactly as an "
                      "uninterrupted run would", stacklevel=3)
        return
    tg.random.set_rng_states(checkpoint["rng"])
