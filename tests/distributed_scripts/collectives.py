"""Every collective against NumPy, run by tests/test_distributed.py under `mpirun -n 2`."""

import numpy as np

import tinygrad_like as tg
from tinygrad_like import distributed as dist

dist.init_process_group("mpi")
rank, size = dist.get_rank(), dist.get_world_size()
DTYPES = {"float32": tg.float32, "float64": tg.float64, "int64": tg.int64}


def data(r: int, shape: tuple, dtype: str, salt: int = 0) -> np.ndarray:
    values = np.random.default_rng(1000 * r + salt).integers(-50, 50, size=shape)
    return values.astype(dtype)


def view(array: np.ndarray, contiguous: bool) -> tg.Tensor:
    """A tensor holding `array`: its own memory, or a strided view into a larger one."""
    if contiguous:
        return tg.from_numpy(array.copy())
    big = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), array.dtype)
    big[..., ::2] = array
    return tg.from_numpy(big)[..., ::2]


def run(start, async_op):
    work = start(async_op)
    if async_op:
        assert work is not None
        work.wait()
        assert work.is_completed()
    else:
        assert work is None


def check(tensor, expected, what):
    np.testing.assert_allclose(np.asarray(tensor), expected, rtol=1e-6, err_msg=what)


checked = 0
for dtype in DTYPES:
    for shape in [(7,), (3, 5)]:
        for contiguous in (True, False):
            for async_op in (False, True):
                what = f"{dtype} {shape} contiguous={contiguous} async={async_op}"
                everyone = [data(r, shape, dtype) for r in range(size)]
                ops = {dist.ReduceOp.SUM: np.sum, dist.ReduceOp.MAX: np.max,
                       dist.ReduceOp.MIN: np.min}
                if dtype != "int64":
                    ops[dist.ReduceOp.AVG] = np.mean
                for op, reduce in ops.items():
                    t = view(everyone[rank], contiguous)
                    run(lambda a: dist.all_reduce(t, op, async_op=a), async_op)
                    check(t, reduce(np.stack(everyone), axis=0), f"all_reduce {op} {what}")
                for src in range(size):
                    t = view(everyone[rank], contiguous)
                    run(lambda a: dist.broadcast(t, src, async_op=a), async_op)
                    check(t, everyone[src], f"broadcast {what}")
                outs = [view(np.zeros(shape, dtype), contiguous) for _ in range(size)]
                t = view(everyone[rank], contiguous)
                run(lambda a: dist.all_gather(outs, t, async_op=a), async_op)
                for r in range(size):
                    check(outs[r], everyone[r], f"all_gather {what}")
                out = view(np.zeros((size * shape[0],) + shape[1:], dtype), contiguous)
                run(lambda a: dist.all_gather_into_tensor(out, t, async_op=a), async_op)
                check(out, np.concatenate(everyone), f"all_gather_into_tensor {what}")
                pieces = [[data(r, shape, dtype, salt=1 + i) for i in range(size)]
                          for r in range(size)]
                out = view(np.zeros(shape, dtype), contiguous)
                inputs = [view(p, contiguous) for p in pieces[rank]]
                run(lambda a: dist.reduce_scatter(out, inputs, async_op=a), async_op)
                check(out, sum(pieces[r][rank] for r in range(size)), f"reduce_scatter {what}")
                out = view(np.zeros(shape, dtype), contiguous)
                big = view(np.concatenate(pieces[rank]), contiguous)
                run(lambda a: dist.reduce_scatter_tensor(out, big, async_op=a), async_op)
                check(out, sum(pieces[r][rank] for r in range(size)),
                      f"reduce_scatter_tensor {what}")
                t = view(everyone[rank] if rank == 0 else np.zeros(shape, dtype), contiguous)
                if rank == 0:
                    dist.send(t, 1) if not async_op else dist.isend(t, 1).wait()
                elif rank == 1:
                    assert dist.recv(t, None if async_op else 0) == 0
                    check(t, everyone[0], f"send/recv {what}")
                checked += 1

# a sub-group holding only rank 1: its collectives involve rank 1 alone
solo = dist.new_group([1])
assert (solo is None) == (rank != 1)
if solo is not None:
    t = tg.tensor([1.0, 2.0])
    dist.all_reduce(t, group=solo)
    check(t, [1.0, 2.0], "all_reduce on a one-rank sub-group")
    assert dist.get_world_size(solo) == 1 and dist.get_rank(solo) == 0

# errors that a rank can detect alone, raised before any communication
for call, error in [(lambda: dist.all_reduce(tg.tensor([1, 2]), dist.ReduceOp.AVG), TypeError),
                    (lambda: dist.all_gather([tg.zeros(3)], tg.zeros(3)), ValueError),
                    (lambda: dist.all_gather([tg.zeros(2)] * size, tg.zeros(3)), ValueError),
                    (lambda: dist.broadcast(tg.zeros(3), src=size), ValueError),
                    (lambda: dist.all_gather_into_tensor(tg.zeros(5), tg.zeros(3)), ValueError),
                    (lambda: dist.all_reduce(np.zeros(3)), TypeError)]:
    try:
        call()
    except error as e:
        assert str(e).split(":")[0] in {"all_reduce", "all_gather", "broadcast",
                                        "all_gather_into_tensor"}, e
    else:
        raise AssertionError("expected an error")
dist.barrier()
dist.destroy_process_group()
print(f"rank {rank}: OK ({checked} cases)", flush=True)
