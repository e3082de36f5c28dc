"""Built-in datasets that work offline: scikit-learn's digits, MNIST-format files the user
already has, and a character corpus made of the dataset descriptions bundled in scikit-learn.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Sequence
from importlib import resources

import numpy as np

from tinygrad_like.creation import from_numpy
from tinygrad_like.data.dataset import Dataset, TensorDataset
from tinygrad_like.data.loader import DataLoader
from tinygrad_like.tensor import Tensor


def load_digits(split: str = "train", test_fraction: float = 0.2, seed: int = 0,
                flatten: bool = False) -> TensorDataset:
    """scikit-learn's 8x8 handwritten digits: float32 images in [0, 1] and int64 labels.

    Images are (N, 1, 8, 8), or (N, 64) with `flatten`. The train and test splits come
    from one permutation seeded with `seed`, so for a given seed they are disjoint.
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    if split not in ("train", "test"):
        raise ValueError(f"load_digits: split must be 'train' or 'test', got {split!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"load_digits: test_fraction must be in (0, 1), got {test_fraction}")
    digits = sklearn_load_digits()
    images = (digits.images / 16.0).astype(np.float32)  # pixel values are counts 0..16
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = round(len(labels) * test_fraction)
    chosen = order[:n_test] if split == "test" else order[n_test:]
    shape = (len(chosen), 64) if flatten else (len(chosen), 1, 8, 8)
    return TensorDataset(from_numpy(images[chosen].reshape(shape)), from_numpy(labels[chosen]))


# IDX type codes (http://yann.lecun.com/exdb/mnist/): all multi-byte values are big-endian
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_maybe_gzipped(path: str) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(b"\x1f\x8b"):  # the gzip magic, so a renamed file still reads
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise ValueError(f"read_idx: {path} is a damaged or truncated gzip file ({error})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (the MNIST format), gzipped or not, in native byte order."""
    path = os.fspath(path)
    raw = _read_maybe_gzipped(path)
    if len(raw) < 4:
        raise ValueError(f"read_idx: {path} is truncated: {len(raw)} bytes, shorter than the "
                         "4-byte IDX magic number")
    zero, type_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"read_idx: {path} is not an IDX file: magic number 0x{raw[:4].hex()} "
                         "should be 0x0000TTNN with type code TT in "
                         f"{{{', '.join(f'{c:02x}' for c in _IDX_DTYPES)}}} and NN >= 1 dimensions")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"read_idx: {path} is truncated inside its header: {len(raw)} bytes, "
                         f"the header of a {ndim}-dimensional IDX file needs {header_size}")
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = header_size + math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if len(raw) != expected:
        problem = "is truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(f"read_idx: {path} {problem}: {len(raw)} bytes, but a {dtype.name} "
                         f"array of shape {shape} needs {expected}")
    array = np.frombuffer(raw, dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


class MNIST(TensorDataset):
    """MNIST from IDX files in `root` (as published: train-images-idx3-ubyte[.gz], ...).

    Nothing is downloaded. Items are (image, label): float32 (1, 28, 28) in [0, 1] and int64.
    """

    classes: Sequence[str] = tuple(str(digit) for digit in range(10))

    def __init__(self, root: str | os.PathLike, train: bool = True):
        prefix = "train" if train else "t10k"
        images = read_idx(self._find(root, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(self._find(root, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1:
            raise ValueError(f"{type(self).__name__}: expected images of shape (N, H, W) and "
                             f"labels of shape (N,), got {images.shape} and {labels.shape}")
        pixels = (images.astype(np.float32) / 255.0)[:, None]
        super().__init__(from_numpy(pixels), from_numpy(labels.astype(np.int64)))

    @classmethod
    def _find(cls, root: str | os.PathLike, name: str) -> str:
        candidates = [os.path.join(root, name + suffix) for suffix in ("", ".gz")]
        for path in candidates:
            if os.path.isfile(path):
                return path
        raise FileNotFoundError(f"{cls.__name__}: no {name} in {os.fspath(root)!r}; expected "
                                f"one of {[os.path.basename(p) for p in candidates]} (the files "
                                "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                                "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally "
                                ".gz; nothing is downloaded)")


class FashionMNIST(MNIST):
    """Fashion-MNIST, which ships under the same IDX file names as MNIST."""

    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")


class CharCorpus:
    """A text and its character vocabulary, for character-level language models."""

    def __init__(self, text: str):
        if not text:
            raise ValueError("CharCorpus: the text is empty")
        self.text = text
        self.vocab = sorted(set(text))
        self._index = {char: i for i, char in enumerate(self.vocab)}
        self.ids = self._encode_array(text)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _encode_array(self, text: str) -> np.ndarray:
        unknown = set(text) - self._index.keys()
        if unknown:
            raise KeyError(f"CharCorpus.encode: characters {sorted(unknown)} are not in the "
                           "vocabulary")
        return np.fromiter((self._index[c] for c in text), dtype=np.int64, count=len(text))

    def encode(self, text: str) -> Tensor:
        """int64 ids of the characters of `text`."""
        return from_numpy(self._encode_array(text))

    def decode(self, ids: Tensor | Sequence[int] | np.ndarray) -> str:
        """The string whose characters have these ids (a 1-d tensor, list or array)."""
        ids = np.asarray(ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"CharCorpus.decode: expected a 1-d sequence of integer ids, got "
                             f"shape {ids.shape} and dtype {ids.dtype}")
        bad = ids[(ids < 0) | (ids >= self.vocab_size)]
        if bad.size:
            raise IndexError(f"CharCorpus.decode: ids {bad[:5].tolist()} are outside the "
                             f"vocabulary (0..{self.vocab_size - 1})")
        return "".join(self.vocab[i] for i in ids.tolist())

    def batches(self, seq_len: int, batch_size: int, seed: int | None = None) -> DataLoader:
        """Shuffled (input, target) batches of shape (batch_size, seq_len); see CharDataset."""
        return DataLoader(CharDataset(self, seq_len), batch_size, shuffle=True, drop_last=True,
                          seed=seed)


class CharDataset(Dataset):
    """Every window of `seq_len` characters: item i is (ids[i:i+L], ids[i+1:i+L+1]), the
    input and the next character at each position."""

    def __init__(self, corpus: CharCorpus, seq_len: int):
        if not 1 <= seq_len < len(corpus.ids):
            raise ValueError(f"CharDataset: seq_len must be in [1, {len(corpus.ids) - 1}] for a "
                             f"corpus of {len(corpus.ids)} characters, got {seq_len}")
        self.corpus = corpus
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.corpus.ids) - self.seq_len

    def __getitem__(self, index: int) -> tuple:
        if not -len(self) <= index < len(self):
            raise IndexError(f"CharDataset: index {index} is out of range for {len(self)} items")
        start = index % len(self)
        window = self.corpus.ids[start:start + self.seq_len + 1]
        return from_numpy(window[:-1].copy()), from_numpy(window[1:].copy())

    def get_batch(self, indices: np.ndarray) -> list:
        windows = self.corpus.ids[indices[:, None] + np.arange(self.seq_len + 1)]
        return [from_numpy(windows[:, :-1].copy()), from_numpy(windows[:, 1:].copy())]


def char_corpus() -> CharCorpus:
    """English text that ships with scikit-learn: its bundled dataset descriptions (about
    43k characters of reStructuredText), joined in file-name order."""
    folder = resources.files("sklearn.datasets") / "descr"
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".rst"))
    return CharCorpus("\n".join((folder / name).read_text(encoding="utf-8") for name in names))
