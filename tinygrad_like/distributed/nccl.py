"""The "nccl" backend: collectives on 'cuda' tensors through CuPy's NCCL bindings.

`init_process_group("nccl")` still runs under mpirun: MPI gives the ranks and carries NCCL's
unique id from rank 0 to the others (NCCL has no rendezvous of its own), then each process
picks the GPU of its node-local rank and joins one `cupy.cuda.nccl.NcclCommunicator` per
process group. Each collective is one NCCL call on the tensor's memory, enqueued on CuPy's
current stream, so work the program enqueues afterwards on that stream is ordered after it
without any host wait; `Work.wait()` therefore blocks nothing (as PyTorch's, which only
orders streams) and `is_completed()` asks an event recorded after the call.
"""

from __future__ import annotations

import numpy as np

from tinygrad_like.distributed.process_group import ReduceOp


def _cupy():
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as error:
        raise RuntimeError("tg.distributed: the 'nccl' backend needs CuPy built with NCCL "
                           "(pip install cupy-cuda12x) and a GPU") from error
    return cupy, nccl


def make_communicator(mpi_comm, node_comm):
    """One NCCL communicator over the ranks of `mpi_comm`, on this node's GPU for this rank
    (`node_comm` holds the ranks that share this node)."""
    cupy, nccl = _cupy()
    cupy.cuda.Device(node_comm.Get_rank() % cupy.cuda.runtime.getDeviceCount()).use()
    unique_id = nccl.get_unique_id() if mpi_comm.Get_rank() == 0 else None
    unique_id = mpi_comm.bcast(unique_id, 0)
    return nccl.NcclCommunicator(mpi_comm.Get_size(), unique_id, mpi_comm.Get_rank())


class StreamWork:
    """A collective enqueued on a stream: later work on that stream already waits for it."""

    def __init__(self, event):
        self._event = event

    def wait(self, timeout=None) -> bool:
        return True

    def is_completed(self) -> bool:
        return self._event.done


def _datatype(array, call: str) -> int:
    _, nccl = _cupy()
    names = {"float16": "NCCL_FLOAT16", "bfloat16": "NCCL_BFLOAT16", "float32": "NCCL_FLOAT32",
             "float64": "NCCL_FLOAT64", "int8": "NCCL_INT8", "uint8": "NCCL_UINT8",
             "int32": "NCCL_INT32", "int64": "NCCL_INT64", "bool": "NCCL_UINT8"}
    name = names.get(np.dtype(array.dtype).name)
    if name is None or not hasattr(nccl, name):
        raise TypeError(f"{call}: NCCL has no datatype for dtype {np.dtype(array.dtype).name}")
    return getattr(nccl, name)


def _op(op: ReduceOp, array, call: str) -> int:
    _, nccl = _cupy()
    if not isinstance(op, ReduceOp):
        raise TypeError(f"{call}: op must be a tg.distributed.ReduceOp, got {op!r}")
    if op is ReduceOp.AVG and np.dtype(array.dtype).kind != "f":
        raise TypeError(f"{call}: ReduceOp.AVG needs a floating-point tensor, got "
                        f"{np.dtype(array.dtype).name}; use ReduceOp.SUM and divide")
    # AVG is a SUM then a division on the same stream: ncclAvg needs NCCL 2.10
    return {ReduceOp.SUM: nccl.NCCL_SUM, ReduceOp.AVG: nccl.NCCL_SUM, ReduceOp.MAX: nccl.NCCL_MAX,
            ReduceOp.MIN: nccl.NCCL_MIN, ReduceOp.PRODUCT: nccl.NCCL_PROD}[op]


def _array(tensor, call: str, what: str = "tensor"):
    from tinygrad_like.tensor import Tensor

    if not isinstance(tensor, Tensor):
        raise TypeError(f"{call}: {what} must be a Tensor, got {type(tensor).__name__}")
    if tensor.device != "cuda":
        raise RuntimeError(f"{call}: the 'nccl' backend works on 'cuda' tensors; {what} is on "
                           f"{tensor.device!r} (move it with .cuda(), or use backend='mpi')")
    return tensor._array


