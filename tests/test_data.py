"""Datasets, DataLoader batching/shuffling/collation, and the built-in offline datasets."""

import gzip
import os
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest

import tinygrad_like as tg
from tinygrad_like import data


def _dataset(n=10):
    x = tg.from_numpy(np.arange(n * 3, dtype=np.float32).reshape(n, 3))
    return data.TensorDataset(x, tg.arange(n))


def _labels_in_order(loader):
    return np.concatenate([y.numpy() for _, y in loader])


# ---- TensorDataset, random_split ----------------------------------------------------------
def test_tensor_dataset_items_and_len():
    ds = _dataset(4)
    x, y = ds[2]
    assert len(ds) == 4
    np.testing.assert_array_equal(x.numpy(), [6, 7, 8])
    assert y.item() == 2


def test_tensor_dataset_rejects_mismatched_first_dimensions():
    with pytest.raises(ValueError, match=r"size mismatch.*\[3, 4\]"):
        data.TensorDataset(tg.zeros(3, 2), tg.zeros(4))


def test_random_split_is_disjoint_complete_and_reproducible():
    ds = _dataset(10)
    parts = data.random_split(ds, [6, 4], generator_seed=3)
    ids = [sorted(int(part[i][1].item()) for i in range(len(part))) for part in parts]
    assert [len(p) for p in parts] == [6, 4]
    assert sorted(ids[0] + ids[1]) == list(range(10))
    again = data.random_split(ds, [6, 4], generator_seed=3)
    assert np.array_equal(parts[0].indices, again[0].indices)
    assert [len(p) for p in data.random_split(ds, [0.7, 0.3], generator_seed=0)] == [7, 3]
    with pytest.raises(ValueError, match="sum to"):
        data.random_split(ds, [5, 4])


def test_random_split_without_seed_follows_manual_seed():
    tg.manual_seed(5)
    first = data.random_split(_dataset(10), [5, 5])[0].indices
    tg.manual_seed(5)
    assert np.array_equal(first, data.random_split(_dataset(10), [5, 5])[0].indices)


