"""Shared setup of the benchmark suite: seeded inputs and equal thread counts.

tinygrad_like runs on NumPy, so it and raw NumPy share one BLAS thread pool; its native
kernels have a pool of their own, and PyTorch has its own. A comparison is only fair when
the pools have the same size, so the session pins them together: to BENCH_THREADS if set,
else to the CPUs this process may use.
NumPy's pool is pinned through threadpoolctl. Without threadpoolctl it keeps its default
(OpenBLAS and MKL start one thread per core, or OMP_NUM_THREADS/OPENBLAS_NUM_THREADS if
set before Python starts), so set those variables to BENCH_THREADS yourself; the JSON's
machine_info records which case applied.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tinygrad_like.backend import native

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    threadpool_info = threadpool_limits = None

SEED = 0
CHAIN_ELEMENTS = 16  # so small that the per-op overhead is nearly all of the time
MATMUL_SIZE = 1024


def bench_threads() -> int:
    """The thread count every framework gets: BENCH_THREADS, or the CPUs we may run on."""
    if "BENCH_THREADS" in os.environ:
        return int(os.environ["BENCH_THREADS"])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.fixture(scope="session", autouse=True)
def pinned_threads():
    threads = bench_threads()
    previous = torch.get_num_threads(), native.get_num_threads()
    torch.set_num_threads(threads)
    native.set_num_threads(threads)
    if threadpool_limits is None:
        yield threads
    else:
        with threadpool_limits(limits=threads):
            yield threads
    torch.set_num_threads(previous[0])
    native.set_num_threads(previous[1])


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what the timings depend on beyond the CPU, so report.py can print it."""
    machine_info["threads"] = bench_threads()
    machine_info["numpy_threads_pinned"] = threadpool_limits is not None
    machine_info["numpy"] = np.__version__
    machine_info["torch"] = torch.__version__
    # OpenBLAS picks its kernels for the CPU at load time unless OPENBLAS_CORETYPE names
    # them; a machine that pins an older core type runs NumPy's GEMMs (and so tinygrad_like's)
    # without its newest vector units, while PyTorch's oneDNN and MKL ignore the variable
    machine_info["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE")
    if native.available():  # which of the native kernels' instruction-set clones ran
        machine_info["native_isa"] = native.build_info()["isa"]
    if threadpool_info is not None:
        machine_info["blas"] = sorted({f"{pool['internal_api']} {pool['version']}"
                                       + (f" ({pool['architecture']} kernels)"
                                          if pool.get("architecture") else "")
                                       for pool in threadpool_info()
                                       if pool["user_api"] == "blas"})


# Each input has its own generator, so its values do not depend on which tests run first.
@pytest.fixture(scope="session")
def chain_input() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    return rng.uniform(-1.0, 1.0, CHAIN_ELEMENTS).astype(np.float32)


@pytest.fixture(scope="session")
def matmul_inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED + 1)
    shape = (MATMUL_SIZE, MATMUL_SIZE)
    return (rng.standard_normal(shape, dtype=np.float32),
            rng.standard_normal(shape, dtype=np.float32))
