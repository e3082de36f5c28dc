"""Collectives on tensors, PyTorch's names and arguments, over MPI's non-blocking calls.

Each call makes one mpi4py buffer-based call on the tensor's own NumPy array, written in
place: the non-blocking one (Iallreduce, Ibcast, ...) with async_op=True, else the blocking
one (Allreduce, Bcast, ...). A non-contiguous view is copied to a contiguous
buffer first and copied back when the request completes. With `async_op=True` the call
returns a `Work` whose `wait()` completes it; otherwise it waits before returning. `src` and
`dst` are ranks of the default group, as in PyTorch, also when `group` is a sub-group.
On a group of the "nccl" backend the tensor collectives go to distributed/nccl.py instead;
the object collectives and `barrier` still go over MPI, which also launched the ranks.
"""

from __future__ import annotations

import numpy as np

from tinygrad_like.distributed import nccl
from tinygrad_like.distributed.process_group import ProcessGroup, ReduceOp, _mpi, resolve_group
from tinygrad_like.tensor import Tensor


class Work:
    """A started collective: `wait()` blocks until it is done (and the tensors hold the
    result), `is_completed()` asks without blocking."""

    def __init__(self, requests: list, finish=None):
        self._requests = requests
        self._finish = finish
        self._done = False

    def _complete(self) -> None:
        self._done = True
        if self._finish is not None:
            self._finish()
            self._finish = None

    def wait(self, timeout=None) -> bool:
        if not self._done:
            _mpi().Request.Waitall(self._requests)
            self._complete()
        return True

    def is_completed(self) -> bool:
        if not self._done and _mpi().Request.Testall(self._requests):
            self._complete()
        return self._done


def _array(tensor, call: str, what: str = "tensor") -> np.ndarray:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{call}: {what} must be a Tensor, got {type(tensor).__name__}")
    if not isinstance(tensor._array, np.ndarray):
        raise RuntimeError(f"{call}: the 'mpi' backend works on CPU tensors; {what} is on "
                           f"{tensor.device!r} (move it with .cpu())")
    if tensor._array.dtype.char not in _mpi()._typedict:
        raise TypeError(f"{call}: MPI has no datatype for {what}'s dtype {tensor.dtype.name}")
    return tensor._array


def _buffer(array: np.ndarray) -> np.ndarray:
    """The array itself when MPI can write into it, else a contiguous copy."""
    return array if array.flags.c_contiguous and array.flags.writeable else \
        np.ascontiguousarray(array)


def _mpi_op(op: ReduceOp, array: np.ndarray, call: str):
    if not isinstance(op, ReduceOp):
        raise TypeError(f"{call}: op must be a tg.distributed.ReduceOp, got {op!r}")
    if op is ReduceOp.AVG and array.dtype.kind != "f":
        raise TypeError(f"{call}: ReduceOp.AVG needs a floating-point tensor, got "
                        f"{array.dtype.name}; use ReduceOp.SUM and divide")
    if not _MPI_OPS:
        MPI = _mpi()
        _MPI_OPS.update({ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.MAX: MPI.MAX,
                         ReduceOp.MIN: MPI.MIN, ReduceOp.PRODUCT: MPI.PROD})
    return _MPI_OPS[op]


_MPI_OPS: dict = {}  # ReduceOp -> MPI.Op, filled on first use (mpi4py loads lazily)


def _write_back(tensor: Tensor, result: np.ndarray, divisor: int = 1):
    """What completes a request: average if asked, then copy into the tensor if MPI wrote
    to a copy, and count the in-place write (autograd checks saved tensors by it)."""
    def finish():
        if divisor != 1:
            np.divide(result, divisor, out=result)
        if result is not tensor._array and not np.shares_memory(result, tensor._array):
            tensor._array[...] = result.reshape(tensor._array.shape)
        tensor._bump_version()
    return finish


def _start(comm, nonblocking: str, async_op: bool, *args) -> list:
    """Start MPI's non-blocking call (`Iallreduce`, ...) for async_op, or make the blocking
    one (`Allreduce`, ...) at once: Open MPI's non-blocking collectives skip the tuned
    algorithms of its blocking ones, which tg.distributed would otherwise lose against
    mpi4py (docs/performance.md, "All-reduce bandwidth")."""
    if async_op:
        return [getattr(comm, nonblocking)(*args)]
    getattr(comm, nonblocking[1:].capitalize())(*args)
    return []


def _run(requests: list, finish, async_op: bool) -> Work | None:
    if async_op:
        return Work(requests, finish)
    finish()  # the blocking call has completed: no request to wait for
    return None