def _pointer(array) -> int:
    return array.__cuda_array_interface__["data"][0]


class _Buffers:
    """Contiguous device buffers for the call's tensors; `finish` writes results back."""

    def __init__(self, tensor, call: str, what: str = "tensor"):
        self.tensor, self.array = tensor, _array(tensor, call, what)
        xp = tensor.backend.xp
        self.buffer = self.array if self.array.flags.c_contiguous else \
            xp.ascontiguousarray(self.array)

    def finish(self, divisor: int = 1) -> None:
        if divisor != 1:
            self.buffer /= divisor
        if self.buffer is not self.array:
            self.array[...] = self.buffer.reshape(self.array.shape)
        self.tensor._bump_version()


def _stream():
    cupy, _ = _cupy()
    return cupy.cuda.get_current_stream()


def _done(stream) -> StreamWork:
    cupy, _ = _cupy()
    event = cupy.cuda.Event(disable_timing=True)
    event.record(stream)
    return StreamWork(event)


def _result(work: StreamWork, async_op: bool) -> StreamWork | None:
    return work if async_op else None


def all_reduce(group, tensor, op: ReduceOp, async_op: bool):
    buffers = _Buffers(tensor, "all_reduce")
    datatype, nccl_op = _datatype(buffers.buffer, "all_reduce"), _op(op, buffers.buffer,
                                                                       "all_reduce")
    stream = _stream()
    group.nccl.allReduce(_pointer(buffers.buffer), _pointer(buffers.buffer),
                         buffers.buffer.size, datatype, nccl_op, stream.ptr)
    buffers.finish(group.size() if op is ReduceOp.AVG else 1)
    return _result(_done(stream), async_op)


def broadcast(group, tensor, root: int, async_op: bool):
    buffers = _Buffers(tensor, "broadcast")
    stream = _stream()
    group.nccl.broadcast(_pointer(buffers.buffer), _pointer(buffers.buffer),
                         buffers.buffer.size, _datatype(buffers.buffer, "broadcast"), root,
                         stream.ptr)
    buffers.finish()
    return _result(_done(stream), async_op)


def all_gather_into(group, output, source, call: str, async_op: bool):
    """`source` (one rank's piece) from every rank into `output`, in rank order."""
    outputs = _Buffers(output, call, "output")
    piece = output.backend.xp.ascontiguousarray(_array(source, call, "input"))
    stream = _stream()
    group.nccl.allGather(_pointer(piece), _pointer(outputs.buffer), piece.size,
                         _datatype(piece, call), stream.ptr)
    outputs.finish()
    return _result(_done(stream), async_op)


def reduce_scatter_from(group, output, source, op: ReduceOp, call: str, async_op: bool):
    """Reduce `source` (every rank's pieces, in rank order) and keep this rank's piece."""
    outputs = _Buffers(output, call, "output")
    pieces = output.backend.xp.ascontiguousarray(_array(source, call, "input"))
    datatype, nccl_op = _datatype(outputs.buffer, call), _op(op, outputs.buffer, call)
    stream = _stream()
    group.nccl.reduceScatter(_pointer(pieces), _pointer(outputs.buffer), outputs.buffer.size,
                             datatype, nccl_op, stream.ptr)
    outputs.finish(group.size() if op is ReduceOp.AVG else 1)
    return _result(_done(stream), async_op)


def send(group, tensor, peer: int) -> StreamWork:
    buffer = tensor.backend.xp.ascontiguousarray(_array(tensor, "send"))
    stream = _stream()
    group.nccl.send(_pointer(buffer), buffer.size, _datatype(buffer, "send"), peer, stream.ptr)
    return _done(stream)


def recv(group, tensor, peer: int) -> StreamWork:
    buffers = _Buffers(tensor, "recv")
    stream = _stream()
    group.nccl.recv(_pointer(buffers.buffer), buffers.buffer.size,
                    _datatype(buffers.buffer, "recv"), peer, stream.ptr)
    buffers.finish()
    return _done(stream)
