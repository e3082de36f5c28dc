"""tg.save / tg.load: tensors, state dicts and optimizer states in safetensors files.

safetensors holds only named arrays plus string metadata and executes nothing when
read, so a checkpoint from an untrusted source is safe to open. Nested containers are
flattened: each tensor is stored under its dotted path (`state.0.exp_avg`), and the
structure around them (dict keys with their types, lists, tuples, plain Python values)
is kept as JSON in the metadata, so `load` rebuilds exactly what was saved. A file
written by another tool (no such metadata) loads as a flat dict of tensors.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

from tinygrad_like.backend import get_backend
from tinygrad_like.tensor import Tensor

_METADATA_KEY = "tinygrad_like"
_FORMAT_VERSION = 1
_SCALARS = (type(None), bool, int, float, str)  # what JSON round-trips with its type intact


def save(obj, path: str | os.PathLike) -> None:
    """Write `obj` (a Tensor, or dicts/lists/tuples of Tensors, arrays and plain Python
    values) to `path` atomically: readers see the old file or the new one, never half."""
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, [], arrays)
    metadata = {_METADATA_KEY: json.dumps({"version": _FORMAT_VERSION, "tree": tree})}
    _write_atomically(os.fspath(path), safetensors.numpy.save(arrays, metadata=metadata))


def load(path: str | os.PathLike, device: str = "cpu"):
    """Read what `save` wrote, with every tensor placed on `device`.

    A damaged file raises ValueError naming the path (TypeError for a tensor dtype this
    package cannot hold); whatever loads has the shapes its header declares.
    """
    path = os.fspath(path)
    get_backend(device)  # an unknown device fails here, not as a "corrupted file" below
    with open(path, "rb") as f:
        raw = f.read()
    arrays, header = _read_safetensors(path, raw)
    tensors = {name: _tensor(path, name, arrays[name], device) for name in header
               if name != "__metadata__"}
    stored = (header.get("__metadata__") or {}).get(_METADATA_KEY)
    if stored is None:
        return tensors
    try:
        layout = json.loads(stored)
        if layout["version"] > _FORMAT_VERSION:
            raise ValueError(f"format version {layout['version']} is newer than this "
                             f"tinygrad_like reads ({_FORMAT_VERSION})")
        return _decode(layout["tree"], tensors)
    # RuntimeError: requires_grad on an integer tensor, or (RecursionError) a structure
    # nested deeper than Python's stack; like the rest, only in a forged or damaged file
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"load: {path} has corrupted tinygrad_like metadata: "
                         f"{type(error).__name__}: {error}") from None


def _read_safetensors(path: str, raw: bytes) -> tuple[dict, dict]:
    """The arrays and the JSON header of a safetensors file, or a ValueError naming `path`."""
    try:
        arrays = safetensors.numpy.load(raw)
    except SafetensorError as error:
        raise ValueError(f"load: {path} is not a valid safetensors file (truncated or "
                         f"corrupted?): {error}") from None
    except KeyError as error:  # a valid file, but a dtype NumPy has no type for (BF16, F8)
        raise TypeError(f"load: {path} holds a tensor of dtype {error}, which NumPy and so "
                        "tinygrad_like cannot read") from None
    # safetensors has validated the header: an 8-byte little-endian length, then JSON
    return arrays, json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])


def _tensor(path: str, name: str, array: np.ndarray, device: str) -> Tensor:
    """A writable tensor copy of a loaded buffer, or a TypeError for an unsupported dtype."""
    try:
        return Tensor._from_data(array, device=device)
    except TypeError as error:
        raise TypeError(f"load: tensor {name!r} in {path}: {error}") from None


def _encode(value, keys: list, arrays: dict):
    """The JSON node for `value`; tensors go into `arrays` under their dotted path.

    Plain values are stored as themselves; containers and tensors as objects tagged by
    their kind ({"dict": [[key, node], ...]}, {"list": [...]}, {"tuple": [...]},
    {"tensor": name[, "requires_grad": true]}), so the two never look alike.
    """
    where = ".".join(keys) or "the top level"
    if isinstance(value, np.generic):
        value = value.item()  # NumPy scalars (an lr, a step count) come back as Python numbers
    if isinstance(value, np.ndarray):
        value = Tensor._from_data(value)  # maps the dtype to a tinygrad_like one, as tg.tensor does
    if isinstance(value, Tensor):
        return _encode_tensor(value, ".".join(keys) or "tensor", arrays)
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, _SCALARS):
                raise TypeError(f"save: dict key {key!r} at {where} is a {type(key).__name__}; "
                                "keys must be str, int, float, bool or None")
            items.append([key, _encode(item, keys + [str(key)], arrays)])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {kind: [_encode(item, keys + [str(i)], arrays) for i, item in enumerate(value)]}
    raise TypeError(f"save: cannot store a {type(value).__name__} at {where}; expected Tensors, "
                    "NumPy arrays, dicts, lists, tuples, str, int, float, bool or None")


def _encode_tensor(tensor: Tensor, name: str, arrays: dict) -> dict:
    if name in arrays:
        raise ValueError(f"save: two tensors flatten to the same name {name!r} (a key containing "
                         "'.' collides with a nested one); rename one of them")
    if tensor.dtype.np_dtype is None:
        raise TypeError(f"save: tensor {name!r} has dtype {tensor.dtype.name}, which NumPy "
                        "cannot hold; convert it with .float() first")
    arrays[name] = np.asarray(tensor.detach().numpy(), order="C")  # keeps 0-d shapes
    return {"tensor": name, "requires_grad": True} if tensor.requires_grad else {"tensor": name}


def _decode(node, tensors: dict):
    if not isinstance(node, dict):
        return node
    if "tensor" in node:
        tensor = tensors[node["tensor"]]
        return tensor.requires_grad_() if node.get("requires_grad") else tensor
    if "dict" in node:
        return {key: _decode(item, tensors) for key, item in node["dict"]}
    if "list" in node:
        return [_decode(item, tensors) for item in node["list"]]
    if "tuple" in node:
        return tuple(_decode(item, tensors) for item in node["tuple"])
    raise ValueError(f"unknown node {sorted(node)}")


def _write_atomically(path: str, payload: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    # same directory, so os.replace is a rename within one filesystem and hence atomic
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "xb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    if hasattr(os, "O_DIRECTORY"):  # POSIX: persist the rename itself
        directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
