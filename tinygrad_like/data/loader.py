"""DataLoader: batches of a dataset, with torch.utils.data.DataLoader's arguments.

The order comes from a sampler (SequentialSampler, or RandomSampler with `shuffle`) cut
into batches, or from a `batch_sampler`. A shuffled loader given `seed` owns a generator
seeded with it, so the sequence of epoch orders is the same in every process; with neither
seed nor generator each epoch draws its seed from tinygrad_like's global generator, so
`tg.manual_seed` makes runs reproducible. `num_workers > 0` fetches batches in worker
processes (data/worker.py) with the same batches in the same order. PyTorch draws the
workers' base seed from the generator; here it is the generator's next draw peeked without
advancing it, so a loader consumes the same draws with or without workers and a resumed
run repeats exactly either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from tinygrad_like.backend import get_backend
from tinygrad_like.data.collate import default_collate, default_convert  # noqa: F401
from tinygrad_like.data.dataset import Dataset, IterableDataset
from tinygrad_like.data.sampler import BatchSampler, RandomSampler, SequentialSampler
from tinygrad_like.data.worker import Fetcher, WorkerPool
from tinygrad_like.generator import Generator


class DataLoader:
    """Iterate over `dataset` in batches (see the module docstring)."""

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler=None, batch_sampler=None, num_workers: int = 0,
                 collate_fn: Callable[[list], object] | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None,
                 multiprocessing_context=None, generator: Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 seed: int | None = None):
        if batch_size is not None and (isinstance(batch_size, bool)
                                       or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be a positive integer or None, got "
                             f"{batch_size!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("DataLoader: num_workers option should be non-negative; use "
                             "num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("DataLoader: timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in "
                             "multiprocessing. Let num_workers > 0 to enable multiprocessing, "
                             "otherwise set prefetch_factor to None.")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: seed and generator are mutually exclusive (seed=s "
                             "means generator=tg.Generator().manual_seed(s))")
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            for name, value in (("shuffle", shuffle), ("sampler", sampler),
                                ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                     f"{name} option, but got {name}={value!r}")
        elif sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                                 "batch_size, shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is "
                             "mutually exclusive with drop_last")
        if seed is not None:
            generator = Generator().manual_seed(seed)
        if sampler is None and not iterable:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        if batch_size is not None and batch_sampler is None and not iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.shuffle, self.seed, self.generator = bool(shuffle), seed, generator
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.num_workers, self.collate_fn, self.pin_memory = num_workers, collate_fn, pin_memory
        self.timeout, self.worker_init_fn = timeout, worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.prefetch_factor = 2 if num_workers and prefetch_factor is None else prefetch_factor
        self.persistent_workers = persistent_workers
        self._auto_batches = batch_size is not None and not iterable and \
            type(batch_sampler) is BatchSampler and batch_sampler.sampler is sampler
        batched = batch_sampler is not None or (iterable and batch_size is not None)
        self._fetcher = Fetcher(dataset, collate_fn, batched, batch_size, drop_last, iterable)
        self._pool = None

    def __len__(self) -> int:
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def _index_batches(self) -> Iterator | None:
        """This epoch's index lists (single indices without batching); drawn now, when the
        iterator is created."""
        if isinstance(self.dataset, IterableDataset):
            return None
        if self.batch_sampler is None:
            return iter(list(self.sampler))
        if not self._auto_batches:
            return iter(list(self.batch_sampler))
        # what BatchSampler yields, sliced from one array: the fast path's index arrays
        order = np.fromiter(self.sampler, dtype=np.int64, count=len(self.sampler))
        stops = range(0, len(self) * self.batch_size, self.batch_size)
        return iter([order[start:start + self.batch_size] for start in stops])

    def __iter__(self) -> Iterator:
        index_batches = self._index_batches()
        if self.num_workers == 0:
            return self._single_process(index_batches)
        return self._multi_process(index_batches)

    def _single_process(self, index_batches: Iterator | None) -> Iterator:
        if index_batches is None:
            self._fetcher.restart()
            while True:
                try:
                    batch = self._fetcher.fetch(None)
                except StopIteration:
                    return
                yield batch
        for indices in index_batches:
            yield self._fetcher.fetch(indices)

    def _multi_process(self, index_batches: Iterator | None) -> Iterator:
        pool = self._pool
        if pool is None:
            rng = self.generator.rng if self.generator is not None else get_backend("cpu").rng
            pool = WorkerPool(self._fetcher, self.num_workers, _peek_seed(rng),
                              self.worker_init_fn,
                              self.multiprocessing_context, self.prefetch_factor, self.timeout)
            if self.persistent_workers:
                self._pool = pool
        try:
            yield from pool.run(index_batches)
        finally:
            if not self.persistent_workers:
                pool.shutdown()

    def __del__(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown()


def _peek_seed(rng: np.random.Generator) -> int:
    """The seed `rng` would draw next, leaving `rng` where it was."""
    twin = np.random.default_rng()
    twin.bit_generator.state = rng.bit_generator.state
    return int(twin.integers(0, 2**62))