def _group_rank(group: ProcessGroup, rank: int, call: str, what: str) -> int:
    if rank not in group.ranks:
        raise ValueError(f"{call}: {what}={rank} is not a rank of {group}")
    return group.ranks.index(rank)


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group: ProcessGroup | None = None,
               async_op: bool = False) -> Work | None:
    group = resolve_group(group, "all_reduce")
    if group.nccl is not None:
        return nccl.all_reduce(group, tensor, op, async_op)
    array = _array(tensor, "all_reduce")
    mpi_op = _mpi_op(op, array, "all_reduce")
    buffer = _buffer(array)
    requests = _start(group.comm, "Iallreduce", async_op, _mpi().IN_PLACE, buffer, mpi_op)
    divisor = group.size() if op is ReduceOp.AVG else 1
    return _run(requests, _write_back(tensor, buffer, divisor), async_op)


def broadcast(tensor: Tensor, src: int, group: ProcessGroup | None = None,
              async_op: bool = False) -> Work | None:
    group = resolve_group(group, "broadcast")
    root = _group_rank(group, src, "broadcast", "src")
    if group.nccl is not None:
        return nccl.broadcast(group, tensor, root, async_op)
    buffer = _buffer(_array(tensor, "broadcast"))
    requests = _start(group.comm, "Ibcast", async_op, buffer, root)
    return _run(requests, _write_back(tensor, buffer), async_op)


def _check_like(tensors: list, reference: np.ndarray, count: int, call: str, what: str,
                array_of=_array) -> list:
    if len(tensors) != count:
        raise ValueError(f"{call}: {what} has {len(tensors)} tensors; the group has {count} "
                         "ranks")
    arrays = [array_of(t, call, f"{what}[{i}]") for i, t in enumerate(tensors)]
    for i, array in enumerate(arrays):
        if array.shape != reference.shape or array.dtype != reference.dtype:
            raise ValueError(f"{call}: {what}[{i}] has shape {array.shape} and dtype "
                             f"{array.dtype.name}; expected {reference.shape} and "
                             f"{reference.dtype.name} like the input tensor")
    return arrays


def all_gather(tensor_list: list, tensor: Tensor, group: ProcessGroup | None = None,
               async_op: bool = False) -> Work | None:
    group = resolve_group(group, "all_gather")
    if group.nccl is not None:
        return _nccl_all_gather(tensor_list, tensor, group, async_op)
    array = _array(tensor, "all_gather")
    _check_like(tensor_list, array, group.size(), "all_gather", "tensor_list")
    gathered = np.empty((group.size(),) + array.shape, array.dtype)
    requests = _start(group.comm, "Iallgather", async_op, np.ascontiguousarray(array), gathered)

    def finish():
        for i, out in enumerate(tensor_list):
            out._array[...] = gathered[i]
            out._bump_version()
    return _run(requests, finish, async_op)


def _nccl_all_gather(tensor_list: list, tensor: Tensor, group: ProcessGroup,
                     async_op: bool) -> nccl.StreamWork | None:
    """NCCL gathers into one buffer; its pieces are then copied out on the same stream."""
    array = nccl._array(tensor, "all_gather")
    _check_like(tensor_list, array, group.size(), "all_gather", "tensor_list", nccl._array)
    gathered = Tensor._wrap(tensor.backend.xp.empty((group.size(),) + array.shape,
                                                    array.dtype), tensor.backend)
    work = nccl.all_gather_into(group, gathered, tensor, "all_gather", async_op=True)
    for i, out in enumerate(tensor_list):
        out._array[...] = gathered._array[i]
        out._bump_version()
    return work if async_op else None


def _check_sizes(big: np.ndarray, small: np.ndarray, count: int, call: str, names: str) -> None:
    if big.size != small.size * count or big.dtype != small.dtype:
        raise ValueError(f"{call}: {names}: the larger tensor must hold the group's {count} "
                         f"pieces of {small.size} elements with the same dtype; got shapes "
                         f"{big.shape} ({big.dtype.name}) and {small.shape} "
                         f"({small.dtype.name})")


def all_gather_into_tensor(output_tensor: Tensor, input_tensor: Tensor,
                           group: ProcessGroup | None = None,
                           async_op: bool = False) -> Work | None:
    group = resolve_group(group, "all_gather_into_tensor")
    if group.nccl is not None:
        _check_sizes(nccl._array(output_tensor, "all_gather_into_tensor", "output_tensor"),
                     nccl._array(input_tensor, "all_gather_into_tensor", "input_tensor"),
                     group.size(), "all_gather_into_tensor", "output_tensor and input_tensor")
        return nccl.all_gather_into(group, output_tensor, input_tensor,
                                    "all_gather_into_tensor", async_op)
    output = _array(output_tensor, "all_gather_into_tensor", "output_tensor")
    source = _array(input_tensor, "all_gather_into_tensor", "input_tensor")
    _check_sizes(output, source, group.size(), "all_gather_into_tensor",
                 "output_tensor and input_tensor")
    buffer = _buffer(output)
    requests = _start(group.comm, "Iallgather", async_op, np.ascontiguousarray(source), buffer)
    return _run(requests, _write_back(output_tensor, buffer), async_op)


