"""How fast this machine's CPUs run at the moment: a fixed pure-Python loop, timed on each CPU.

    python benchmarks/machine_probe.py 20   # each CPU's probe, second by second, for 20 s

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
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", type=int, nargs="?", default=20)
    watch(parser.parse_args().seconds)