# ---- DataLoader ---------------------------------------------------------------------------
def test_loader_batches_in_order_with_a_partial_last_batch():
    loader = data.DataLoader(_dataset(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    assert batches[0][1].dtype == tg.int64
    np.testing.assert_array_equal(_labels_in_order(loader), np.arange(10))


def test_loader_drop_last():
    loader = data.DataLoader(_dataset(10), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [y.shape for _, y in loader] == [(4,), (4,)]


def test_shuffle_with_seed_is_a_reproducible_permutation():
    order = _labels_in_order(data.DataLoader(_dataset(50), 8, shuffle=True, seed=7))
    assert sorted(order) == list(range(50)) and not np.array_equal(order, np.arange(50))
    same = _labels_in_order(data.DataLoader(_dataset(50), 8, shuffle=True, seed=7))
    np.testing.assert_array_equal(order, same)
    other = _labels_in_order(data.DataLoader(_dataset(50), 8, shuffle=True, seed=8))
    assert not np.array_equal(order, other)


def test_seeded_epochs_differ_but_repeat_across_loaders():
    first, second = (data.DataLoader(_dataset(50), 50, shuffle=True, seed=1) for _ in range(2))
    epochs = [_labels_in_order(first) for _ in range(2)]
    assert not np.array_equal(*epochs)
    for epoch in epochs:
        np.testing.assert_array_equal(epoch, _labels_in_order(second))


def test_shuffle_seed_gives_the_same_order_in_another_process():
    script = ("import tinygrad_like as tg; from tinygrad_like import data; "
              "ds = data.TensorDataset(tg.arange(30)); "
              "print([int(x) for (b,) in data.DataLoader(ds, 30, shuffle=True, seed=11) "
              "for x in b.tolist()])")
    env = dict(os.environ, PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, check=True).stdout
    ds = data.TensorDataset(tg.arange(30))
    here = [int(x) for (b,) in data.DataLoader(ds, 30, shuffle=True, seed=11) for x in b.tolist()]
    assert out.strip() == str(here)


def test_unseeded_shuffle_follows_manual_seed():
    loader = data.DataLoader(_dataset(40), 8, shuffle=True)
    tg.manual_seed(0)
    a = _labels_in_order(loader)
    tg.manual_seed(0)
    b = _labels_in_order(loader)
    tg.manual_seed(1)
    c = _labels_in_order(loader)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_batch_fast_path_matches_per_item_collate():
    ds = _dataset(23)
    fast = data.DataLoader(ds, 5, shuffle=True, seed=4)
    slow = data.DataLoader(ds, 5, shuffle=True, seed=4, collate_fn=data.default_collate)
    for (fx, fy), (sx, sy) in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(fx.numpy(), sx.numpy())
        np.testing.assert_array_equal(fy.numpy(), sy.numpy())
        assert (fx.dtype, fy.dtype) == (sx.dtype, sy.dtype)


def test_fast_path_through_a_subset():
    train, _ = data.random_split(_dataset(10), [6, 4], generator_seed=0)
    labels = _labels_in_order(data.DataLoader(train, 4))
    np.testing.assert_array_equal(labels, train.indices)


class _Mixed(data.Dataset):
    Pair = namedtuple("Pair", "a b")

    def __getitem__(self, i):
        return (np.full(2, i, dtype=np.float32), i, float(i) / 2, f"s{i}",
                {"k": tg.tensor([i, i])}, self.Pair(True, i))

    def __len__(self):
        return 5


def test_default_collate_of_tuples_numbers_strings_dicts():
    array, ints, floats, strings, mapping, pair = next(iter(data.DataLoader(_Mixed(), 3)))
    assert array.shape == (3, 2) and array.dtype == tg.float32
    assert ints.dtype == tg.int64 and ints.tolist() == [0, 1, 2]
    assert floats.dtype == tg.float64 and floats.tolist() == [0.0, 0.5, 1.0]
    assert strings == ["s0", "s1", "s2"]
    assert mapping["k"].shape == (3, 2)
    assert isinstance(pair, _Mixed.Pair) and pair.a.dtype == tg.bool


def test_custom_collate_fn_gets_the_samples():
    loader = data.DataLoader(_dataset(5), 2, collate_fn=lambda samples: len(samples))
    assert list(loader) == [2, 2, 1]


def test_loader_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(_dataset(), batch_size=0)


# ---- load_digits --------------------------------------------------------------------------
def test_load_digits_shapes_dtypes_and_range():
    train, test = data.load_digits("train"), data.load_digits("test")
    assert len(train) + len(test) == 1797 and len(test) == round(1797 * 0.2)
    images, labels = train.tensors
    assert images.shape == (len(train), 1, 8, 8) and images.dtype == tg.float32
    assert labels.dtype == tg.int64 and set(labels.tolist()) == set(range(10))
    assert images.numpy().min() == 0.0 and images.numpy().max() == 1.0
    assert data.load_digits(flatten=True).tensors[0].shape == (len(train), 64)


def test_load_digits_splits_are_disjoint_and_cover_the_dataset():
    from sklearn.datasets import load_digits

    rows = [data.load_digits(split, flatten=True, seed=2) for split in ("train", "test")]
    ours = np.concatenate([np.c_[ds.tensors[0].numpy() * 16, ds.tensors[1].numpy()]
                           for ds in rows])
    reference = load_digits()
    full = np.c_[reference.data, reference.target]
    # the same multiset of (pixels, label) rows means each sample landed in exactly one split
    np.testing.assert_array_equal(np.unique(ours, axis=0, return_counts=True)[1],
                                  np.unique(full, axis=0, return_counts=True)[1])
    assert len(ours) == len(full)


def test_load_digits_rejects_bad_split():
    with pytest.raises(ValueError, match="split"):
        data.load_digits("val")


# ---- IDX files and MNIST ------------------------------------------------------------------
def _idx_bytes(array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        n.to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def _write(path, payload, gzipped=False):
    path.write_bytes(gzip.compress(payload) if gzipped else payload)
    return path


@pytest.mark.parametrize("gzipped", [False, True])
def test_read_idx_round_trip(tmp_path, gzipped):
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    path = _write(tmp_path / "images.idx", _idx_bytes(images), gzipped)
    np.testing.assert_array_equal(data.read_idx(path), images)
    values = (np.arange(6).reshape(2, 3) / 7).astype(">f4")  # IDX is big-endian
    floats = data.read_idx(_write(tmp_path / "f.idx", _idx_bytes(values, 0x0D), gzipped))
    np.testing.assert_array_equal(floats, values)
    assert floats.dtype == np.float32 and floats.dtype.isnative


@pytest.mark.parametrize("payload, message", [
    (_idx_bytes(np.zeros((4, 3), np.uint8))[:-2], "truncated: 22 bytes.*needs 24"),
    (_idx_bytes(np.zeros((4, 3), np.uint8))[:9], "truncated inside its header"),
    (_idx_bytes(np.zeros((4, 3), np.uint8)) + b"x", "trailing bytes"),
    (b"\x00\x00", "truncated"),
    (b"PK\x03\x04" + bytes(20), "not an IDX file: magic number 0x504b0304"),
    (bytes([0, 0, 0x07, 1, 0, 0, 0, 0]), "not an IDX file"),
], ids=["truncated-data", "truncated-header", "trailing", "tiny", "zip-magic", "bad-type"])
def test_read_idx_errors_name_the_problem(tmp_path, payload, message):
    path = _write(tmp_path / "bad.idx", payload)
    with pytest.raises(ValueError, match=message) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_gzip(tmp_path):
    compressed = gzip.compress(_idx_bytes(np.zeros((40, 30), np.uint8)))
    path = _write(tmp_path / "bad.idx.gz", compressed[: len(compressed) // 2])
    with pytest.raises(ValueError, match="damaged or truncated gzip"):
        data.read_idx(path)


def _write_mnist(root, prefix, n, gzipped):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    suffix = ".gz" if gzipped else ""
    _write(root / f"{prefix}-images-idx3-ubyte{suffix}", _idx_bytes(images), gzipped)
    _write(root / f"{prefix}-labels-idx1-ubyte{suffix}", _idx_bytes(labels), gzipped)
    return images, labels


def test_mnist_reads_standard_file_names(tmp_path):
    images, labels = _write_mnist(tmp_path, "train", 6, gzipped=True)
    _write_mnist(tmp_path, "t10k", 3, gzipped=False)
    train = data.MNIST(tmp_path)
    x, y = train.tensors
    assert len(train) == 6 and x.shape == (6, 1, 28, 28) and x.dtype == tg.float32
    np.testing.assert_allclose(x.numpy()[:, 0] * 255, images, atol=1e-4)
    assert y.dtype == tg.int64 and y.tolist() == labels.tolist()
    assert len(data.FashionMNIST(tmp_path, train=False)) == 3
    assert data.FashionMNIST.classes[9] == "Ankle boot"


def test_mnist_missing_files_list_the_expected_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        data.MNIST(tmp_path)


def test_mnist_rejects_mismatched_counts(tmp_path):
    _write_mnist(tmp_path, "train", 4, gzipped=False)
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(ValueError, match="size mismatch"):
        data.MNIST(tmp_path)


# ---- character corpus ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus():
    return data.char_corpus()


def test_char_corpus_round_trip(corpus):
    assert len(corpus.text) > 10_000
    assert corpus.vocab == sorted(set(corpus.text))
    ids = corpus.encode(corpus.text)
    assert ids.dtype == tg.int64 and ids.shape == (len(corpus.text),)
    assert corpus.decode(ids) == corpus.text
    assert corpus.decode(corpus.encode("digits").tolist()) == "digits"


def test_char_corpus_errors(corpus):
    with pytest.raises(KeyError, match="not in the vocabulary"):
        corpus.encode("\u2603")
    with pytest.raises(IndexError, match="outside the vocabulary"):
        corpus.decode([corpus.vocab_size])


def test_char_dataset_targets_are_the_next_characters(corpus):
    ds = data.CharDataset(corpus, seq_len=12)
    x, y = ds[100]
    assert corpus.decode(x) == corpus.text[100:112]
    assert corpus.decode(y) == corpus.text[101:113]
    assert len(ds) == len(corpus.text) - 12


def test_char_batches_match_items(corpus):
    loader = corpus.batches(seq_len=16, batch_size=4, seed=0)
    x, y = next(iter(loader))
    assert x.shape == y.shape == (4, 16) and x.dtype == tg.int64
    np.testing.assert_array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])
    per_item = data.DataLoader(data.CharDataset(corpus, 16), 4, shuffle=True, seed=0,
                               collate_fn=data.default_collate)
    slow_x, slow_y = next(iter(per_item))
    np.testing.assert_array_equal(x.numpy(), slow_x.numpy())
    np.testing.assert_array_equal(y.numpy(), slow_y.numpy())
