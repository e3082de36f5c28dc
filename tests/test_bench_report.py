"""benchmarks/report.py on made-up results: the ratios, and the machine probe's summary.

The probe itself (benchmarks/machine_probe.py) is timed, so only its contract is checked:
a positive time, with the thread's CPUs (or the pool's thread count) restored afterwards.
"""

from __future__ import annotations

import os

import pytest
from benchmark_modules import load

GROUP = "matmul 1024x1024 @ 1024x1024 float32, forward"


@pytest.fixture(scope="module")
def report():
    return load("report")


def case(framework: str, median: float, probe_us: tuple[float, float] | None) -> dict:
    extra = {} if probe_us is None else {"probe_us": list(probe_us)}
    return {"group": GROUP, "name": f"test_matmul_forward[{framework}]",
            "params": {"framework": framework}, "extra_info": extra,
            "stats": {"median": median, "iqr": median / 20, "rounds": 10}}


def results(*cases: dict) -> dict:
    return {"datetime": "2026-12-07T14:00:00", "benchmarks": list(cases),
            "machine_info": {"python_version": "3.11", "cpu": {"brand_raw": "test CPU"},
                             "threads": 2, "frameworks": ["tinygrad_like", "torch"]}}


def summary_cell(text: str) -> str:
    row = next(line for line in text.splitlines() if line.startswith(f"| {GROUP} |"))
    return row.split("|")[2].strip()


def test_ratios_of_each_kind_of_run(report):
    text = report.report(results(case("tinygrad_like", 0.010, None), case("torch", 0.011, None)),
                         separate=[results(case("tinygrad_like", 0.010, None)),
                                   results(case("torch", 0.012, None))])
    assert summary_cell(text) == "0.91 / 0.83"
    assert "| 0.91× |" in text[text.index(f"### {GROUP}"):]


def test_probes_summarised_per_kind_of_run(report):
    # the host slowed for PyTorch's case in the same-process run: 2 of its 4 probes at
    # 1.25x the fastest (900 µs) or slower, none in the separate run's
    text = report.report(results(case("tinygrad_like", 0.010, (900, 950)),
                                 case("torch", 0.015, (1400, 1125))),
                         separate=[results(case("tinygrad_like", 0.010, (1000, 1100))),
                                   results(case("torch", 0.012, (1000, 1240)))])
    same = next(line for line in text.splitlines() if line.startswith("- machine probe"))
    assert same.endswith("fastest 900 µs, median 1125 µs; 2 of 4 probes at 1.25× the fastest "
                         "or slower")
    separate = next(line for line in text.splitlines() if line.startswith("- separate"))
    assert separate.endswith("machine probe fastest 1000 µs, median 1100 µs; 0 of 4 probes at "
                             "1.25× the fastest or slower")


def test_files_without_probes_say_nothing_of_them(report):
    text = report.report(results(case("tinygrad_like", 0.010, None), case("torch", 0.020, None)))
    assert "probe" not in text
    assert "| 0.50× |" in text


def test_probe_times_each_cpu_and_restores_the_mask():
    probe = load("machine_probe")
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert probe.slowest_cpu_us() > 0
    if allowed is not None:
        assert os.sched_getaffinity(0) == allowed


def test_pool_probe_times_blocks_and_restores_the_thread_count():
    from tinygrad_like.backend import native

    if not native.available():
        pytest.skip(f"the native pool is not in use: {native.reason()}")
    probe = load("machine_probe")
    threads = native.get_num_threads()
    one_thread, blocks = probe.pool_gemm_blocks(2, calls=2)
    assert one_thread > 0 and len(blocks) == 2 and all(ms > 0 for ms in blocks)
    assert native.get_num_threads() == threads
