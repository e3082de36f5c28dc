"""Collation, as torch.utils.data's: `default_collate` turns a list of samples into a batch
of tensors; `default_convert` turns one sample's NumPy arrays into tensors (the collate of a
DataLoader with batch_size=None).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tinygrad_like import dtypes
from tinygrad_like.creation import from_numpy
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
        return from_numpy(np.stack(samples))  # from_numpy keeps every dtype tg has
    if isinstance(first, (bool, int)):
        return Tensor(samples)  # bool or int64, as tensor() infers
    if isinstance(first, float):
        return Tensor(samples, dtype=dtypes.float64)  # PyTorch keeps Python floats in float64
    if isinstance(first, (str, bytes)):
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


def default_convert(sample):
    """NumPy arrays and scalars become tensors, recursively through mappings, namedtuples,
    tuples and lists; everything else (numbers, strings, tensors) is returned unchanged."""
    if isinstance(sample, (np.ndarray, np.generic)) and sample.dtype.kind not in "OSUV":
        return from_numpy(np.asarray(sample))  # shares memory, as torch.as_tensor
    if isinstance(sample, Mapping):
        return {key: default_convert(value) for key, value in sample.items()}
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return type(sample)(*(default_convert(value) for value in sample))
    if isinstance(sample, (tuple, list)):
        return [default_convert(value) for value in sample]
    return sample
