"""benchmarks/scaling.py end to end on tiny ranges (--quick), and its FMA-peak arithmetic.

No timing is asserted: the quick run only proves that every part measures, that the numbers
are finite, that the attention memory was read from fresh processes, and that the PNGs and the
JSON are written.
"""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
from benchmark_modules import BENCHMARKS, load

PARTS = ("per_op", "matmul", "attention", "conv2d", "training")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scaling():
    # scaling.py imports its sibling modules by name, as when it runs as a script
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield load("scaling")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def quick_run(scaling, tmp_path_factory):
    out = tmp_path_factory.mktemp("plots")
    threads_before = torch.get_num_threads()
    results = scaling.main(["--quick", "--out", str(out)])
    assert torch.get_num_threads() == threads_before, "the thread counts are restored"
    return out, results


def _series_points(part: dict):
    """Every timed point of a part, whatever its nesting (ops, workloads)."""
    groups = part.get("ops") or part.get("workloads") or {"": part}
    for group in groups.values():
        for points in group["series"].values():
            yield from points


@pytest.mark.slow  # the quick run, shared by the module's tests
def test_writes_one_png_per_part_and_the_json(quick_run):
    out, results = quick_run
    for part in PARTS:
        png = out / f"scaling_{part}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE, png
    assert json.loads((out / "scaling.json").read_text()) == results


@pytest.mark.slow  # the quick run, shared by the module's tests
def test_every_number_is_finite_and_positive(quick_run):
    _, results = quick_run
    machine = results["machine"]
    assert machine["peak"]["gflops"] > 0 and machine["copy_bandwidth"]["gb_per_s"] > 0
    for part in PARTS:
        points = list(_series_points(results[part]))
        assert points, part
        for point in points:
            assert all(math.isfinite(s) and s > 0 for s in point["samples_s"]), (part, point)
            assert math.isfinite(point["median_s"]) and point["median_s"] > 0, (part, point)
    assert all(p["gflops"] > 0 for p in _series_points(results["matmul"]))
    assert all(p["flops"] > 0 for p in _series_points(results["conv2d"]))


@pytest.mark.slow  # the quick run, shared by the module's tests
def test_attention_memory_was_measured_for_both_frameworks(quick_run, scaling):
    _, results = quick_run
    memory = results["attention"]["memory"]
    assert set(memory) == {"tinygrad_like", "torch"}
    for points in memory.values():
        assert [p["x"] for p in points] == scaling.QUICK["attention"]["memory_lengths"]
        assert all(math.isfinite(p["peak_growth_mib"]) and p["peak_growth_mib"] >= 0
                   for p in points)


def test_only_rejects_an_unknown_part(scaling):
    with pytest.raises(SystemExit):
        scaling.parse_args(["--only", "matmul,flops"])


def _cpu(vendor: str, family: int, flags: str) -> dict:
    return {"vendor": vendor, "family": family, "flags": flags.split(), "physical_cores": 4,
            "clock_mhz": 2000.0, "clock_source": "test"}


@pytest.mark.parametrize("cpu, flop_per_cycle", [
    (_cpu("GenuineIntel", 6, "avx avx2 fma avx512f"), 64),
    (_cpu("AuthenticAMD", 25, "avx avx2 fma avx512f"), 32),  # Zen 4: 256-bit datapaths
    (_cpu("AuthenticAMD", 23, "avx avx2 fma"), 32),
    (_cpu("GenuineIntel", 6, "avx"), 16),
    (_cpu("GenuineIntel", 6, "sse4_2"), 8),
])
def test_fma_peak_follows_the_vector_isa(scaling, cpu, flop_per_cycle):
    machine = sys.modules["scaling_machine"]
    peak = machine.fma_peak(cpu, threads=2)
    assert peak["flop_per_cycle_per_core"] == flop_per_cycle
    assert peak["cores"] == 2  # two threads occupy two of the four cores
    assert peak["gflops"] == pytest.approx(2 * 2.0 * flop_per_cycle)
