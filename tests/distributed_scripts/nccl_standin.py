"""A stand-in for CuPy and its NCCL bindings, for testing the "nccl" backend without a GPU.

`install()` puts modules named cupy, cupy.cuda and cupy.cuda.nccl into sys.modules. Device
arrays are NumPy arrays that expose `__cuda_array_interface__`; the stand-in communicator
records every call (name, count, datatype, op or root or peer, stream) in `CALLS` and does
the arithmetic with mpi4py across the mpirun ranks, on NumPy views of the pointers it gets.
"""

import ctypes
import functools
import sys
import types

import numpy as np
from mpi4py import MPI

CALLS: list = []
DTYPES = {"NCCL_INT8": np.int8, "NCCL_UINT8": np.uint8, "NCCL_INT32": np.int32,
          "NCCL_INT64": np.int64, "NCCL_FLOAT16": np.float16, "NCCL_FLOAT32": np.float32,
          "NCCL_FLOAT64": np.float64}
OPS = {"NCCL_SUM": np.add, "NCCL_PROD": np.multiply, "NCCL_MAX": np.maximum,
       "NCCL_MIN": np.minimum}
CODES = {name: code for code, name in enumerate([*DTYPES, *OPS])}


class DeviceArray(np.ndarray):
    @property
    def __cuda_array_interface__(self):
        return self.__array_interface__


def device(array) -> DeviceArray:
    return np.array(array).view(DeviceArray)


def _view(pointer: int, count: int, datatype: int) -> np.ndarray:
    dtype = np.dtype(DTYPES[[n for n, c in CODES.items() if c == datatype][0]])
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(pointer)
    return np.frombuffer(raw, dtype)


def _reduce(comm, array: np.ndarray, op: int) -> np.ndarray:
    """Every rank's `array` reduced in rank order with the NCCL op `op`."""
    return functools.reduce(OPS[[n for n, c in CODES.items() if c == op][0]],
                            comm.allgather(array.copy()))


class NcclCommunicator:
    def __init__(self, ndev: int, comm_id, rank: int):
        self.ndev, self.comm_id, self.rank = ndev, comm_id, rank
        self.comm = MPI.COMM_WORLD
        assert self.comm.Get_size() == ndev and self.comm.Get_rank() == rank
        CALLS.append(("init", ndev, comm_id, rank))

    def allReduce(self, send, recv, count, datatype, op, stream):
        CALLS.append(("allReduce", count, datatype, op, stream, send == recv))
        _view(recv, count, datatype)[:] = _reduce(self.comm, _view(send, count, datatype), op)

    def broadcast(self, send, recv, count, datatype, root, stream):
        CALLS.append(("broadcast", count, datatype, root, stream, send == recv))
        _view(recv, count, datatype)[:] = self.comm.bcast(_view(send, count, datatype).copy(),
                                                          root)

    def allGather(self, send, recv, count, datatype, stream):
        CALLS.append(("allGather", count, datatype, stream))
        pieces = self.comm.allgather(_view(send, count, datatype).copy())
        _view(recv, count * self.ndev, datatype)[:] = np.concatenate(pieces)

    def reduceScatter(self, send, recv, count, datatype, op, stream):
        CALLS.append(("reduceScatter", count, datatype, op, stream))
        total = _reduce(self.comm, _view(send, count * self.ndev, datatype), op)
        _view(recv, count, datatype)[:] = total[self.rank * count:(self.rank + 1) * count]

    def send(self, send, count, datatype, peer, stream):
        CALLS.append(("send", count, datatype, peer, stream))
        self.comm.send(_view(send, count, datatype).copy(), peer)

    def recv(self, recv, count, datatype, peer, stream):
        CALLS.append(("recv", count, datatype, peer, stream))
        _view(recv, count, datatype)[:] = self.comm.recv(source=peer)

    def destroy(self):
        CALLS.append(("destroy",))


class Stream:
    def __init__(self, ptr: int):
        self.ptr = ptr


class Event:
    def __init__(self, disable_timing=False):
        self.done, self.stream = False, None

    def record(self, stream):
        self.stream, self.done = stream, True
        CALLS.append(("event", stream.ptr))


def install() -> types.ModuleType:
    """Register the stand-in modules; returns the stand-in `cupy` (`cupy.cuda.current` is
    the stream that get_current_stream() returns, `cupy.cuda.used_device` the device)."""
    cupy, cuda, nccl = (types.ModuleType(n) for n in ("cupy", "cupy.cuda", "cupy.cuda.nccl"))
    for name, code in CODES.items():
        setattr(nccl, name, code)
    nccl.NcclCommunicator = NcclCommunicator
    nccl.get_unique_id = lambda: tuple(np.random.default_rng().integers(0, 255, 8).tolist())
    cuda.nccl, cuda.current, cuda.used_device = nccl, Stream(0), None
    cuda.get_current_stream = lambda: cuda.current
    cuda.Event = Event
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: 4)

    class Device:
        def __init__(self, index):
            self.index = index

        def use(self):
            cuda.used_device = self.index
    cuda.Device = Device
    cupy.cuda = cuda
    cupy.ascontiguousarray = lambda a: np.ascontiguousarray(a).view(DeviceArray)
    cupy.empty = lambda *args, **kwargs: np.empty(*args, **kwargs).view(DeviceArray)
    cupy.stack = lambda arrays: np.stack(arrays).view(DeviceArray)
    cupy.concatenate = lambda arrays: np.concatenate(arrays).view(DeviceArray)
    cupy.zeros = lambda *args, **kwargs: np.zeros(*args, **kwargs).view(DeviceArray)
    sys.modules.update({"cupy": cupy, "cupy.cuda": cuda, "cupy.cuda.nccl": nccl})
    return cupy
