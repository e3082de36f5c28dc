"""DataLoader worker processes (num_workers > 0), as torch.utils.data's.

The main process sends each worker `(epoch, task, indices)` round-robin, keeping
`prefetch_factor` tasks per worker in flight, and yields the results in task order. Worker
w is seeded with `base_seed + w` (Python's `random`, NumPy's global generator and
tinygrad_like's) and sees itself in `get_worker_info()`. Results travel as NumPy arrays in
a plain structure: tensors are replaced by `_ArraySlot`s and rebuilt with `from_numpy`, so
no tinygrad_like tensor is pickled. With an IterableDataset each worker iterates its own
copy and answers `_EXHAUSTED` when it runs dry; later tasks skip it.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import random
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice

import numpy as np

from tinygrad_like.backend import manual_seed
from tinygrad_like.creation import from_numpy
from tinygrad_like.data.collate import default_collate, default_convert
from tinygrad_like.tensor import Tensor

_EXHAUSTED = "exhausted"
_POLL_S = 1.0  # how often a waiting main process checks that its workers are alive


@dataclass(frozen=True)
class WorkerInfo:
    id: int
    num_workers: int
    seed: int
    dataset: object


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """This worker's id, the number of workers, its seed and its copy of the dataset; None
    in the main process."""
    return _worker_info


@dataclass
class Fetcher:
    """Makes one batch, in the main process or a worker: from indices for a map-style
    dataset, or the next `batch_size` samples of an iterable one. Without `batched` each
    index or sample is one item, passed through `default_convert`."""

    dataset: object
    collate_fn: object
    batched: bool
    batch_size: int | None
    drop_last: bool
    iterable: bool

    def __post_init__(self):
        self._iterator = None
        self._collate = self.collate_fn or (default_collate if self.batched
                                            else default_convert)

    def fetch(self, indices):
        if self.iterable:
            return self._next_batch()
        if not self.batched:
            return self._collate(self.dataset[indices])
        if self.collate_fn is None and hasattr(self.dataset, "get_batch"):
            return self.dataset.get_batch(np.asarray(indices, dtype=np.int64))
        return self._collate([self.dataset[int(i)] for i in indices])

    def restart(self) -> None:
        self._iterator = iter(self.dataset)

    def _next_batch(self):
        if not self.batched:
            return self._collate(next(self._iterator))
        samples = list(islice(self._iterator, self.batch_size))
        if not samples or (self.drop_last and len(samples) < self.batch_size):
            raise StopIteration
        return self._collate(samples)


@dataclass(frozen=True)
class _ArraySlot:
    index: int


@dataclass(frozen=True)
class _WorkerError:
    worker_id: int
    kind: type
    text: str


def _to_arrays(batch, arrays: list):
    if isinstance(batch, Tensor):
        arrays.append(batch.numpy())
        return _ArraySlot(len(arrays) - 1)
    if isinstance(batch, Mapping):
        return {key: _to_arrays(value, arrays) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_to_arrays(value, arrays) for value in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_arrays(value, arrays) for value in batch)
    return batch


def _from_arrays(batch, arrays: list):
    if isinstance(batch, _ArraySlot):
        return from_numpy(arrays[batch.index])
    if isinstance(batch, Mapping):
        return {key: _from_arrays(value, arrays) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_from_arrays(value, arrays) for value in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(_from_arrays(value, arrays) for value in batch)
    return batch


def _worker_loop(fetcher: Fetcher, worker_id: int, num_workers: int, seed: int,
                 worker_init_fn, tasks, results) -> None:
    global _worker_info
    random.seed(seed)
    np.random.seed(seed % 2**32)
    manual_seed(seed)
    _worker_info = WorkerInfo(worker_id, num_workers, seed, fetcher.dataset)
    init_error = None
    try:
        if worker_init_fn is not None:
            worker_init_fn(worker_id)
    except Exception as error:  # reported with the first task, as PyTorch does
        init_error = _report(worker_id, error)
    while (task := tasks.get()) is not None:
        epoch, index, indices = task
        if index < 0:  # a new epoch of an iterable dataset
            fetcher.restart()
            continue
        try:
            if init_error is not None:
                result = init_error
            else:
                arrays = []
                structure = _to_arrays(fetcher.fetch(indices), arrays)
                result = (structure, arrays)
        except StopIteration:
            result = _EXHAUSTED
        except Exception as error:
            result = _report(worker_id, error)
        results.put((epoch, index, result))


class WorkerPool:
    """`num_workers` processes serving one DataLoader; `run` is one epoch."""

    def __init__(self, fetcher: Fetcher, num_workers: int, base_seed: int, worker_init_fn,
                 context, prefetch_factor: int, timeout: float):
        ctx = context if context is not None and not isinstance(context, str) else \
            multiprocessing.get_context(context)
        self.iterable, self.prefetch, self.timeout = fetcher.iterable, prefetch_factor, timeout
        self.results = ctx.Queue()
        self.task_queues = [ctx.Queue() for _ in range(num_workers)]
        self.workers = [ctx.Process(target=_worker_loop, daemon=True,
                                    args=(fetcher, w, num_workers, base_seed + w, worker_init_fn,
                                          self.task_queues[w], self.results))
                        for w in range(num_workers)]
        for worker in self.workers:
            worker.start()
        self.epoch = 0

    def run(self, index_batches: Iterator | None) -> Iterator:
        """The batches of `index_batches` (None for an iterable dataset), in order."""
        self.epoch += 1
        if self.iterable:
            for tasks in self.task_queues:
                tasks.put((self.epoch, -1, None))
        active = list(range(len(self.workers)))
        in_flight, arrived = {}, {}
        sent = received = turn = 0
        while True:
            while active and len(in_flight) < self.prefetch * len(self.workers):
                indices = None if self.iterable else next(index_batches, None)
                if indices is None and not self.iterable:
                    break
                worker = active[turn % len(active)]
                turn += 1
                self.task_queues[worker].put((self.epoch, sent, indices))
                in_flight[sent] = worker
                sent += 1
            if received not in in_flight:
                return
            while received not in arrived:
                epoch, index, result = self._get()
                if epoch == self.epoch:
                    arrived[index] = result
            result, worker = arrived.pop(received), in_flight.pop(received)
            received += 1
            if isinstance(result, _WorkerError):
                raise _reraise(result)
            if isinstance(result, str):  # _EXHAUSTED: that worker's copy of the stream ended
                if worker in active:
                    active.remove(worker)
                continue
            yield _from_arrays(*result)

    def _get(self):
        started = time.monotonic()
        while True:
            wait = _POLL_S if self.timeout <= 0 else min(_POLL_S, self.timeout)
            try:
                return self.results.get(timeout=wait)
            except queue.Empty:
                if self.timeout > 0 and time.monotonic() - started >= self.timeout:
                    raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds") \
                        from None
                for worker in self.workers:
                    if not worker.is_alive():
                        raise RuntimeError(f"DataLoader worker (pid {worker.pid}) exited "
                                           f"unexpectedly with exit code {worker.exitcode}") \
                            from None

    def shutdown(self) -> None:
        for tasks, worker in zip(self.task_queues, self.workers, strict=True):
            if worker.is_alive():
                tasks.put(None)
        for worker in self.workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
        for q in (*self.task_queues, self.results):
            q.cancel_join_thread()
            q.close()


def _report(worker_id: int, error: Exception) -> _WorkerError:
    kind = type(error)
    try:
        pickle.dumps(kind)  # a class pickles by name: a local one cannot cross the pipe
    except (pickle.PicklingError, AttributeError, TypeError):
        kind = RuntimeError
    return _WorkerError(worker_id, kind, traceback.format_exc())


def _reraise(error: _WorkerError) -> Exception:
    message = (f"Caught {error.kind.__name__} in DataLoader worker process {error.worker_id}.\n"
               f"Original {error.text}")
    try:
        return error.kind(message)
    except Exception:
        return RuntimeError(message)
