"""Datasets, as torch.utils.data's: the indexable-collection protocol, iterable datasets,
tensors as a dataset, subsets, concatenation and random splits.

A dataset may also define `get_batch(indices)`, returning exactly what the default
collate would make of `[dataset[i] for i in indices]`; the DataLoader then fetches a
whole batch with one fancy index per tensor instead of one Python call per item.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise

import numpy as np

from tinygrad_like.creation import randint
from tinygrad_like.tensor import Tensor


class Dataset:
    """Base class: subclasses define `__getitem__(index)` and `__len__()`."""

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class for a stream of samples: subclasses define `__iter__()`. Under a DataLoader
    with workers each worker iterates its own copy, so a dataset splits its stream with
    `get_worker_info()`, as in PyTorch."""

    def __iter__(self) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other: IterableDataset) -> ChainDataset:
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """The iterable datasets one after another."""

    def __init__(self, datasets: Iterable[IterableDataset]):
        self.datasets = list(datasets)

    def __iter__(self) -> Iterator:
        for dataset in self.datasets:
            yield from dataset

    def __len__(self) -> int:
        return sum(len(dataset) for dataset in self.datasets)


class ConcatDataset(Dataset):
    """The items of each dataset in turn; index i is looked up through `cumulative_sizes`."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        if any(isinstance(d, IterableDataset) for d in self.datasets):
            raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int):
        if index < 0:
            if -index > len(self):
                raise ValueError("ConcatDataset: absolute value of index should not exceed "
                                 "dataset length")
            index += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


class TensorDataset(Dataset):
    """Item i is the tuple `(t[i] for t in tensors)`; every tensor must share dimension 0."""

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}, "
                                "expected a Tensor")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {i} is 0-dimensional; every tensor "
                                 "needs a first (sample) dimension")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) > 1:
            shapes = ", ".join(str(t.shape) for t in tensors)
            raise ValueError(f"TensorDataset: size mismatch between tensors: first dimensions "
                             f"{sizes} (shapes {shapes}) must all be equal")
        self.tensors = tensors

    def __getitem__(self, index: int) -> tuple:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def get_batch(self, indices: np.ndarray) -> list:
        # a list, as default collate returns for tuple samples (PyTorch's convention)
        return [t[Tensor._from_data(indices, device=t.device)] for t in self.tensors]


class Subset(Dataset):
    """The items of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]

    def __len__(self) -> int:
        return len(self.indices)

    def __getattr__(self, name: str):
        # expose get_batch only when the wrapped dataset has one, so the loader's check works
        if name == "get_batch" and hasattr(self.dataset, "get_batch"):
            return lambda indices: self.dataset.get_batch(self.indices[indices])
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")


def _split_lengths(total: int, lengths: Sequence[float]) -> list[int]:
    """Absolute lengths, or fractions summing to 1 distributed as PyTorch does."""
    if all(isinstance(n, (int, np.integer)) for n in lengths):
        counts = [int(n) for n in lengths]
    elif math.isclose(sum(lengths), 1.0) and all(0 <= f <= 1 for f in lengths):
        counts = [math.floor(total * f) for f in lengths]
        for i in range(total - sum(counts)):  # the remainder goes round-robin from the front
            counts[i % len(counts)] += 1
    else:
        raise ValueError(f"random_split: lengths {list(lengths)} must be integers or fractions "
                         "summing to 1")
    if any(n < 0 for n in counts) or sum(counts) != total:
        raise ValueError(f"random_split: lengths {counts} must be non-negative and sum to the "
                         f"dataset's length ({total})")
    return counts


def random_split(dataset: Dataset, lengths: Sequence[float], generator=None,
                 generator_seed: int | None = None) -> list[Subset]:
    """Disjoint random subsets of the given lengths (or fractions).

    The permutation is drawn from `generator` (a tg.Generator) or from a NumPy generator
    seeded with `generator_seed`, so a seed gives the same split in every process; with
    neither, the seed is drawn from tinygrad_like's global generator (`tg.manual_seed`).
    """
    if generator is not None and generator_seed is not None:
        raise ValueError("random_split: pass generator or generator_seed, not both")
    counts = _split_lengths(len(dataset), lengths)
    if generator is not None:
        order = generator.rng.permutation(len(dataset))
    else:
        if generator_seed is None:
            generator_seed = randint(0, 2**31, ()).item()
        order = np.random.default_rng(generator_seed).permutation(len(dataset))
    bounds = np.cumsum([0] + counts)
    return [Subset(dataset, order[start:stop]) for start, stop in pairwise(bounds)]
