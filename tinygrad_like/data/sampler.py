"""Samplers: the order in which a DataLoader visits its dataset's indices, as
torch.utils.data's.

A sampler given a `tg.Generator` draws from it alone; without one, each iteration draws a
seed from tinygrad_like's global generator (what `tg.manual_seed` controls) and permutes
with NumPy's generator of that seed, so `tg.manual_seed` makes every order reproducible.
The order is drawn when iteration starts.

`DistributedSampler` gives each rank of a data-parallel job its own share of every epoch,
with PyTorch's index arithmetic: the (optionally shuffled) indices are padded by repeating
from the start until they divide evenly between the ranks (or, with `drop_last`, the tail
is dropped), and rank r takes every num_replicas-th index starting at r. The shuffle is
NumPy's `default_rng(seed + epoch).permutation`, the same on every rank (PyTorch draws it
with torch.randperm, so the orders themselves differ from PyTorch's).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from tinygrad_like.creation import randint


class Sampler:
    """Base class: an iterable of dataset indices with a length."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


def _rng(generator) -> np.random.Generator:
    """`generator`'s NumPy generator, or a fresh one seeded by a draw from the global one."""
    if generator is not None:
        return generator.rng
    return np.random.default_rng(randint(0, 2**31, ()).item())


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} should be a boolean value, but got {name}={value!r}")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the indices, or with `replacement` `num_samples` independent
    uniform draws. Without replacement, `num_samples` beyond the dataset's length takes
    further permutations, as PyTorch's does."""

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator=None):
        _check_bool("replacement", replacement)
        if num_samples is not None:
            _check_positive_int("num_samples", num_samples)
        self.data_source, self.replacement = data_source, replacement
        self._num_samples, self.generator = num_samples, generator

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def __iter__(self) -> Iterator[int]:
        n, count, rng = len(self.data_source), self.num_samples, _rng(self.generator)
        if self.replacement:
            return iter(rng.integers(0, n, count).tolist())
        if n == 0:
            return iter([])
        full, rest = divmod(count, n)
        orders = [rng.permutation(n) for _ in range(full)]
        if rest:
            orders.append(rng.permutation(n)[:rest])
        return iter(np.concatenate(orders).tolist() if orders else [])

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order."""

    def __init__(self, indices, generator=None):
        self.indices, self.generator = indices, generator

    def __iter__(self) -> Iterator[int]:
        order = _rng(self.generator).permutation(len(self.indices))
        return iter([self.indices[i] for i in order.tolist()])

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """`num_samples` indices drawn with probability proportional to `weights`."""

    def __init__(self, weights, num_samples: int, replacement: bool = True, generator=None):
        _check_positive_int("num_samples", num_samples)
        _check_bool("replacement", replacement)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or weights.size == 0 or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be a non-empty 1-D sequence of "
                             f"non-negative numbers with a positive sum, got shape "
                             f"{weights.shape}")
        if not replacement and num_samples > np.count_nonzero(weights):
            raise ValueError(f"WeightedRandomSampler: cannot draw {num_samples} samples without "
                             f"replacement from {np.count_nonzero(weights)} nonzero weights")
        self.weights, self.num_samples = weights, int(num_samples)
        self.replacement, self.generator = replacement, generator

    def __iter__(self) -> Iterator[int]:
        drawn = _rng(self.generator).choice(len(self.weights), self.num_samples,
                                            replace=self.replacement,
                                            p=self.weights / self.weights.sum())
        return iter(drawn.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of `batch_size` consecutive indices from `sampler`; a shorter last one unless
    `drop_last`."""

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        _check_positive_int("batch_size", batch_size)
        _check_bool("drop_last", drop_last)
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        full, rest = divmod(len(self.sampler), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)


class DistributedSampler(Sampler):
    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from tinygrad_like import distributed as dist

            if not dist.is_initialized():
                raise RuntimeError("DistributedSampler: num_replicas and rank default to the "
                                   "process group's, which is not initialised; call "
                                   "tg.distributed.init_process_group() or pass both")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank}, rank should be in the "
                             f"interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration's shuffle that of `epoch` (call it before each epoch)."""
        self.epoch = epoch

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.drop_last:
            order = order[:self.total_size]
        elif self.total_size > n:
            order = np.concatenate([order, np.resize(order, self.total_size - n)])
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples
