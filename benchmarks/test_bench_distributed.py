"""Data parallelism: DDP training steps on 2 ranks against 1, and all-reduce bandwidth.

Each case launches `mpirun -n R python test_bench_distributed.py ...` (this file is also the
ranks' program), every rank pinned to one thread, and the ranks measure themselves after
warm-up steps; the numbers to read are in each benchmark's extra_info (the time
pytest-benchmark shows includes starting mpirun and Python):
- `samples_per_s`: global batch × steps / time, for test_bench_training.py's CNN and
  Transformer steps with the same global batch (64 and 32), split between the ranks;
- `exposed_comm_ms`: per step, the time backward spends waiting for the gradient
  all-reduces after its last gradient is computed (the communication not hidden behind
  backward; DDP's reducer waits in the hook of the last bucket, then averages the
  gradients, which is not counted);
- `allreduce_in_flight_ms`: per step, the time at least one bucket's all-reduce was in flight,
  from its start to its completion, the first moment the rank sees it done (polled at each
  later bucket's start and then waited for in the last bucket's hook; without an MPI
  progress thread an all-reduce advances only inside such MPI calls anyway);
- `overlap_fraction`: 1 - exposed_comm_ms / allreduce_in_flight_ms, the share of the
  all-reduce time hidden behind backward;
- `tg_GBps` / `mpi4py_GBps`: bytes / time of `tg.distributed.all_reduce` and of mpi4py's own
  `Allreduce(IN_PLACE, ...)` on the same float32 buffers, `tg_us` / `mpi4py_us` the time of
  one call and `tg_over_mpi4py` the bandwidth ratio: the medians of several alternating
  timings of each, so that both see the same noise. Bandwidth is what the large buffers
  measure; at 4 KiB a call's fixed cost is all of its time, and `tg_us - mpi4py_us` is what
  the Tensor API's Python adds to mpi4py's.
Under --benchmark-disable (CI) each case runs once on tiny sizes, so it only proves it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "MKL_NUM_THREADS", "BENCH_THREADS")}


def launch(ranks: int, *args: str) -> dict:
    """Run this file as `ranks` MPI ranks; rank 0's measurements, as a dict."""
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    command = [MPIRUN, *root, "--oversubscribe", "--bind-to", "none", "-n", str(ranks),
               sys.executable, str(HERE), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, **ONE_THREAD})
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


needs_mpi = pytest.mark.skipif(MPIRUN is None, reason="needs mpirun and mpi4py")


@needs_mpi
@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("workload", ["cnn", "transformer"])
def test_ddp_training_step(benchmark, workload, ranks):
    steps, warmup = ("2", "0") if benchmark.disabled else ("30", "5")
    benchmark.group = f"distributed training step: {workload}"
    benchmark.extra_info["ranks"] = ranks
    measured = benchmark.pedantic(launch, (ranks, "train", workload, steps, warmup),
                                  rounds=1, iterations=1)
    benchmark.extra_info.update(measured)
    assert measured["samples_per_s"] > 0


@needs_mpi
@pytest.mark.parametrize("elements", [2**10, 2**16, 2**18, 2**22])
def test_all_reduce_bandwidth(benchmark, elements):
    if benchmark.disabled and elements > 2**10:
        pytest.skip("only the smallest buffer under --benchmark-disable")
    # about 30 ms of calls per timing, seven timings of each
    repeats = "2" if benchmark.disabled else str(max(10, min(2000, 2**24 // (16 * elements))))
    benchmark.group = "all_reduce bandwidth, 2 ranks"
    benchmark.extra_info["bytes"] = 4 * elements
    measured = benchmark.pedantic(launch, (2, "allreduce", str(elements), repeats),
                                  rounds=1, iterations=1)
    benchmark.extra_info.update(measured)
    assert measured["tg_GBps"] > 0 and measured["mpi4py_GBps"] > 0


def train(workload: str, steps: int, warmup: int) -> dict:
    """One rank's DDP training loop; times the steps after `warmup`, the reducer's wait and
    its all-reduces in flight."""
    from test_bench_training import WORKLOADS, batch

    import tinygrad_like as tg
    from tinygrad_like import distributed as dist
    from tinygrad_like.backend import native
    from tinygrad_like.nn.parallel import DistributedDataParallel as DDP

    native.set_num_threads(1)
    dist.init_process_group("mpi")
    rank, size = dist.get_rank(), dist.get_world_size()
    build, optimizer_name, options = WORKLOADS[workload]
    tg.manual_seed(0)
    model = DDP(build(tg))
    optimizer = getattr(tg.optim, optimizer_name)(model.parameters(), **options)
    inputs, targets = batch(workload, np.random.default_rng(0))
    share = len(inputs) // size
    inputs = tg.tensor(inputs[rank * share:(rank + 1) * share])
    per_sample = len(targets) // (share * size)  # the sequence models' targets per sample
    targets = tg.tensor(targets[rank * share * per_sample:(rank + 1) * share * per_sample])
    reducer = model.reducer
    start_bucket, finish = reducer._start, reducer._finish
    intervals: list[list] = []  # this step's buckets: [start, completion or None]
    waited, in_flight = [0.0], [0.0]

    def poll() -> None:
        now = time.perf_counter()
        for work, interval in zip(reducer.works, intervals):
            if interval[1] is None and work.is_completed():
                interval[1] = now

    def timed_start(bucket: int) -> None:
        poll()
        start_bucket(bucket)
        intervals.append([time.perf_counter(), None])

    def timed_finish() -> None:
        start = time.perf_counter()
        poll()
        for work, interval in zip(reducer.works, intervals):
            if interval[1] is None:
                work.wait()
                interval[1] = time.perf_counter()
        waited[0] += time.perf_counter() - start  # the wait only: averaging is not comm
        finish()
        in_flight[0] += union_seconds(intervals)
        intervals.clear()
    reducer._start, reducer._finish = timed_start, timed_finish
    for step in range(warmup + steps):
        if step == warmup:
            dist.barrier()
            start, waited[0], in_flight[0] = time.perf_counter(), 0.0, 0.0
        optimizer.zero_grad()
        tg.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    dist.barrier()
    elapsed = time.perf_counter() - start
    return {"samples_per_s": share * size * steps / elapsed,
            "step_ms": 1e3 * elapsed / steps, "exposed_comm_ms": 1e3 * waited[0] / steps,
            "allreduce_in_flight_ms": 1e3 * in_flight[0] / steps,
            "overlap_fraction": 1 - waited[0] / in_flight[0] if in_flight[0] else None}


def union_seconds(intervals: list[list]) -> float:
    """The length of the union of [start, end] intervals."""
    total, reached = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reached:
            total += end - max(start, reached)
            reached = end
    return total


def all_reduce_bandwidth(elements: int, repeats: int) -> dict:
    import tinygrad_like as tg
    from tinygrad_like import distributed as dist

    dist.init_process_group("mpi")
    from mpi4py import MPI

    array = np.zeros(elements, np.float32)  # sums that stay finite however many calls
    tensor = tg.from_numpy(array)

    def seconds(call) -> float:
        dist.barrier()
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        return (time.perf_counter() - start) / repeats

    def tg_call():
        dist.all_reduce(tensor)

    def mpi4py_call():
        MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, array, MPI.SUM)

    tg_call(), mpi4py_call()  # warm-up
    timings = {"tg": [], "mpi4py": []}
    calls = {"tg": tg_call, "mpi4py": mpi4py_call}
    for turn in range(8):  # alternating, each first in turn, so that both see the same noise
        for name in (("tg", "mpi4py") if turn % 2 == 0 else ("mpi4py", "tg")):
            timings[name].append(seconds(calls[name]))
    tg_seconds, mpi_seconds = (float(np.median(timings[name])) for name in ("tg", "mpi4py"))
    return {"tg_GBps": array.nbytes / tg_seconds / 1e9,
            "mpi4py_GBps": array.nbytes / mpi_seconds / 1e9,
            "tg_us": 1e6 * tg_seconds, "mpi4py_us": 1e6 * mpi_seconds,
            "tg_over_mpi4py": mpi_seconds / tg_seconds}


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "train":
        result = train(rest[0], int(rest[1]), int(rest[2]))
    else:
        result = all_reduce_bandwidth(int(rest[0]), int(rest[1]))
    from tinygrad_like import distributed

    if distributed.get_rank() == 0:
        print(json.dumps(result), flush=True)
