"""`make bench`: the benchmark runs one after another, then benchmarks/RESULTS.md from all of them.

    python benchmarks/run_bench.py              # every run, then the report
    python benchmarks/run_bench.py --report-only  # the report from the JSON files already there

1. same process: every suite, every framework in one process, BENCH_THREADS threads
   (default: the CPUs this process may use) -> benchmarks/results.json
2. separate processes: the framework-comparison suites once per framework, with
   BENCH_FRAMEWORKS naming only it, so no other framework is loaded beside it
   -> benchmarks/results-separate-<framework>.json (jax only where it is installed)
3. one thread: the framework-comparison suites with BENCH_THREADS=1 for every framework, in
   one process -> benchmarks/results-1-thread.json

Runs 2 and 3 repeat workloads the first one measured in full, so they take fewer rounds
(SHORT_RUN). Any run that fails stops the whole.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import frameworks
import report

HERE = Path(__file__).resolve().parent
PEER_SUITES = [str(HERE / name) for name in
               ("test_bench_core.py", "test_bench_kernels.py", "test_bench_training.py")]
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only",
          "--benchmark-group-by=group", "--benchmark-warmup=on",
          "--benchmark-warmup-iterations=20", "--benchmark-columns=median,iqr,rounds"]
SHORT_RUN = ["--benchmark-max-time=0.5"]  # pytest-benchmark's default is 1 s per case
SAME_PROCESS = HERE / "results.json"
ONE_THREAD = HERE / "results-1-thread.json"


def separate_file(name: str) -> Path:
    return HERE / f"results-separate-{name}.json"


def separate_frameworks() -> list[str]:
    return [name for name in frameworks.FRAMEWORKS if name != "jax" or frameworks.installed("jax")]


def pytest_run(json_path: Path, arguments: list[str], **environment: str) -> None:
    print(f"\n== {json_path.name}: {' '.join(f'{k}={v}' for k, v in environment.items())}",
          flush=True)
    command = [*PYTEST, f"--benchmark-json={json_path}", *arguments]
    subprocess.run(command, check=True, cwd=HERE.parent, env={**os.environ, **environment})


def run_all() -> None:
    pytest_run(SAME_PROCESS, [str(HERE)])
    for name in separate_frameworks():
        pytest_run(separate_file(name), SHORT_RUN + PEER_SUITES, BENCH_FRAMEWORKS=name)
    pytest_run(ONE_THREAD, SHORT_RUN + PEER_SUITES, BENCH_THREADS="1")


def write_report(output: Path) -> None:
    separate = [separate_file(name) for name in separate_frameworks()
                if separate_file(name).exists()]
    one_thread = [ONE_THREAD] if ONE_THREAD.exists() else []
    text = report.report(report.load(SAME_PROCESS), [report.load(path) for path in separate],
                         [report.load(path) for path in one_thread])
    output.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true",
                        help="skip the runs; report the JSON files already written")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    if not args.report_only:
        run_all()
    write_report(args.output)


if __name__ == "__main__":
    main()
