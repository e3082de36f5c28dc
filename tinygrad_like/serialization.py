"""tg.save / tg.load: checkpoints as safetensors files or in PyTorch's own zip format.

safetensors (the default) holds only named arrays plus string metadata and executes nothing
when read, so a checkpoint from an untrusted source is safe to open. Nested containers are
flattened: each tensor is stored under its dotted path (`state.0.exp_avg`), and the
structure around them (dict keys with their types, lists, tuples, plain Python values)
is kept as JSON in the metadata, so `load` rebuilds exactly what was saved. A file
written by another tool (no such metadata) loads as a flat dict of tensors.

PyTorch's format (torch.save's zip, `.pt`/`.pth`) is read and written by
tinygrad_like.torch_format, whose restricted unpickler admits only the tensor-rebuild and
container names that `torch.load(weights_only=True)` admits. `load` tells the formats apart
by their first bytes, whatever the file is called.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping
from typing import BinaryIO

import ml_dtypes
import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

from tinygrad_like.tensor import Tensor
from tinygrad_like.torch_format import LEGACY_MAGIC, read_checkpoint, write_checkpoint
from tinygrad_like.torch_format.reader import target_device

_METADATA_KEY = "tinygrad_like"
_FORMAT_VERSION = 1
_SCALARS = (type(None), bool, int, float, str)  # what JSON round-trips with its type intact
_TORCH_SUFFIXES = (".pt", ".pth")
_FORMATS = ("torch", "safetensors")
_UNPICKLER_ARGS = {"encoding", "errors"}  # torch.load's pickle_load_args that are only decoding


def save(obj, f, *, format: str | None = None) -> None:  # noqa: A002  (the format's name)
    """Write `obj` (a Tensor, or dicts/lists/tuples of Tensors, arrays and plain Python
    values) to `f`, a path or a writable binary file object (io.BytesIO, ...).

    The format is `format` ("torch" or "safetensors") if given. Otherwise a path ending in
    .pt or .pth gets PyTorch's zip format (which torch.load(f, weights_only=True) reads) and
    any other path safetensors; a file object gets PyTorch's format, because a file object
    has no suffix to go by and code ported from PyTorch that writes `torch.save(obj, buffer)`
    hands those bytes to torch.load or to a PyTorch process. Paths are written atomically:
    readers see the old file or the new one, never half.
    """
    if format not in (None, *_FORMATS):
        raise ValueError(f"save: format must be one of {', '.join(_FORMATS)}, got {format!r}")
    if hasattr(f, "write"):
        _writer(obj, format or "torch", "archive")(f)
        return
    path = os.fspath(f)
    stem, suffix = os.path.splitext(os.path.basename(path))
    chosen = format or ("torch" if suffix.lower() in _TORCH_SUFFIXES else "safetensors")
    _write_atomically(path, _writer(obj, chosen, stem or "archive"))


def load(f, map_location=None, pickle_module=None, *, weights_only: bool | None = True,
         mmap: bool | None = None, **pickle_load_args):
    """Read what `save` (or torch.save, or another safetensors writer) wrote to `f`, a path
    or a readable, seekable binary file object.

    `map_location` is torch.load's: None puts each tensor where it was saved (safetensors
    files: on the CPU), a device string or `tg.device` puts all there, a dict maps saved
    locations ("cpu", "cuda:0") to devices, and a function `(storage, location)` returns
    the storage it is given, or its `.cpu()` / `.cuda()`. `mmap=True` maps a PyTorch
    checkpoint's tensors from the file copy-on-write instead of reading them, as torch
    does (a safetensors file is read either way).

    A PyTorch checkpoint's pickle is always read by the restricted unpickler: only tensors,
    containers and plain values load, whatever `weights_only` says, and anything else raises
    pickle.UnpicklingError naming what it refused; tinygrad_like never runs a pickle's code.
    A damaged file raises ValueError naming it; a tensor of a dtype this package cannot hold
    raises TypeError.
    """
    if pickle_module is not None:
        raise RuntimeError("load: pickle_module cannot be given: tinygrad_like reads PyTorch "
                           "checkpoints only with its own restricted unpickler")
    if weights_only is not None and not isinstance(weights_only, bool):
        raise TypeError(f"load: weights_only must be a bool, got {type(weights_only).__name__}")
    unknown = sorted(set(pickle_load_args) - _UNPICKLER_ARGS)
    if unknown:
        raise TypeError(f"load: unexpected keyword arguments {', '.join(unknown)}; the "
                        f"unpickler takes only {', '.join(sorted(_UNPICKLER_ARGS))}")
    if hasattr(f, "read"):
        if mmap:
            raise ValueError("load: mmap=True needs a file path, not a file object")
        return _load_from(f, _name_of(f), map_location, None, pickle_load_args)
    path = os.fspath(f)
    with open(path, "rb") as file:
        return _load_from(file, path, map_location, path if mmap else None, pickle_load_args)


def _load_from(file: BinaryIO, source: str, map_location, mmap_path: str | None,
               pickle_load_args: dict):
    start = file.tell()
    head = file.read(len(LEGACY_MAGIC))
    file.seek(start)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip's first local header, or an empty zip
        return read_checkpoint(file, source, map_location, mmap_path, **pickle_load_args)
    if head == LEGACY_MAGIC:
        raise ValueError(f"load: {source} is in PyTorch's legacy (pre-1.6) format, which "
                         "tinygrad_like does not read; re-save it with a current torch.save")
    return _load_safetensors(file, source, target_device(map_location, "cpu"))


def _load_safetensors(file: BinaryIO, source: str, device: str):
    raw = file.read()
    arrays, header = _read_safetensors(source, raw)
    tensors = {name: _tensor(source, name, arrays[name], device) for name in header
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
        raise ValueError(f"load: {source} has corrupted tinygrad_like metadata: "
                         f"{type(error).__name__}: {error}") from None


def _name_of(file) -> str:
    name = getattr(file, "name", None)
    return name if isinstance(name, str) else f"<{type(file).__name__}>"


def _writer(obj, format: str, archive_name: str) -> Callable[[BinaryIO], None]:  # noqa: A002
    """A function writing `obj` in `format` to a binary file. Either way the object is
    encoded before the first byte is written, so a value that cannot be stored fails
    before the file is touched."""
    if format == "torch":
        return lambda file: write_checkpoint(obj, file, archive_name)
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, [], arrays)
    metadata = {_METADATA_KEY: json.dumps({"version": _FORMAT_VERSION, "tree": tree})}
    payload = safetensors.numpy.save(arrays, metadata=metadata)
    return lambda file: file.write(payload)


def _read_safetensors(path: str, raw: bytes) -> tuple[dict, dict]:
    """The arrays and the JSON header of a safetensors file, or a ValueError naming `path`."""
    try:
        arrays = safetensors.numpy.load(raw)
    except SafetensorError as error:
        raise ValueError(f"load: {path} is not a valid safetensors file (truncated or "
                         f"corrupted?): {error}") from None
    except KeyError:  # a valid file, but a dtype safetensors.numpy has no type for (BF16)
        arrays = None
    # safetensors has validated the header: an 8-byte little-endian length, then JSON
    header_length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_length])
    if arrays is None:
        arrays = _read_arrays(path, raw, header, 8 + header_length)
    return arrays, header


# safetensors' dtype names; BF16 is ml_dtypes' bfloat16, which safetensors.numpy lacks
_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
                       "BF16": ml_dtypes.bfloat16, "I64": np.int64, "I32": np.int32,
                       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _read_arrays(path: str, raw: bytes, header: dict, data_start: int) -> dict[str, np.ndarray]:
    """The arrays of a header safetensors has validated, read by hand (for bfloat16)."""
    arrays = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _SAFETENSORS_DTYPES:  # F8_E4M3, ...
            raise TypeError(f"load: {path} holds a tensor of dtype '{info['dtype']}', which "
                            "NumPy and so tinygrad_like cannot read")
        dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<")
        start, end = info["data_offsets"]
        arrays[name] = np.frombuffer(raw, dtype, (end - start) // dtype.itemsize,
                                     data_start + start).reshape(info["shape"])
    return arrays


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


def _write_atomically(path: str, write: Callable[[BinaryIO], None]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    # same directory, so os.replace is a rename within one filesystem and hence atomic
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "xb") as f:
            write(f)
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
