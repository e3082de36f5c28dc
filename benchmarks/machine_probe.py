"""How fast this machine's CPUs run at the moment: a fixed pure-Python loop, timed on each CPU.

    python benchmarks/machine_probe.py 20           # each CPU's probe, second by second, 20 s
    python benchmarks/machine_probe.py --pool 300   # a 2-thread GEMM in 300 blocks of calls

The benchmark machines are VMs on shared hosts. Each of a VM's CPUs can run at one speed for a
second and at about two thirds of it the next (why is the host's business: another guest on
the same core, its clock), and everything the VM runs slows together: Python, a GEMM, a whole
training step. A case timed across such a change shows a ratio that says nothing about either
framework (docs/performance.md, "The machine's slow stretches"). conftest.py runs this probe
just before and just after each timed case, never during one, and stores the slowest CPU's
time in the case's extra_info; report.py says from them how steady the machine was over each
run.

The probe is a loop of the interpreter itself, with no library, no thread and no memory
beyond the cache: it measures how fast the host is running the CPU, not the framework under
test. It runs pinned to each CPU the process may use in turn, since a 2-thread kernel waits
for its slower core.

`--pool` asks the other question: how often does a kernel on the native pool get all of its
CPUs? It times one GEMM in blocks of calls, on one thread and then on the pool's threads, and
counts the blocks that ran no faster than on one thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

# The Transformer step's (tokens x d_model) @ (d_model x 4 d_model): long enough (about 1.4 ms
# on two threads) that waking the worker is a small part of it
POOL_GEMM = (2048, 128, 512)
LOOP_ITERATIONS = 20_000  # about a millisecond
REPEATS = 3  # the fastest of three: an interrupt in one run is not a slow machine


def _python_loop() -> int:
    total = 0
    for i in range(LOOP_ITERATIONS):
        total += i * i % 7
    return total


def _fastest_loop_us() -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        _python_loop()
        best = min(best, time.perf_counter() - start)
    return best * 1e6


def slowest_cpu_us() -> float:
    """The probe's time in µs on the slowest of the CPUs this thread may run on."""
    if not hasattr(os, "sched_setaffinity"):
        return _fastest_loop_us()
    allowed = os.sched_getaffinity(0)
    times = []
    try:
        for cpu in sorted(allowed):
            os.sched_setaffinity(0, {cpu})  # this thread only; the pools' threads keep theirs
            times.append(_fastest_loop_us())
    finally:
        os.sched_setaffinity(0, allowed)
    return max(times)


def watch(seconds: int) -> None:
    """Print each CPU's median probe in every second of `seconds`, the machine otherwise idle."""
    cpus = sorted(os.sched_getaffinity(0))
    print("second " + " ".join(f"{f'CPU {cpu} µs':>10}" for cpu in cpus))
    for second in range(seconds):
        samples = {cpu: [] for cpu in cpus}
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:
            for cpu in cpus:
                os.sched_setaffinity(0, {cpu})
                samples[cpu].append(_fastest_loop_us())
        os.sched_setaffinity(0, set(cpus))
        print(f"{second:6d} " + " ".join(f"{statistics.median(samples[cpu]):10.0f}"
                                          for cpu in cpus), flush=True)


def gemm_median_ms(a, b, calls: int) -> float:
    """The median ms of `calls` calls of native_blas.matmul(a, b), as tinygrad_like runs it."""
    from tinygrad_like.backend import native_blas

    times = []
    for _ in range(calls):
        start = time.perf_counter()
        native_blas.matmul(a, b)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def pool_gemm_blocks(blocks: int, calls: int = 10) -> tuple[float, list[float]]:
    """(the median ms of POOL_GEMM on one thread, the median ms of each of `blocks` blocks of
    `calls` on the native pool's threads); the pool's thread count is left as it was."""
    import numpy as np

    from tinygrad_like.backend import native

    if not native.available():
        raise RuntimeError(f"the native pool is not in use: {native.reason()}")
    m, k, n = POOL_GEMM
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(shape, dtype=np.float32) for shape in ((m, k), (k, n)))

    def block_ms() -> float:
        return gemm_median_ms(a, b, calls)

    threads = native.get_num_threads()
    try:
        native.set_num_threads(1)
        block_ms()  # warm-up
        one_thread = block_ms()
    finally:
        native.set_num_threads(threads)
    block_ms()
    return one_thread, [block_ms() for _ in range(blocks)]


def watch_pool(blocks: int) -> None:
    """Print how many blocks of POOL_GEMM on the pool ran at one thread's speed."""
    from tinygrad_like.backend import native

    one_thread, pool = pool_gemm_blocks(blocks)
    ordered = sorted(pool)
    deciles = " ".join(f"{ordered[int(q * (len(ordered) - 1))]:.2f}" for q in (0.1, 0.5, 0.9))
    # A 2-thread block slower than 0.85 of one thread's time had, over its calls, about one
    # CPU's worth of the machine
    single = sum(ms >= 0.85 * one_thread for ms in pool)
    print(f"{'x'.join(map(str, POOL_GEMM))} float32: one thread {one_thread:.2f} ms; on "
          f"{native.get_num_threads()} threads, blocks p10/50/90 {deciles} ms; {single} of "
          f"{blocks} blocks at 0.85 of one thread's time or slower")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", type=int, nargs="?", default=20)
    parser.add_argument("--pool", type=int, metavar="BLOCKS",
                        help="time a GEMM on the native pool in BLOCKS blocks of 10 calls")
    arguments = parser.parse_args()
    if arguments.pool:
        watch_pool(arguments.pool)
    else:
        watch(arguments.seconds)
