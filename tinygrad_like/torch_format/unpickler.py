"""The restricted unpickler for a checkpoint's data.pkl.

A pickle is a program: its GLOBAL opcodes import any name and its REDUCE opcodes call it,
which is how a malicious checkpoint runs `os.system`. This unpickler resolves a global only
from the table below, which holds the names `torch.load(weights_only=True)` admits
(torch/_weights_only_unpickler.py) mapped to tinygrad_like's own code (rebuild.py); it
imports nothing and never calls torch's functions. Every other name raises RefusedError (a
pickle.UnpicklingError) before anything runs. As in torch's unpickler, the opcodes that act
on an object already built (BUILD, SETITEM(S), APPEND(S), ADDITEMS) act only on the
containers they are meant for, so a file cannot set attributes of, say, `tg.float32`.

It subclasses the pure-Python `pickle._Unpickler` because the C one offers no way to
restrict those opcodes; the pickle of a state dict is small (the tensor bytes live
outside it), so the slower interpreter costs little.
"""

from __future__ import annotations

import pickle
from collections import Counter, OrderedDict
from collections.abc import Callable

from tinygrad_like.torch_format import rebuild
from tinygrad_like.torch_format.names import DTYPE_OF_STORAGE, TORCH_DTYPES, tinygrad_dtype
from tinygrad_like.torch_format.rebuild import (CorruptContentError, RefusedError, StorageType,
                                                UnsupportedContentError, UnsupportedDtypeError)

_ADMITTED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "Counter"): Counter,
    ("builtins", "set"): set,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): rebuild.encode,
    ("torch", "Size"): rebuild.size,
    ("torch", "device"): rebuild.device,
    ("torch", "Tensor"): rebuild.TENSOR_TYPE,
    ("torch.nn.parameter", "Parameter"): rebuild.PARAMETER_TYPE,
    ("torch._utils", "_rebuild_tensor"): rebuild.rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild.rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): rebuild.rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): rebuild.rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): rebuild.rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): rebuild.rebuild_from_type_v2,
    ("torch.storage", "UntypedStorage"): StorageType("UntypedStorage", "uint8"),
} | {(module, storage): StorageType(storage, dtype) for storage, dtype in DTYPE_OF_STORAGE.items()
     for module in ("torch", "torch.cuda") if module == "torch" or not storage.startswith("Q")}

_TENSOR_KINDS = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte")
# what torch admits but this package cannot represent, with what it is for
_UNSUPPORTED = {
    ("torch._utils", "_rebuild_qtensor"): "quantized tensors",
    ("torch._utils", "_rebuild_sparse_tensor"): "sparse tensors",
    ("torch._utils", "_rebuild_nested_tensor"): "nested tensors",
    ("torch._utils", "_rebuild_meta_tensor_no_storage"): "meta tensors",
    ("torch._utils", "_rebuild_wrapper_subclass"): "tensor subclasses",
    ("torch._utils", "_rebuild_device_tensor_from_numpy"): "tensors of storage-less devices",
    ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"): "tensors of storage-less "
                                                                 "devices",
    ("torch.serialization", "_get_layout"): "sparse layouts",
    ("torch.storage", "TypedStorage"): "bare TypedStorage objects",
} | {("torch", scheme): "quantized tensors"
     for scheme in ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine",
                    "per_channel_symmetric", "per_channel_affine_float_qparams")
     } | {(module, f"{kind}Tensor"): "legacy tensor types"
          for module in ("torch", "torch.cuda", "torch.sparse", "torch.cuda.sparse")
          for kind in _TENSOR_KINDS + (() if "sparse" in module else ("Bool",))}


class RestrictedUnpickler(pickle._Unpickler):
    """Reads a checkpoint's pickle; `load_storage(key, dtype_name, numel, location)` gives
    the storage a persistent id names, and `source` names the file in error messages."""

    def __init__(self, file, source: str, load_storage: Callable, **kwargs):
        super().__init__(file, **kwargs)
        self.source, self.load_storage = source, load_storage

    def find_class(self, module: str, name: str):
        module = "builtins" if module == "__builtin__" else module  # protocol 2's spelling
        found = _ADMITTED.get((module, name))
        if found is not None:
            return found
        if module == "torch" and name in TORCH_DTYPES:
            dtype = tinygrad_dtype(name)
            if dtype is None or dtype.np_dtype is None:
                raise UnsupportedDtypeError(f"load: {self.source} holds torch.{name}, which "
                                            "tinygrad_like has no dtype for on the CPU")
            return dtype
        if (module, name) in _UNSUPPORTED:
            raise UnsupportedContentError(
                f"load: {self.source} holds {_UNSUPPORTED[module, name]} ({module}.{name}), "
                "which PyTorch's weights_only loader admits but tinygrad_like does not support")
        raise RefusedError(
            f"load: {self.source} asks for the global {module}.{name}, which is refused: "
            "tinygrad_like loads only tensors, containers and plain values (what "
            "torch.load(weights_only=True) admits) and never imports or runs anything a "
            "checkpoint names")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], StorageType) and isinstance(pid[2], str)
                and isinstance(pid[3], str) and type(pid[4]) is int and pid[4] >= 0):
            raise CorruptContentError(f"malformed storage reference {pid!r}")
        _, storage_type, key, location, numel = pid
        return self.load_storage(key, storage_type.dtype_name, numel, location)

    def _refuse(self, opcode: str, target) -> None:
        raise RefusedError(f"load: {self.source}: the pickle applies {opcode} to a "
                                     f"{type(target).__name__}, which is refused (only to "
                                     "the containers it is meant for)")


def _restricted(opcode: str, target_of: Callable, kinds: tuple) -> Callable:
    """The stock handler of `opcode`, run only when the object it acts on is of `kinds`."""
    stock = pickle._Unpickler.dispatch[getattr(pickle, opcode)[0]]

    def handler(self):
        target = target_of(self)
        if type(target) not in kinds:
            self._refuse(opcode, target)
        stock(self)
    return handler


def _below_mark(self):  # the object under the current MARK, which SETITEMS etc. extend
    return self.metastack[-1][-1]


_DICTS = (dict, OrderedDict, Counter)
RestrictedUnpickler.dispatch = dict(pickle._Unpickler.dispatch) | {
    getattr(pickle, opcode)[0]: _restricted(opcode, target_of, kinds)
    for opcode, target_of, kinds in [
        ("BUILD", lambda self: self.stack[-2], (OrderedDict,)),  # state_dict()._metadata
        ("SETITEM", lambda self: self.stack[-3], _DICTS),
        ("SETITEMS", _below_mark, _DICTS),
        ("APPEND", lambda self: self.stack[-2], (list,)),
        ("APPENDS", _below_mark, (list,)),
        ("ADDITEMS", _below_mark, (set,)),
    ]}
