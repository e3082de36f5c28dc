"""One training step of tinygrad_like timed alone, beside an idle PyTorch, or alternating with
PyTorch's step, the way a side-by-side comparison in one process samples them.

    python benchmarks/interleaved.py cnn alternate      # also: alone, idle; --steps N
    python benchmarks/interleaved.py transformer alone

"alone" never imports torch; "idle" imports it and sets its threads but never runs it;
"alternate" runs one PyTorch step after each tinygrad_like step and times both. Prints the
10th/25th/50th/75th/90th percentiles in ms and IQR / median for each, after warm-up steps.
Threads: BENCH_THREADS or the CPUs this process may use, for every pool (conftest.py's rule).
docs/performance.md ("GEMMs on the native pool") has what it measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import frameworks  # noqa: E402  (benchmarks/ is not a package)

PERCENTILES = (10, 25, 50, 75, 90)


def summary(name: str, seconds: list[float]) -> str:
    ms = np.percentile(np.array(seconds) * 1e3, PERCENTILES)
    return (f"{name:14s} ms p10/25/50/75/90 {' '.join(f'{value:6.1f}' for value in ms)}  "
            f"IQR/median {(ms[3] - ms[1]) / ms[2]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["mlp", "cnn", "gru_lm", "transformer"])
    parser.add_argument("mode", choices=["alone", "idle", "alternate"])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from tinygrad_like.backend import native

    threads = frameworks.bench_threads()
    native.set_num_threads(threads)
    threadpool_limits(threads)
    if args.mode != "alone":
        frameworks.load("torch").set_num_threads(threads)
    import test_bench_training as training  # imports torch only when asked for a torch step

    steps = {"tinygrad_like": training.make_step("tinygrad_like", args.workload)}
    if args.mode == "alternate":
        steps["torch"] = training.make_step("torch", args.workload)
    timings = {name: [] for name in steps}
    for index in range(args.warmup + args.steps):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if index >= args.warmup:
                timings[name].append(time.perf_counter() - start)
    print(f"{args.workload}, {args.mode}, {threads} threads, {args.steps} steps")
    for name, seconds in timings.items():
        print(summary(name, seconds))
    assert args.mode != "alone" or "torch" not in sys.modules, "torch was imported"


if __name__ == "__main__":
    main()
