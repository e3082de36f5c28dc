"""`make gpu-check`: everything a GPU can tell us, in one command and at most 8 minutes.

On a machine with an NVIDIA GPU (its driver and nvidia-smi), with the Python that runs this:
  1. installs what is missing: the project with its `cuda` and `test` extras (CuPy, Triton,
     pytest, pytest-benchmark, torch); a CPU build of torch already present is kept, and
     the PyTorch comparisons are then skipped and reported as not measured;
  2. runs every `cuda`-marked test (tests/, `-m cuda`);
  3. runs the GPU benchmarks (benchmarks/test_bench_gpu.py), each timed with CUDA events
     over back-to-back launches, the device's copy bandwidth among them;
  4. writes benchmarks/gpu-report.md and benchmarks/gpu-report.json: device, driver and
     versions, every ratio of tinygrad_like to its reference, and pass/fail per target.
Each step gets what is left of the budget; a step that runs out is stopped and reported.
Without a GPU it exits at once with status 2 and says so. Exit status 1: a test failed, a
step did not finish, or a target was missed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 480.0
INSTALL_S, TESTS_S = 150.0, 150.0  # caps; the benchmarks get the rest
NEEDED = ("cupy", "triton", "torch", "pytest", "pytest_benchmark")
# (name, group prefix, what ours is compared with, minimum ratio): issue 20's targets on an
# H100. A ratio is reference time / our time (above 1: we are faster); softmax's reference
# is the device's copy bandwidth, so its ratio is our GB/s over the copy's.
TARGETS = [
    ("matmul fp16 >= 90% of cuBLAS", "gpu matmul 4096^3 float16", "cublas", 0.90),
    ("matmul fp32 >= 90% of cuBLAS", "gpu matmul 4096^3 float32", "cublas", 0.90),
    ("softmax >= 90% of the copy bandwidth", "gpu softmax", "copy", 0.90),
    ("attention forward >= 90% of torch's flash kernel", "gpu attention (4, 16, 4096, 64) "
     "causal float16 forward", "torch", 0.90),
    ("conv2d fp16 forward >= 80% of cuDNN", "gpu conv2d (64, 128, 56, 56) 3x3 float16 "
     "forward", "cudnn", 0.80),
    ("conv2d fp32 forward >= 80% of cuDNN", "gpu conv2d (64, 128, 56, 56) 3x3 float32 "
     "forward", "cudnn", 0.80),
]
SUBJECT = "tinygrad_like"


class NoGPU(RuntimeError):
    pass


def find_gpu(run=subprocess.run) -> dict:
    """{"name", "driver", "compute_capability"} of GPU 0 from nvidia-smi, or raise NoGPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise NoGPU("nvidia-smi is not on PATH")
    query = [smi, "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"]
    try:
        done = run(query, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NoGPU(f"nvidia-smi did not answer: {error}") from None
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise NoGPU(f"nvidia-smi lists no GPU: {(done.stderr or done.stdout).strip()}")
    name, driver, capability = (part.strip() for part in lines[0].split(","))
    return {"name": name, "driver": driver, "compute_capability": capability,
            "count": len(lines)}


def missing_modules() -> list[str]:
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


class Budget:
    def __init__(self, seconds: float, clock=time.monotonic):
        self.clock, self.deadline = clock, clock() + seconds

    def left(self, cap: float = float("inf")) -> float:
        return max(0.0, min(cap, self.deadline - self.clock()))


def run_step(name: str, command: list[str], seconds: float, env=None) -> dict:
    """Run `command` from the repository root for at most `seconds`, echoing its output."""
    print(f"\n== gpu-check: {name} (at most {seconds:.0f} s): {' '.join(command)}", flush=True)
    if seconds < 1:
        return {"step": name, "status": "skipped: no time left", "seconds": 0.0}
    start = time.monotonic()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, timeout=seconds, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    except subprocess.TimeoutExpired as error:
        output = error.stdout if isinstance(error.stdout, str) else ""
        print(output, flush=True)
        return {"step": name, "status": f"timed out after {seconds:.0f} s",
                "seconds": time.monotonic() - start, "tail": output.splitlines()[-5:]}
    print(done.stdout, flush=True)
    lines = done.stdout.splitlines()
    return {"step": name, "status": "passed" if done.returncode == 0 else
            f"failed (exit status {done.returncode})", "seconds": time.monotonic() - start,
            "tail": lines[-5:]}


def versions() -> dict:
    found = {}
    for module in ("cupy", "triton", "torch", "numpy"):
        try:
            imported = __import__(module)
        except Exception as error:  # a broken install is worth reporting, not raising
            found[module] = f"not importable: {error}"
            continue
        found[module] = getattr(imported, "__version__", "?")
    try:
        import cupy

        found["cuda_driver_api"] = cupy.cuda.runtime.driverGetVersion()
        found["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    except Exception as error:
        found["cuda_driver_api"] = f"unknown: {error}"
    try:
        import torch

        found["torch_cuda"] = torch.cuda.is_available()
    except Exception:
        found["torch_cuda"] = False
    return found


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ratios(results: list[dict]) -> list[dict]:
    """Per group and reference library: reference ms / our ms (above 1: ours is faster)."""
    groups: dict[str, dict[str, dict]] = {}
    for result in results:
        groups.setdefault(result["group"], {})[result["library"]] = result
    rows = []
    for group, by_library in groups.items():
        ours = by_library.get(SUBJECT)
        for library, result in by_library.items():
            if library == SUBJECT:
                continue
            rows.append({"group": group, "reference": library, "reference_ms": result["cuda_ms"],
                         "ours_ms": ours["cuda_ms"] if ours else None,
                         "ratio": result["cuda_ms"] / ours["cuda_ms"] if ours else None})
    return rows


def copy_bandwidth(results: list[dict]) -> float | None:
    """The faster of the copy cases' GB/s (read + write bytes over time)."""
    copies = [r["GB/s"] for r in results if r["group"].startswith("gpu copy")]
    return max(copies) if copies else None


def judge(results: list[dict]) -> list[dict]:
    """Each target with its measured ratio and whether it passed (None: not measured)."""
    rows, bandwidth = ratios(results), copy_bandwidth(results)
    judged = []
    for name, group, reference, minimum in TARGETS:
        if reference == "copy":
            ours = [r for r in results if r["group"].startswith(group)
                    and r["library"] == SUBJECT]
            ratio = ours[0]["GB/s"] / bandwidth if ours and bandwidth else None
        else:
            found = [r["ratio"] for r in rows if r["group"].startswith(group)
                     and r["reference"] == reference and r["ratio"] is not None]
            ratio = found[0] if found else None
        judged.append({"target": name, "group": group, "minimum": minimum, "ratio": ratio,
                       "passed": None if ratio is None else ratio >= minimum})
    return judged


def markdown(report: dict) -> str:
    gpu, found = report["device"], report["versions"]
    lines = ["# GPU check", "",
             f"- date: {report['date']}; command: `make gpu-check`; {report['elapsed_s']:.0f} s",
             f"- device: {gpu.get('name')} (compute capability {gpu.get('compute_capability')},"
             f" {gpu.get('count')} visible), driver {gpu.get('driver')}",
             "- " + ", ".join(f"{key} {value}" for key, value in found.items()), "",
             "## Steps", "", "| step | status | seconds |", "|---|---|---:|"]
    lines += [f"| {s['step']} | {s['status']} | {s['seconds']:.0f} |" for s in report["steps"]]
    lines += ["", "## Targets", "", "| target | ratio | minimum | result |", "|---|---:|---:|---|"]
    for target in report["targets"]:
        ratio = "not measured" if target["ratio"] is None else f"{target['ratio']:.3f}"
        result = {None: "not measured", True: "pass", False: "FAIL"}[target["passed"]]
        lines.append(f"| {target['target']} | {ratio} | {target['minimum']:.2f} | {result} |")
    bandwidth = report["copy_bandwidth_GBps"]
    lines += ["", f"Copy bandwidth: {bandwidth:.0f} GB/s." if bandwidth else "",
              "", "## Every comparison (reference ms / tinygrad_like ms; above 1: ours is "
              "faster)", "", "| group | reference | reference ms | tinygrad_like ms | ratio |",
              "|---|---|---:|---:|---:|"]
    for row in report["ratios"]:
        ours = "-" if row["ours_ms"] is None else f"{row['ours_ms']:.4f}"
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
        lines.append(f"| {row['group']} | {row['reference']} | {row['reference_ms']:.4f} "
                     f"| {ours} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds in all")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "gpu-report"),
                        help="report path without its .md / .json suffix")
    args = parser.parse_args(argv)
    started, budget = time.monotonic(), Budget(args.budget)
    try:
        gpu = find_gpu()
    except NoGPU as error:
        print(f"gpu-check: no NVIDIA GPU here ({error}). Run `make gpu-check` on a machine "
              f"with an NVIDIA GPU and its driver; nothing was installed or run.",
              file=sys.stderr)
        return 2
    print(f"gpu-check: {gpu['name']}, driver {gpu['driver']}", flush=True)
    steps = []
    missing = missing_modules()
    if missing:
        steps.append(run_step(f"install ({', '.join(missing)} missing)",
                              [sys.executable, "-m", "pip", "install", "-e", ".[cuda,test]"],
                              budget.left(INSTALL_S)))
    steps.append(run_step("cuda-marked tests", [sys.executable, "-m", "pytest", "tests", "-m",
                                                "cuda", "-q", "-p", "no:cacheprovider"],
                          budget.left(TESTS_S)))
    with tempfile.TemporaryDirectory() as folder:
        results_file = Path(folder) / "results.jsonl"
        env = dict(os.environ, GPU_CHECK_RESULTS=str(results_file))
        steps.append(run_step("GPU benchmarks", [
            sys.executable, "-m", "pytest", "benchmarks/test_bench_gpu.py", "-m", "cuda", "-q",
            "-p", "no:cacheprovider", "--benchmark-only", "--benchmark-group-by=group"],
            budget.left() - 10, env=env))  # 10 s to write the report
        results = read_results(results_file)
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "device": gpu,
              "versions": versions(), "steps": steps, "results": results,
              "ratios": ratios(results), "copy_bandwidth_GBps": copy_bandwidth(results),
              "targets": judge(results), "elapsed_s": time.monotonic() - started}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"gpu-check: wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    failed = any(step["status"] != "passed" for step in steps)
    missed = any(target["passed"] is False for target in report["targets"])
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
