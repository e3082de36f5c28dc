"""Scaling curves: how each cost grows with its work, beside PyTorch's, against a physical limit.

    python benchmarks/scaling.py [--quick] [--only per_op,matmul,...] [--out benchmarks/plots]

Parts, each one PNG in --out (and all raw numbers in <out>/scaling.json):

- per_op: one elementwise op's forward (a * b, exp) vs elements, 1 to 10^7; tinygrad_like,
  PyTorch and NumPy against the copy bandwidth (bytes moved / GB/s) and the per-call overhead.
- matmul: float32 n^3 GFLOP/s for n from 64 to 4096 against the machine's FMA peak.
- attention: causal attention fwd+bwd time and peak memory vs sequence length, 256 to 8192;
  time against the FLOP count at peak, memory against O(T) and the O(T^2) score matrix.
- conv2d: 3x3 conv fwd+bwd vs channels C = K, against the FLOP count at peak.
- training: the MLP and CNN steps of test_bench_training.py vs batch size, samples/s.

Every framework runs with the same thread count (BENCH_THREADS, else the CPUs this process may
use), as in conftest.py. --only re-measures some parts and keeps the others' numbers in an
existing scaling.json; each part records the machine and date it was measured on. --quick runs
tiny ranges with one sample each: a check that everything runs, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import scaling_cases
import scaling_plots
from frameworks import bench_threads
from scaling_cases import Timing
from scaling_machine import copy_bandwidth, describe_cpu, fma_peak, machine_title, pinned_threads
from tinygrad_like.backend import native

DEFAULT_OUT = Path(__file__).resolve().parent / "plots"
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f")


def _powers_of_two_and_midpoints(low: int, high: int) -> list[int]:
    """low, 1.5 low, 2 low, 3 low, 4 low, ... up to high (both powers of two)."""
    sizes = []
    while low <= high:
        sizes += [low, low * 3 // 2] if low < high else [low]
        low *= 2
    return sizes


# each part's keyword arguments for its function in scaling_cases.py
FULL = {
    "per_op": {"sizes": [round(10 ** (half / 2)) for half in range(15)]},  # 1, 3, 10, ... 10^7
    "matmul": {"sizes": _powers_of_two_and_midpoints(64, 4096)},
    "attention": {"lengths": [256, 512, 1024, 2048, 4096, 8192],
                  "memory_lengths": [256, 512, 1024, 2048, 4096, 8192]},
    "conv2d": {"channels": _powers_of_two_and_midpoints(8, 256)},
    "training": {"batch_sizes": [8, 16, 32, 64, 128, 256, 512]},
    "timing": Timing(repeats=7, min_repeats=3, point_budget_s=2.0, min_sample_s=0.005,
                     warmup_s=0.5),
    "bandwidth_bytes": 2**27,  # four times a 32 MiB L3, so the copy streams from memory
    "bandwidth_repeats": 5,
}
QUICK = {
    "per_op": {"sizes": [1, 100]}, "matmul": {"sizes": [32, 64]},
    "attention": {"lengths": [64, 128], "memory_lengths": [128]},
    "conv2d": {"channels": [4]}, "training": {"batch_sizes": [4]},
    "timing": Timing(repeats=1, min_repeats=1, point_budget_s=0.0, min_sample_s=0.0,
                     warmup_s=0.0),
    "bandwidth_bytes": 2**22, "bandwidth_repeats": 1,
}
MEASURE = {part: getattr(scaling_cases, part)
           for part in ("per_op", "matmul", "attention", "conv2d", "training")}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny ranges, one sample each: checks that everything runs")
    parser.add_argument("--only", default=",".join(MEASURE),
                        help=f"comma-separated parts to measure (default: all of {list(MEASURE)})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for the PNGs and scaling.json (default: benchmarks/plots)")
    args = parser.parse_args(argv)
    args.only = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = sorted(set(args.only) - set(MEASURE))
    if unknown:
        parser.error(f"--only: unknown parts {unknown}; choose from {list(MEASURE)}")
    return args


def describe_machine(plan: dict, threads: int) -> dict:
    cpu = describe_cpu()
    peak = fma_peak(cpu, threads)
    flags = set(cpu.pop("flags"))
    cpu["vector_flags"] = [flag for flag in VECTOR_FLAGS if flag in flags]
    return {"cpu": cpu, "threads": threads, "peak": peak,
            "copy_bandwidth": copy_bandwidth(plan["bandwidth_bytes"], threads,
                                             plan["bandwidth_repeats"]),
            "numpy": np.__version__, "torch": torch.__version__,
            "native_isa": native.build_info()["isa"] if native.available() else None}


def main(argv: list[str] | None = None) -> dict:
    """Measures the chosen parts, writes <out>/scaling.json and one PNG per part; returns the
    JSON's content."""
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    threads = bench_threads()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    json_path = args.out / "scaling.json"
    results = json.loads(json_path.read_text()) if json_path.exists() else {}
    started = time.perf_counter()

    def progress(part: str):
        return lambda line: print(f"[{time.perf_counter() - started:6.1f} s] {part}: {line}",
                                  flush=True)

    with pinned_threads(threads):
        results["machine"] = describe_machine(plan, threads)
        print(f"{results['machine']['peak']['assumption']}; copy bandwidth "
              f"{results['machine']['copy_bandwidth']['gb_per_s']:.1f} GB/s", flush=True)
        title = machine_title(results["machine"]["cpu"], threads, date)
        for part in args.only:
            part_started = time.perf_counter()
            measured = MEASURE[part](**plan[part], timing=plan["timing"],
                                     progress=progress(part))
            results[part] = {**measured, "measured_on": title,
                             "quick": args.quick,
                             "seconds": time.perf_counter() - part_started}
    args.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    for part in args.only:
        path = scaling_plots.DRAW[part](results[part], results["machine"],
                                        args.out / f"scaling_{part}.png")
        print(f"wrote {path}", flush=True)
    print(f"wrote {json_path}; total {time.perf_counter() - started:.1f} s", flush=True)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
