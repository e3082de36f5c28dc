"""Write tinygrad_like objects in PyTorch's zip checkpoint format, so that
`torch.load(path, weights_only=True)` reads them; torch is not needed to write.

The pickle names torch's functions (`torch._utils._rebuild_tensor_v2`, `torch.FloatStorage`,
...) as GLOBAL opcodes written from text: `TorchName` objects, which the pickler writes as
their name and never looks up. That needs the pure-Python `pickle._Pickler`, whose dispatch
table a subclass may extend; the C pickler insists on importing every global it writes.
Storages are found the way torch finds them: tensors that view one NumPy buffer are written
as views of one storage, with their offsets and strides, so sharing survives the round trip.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import pickle
import struct
import sys
import zipfile
from collections import Counter, OrderedDict

import numpy as np

from tinygrad_like.backend import Device
from tinygrad_like.dtypes import DType
from tinygrad_like.nn.module import Parameter
from tinygrad_like.tensor import Tensor
from tinygrad_like.torch_format.names import STORAGE_OF_DTYPE

_ALIGNMENT = 64  # torch aligns every record's bytes so that storages can be mapped in place
# what torch.load(weights_only=True) reads besides tensors, dtypes and devices
_PLAIN = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray, dict,
                    OrderedDict, Counter, list, tuple, set})
# NumPy scalars, written as the Python numbers they hold
_NUMPY_SCALARS = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                  np.uint32, np.uint64, np.float16, np.float32, np.float64)
# the globals that pickle writes for some of them, and torch admits
_STDLIB_NAMES = (OrderedDict, Counter, set, bytearray, complex, codecs.encode)


class TorchName:
    """A global of torch's, written into the pickle by name."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle asks that a reduce function be callable
        raise TypeError(f"{self.module}.{self.name} exists only in torch")


_REBUILD_TENSOR = TorchName("torch._utils", "_rebuild_tensor_v2")
_REBUILD_PARAMETER = TorchName("torch._utils", "_rebuild_parameter")
_DEVICE = TorchName("torch", "device")
_STORAGE_TYPES = {dtype: TorchName("torch", storage) for dtype, storage in STORAGE_OF_DTYPE.items()}


