"""The "nccl" backend over a stand-in CuPy (nccl_standin.py), as 2 MPI ranks: the results
match NumPy, and each collective makes the expected NCCL call (count, datatype, op, root or
peer) on CuPy's current stream."""

import types

import numpy as np
import nccl_standin
from nccl_standin import CALLS, CODES, device

import tinygrad_like as tg
from tinygrad_like import distributed as dist
from tinygrad_like.tensor import Tensor

cupy = nccl_standin.install()
dist.init_process_group("nccl")
rank, size = dist.get_rank(), dist.get_world_size()
assert dist.get_backend() == "nccl"
init = [c for c in CALLS if c[0] == "init"]
ids = [None] * size
dist.all_gather_object(ids, init[0][2])
assert len(init) == 1 and init[0][1:] == (size, ids[0], rank) and ids == [ids[0]] * size, ids
assert cupy.cuda.used_device == rank  # the node-local rank picks the GPU
CUDA = types.SimpleNamespace(name="cuda", xp=cupy)  # where a 'cuda' tensor's arrays come from


def cuda(array) -> Tensor:
    return Tensor._wrap(device(array), CUDA)


def last(name: str) -> tuple:
    return [c for c in CALLS if c[0] == name][-1]


cupy.cuda.current = nccl_standin.Stream(7000 + rank)
stream = cupy.cuda.current.ptr
F32, F64, I64 = CODES["NCCL_FLOAT32"], CODES["NCCL_FLOAT64"], CODES["NCCL_INT64"]

x = cuda(np.arange(6, dtype=np.float32).reshape(2, 3) + rank)
dist.all_reduce(x)
np.testing.assert_array_equal(x._array, 2 * np.arange(6).reshape(2, 3) + 1)
assert last("allReduce") == ("allReduce", 6, F32, CODES["NCCL_SUM"], stream, True)
assert CALLS[-1] == ("event", stream)

x = cuda(np.full(4, rank + 1.0))
work = dist.all_reduce(x, dist.ReduceOp.AVG, async_op=True)
assert work.wait() and work.is_completed()
np.testing.assert_array_equal(x._array, np.full(4, 1.5))
assert last("allReduce")[1:4] == (4, F64, CODES["NCCL_SUM"])
for op, code, expected in [(dist.ReduceOp.MAX, "NCCL_MAX", 2), (dist.ReduceOp.MIN, "NCCL_MIN", 1),
                           (dist.ReduceOp.PRODUCT, "NCCL_PROD", 2)]:
    x = cuda(np.array([rank + 1], dtype=np.int64))
    dist.all_reduce(x, op)
    assert x._array[0] == expected and last("allReduce")[2:4] == (I64, CODES[code])

base = cuda(np.zeros((3, 4), dtype=np.float32) + 10 * rank)
column = Tensor._wrap(base._array[:, 1], CUDA)  # not contiguous: copied there and back
dist.broadcast(column, src=1)
assert np.all(base._array[:, 1] == 10) and np.all(base._array[:, 0] == 10 * rank)
assert last("broadcast") == ("broadcast", 3, F32, 1, stream, True)

outs = [cuda(np.zeros(2, dtype=np.float32)) for _ in range(size)]
dist.all_gather(outs, cuda(np.full(2, rank, dtype=np.float32)))
assert [o._array.tolist() for o in outs] == [[r, r] for r in range(size)]
assert last("allGather") == ("allGather", 2, F32, stream)
out = cuda(np.zeros(2 * size, dtype=np.float64))
dist.all_gather_into_tensor(out, cuda(np.full(2, rank, dtype=np.float64)))
assert out._array.tolist() == [r for r in range(size) for _ in range(2)]

piece = cuda(np.zeros(3, dtype=np.float32))
dist.reduce_scatter(piece, [cuda(np.full(3, 10 * r + rank, dtype=np.float32))
                            for r in range(size)])
assert piece._array.tolist() == [20 * rank + 1] * 3
assert last("reduceScatter") == ("reduceScatter", 3, F32, CODES["NCCL_SUM"], stream)
dist.reduce_scatter_tensor(piece, cuda(np.arange(3 * size, dtype=np.float32)),
                           dist.ReduceOp.AVG)
assert piece._array.tolist() == list(range(3 * rank, 3 * rank + 3))

if rank == 0:
    dist.send(cuda(np.array([5, 6], dtype=np.int64)), dst=1)
    assert last("send") == ("send", 2, I64, 1, stream)
else:
    got = cuda(np.zeros(2, dtype=np.int64))
    assert dist.recv(got, src=0) == 0 and got._array.tolist() == [5, 6]
    assert last("recv") == ("recv", 2, I64, 0, stream)

for call in (lambda: dist.all_reduce(tg.zeros(3)), lambda: dist.broadcast(tg.zeros(3), 0),
             lambda: dist.all_gather([cuda(np.zeros(3))] * size, tg.zeros(3))):
    try:
        call()
        raise AssertionError("a CPU tensor on an nccl group must raise")
    except RuntimeError as error:
        assert "the 'nccl' backend works on 'cuda' tensors" in str(error), error
        assert "'cpu'" in str(error), error
try:
    dist.recv(cuda(np.zeros(1)))
    raise AssertionError("recv without src must raise on nccl")
except ValueError as error:
    assert "pass src" in str(error)
dist.destroy_process_group()
assert CALLS[-1] == ("destroy",)
print(f"rank {rank}: OK", flush=True)
