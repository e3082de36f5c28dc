"""`make gpu-check` (benchmarks/gpu_check.py) and its CUDA-event timing (gpu_timing.py), run
without a GPU: the no-GPU exit, the timing logic on a stand-in clock, and the report."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check, gpu_timing = _load("gpu_check"), _load("gpu_timing")


def test_without_a_gpu_it_exits_with_a_clear_message(tmp_path):
    # an empty PATH: no nvidia-smi, whatever this machine has
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"),
                           "--out", str(tmp_path / "report")], capture_output=True, text=True,
                          env={**os.environ, "PATH": str(tmp_path)}, timeout=60)
    assert done.returncode == 2
    assert "no NVIDIA GPU" in done.stderr and "nvidia-smi" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing installed, run or written


def test_find_gpu_reads_nvidia_smi(monkeypatch):
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: "/usr/bin/nvidia-smi")

    def answer(stdout, returncode=0):
        return lambda *a, **k: subprocess.CompletedProcess(a, returncode, stdout, "")

    gpu = gpu_check.find_gpu(answer("NVIDIA H100 80GB HBM3, 560.35.03, 9.0\n"))
    assert gpu == {"name": "NVIDIA H100 80GB HBM3", "driver": "560.35.03",
                   "compute_capability": "9.0", "count": 1}
    with pytest.raises(gpu_check.NoGPU, match="lists no GPU"):
        gpu_check.find_gpu(answer("", returncode=9))


class StandInGPU:
    """A GPU queue on a fake clock: each launch takes `kernel_ms` of GPU time, and an event
    is stamped when the queue reaches it. Records what the host did, in order."""

    def __init__(self, kernel_ms: float):
        self.kernel_ms, self.gpu_time, self.log = kernel_ms, 0.0, []

    def launch(self):
        self.gpu_time += self.kernel_ms
        self.log.append("launch")

    def new_event(self):
        gpu = self

        class Event:
            def record(self):
                self.stamp = gpu.gpu_time
                gpu.log.append("record")

            def synchronize(self):
                gpu.log.append("synchronize")

        return Event()

    @staticmethod
    def elapsed_ms(start, end):
        return end.stamp - start.stamp


def test_a_round_launches_back_to_back_and_waits_once():
    gpu = StandInGPU(kernel_ms=0.5)
    assert gpu_timing.time_round(gpu.launch, 4, gpu.new_event, gpu.elapsed_ms) == 0.5
    assert gpu.log == ["record"] + ["launch"] * 4 + ["record", "synchronize"]
    with pytest.raises(ValueError, match="at least 1"):
        gpu_timing.time_round(gpu.launch, 0, gpu.new_event, gpu.elapsed_ms)


def test_cuda_event_ms_fills_rounds_and_takes_the_median():
    gpu = StandInGPU(kernel_ms=0.5)
    timing = gpu_timing.cuda_event_ms(gpu.launch, gpu.new_event, gpu.elapsed_ms, rounds=3)
    assert timing["launches"] == 50  # 25 ms rounds of 0.5 ms calls
    assert timing["ms"] == 0.5 and timing["rounds"] == [0.5] * 3
    assert gpu.log.count("synchronize") == 4  # the warm-up round and three timed ones
    slow = StandInGPU(kernel_ms=100.0)
    assert gpu_timing.launches_per_round(slow.launch, slow.new_event, slow.elapsed_ms) == 1


RESULTS = [
    {"group": "gpu matmul 4096^3 float16", "library": "tinygrad_like", "cuda_ms": 0.16},
    {"group": "gpu matmul 4096^3 float16", "library": "cublas", "cuda_ms": 0.15},
    {"group": "gpu softmax (4096, 4096) fp32", "library": "tinygrad_like", "cuda_ms": 0.05,
     "GB/s": 2700.0},
    {"group": "gpu softmax (4096, 4096) fp32", "library": "cupy", "cuda_ms": 0.1},
    {"group": "gpu copy (4096, 4096) fp32", "library": "memcpy", "cuda_ms": 0.045,
     "GB/s": 2900.0},
    {"group": "gpu copy (4096, 4096) fp32", "library": "copy_kernel", "cuda_ms": 0.05,
     "GB/s": 2800.0},
]


def test_targets_are_judged_from_the_measured_ratios():
    judged = {t["target"]: t for t in gpu_check.judge(RESULTS)}
    matmul = judged["matmul fp16 >= 90% of cuBLAS"]
    assert matmul["ratio"] == pytest.approx(0.15 / 0.16) and matmul["passed"] is True
    softmax = judged["softmax >= 90% of the copy bandwidth"]
    assert softmax["ratio"] == pytest.approx(2700 / 2900) and softmax["passed"] is True
    assert judged["attention forward >= 90% of torch's flash kernel"]["passed"] is None
    assert gpu_check.copy_bandwidth(RESULTS) == 2900.0


def test_the_report_names_device_driver_ratios_and_results(tmp_path):
    report = {"date": "2025-01-01T00:00:00", "elapsed_s": 300.0,
              "device": {"name": "NVIDIA H100", "driver": "560.35.03",
                         "compute_capability": "9.0", "count": 1},
              "versions": {"cupy": "13.3.0"}, "results": RESULTS,
              "steps": [{"step": "cuda-marked tests", "status": "passed", "seconds": 90.0}],
              "ratios": gpu_check.ratios(RESULTS),
              "copy_bandwidth_GBps": gpu_check.copy_bandwidth(RESULTS),
              "targets": gpu_check.judge(RESULTS)}
    text = gpu_check.markdown(report)
    assert "NVIDIA H100" in text and "driver 560.35.03" in text
    assert "| matmul fp16 >= 90% of cuBLAS | 0.938 | 0.90 | pass |" in text
    assert "not measured" in text and "Copy bandwidth: 2900 GB/s." in text
    assert "| gpu softmax (4096, 4096) fp32 | cupy | 0.1000 | 0.0500 | 2.000 |" in text
    json.dumps(report)  # the .json is the same dictionary


def test_the_benchmarks_record_cuda_event_times(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # test_bench_gpu imports gpu_timing
    bench_gpu = _load("test_bench_gpu")
    gpu = StandInGPU(kernel_ms=0.25)
    cuda = type("cuda", (), {"Event": gpu.new_event, "get_elapsed_time": gpu.elapsed_ms})
    stand_in_cupy = type("cp", (), {"cuda": cuda})

    class Benchmark:
        group, extra_info = "gpu copy (4096, 4096) fp32", {}

        def pedantic(self, target, rounds, iterations):
            for _ in range(rounds * iterations):
                target()

    monkeypatch.setenv(bench_gpu.RESULTS, str(tmp_path / "results.jsonl"))
    bench_gpu.measure(Benchmark(), stand_in_cupy, gpu.launch, "memcpy", traffic=1e9)
    (line,) = (tmp_path / "results.jsonl").read_text().splitlines()
    result = json.loads(line)
    assert result["library"] == "memcpy" and result["cuda_ms"] == 0.25
    assert result["GB/s"] == pytest.approx(4000.0) and len(result["rounds_ms"]) == 5
    assert result["launches_per_round"] == 100
