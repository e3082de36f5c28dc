"""torch.utils.data's API through tinygrad_like.utils.data: samplers, collate, DataLoader
arguments and worker processes, random_split, and tg.Generator, checked against PyTorch."""

import collections
import math

import numpy as np
import pytest
import torch
import torch.utils.data as torch_data

import tinygrad_like as tg
from tinygrad_like.utils import data


def _dataset(n=20):
    return data.TensorDataset(tg.arange(n * 2, dtype=tg.float32).reshape(n, 2), tg.arange(n))


class _Items(data.Dataset):
    """Plain Python items (no get_batch), so batches go through default_collate."""

    def __init__(self, n=23):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        info = data.get_worker_info()
        return {"x": np.full(3, i, dtype=np.float32), "i": i,
                "worker": -1 if info is None else info.id}


class _Stream(data.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        info = data.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))


def test_utils_data_is_the_data_package():
    assert data.DataLoader is tg.data.DataLoader and data.get_worker_info() is None
    assert set(tg.data.__all__) <= set(dir(data))


def test_sequential_and_random_samplers():
    assert list(data.SequentialSampler(range(5))) == [0, 1, 2, 3, 4]
    g = tg.Generator().manual_seed(3)
    order = list(data.RandomSampler(range(10), generator=g))
    assert sorted(order) == list(range(10))
    longer = list(data.RandomSampler(range(4), num_samples=10, generator=g))
    assert len(longer) == 10 and sorted(longer[:8]) == sorted(list(range(4)) * 2)
    assert set(longer[8:]) <= set(range(4)) and len(set(longer[8:])) == 2
    drawn = data.RandomSampler(range(3), replacement=True, num_samples=50, generator=g)
    assert len(drawn) == 50 and set(drawn) == {0, 1, 2}
    with pytest.raises(ValueError, match="num_samples"):
        data.RandomSampler(range(3), num_samples=0)
    with pytest.raises(TypeError, match="replacement"):
        data.RandomSampler(range(3), replacement=1)


def test_subset_random_and_weighted_samplers():
    g = tg.Generator().manual_seed(0)
    assert sorted(data.SubsetRandomSampler([5, 7, 9], generator=g)) == [5, 7, 9]
    weighted = list(data.WeightedRandomSampler([0, 1, 0, 3], 200, generator=g))
    assert set(weighted) == {1, 3} and weighted.count(3) > weighted.count(1)
    unique = list(data.WeightedRandomSampler([1, 1, 1, 1], 4, replacement=False, generator=g))
    assert sorted(unique) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="without replacement"):
        data.WeightedRandomSampler([1, 0], 2, replacement=False)


@pytest.mark.parametrize("n, batch_size, drop_last", [(10, 3, False), (10, 3, True),
                                                      (9, 3, True), (2, 5, False)])
def test_batch_sampler_matches_torch(n, batch_size, drop_last):
    ours = data.BatchSampler(data.SequentialSampler(range(n)), batch_size, drop_last)
    theirs = torch_data.BatchSampler(torch_data.SequentialSampler(range(n)), batch_size,
                                     drop_last)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)