class _TensorData:
    """A Parameter's data: pickled as a plain tensor that does not require grad, as torch
    pickles `param.data` inside `_rebuild_parameter`."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Tensor):
        self.tensor = tensor


class _Storages:
    """The storages a checkpoint's tensors view, each written once as `data/<key>`."""

    def __init__(self):
        self.records: list[tuple[str, memoryview]] = []
        self._keys: dict[tuple, tuple] = {}  # (id of the buffer, dtype) -> (pid, buffer)

    def locate(self, tensor: Tensor) -> tuple[tuple, int, tuple]:
        """The persistent id of the storage `tensor` views, its offset and its strides (in
        elements)."""
        array, dtype = tensor._array, tensor.dtype
        view = _numpy_view(array) if isinstance(array, np.ndarray) else None
        if view is None:  # a device array, or a view NumPy cannot describe: write a copy
            buffer = np.ascontiguousarray(tensor.backend.to_numpy(array))
            view = buffer, 0, tuple(s // buffer.itemsize for s in buffer.strides)
            owner = array  # the same array object is still one storage
        else:
            owner = view[0]
        buffer, offset, strides = view
        if (id(owner), dtype) not in self._keys:
            key = str(len(self.records))
            location = "cuda:0" if tensor.device.startswith("cuda") else "cpu"
            pid = ("storage", _STORAGE_TYPES[dtype.name], key, location,
                   buffer.nbytes // dtype.itemsize)
            self.records.append((key, memoryview(buffer.reshape(-1, order="A").view(np.uint8))))
            self._keys[id(owner), dtype] = (pid, owner)  # holding `owner` keeps its id unique
        return self._keys[id(owner), dtype][0], offset, strides


def _numpy_view(array: np.ndarray):
    """(buffer, offset, strides) describing `array` as a view of the contiguous NumPy array
    that owns its memory, or None where a torch tensor could not view it that way (negative
    or misaligned strides, a buffer that is itself strided)."""
    root = array
    while isinstance(root.base, np.ndarray):
        root = root.base
    itemsize = array.itemsize
    start = array.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    if (array.size == 0 or not (root.flags.c_contiguous or root.flags.f_contiguous)
            or root.nbytes % itemsize or start < 0 or start % itemsize
            or any(s < 0 or s % itemsize for s in array.strides)):
        return None
    end = start + sum((n - 1) * s for n, s in zip(array.shape, array.strides)) + itemsize
    if end > root.nbytes:
        return None
    return root, start // itemsize, tuple(s // itemsize for s in array.strides)


class _CheckpointPickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, storages: _Storages):
        super().__init__(file, protocol=2)  # torch's DEFAULT_PROTOCOL
        self.storages = storages

    def persistent_id(self, obj):
        is_storage = type(obj) is tuple and len(obj) == 5 and isinstance(obj[1], TorchName)
        return obj if is_storage else None  # the pids that _Storages.locate made

    def reducer_override(self, obj):
        if isinstance(obj, Parameter):
            return _REBUILD_PARAMETER, (_TensorData(obj), obj.requires_grad, OrderedDict())
        if isinstance(obj, (Tensor, _TensorData, np.ndarray)):
            return self._tensor(obj)
        if isinstance(obj, Device):
            if obj.type not in ("cpu", "cuda"):
                raise ValueError(f"save: device {str(obj)!r} has no PyTorch equivalent")
            return _DEVICE, (obj.type,) if obj.index is None else (obj.type, obj.index)
        if type(obj) in _PLAIN or isinstance(obj, (DType, TorchName, *_NUMPY_SCALARS)) or \
                any(obj is name for name in _STDLIB_NAMES):
            return NotImplemented  # pickle's own way, or the dispatch entries below
        raise TypeError(f"save: cannot store a {type(obj).__name__} in a PyTorch checkpoint; "
                        "torch.load(weights_only=True) reads only tensors, dtypes, devices, "
                        "dicts, lists, tuples, sets and plain Python values")

    def _tensor(self, obj):
        requires_grad = isinstance(obj, Tensor) and obj.requires_grad
        tensor = obj.tensor if isinstance(obj, _TensorData) else obj
        if isinstance(tensor, np.ndarray):
            tensor = Tensor._from_data(tensor)  # maps the dtype as tg.tensor does
        pid, offset, strides = self.storages.locate(tensor)
        return _REBUILD_TENSOR, (pid, offset, tuple(tensor.shape), strides, requires_grad,
                                 OrderedDict())

    def _save_torch_name(self, obj: TorchName) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    def _save_dtype(self, obj: DType) -> None:
        self._save_torch_name(TorchName("torch", obj.name))

    def _save_bytes(self, obj: bytes) -> None:
        # as torch writes bytes, also the empty ones (which its own pickler spells as a
        # `bytes()` call that its weights_only loader then refuses)
        self.save_reduce(codecs.encode, (str(obj, "latin1"), "latin1"), obj=obj)

    def _save_numpy_scalar(self, obj: np.generic) -> None:
        self.save(obj.item())  # an lr or a step count kept as a NumPy scalar

    dispatch[TorchName] = _save_torch_name
    dispatch[DType] = _save_dtype
    dispatch[bytes] = _save_bytes
    dispatch.update(dict.fromkeys(_NUMPY_SCALARS, _save_numpy_scalar))


def write_checkpoint(obj, file, archive_name: str = "archive") -> None:
    """Write `obj` to the binary file `file` as torch.save would (its zip format)."""
    storages = _Storages()
    pickled = io.BytesIO()
    _CheckpointPickler(pickled, storages).dump(obj)
    serialization_id = str(int(hashlib.sha256(pickled.getvalue()).hexdigest(), 16))[:40]
    records = [("data.pkl", pickled.getbuffer()), (".format_version", b"1"),
               (".storage_alignment", str(_ALIGNMENT).encode()),
               ("byteorder", sys.byteorder.encode())]
    records += [(f"data/{key}", data) for key, data in storages.records]
    records += [("version", b"3\n"), (".data/serialization_id", serialization_id.encode())]
    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
        for name, data in records:
            archive.writestr(_aligned_entry(file, f"{archive_name}/{name}", len(data)), data)


def _aligned_entry(file, name: str, size: int) -> zipfile.ZipInfo:
    """A zip entry whose bytes start on a multiple of 64 bytes, padded the way torch pads:
    an extra field "FB" in the local header (30 bytes + the name + the extra fields)."""
    entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    try:
        position = file.tell()
    except (AttributeError, OSError):  # a stream: no alignment, which readers do not need
        return entry
    zip64_field = 20 if size * 1.05 > zipfile.ZIP64_LIMIT else 0  # zipfile's own rule
    padding = -(position + 30 + len(name.encode()) + 4 + zip64_field) % _ALIGNMENT
    entry.extra = b"FB" + struct.pack("<H", padding) + b"Z" * padding
    return entry
