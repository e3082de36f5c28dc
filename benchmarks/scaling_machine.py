"""The machine the scaling curves are drawn against: its CPU, its FMA peak, its copy bandwidth.

The peak is an arithmetic bound, not a measurement: cores x clock x FLOP per cycle per core,
with the FLOP per cycle read off the vector instruction set (two FMA pipes of the widest
datapath, each FMA two FLOP per float32 lane). The clock is the one the kernel reports, which
on a VM is often the base clock, so a core that boosts can run above the drawn peak. The copy
bandwidth is measured: a large np.copyto split over the benchmark's threads, counting each byte
read and each byte written once (STREAM's convention, the one the per-op bound uses too).
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from statistics import median

import numpy as np
import torch

from tinygrad_like.backend import native

try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None

FLOAT32_BITS = 32
FMA_PIPES = 2  # two FMA pipes per core: Intel since Haswell, AMD since Zen 1 (at 128 bits)


@contextlib.contextmanager
def pinned_threads(threads: int):
    """PyTorch's, the native kernels' and NumPy's BLAS pools all at `threads`, then restored."""
    previous = torch.get_num_threads(), native.get_num_threads()
    torch.set_num_threads(threads)
    native.set_num_threads(threads)
    try:
        if threadpool_limits is None:
            yield
        else:
            with threadpool_limits(limits=threads):
                yield
    finally:
        torch.set_num_threads(previous[0])
        native.set_num_threads(previous[1])


def _cpuinfo_blocks() -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per logical CPU (empty where there is no /proc)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            text = cpuinfo.read()
    except OSError:
        return []
    blocks = []
    for chunk in text.strip().split("\n\n"):
        fields = (line.split(":", 1) for line in chunk.splitlines() if ":" in line)
        blocks.append({key.strip(): value.strip() for key, value in fields})
    return blocks


def _lscpu_max_mhz() -> float | None:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith("CPU max MHz:"):
            return float(line.split(":", 1)[1])
    return None


def describe_cpu() -> dict:
    """Model, vendor, family, physical cores and logical CPUs we may use, clock and ISA flags."""
    blocks = _cpuinfo_blocks()
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    ours = [b for b in blocks if allowed is None or int(b.get("processor", -1)) in allowed]
    first = ours[0] if ours else {}
    cores = {(b.get("physical id", "0"), b.get("core id", b.get("processor"))) for b in ours}
    max_mhz = _lscpu_max_mhz()
    cpuinfo_mhz = [float(b["cpu MHz"]) for b in ours if "cpu MHz" in b]
    mhz, clock_source = ((max_mhz, "lscpu CPU max MHz") if max_mhz else
                         (max(cpuinfo_mhz), "/proc/cpuinfo cpu MHz") if cpuinfo_mhz else
                         (None, "unknown"))
    return {
        "model": first.get("model name", platform.processor() or platform.machine()),
        "vendor": first.get("vendor_id", ""),
        "family": int(first.get("cpu family", 0)),
        "physical_cores": len(cores) or os.cpu_count(),
        "logical_cpus": len(ours) or os.cpu_count(),
        "clock_mhz": mhz,
        "clock_source": clock_source,
        "flags": sorted(set(first.get("flags", "").split())),
    }


def vector_datapath(cpu: dict) -> tuple[int, bool, str]:
    """Bits per vector pipe, whether it fuses multiply and add, and why. AVX-512 counts as 512
    bits except on AMD Zen 4 (family 25), which splits each 512-bit instruction over its
    256-bit pipes."""
    flags = set(cpu["flags"])
    if "avx512f" in flags:
        if cpu["vendor"] == "AuthenticAMD" and cpu["family"] <= 25:
            return 256, True, "AVX-512 on 256-bit datapaths (AMD Zen 4)"
        return 512, True, "AVX-512"
    if {"avx2", "fma"} <= flags:
        return 256, True, "AVX2+FMA"
    if "avx" in flags:
        return 256, False, "AVX"
    return 128, False, "SSE"


def fma_peak(cpu: dict, threads: int) -> dict:
    """float32 peak GFLOP/s over the cores `threads` threads can occupy, with its assumption."""
    bits, fused, isa = vector_datapath(cpu)
    lanes = bits // FLOAT32_BITS
    cores = min(threads, cpu["physical_cores"])
    clock_ghz = (cpu["clock_mhz"] or 0.0) / 1000
    if fused:
        flop_per_cycle = FMA_PIPES * lanes * 2
        per_cycle = f"{FMA_PIPES} FMA pipes x {lanes} fp32 lanes x 2 FLOP"
    else:  # one add pipe and one multiply pipe
        flop_per_cycle = 2 * lanes
        per_cycle = f"1 add + 1 multiply pipe x {lanes} fp32 lanes"
    return {
        "gflops": cores * clock_ghz * flop_per_cycle,
        "cores": cores,
        "clock_ghz": clock_ghz,
        "clock_source": cpu["clock_source"],
        "flop_per_cycle_per_core": flop_per_cycle,
        "assumption": (f"{cores} cores x {clock_ghz:.2f} GHz x {per_cycle} ({isa}; nominal "
                       f"clock from {cpu['clock_source']}, boost can exceed it)"),
    }


def copy_bandwidth(nbytes: int, threads: int, repeats: int) -> dict:
    """Best-case memory bandwidth: np.copyto of `nbytes`, one slice per thread (NumPy releases
    the GIL while it copies), bytes read plus bytes written over the median time."""
    source = np.ones(nbytes // 4, dtype=np.float32)
    target = np.empty_like(source)
    slices = [slice(start, start + -(-source.size // threads))
              for start in range(0, source.size, -(-source.size // threads))]
    with ThreadPoolExecutor(threads) as pool:
        def copy() -> float:
            start = time.perf_counter()
            list(pool.map(lambda part: np.copyto(target[part], source[part]), slices))
            return time.perf_counter() - start

        copy()  # the first touch of `target` faults its pages in
        seconds = median(copy() for _ in range(max(repeats, 1)))
    return {"gb_per_s": 2 * source.nbytes / seconds / 1e9, "bytes": source.nbytes,
            "threads": threads}


def machine_title(cpu: dict, threads: int, date: str) -> str:
    return (f"{cpu['model']}, {cpu['physical_cores']} cores / {cpu['logical_cpus']} CPUs, "
            f"{threads} threads per framework, {date}")
