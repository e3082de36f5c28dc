"""DataLoader: batches of a dataset, in order or shuffled by a seeded generator, and the
default collate that turns a list of samples into batched tensors as PyTorch's does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from tinygrad_like import dtypes
from tinygrad_like.creation import randint
from tinygrad_like.data.dataset import Dataset
from tinygrad_like.ops.movement import stack
from tinygrad_like.tensor import Tensor


def default_collate(samples: list):
    """Stack a list of samples into a batch, following torch.utils.data.default_collate.

    Tensors and NumPy arrays are stacked along a new first dimension; Python ints, floats
    and bools become int64, float64 and bool tensors; strings stay a list; mappings are
    collated per key, namedtuples per field, and other tuples or lists per position
    (returned as a list, as PyTorch does).
    """
    first = samples[0]
    if isinstance(first, Tensor):
        return stack(samples)
    if isinstance(first, (np.ndarray, np.generic)):
        return Tensor(np.stack(samples))
    if isinstance(first, (bool, int)):
        return Tensor(samples)  # bool or int64, as tensor() infers
    if isinstance(first, float):
        return Tensor(samples, dtype=dtypes.float64)  # PyTorch keeps Python floats in float64
    if isinstance(first, str):
        return list(samples)
    if isinstance(first, Mapping):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise RuntimeError("default_collate: each sample in the batch must have the same "
                               f"number of fields; got {sorted({len(s) for s in samples})}")
        fields = [default_collate(list(column)) for column in zip(*samples, strict=True)]
        return type(first)(*fields) if hasattr(first, "_fields") else fields
    raise TypeError(f"default_collate: samples must be tensors, NumPy arrays, numbers, strings, "
                    f"dicts or tuples/lists of them; got {type(first).__name__}")


class DataLoader:
    """Iterate over `dataset` in batches.

    With `shuffle`, each epoch's order comes from a NumPy generator owned by the loader:
    seeded with `seed`, the sequence of epoch orders is the same in every process; with
    seed None each epoch draws its seed from tinygrad_like's global generator, so
    `tg.manual_seed` makes runs reproducible.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None,
                 collate_fn: Callable[[list], object] | None = None, sampler=None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got "
                             f"{batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.collate_fn = collate_fn
        self.sampler = sampler  # any iterable of indices with a length (DistributedSampler)
        self._generator = None if seed is None else np.random.default_rng(seed)

    def __len__(self) -> int:
        count = len(self.dataset if self.sampler is None else self.sampler) / self.batch_size
        return math.floor(count) if self.drop_last else math.ceil(count)

    def _order(self) -> np.ndarray:
        if self.sampler is not None:
            return np.fromiter(self.sampler, dtype=np.int64, count=len(self.sampler))
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        generator = self._generator
        if generator is None:
            generator = np.random.default_rng(randint(0, 2**31, ()).item())
        return generator.permutation(n)

    def __iter__(self) -> Iterator:
        # the order is drawn here, when the iterator is created, as PyTorch's sampler does
        return self._batches(self._order())

    def _batches(self, order: np.ndarray) -> Iterator:
        get_batch = getattr(self.dataset, "get_batch", None) if self.collate_fn is None else None
        collate = self.collate_fn or default_collate
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            indices = order[start:start + self.batch_size]
            if get_batch is not None:
                yield get_batch(indices)
            else:
                yield collate([self.dataset[int(i)] for i in indices])