def _structure(batch):
    """Container types, shapes and dtype names, comparable between torch and tinygrad_like."""
    if isinstance(batch, (tg.Tensor, torch.Tensor)):
        return ("tensor", tuple(batch.shape), str(batch.dtype).split(".")[-1])
    if isinstance(batch, dict):
        return {key: _structure(value) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return (type(batch).__name__, [_structure(value) for value in batch])
    return batch


Point = collections.namedtuple("Point", "x y")


def test_default_collate_matches_torch_on_nested_data():
    samples = [{"image": np.full((2, 3), i, dtype=np.float32), "label": i, "weight": 0.5 * i,
                "flag": i % 2 == 0, "name": f"s{i}", "scalar": np.int32(i),
                "pair": (np.arange(2, dtype=np.uint8), [1.0, 2]), "point": Point(i, 1.5)}
               for i in range(4)]
    theirs = torch_data.default_collate(samples)
    ours = data.default_collate([{**s, "pair": s["pair"]} for s in samples])
    assert _structure(ours) == _structure(theirs)
    assert type(ours["point"]) is Point
    for key in ("image", "label", "weight", "flag"):
        np.testing.assert_array_equal(ours[key].numpy(), theirs[key].numpy())
    stacked = data.default_collate([tg.ones(2, 2), tg.zeros(2, 2)])
    assert stacked.shape == (2, 2, 2)


def test_default_convert_matches_torch():
    sample = {"a": np.arange(3), "b": (np.float32(2.0), "s")}
    assert _structure(data.default_convert(sample)) == \
        _structure(torch_data.default_convert(sample))


def test_loader_arguments_and_len():
    ds = _dataset(10)
    assert len(data.DataLoader(ds, batch_size=3)) == 4
    assert len(data.DataLoader(ds, batch_size=3, drop_last=True)) == 3
    batches = data.BatchSampler(data.SequentialSampler(ds), 4, False)
    loader = data.DataLoader(ds, batch_sampler=batches)
    assert len(loader) == 3 and [b[1].tolist() for b in loader][-1] == [8, 9]
    single = list(data.DataLoader(ds, batch_size=None))
    assert len(single) == 10 and single[3][1].item() == 3
    sampled = data.DataLoader(ds, 2, sampler=data.SubsetRandomSampler([1, 4, 6]))
    assert sorted(x for _, y in sampled for x in y.tolist()) == [1, 4, 6]


@pytest.mark.parametrize("kwargs, named", [
    (dict(sampler=data.SequentialSampler(range(4)), shuffle=True), ["sampler", "shuffle"]),
    (dict(batch_sampler=[[0]], batch_size=2), ["batch_sampler", "batch_size"]),
    (dict(batch_sampler=[[0]], shuffle=True), ["batch_sampler", "shuffle"]),
    (dict(batch_sampler=[[0]], sampler=[0]), ["batch_sampler", "sampler"]),
    (dict(batch_sampler=[[0]], drop_last=True), ["batch_sampler", "drop_last"]),
    (dict(batch_size=None, drop_last=True), ["batch_size=None", "drop_last"]),
    (dict(num_workers=-1), ["num_workers"]),
    (dict(prefetch_factor=2), ["prefetch_factor", "num_workers"]),
    (dict(persistent_workers=True), ["persistent_workers", "num_workers"]),
    (dict(seed=1, generator=tg.Generator()), ["seed", "generator"]),
])
def test_loader_mutual_exclusion_errors_name_the_arguments(kwargs, named):
    with pytest.raises(ValueError) as error:
        data.DataLoader(_dataset(4), **kwargs)
    assert "DataLoader" in str(error.value)
    assert all(name in str(error.value) for name in named)


def test_iterable_dataset_rejects_shuffle():
    with pytest.raises(ValueError, match="DataLoader with IterableDataset.*shuffle"):
        data.DataLoader(_Stream(4), shuffle=True)


def _as_lists(loader):
    return [[np.asarray(part).tolist() for part in batch] for batch in loader]


def test_workers_give_the_single_process_batches_in_order():
    ds = _dataset(37)
    single = _as_lists(data.DataLoader(ds, 4, shuffle=True, seed=5))
    workers = data.DataLoader(ds, 4, shuffle=True, seed=5, num_workers=2)
    batches = list(workers)
    assert all(isinstance(part, tg.Tensor) for batch in batches for part in batch)
    assert [[np.asarray(p).tolist() for p in b] for b in batches] == single
    assert batches[0][0].dtype == tg.float32 and batches[0][1].dtype == tg.int64


def test_workers_collate_items_and_have_distinct_seeds():
    items = _Items(23)
    single = list(data.DataLoader(items, 5))
    multi = list(data.DataLoader(items, 5, num_workers=2, prefetch_factor=1))
    assert [b["i"].tolist() for b in multi] == [b["i"].tolist() for b in single]
    assert [sorted(set(b["worker"].tolist())) for b in multi] == [[0], [1], [0], [1], [0]]
    assert all(b["worker"].tolist() == [-1] * len(b["i"]) for b in single)

    seeds = []
    loader = data.DataLoader(_Stream(2), batch_size=None, num_workers=2,
                             worker_init_fn=lambda wid: None)

    class _Seeds(data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            info = data.get_worker_info()
            return np.array([info.id, info.seed, tg.randint(0, 2**30, ()).item()])

    for batch in data.DataLoader(_Seeds(), 1, num_workers=2, generator=tg.Generator()):
        seeds.append(batch[0].tolist())
    (id0, seed0, draw0), (id1, seed1, draw1) = seeds
    assert (id0, id1) == (0, 1) and seed1 == seed0 + 1 and draw0 != draw1
    assert sorted(int(x) for x in loader) == [0, 1]


def test_iterable_dataset_with_workers_splits_by_worker_info():
    single = [b.tolist() for b in data.DataLoader(_Stream(10), 3)]
    assert single == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    multi = [b.tolist() for b in data.DataLoader(_Stream(10), 3, num_workers=2)]
    assert multi == [[0, 2, 4], [1, 3, 5], [6, 8], [7, 9]]  # PyTorch's round-robin order


def test_worker_errors_are_raised_in_the_main_process():
    class _Broken(data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            raise KeyError(f"bad item {i}")

    with pytest.raises(KeyError, match="DataLoader worker process 0"):
        list(data.DataLoader(_Broken(), 2, num_workers=2))


def test_persistent_workers_serve_several_epochs():
    loader = data.DataLoader(_dataset(9), 4, shuffle=True, seed=2, num_workers=2,
                             persistent_workers=True)
    reference = data.DataLoader(_dataset(9), 4, shuffle=True, seed=2)
    for _ in range(2):
        assert _as_lists(loader) == _as_lists(reference)


def test_generator_reproducible_and_independent_of_the_global_one():
    tg.manual_seed(0)
    expected_global = tg.rand(3).tolist()
    tg.manual_seed(0)
    g = tg.Generator().manual_seed(42)
    first = (tg.rand(4, generator=g).tolist(), tg.randn(2, 2, generator=g).tolist(),
             tg.randint(0, 100, (5,), generator=g).tolist(), tg.randperm(6, generator=g).tolist())
    assert tg.rand(3).tolist() == expected_global  # the global generator did not move
    g.manual_seed(42)
    assert (tg.rand(4, generator=g).tolist(), tg.randn(2, 2, generator=g).tolist(),
            tg.randint(0, 100, (5,), generator=g).tolist(),
            tg.randperm(6, generator=g).tolist()) == first
    assert g.initial_seed() == 42 and tg.Generator().manual_seed(1) is not g


def test_generator_state_round_trip_and_seed():
    g = tg.Generator().manual_seed(7)
    tg.rand(2, generator=g)
    state = g.get_state()
    assert state.dtype == tg.uint8 and state.ndim == 1
    after = tg.rand(5, generator=g).tolist()
    other = tg.Generator().set_state(state)
    assert tg.rand(5, generator=other).tolist() == after
    tg.manual_seed(3)
    from_global = tg.Generator().set_state(tg.get_rng_state())
    assert tg.rand(2, generator=from_global).tolist() == tg.rand(2).tolist()
    seed = g.seed()
    assert g.initial_seed() == seed
    with pytest.raises(ValueError):
        g.set_state(tg.tensor(np.frombuffer(b"not a state", dtype=np.uint8)))
    with pytest.raises(NotImplementedError, match="Generator"):
        tg.Generator("cuda")


def test_generator_drives_samplers_and_loader():
    orders = [list(data.RandomSampler(range(12), generator=tg.Generator().manual_seed(9)))
              for _ in range(2)]
    assert orders[0] == orders[1]
    loader_orders = [[y.tolist() for _, y in data.DataLoader(
        _dataset(12), 4, shuffle=True, generator=tg.Generator().manual_seed(9))]
        for _ in range(2)]
    assert loader_orders[0] == loader_orders[1]
    seeded = [y.tolist() for _, y in data.DataLoader(_dataset(12), 4, shuffle=True, seed=9)]
    assert seeded == loader_orders[0]  # seed=s is generator=tg.Generator().manual_seed(s)


def test_random_split_lengths_fractions_and_generator():
    ds = _dataset(10)
    parts = data.random_split(ds, [0.5, 0.3, 0.2], generator=tg.Generator().manual_seed(1))
    assert [len(p) for p in parts] == [5, 3, 2]
    again = data.random_split(ds, [5, 3, 2], generator=tg.Generator().manual_seed(1))
    assert [p.indices.tolist() for p in parts] == [p.indices.tolist() for p in again]
    assert sorted(i for p in parts for i in p.indices.tolist()) == list(range(10))
    uneven = data.random_split(range(7), [0.5, 0.5])
    assert [len(p) for p in uneven] == [len(p) for p in torch_data.random_split(range(7),
                                                                               [0.5, 0.5])]
    with pytest.raises(ValueError, match="random_split"):
        data.random_split(ds, [3, 3])


def test_concat_dataset_and_subset():
    joined = data.ConcatDataset([range(3), range(10, 14)])
    assert len(joined) == 7 and [joined[i] for i in range(7)] == [0, 1, 2, 10, 11, 12, 13]
    assert joined[-1] == 13 and joined.cumulative_sizes == [3, 7]
    assert len(_dataset(3) + _dataset(4)) == 7
    assert data.Subset(range(10), [4, 2])[1] == 2
    chained = data.ChainDataset([_Stream(2), _Stream(3)])
    assert list(chained) == [0, 1, 0, 1, 2] and len(chained) == 5
    assert math.ceil(5 / 2) == len(data.DataLoader(chained, 2))


def test_unseeded_workers_follow_manual_seed_over_epochs():
    loaders = [data.DataLoader(_dataset(11), 3, shuffle=True, num_workers=workers)
               for workers in (0, 2)]
    runs = []
    for loader in loaders:
        tg.manual_seed(4)
        runs.append([_as_lists(loader) for _ in range(2)] + [tg.rand(2).tolist()])
    assert runs[0] == runs[1]  # same orders, and the global generator left in the same place


def test_spawned_workers():
    loader = data.DataLoader(_Items(6), 2, num_workers=2, multiprocessing_context="spawn")
    assert [b["i"].tolist() for b in loader] == [[0, 1], [2, 3], [4, 5]]