def reduce_scatter(output: Tensor, input_list: list, op: ReduceOp = ReduceOp.SUM,
                   group: ProcessGroup | None = None, async_op: bool = False) -> Work | None:
    group = resolve_group(group, "reduce_scatter")
    if group.nccl is not None:
        array = nccl._array(output, "reduce_scatter", "output")
        pieces = _check_like(input_list, array, group.size(), "reduce_scatter", "input_list",
                             nccl._array)
        stacked = Tensor._wrap(output.backend.xp.stack(pieces), output.backend)
        return nccl.reduce_scatter_from(group, output, stacked, op, "reduce_scatter", async_op)
    array = _array(output, "reduce_scatter", "output")
    pieces = _check_like(input_list, array, group.size(), "reduce_scatter", "input_list")
    mpi_op = _mpi_op(op, array, "reduce_scatter")
    buffer = _buffer(array)
    requests = _start(group.comm, "Ireduce_scatter_block", async_op, np.stack(pieces), buffer,
                      mpi_op)
    divisor = group.size() if op is ReduceOp.AVG else 1
    return _run(requests, _write_back(output, buffer, divisor), async_op)


def reduce_scatter_tensor(output: Tensor, input: Tensor, op: ReduceOp = ReduceOp.SUM,
                          group: ProcessGroup | None = None,
                          async_op: bool = False) -> Work | None:
    group = resolve_group(group, "reduce_scatter_tensor")
    if group.nccl is not None:
        _check_sizes(nccl._array(input, "reduce_scatter_tensor", "input"),
                     nccl._array(output, "reduce_scatter_tensor", "output"), group.size(),
                     "reduce_scatter_tensor", "input and output")
        return nccl.reduce_scatter_from(group, output, input, op, "reduce_scatter_tensor",
                                        async_op)
    array = _array(output, "reduce_scatter_tensor", "output")
    source = _array(input, "reduce_scatter_tensor", "input")
    _check_sizes(source, array, group.size(), "reduce_scatter_tensor", "input and output")
    mpi_op = _mpi_op(op, array, "reduce_scatter_tensor")
    buffer = _buffer(array)
    requests = _start(group.comm, "Ireduce_scatter_block", async_op,
                      np.ascontiguousarray(source), buffer, mpi_op)
    divisor = group.size() if op is ReduceOp.AVG else 1
    return _run(requests, _write_back(output, buffer, divisor), async_op)


def isend(tensor: Tensor, dst: int, group: ProcessGroup | None = None, tag: int = 0) -> Work:
    group = resolve_group(group, "isend")
    peer = _group_rank(group, dst, "isend", "dst")
    if group.nccl is not None:
        return nccl.send(group, tensor, peer)
    buffer = np.ascontiguousarray(_array(tensor, "isend"))
    return Work([group.comm.Isend(buffer, peer, tag)])


def irecv(tensor: Tensor, src: int, group: ProcessGroup | None = None, tag: int = 0) -> Work:
    group = resolve_group(group, "irecv")
    peer = _group_rank(group, src, "irecv", "src")
    if group.nccl is not None:
        return nccl.recv(group, tensor, peer)
    buffer = _buffer(_array(tensor, "irecv"))
    return Work([group.comm.Irecv(buffer, peer, tag)], _write_back(tensor, buffer))


def send(tensor: Tensor, dst: int, group: ProcessGroup | None = None, tag: int = 0) -> None:
    isend(tensor, dst, group, tag).wait()


def recv(tensor: Tensor, src: int | None = None, group: ProcessGroup | None = None,
         tag: int = 0) -> int:
    """Receive into `tensor`; returns the sender's rank (any rank when `src` is None)."""
    group = resolve_group(group, "recv")
    if src is not None:
        irecv(tensor, src, group, tag).wait()
        return src
    if group.nccl is not None:
        raise ValueError("recv: the 'nccl' backend cannot receive from any rank; pass src")
    MPI = _mpi()
    buffer, status = _buffer(_array(tensor, "recv")), MPI.Status()
    group.comm.Recv(buffer, MPI.ANY_SOURCE, tag, status)
    _write_back(tensor, buffer)()
    return group.ranks[status.Get_source()]


def all_gather_object(object_list: list, obj, group: ProcessGroup | None = None) -> None:
    """Gather a picklable object from every rank into `object_list` (one slot per rank)."""
    group = resolve_group(group, "all_gather_object")
    if len(object_list) != group.size():
        raise ValueError(f"all_gather_object: object_list has {len(object_list)} slots; the "
                         f"group has {group.size()} ranks")
    object_list[:] = group.comm.allgather(obj)


def broadcast_object_list(object_list: list, src: int = 0,
                          group: ProcessGroup | None = None) -> None:
    group = resolve_group(group, "broadcast_object_list")
    root = _group_rank(group, src, "broadcast_object_list", "src")
    object_list[:] = group.comm.bcast(object_list, root)
