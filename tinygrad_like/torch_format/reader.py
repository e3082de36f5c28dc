"""Read a checkpoint that torch.save wrote (its zip format) into tinygrad_like objects."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
import zipfile
from collections.abc import Mapping

import numpy as np

from tinygrad_like.backend import Device, get_backend
from tinygrad_like.torch_format.names import tinygrad_dtype
from tinygrad_like.torch_format.rebuild import (CorruptContentError, RefusedError, Storage,
                                                UnsupportedContentError, UnsupportedDtypeError)
from tinygrad_like.torch_format.unpickler import RestrictedUnpickler

# torch.save before PyTorch 1.6 (or with _use_new_zipfile_serialization=False) begins with
# this pickled magic number; that format interleaves pickles and raw storages
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

# the unpickler's refusals and what this package cannot hold reach the caller as they are
_DELIBERATE = (RefusedError, UnsupportedContentError, UnsupportedDtypeError)
# what a damaged pickle or zip makes the unpickler, zipfile or NumPy raise
_DAMAGE = (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, ValueError,
           TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError)


class _CallerError(Exception):
    """Carries an error raised by the caller's map_location past the damage handler."""


def read_checkpoint(file, source: str, map_location=None, mmap_path: str | None = None,
                    **pickle_load_args):
    """The object torch.save wrote to `file` (a seekable binary file holding a zip), with
    each tensor on the device `map_location` chooses (as torch.load's argument). With
    `mmap_path` (the file's path) the storages are mapped from it, as torch.load(mmap=True)
    maps them: copy-on-write, so writing to a tensor never changes the file."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise ValueError(f"load: {source} is a corrupted or truncated PyTorch checkpoint: "
                         f"{error}") from None
    with archive:
        prefix = _archive_prefix(archive, source)
        try:
            return _unpickle(archive, prefix, source, map_location, mmap_path,
                             pickle_load_args)
        except _DELIBERATE:
            raise
        except _CallerError as wrapper:
            raise wrapper.__cause__ from None
        except _DAMAGE as error:
            detail = "" if isinstance(error, CorruptContentError) else "data.pkl does not parse: "
            raise ValueError(f"load: {source} is a corrupted PyTorch checkpoint: "
                             f"{detail}{error}") from None


def _unpickle(archive: zipfile.ZipFile, prefix: str, source: str, map_location,
              mmap_path: str | None, pickle_load_args: dict):
    byteorder = _record(archive, prefix + "byteorder", default=b"little")
    if byteorder not in (b"little", b"big"):
        raise CorruptContentError(f"unknown byteorder record {byteorder!r}")
    storages: dict[str, Storage] = {}

    def load_storage(key: str, dtype_name: str, numel: int, location: str) -> Storage:
        if key in storages:
            if storages[key].array.dtype != _numpy_dtype(dtype_name):
                raise CorruptContentError(f"storage {key} is read as two different dtypes")
            return storages[key]
        try:
            device = target_device(map_location, location)
        except Exception as error:
            raise _CallerError() from error
        name = f"{prefix}data/{key}"
        raw = _record(archive, name) if mmap_path is None else _mapped(archive, name, mmap_path)
        storages[key] = Storage(key, _elements(raw, dtype_name, numel, byteorder, key), device)
        return storages[key]

    pickled = io.BytesIO(_record(archive, prefix + "data.pkl"))  # checks its CRC up front
    unpickler = RestrictedUnpickler(pickled, source, load_storage,
                                    **{"encoding": "utf-8", **pickle_load_args})
    return unpickler.load()


def target_device(map_location, location: str) -> str:
    """The device a storage saved at `location` ("cpu", "cuda:0") loads to, as torch.load's
    `map_location` says: None (where it was saved), a device, a {saved: target} dict, or a
    function `(storage, location) -> storage` such as `lambda storage, loc: storage`."""
    if map_location is None:
        target = location
    elif isinstance(map_location, (str, Device)):
        target = str(map_location)
    elif isinstance(map_location, Mapping):
        target = str(map_location.get(location, location))
    elif callable(map_location):
        # as in torch, the function is given the storage read onto the CPU
        moved = map_location(_LocatedStorage("cpu"), location)
        target = location if moved is None else getattr(moved, "device", None)
        if not isinstance(target, str):
            raise TypeError(f"load: map_location returned a {type(moved).__name__}; expected "
                            "the storage it was given, or that storage's .cpu() or .cuda()")
    else:
        raise TypeError(f"load: map_location must be None, a device, a dict or a function, "
                        f"got {type(map_location).__name__}")
    try:
        get_backend(target)
    except (RuntimeError, ValueError) as error:
        raise RuntimeError(f"load: a tensor was saved on {location!r} and would load to "
                           f"{target!r}, which is not available ({error}); pass "
                           "map_location='cpu' to load it on the CPU") from None
    return target


class _LocatedStorage:
    """What a map_location function receives in place of torch's storage: it is on the CPU
    and can move itself (`.cpu()`, `.cuda()`, `.to(device)`); the bytes are read after the
    function decides where they go."""

    __slots__ = ("device",)

    def __init__(self, device: str):
        self.device = device

    def cpu(self) -> "_LocatedStorage":
        return _LocatedStorage("cpu")

    def cuda(self, device=None) -> "_LocatedStorage":
        if device is None:
            return _LocatedStorage("cuda")
        return _LocatedStorage(str(Device("cuda", device) if isinstance(device, int)
                                   else Device(device)))

    def to(self, device) -> "_LocatedStorage":
        return _LocatedStorage(str(device))


def _archive_prefix(archive: zipfile.ZipFile, source: str) -> str:
    """The folder every record sits in ("archive/" or the saved file's stem)."""
    names = archive.namelist()
    if any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
        raise ValueError(f"load: {source} is a TorchScript archive (torch.jit.save), which "
                         "holds code; tg.load reads what torch.save writes")
    for name in names:
        folder, _, record = name.partition("/")
        if record == "data.pkl":
            return folder + "/"
    raise ValueError(f"load: {source} is a zip file but not a PyTorch checkpoint (it has no "
                     "data.pkl record)")


def _record(archive: zipfile.ZipFile, name: str, default: bytes | None = None) -> bytes:
    try:
        return archive.read(name)
    except KeyError:
        if default is not None:
            return default
        raise CorruptContentError(f"it has no record {name}") from None
    except (zipfile.BadZipFile, EOFError, OSError) as error:  # a bad CRC, a truncated record
        raise CorruptContentError(f"record {name}: {error}") from None


def _mapped(archive: zipfile.ZipFile, name: str, path: str) -> np.ndarray:
    """A record's bytes mapped copy-on-write from the file (read if it is compressed)."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CorruptContentError(f"it has no record {name}") from None
    if info.compress_type != zipfile.ZIP_STORED or info.file_size == 0:
        return np.frombuffer(bytearray(_record(archive, name)), np.uint8)
    with open(path, "rb") as file:  # the local header's own name and extra field lengths
        file.seek(info.header_offset)
        header = file.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise CorruptContentError(f"record {name} has no local header")
    name_size, extra_size = struct.unpack("<HH", header[26:30])
    start = info.header_offset + 30 + name_size + extra_size
    if start + info.file_size > os.path.getsize(path):
        raise CorruptContentError(f"record {name} reaches past the end of the file")
    return np.memmap(path, np.uint8, mode="c", offset=start, shape=(info.file_size,))


def _numpy_dtype(dtype_name: str) -> np.dtype:
    dtype = tinygrad_dtype(dtype_name)
    if dtype is None or dtype.np_dtype is None:
        raise UnsupportedDtypeError(f"load: the checkpoint holds a tensor of dtype {dtype_name}, "
                                    "which tinygrad_like has no dtype for on the CPU")
    return dtype.np_dtype


def _elements(raw, dtype_name: str, numel: int, byteorder: bytes, key: str):
    """The storage's elements (from bytes, or from mapped ones), writable and in this
    machine's byte order."""
    dtype = _numpy_dtype(dtype_name)
    if len(raw) != numel * dtype.itemsize:
        raise CorruptContentError(f"storage {key} should hold {numel} {dtype_name} elements "
                                  f"({numel * dtype.itemsize} bytes) but has {len(raw)} bytes")
    array = (raw if isinstance(raw, np.ndarray) else np.frombuffer(bytearray(raw), np.uint8))
    array = array.view(dtype)
    if byteorder.decode() != sys.byteorder and dtype.itemsize > 1:
        array.byteswap(inplace=True)
    return array
