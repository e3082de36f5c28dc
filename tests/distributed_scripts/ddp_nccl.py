"""DistributedDataParallel's reducer on "cuda" parameters over the "nccl" backend, with the
stand-in CuPy of nccl_standin.py, as 2 MPI ranks: buckets are flattened with the parameters'
own array module (CuPy), all-reduced by one NCCL call each on the current stream, and every
gradient comes back averaged, in place of the rank's own."""

import types

import numpy as np
import nccl_standin
from nccl_standin import CALLS, CODES, device

from tinygrad_like import distributed as dist
from tinygrad_like.distributed.process_group import resolve_group
from tinygrad_like.nn.parallel.distributed import _Reducer
from tinygrad_like.tensor import Tensor

cupy = nccl_standin.install()
dist.init_process_group("nccl")
rank, size = dist.get_rank(), dist.get_world_size()
CUDA = types.SimpleNamespace(name="cuda", xp=cupy)


def cuda(array) -> Tensor:
    return Tensor._wrap(device(array), CUDA)


shapes = [(300, 300), (300,), (64, 300), (64,)]  # the last two (77,056 bytes) fill the first bucket
params = [cuda(np.zeros(shape, np.float32)) for shape in shapes]
reducer = _Reducer(params, resolve_group(None, "ddp_nccl"), bucket_cap_bytes=2**20,
                   find_unused=False, first_bucket_bytes=78_000)
# reverse order, the first bucket small; the rest capped at a quarter of the model
assert reducer.buckets == [[3, 2], [1], [0]], reducer.buckets
reducer.arm(None)
for param in reversed(params):  # backward produces the last layer's gradients first
    param.grad = cuda(np.full(param.shape, rank + 1.0, np.float32))
    reducer.mark_ready(param)
for param in params:
    assert isinstance(param.grad._array, nccl_standin.DeviceArray)
    np.testing.assert_array_equal(param.grad._array, np.full(param.shape, 1.5))
reduces = [c for c in CALLS if c[0] == "allReduce"]
assert [c[1] for c in reduces] == [64 * 300 + 64, 300, 300 * 300], reduces
assert all(c[2] == CODES["NCCL_FLOAT32"] and c[3] == CODES["NCCL_SUM"] for c in reduces)
dist.destroy_process_group()
print(f"rank {rank}: OK", flush=True)
