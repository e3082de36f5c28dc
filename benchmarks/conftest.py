"""Shared setup of the benchmark suite: seeded inputs, equal thread counts, which frameworks.

tinygrad_like runs on NumPy, so it and raw NumPy share one BLAS thread pool; its native
kernels have a pool of their own, PyTorch has its own and JAX's XLA has its own. A comparison
is only fair when the pools have the same size, so the session pins them together: to
BENCH_THREADS if set, else to the CPUs this process may use.
NumPy's pool is pinned through threadpoolctl. Without threadpoolctl it keeps its default
(OpenBLAS and MKL start one thread per core, or OMP_NUM_THREADS/OPENBLAS_NUM_THREADS if
set before Python starts), so set those variables to BENCH_THREADS yourself; the JSON's
machine_info records which case applied. XLA takes its flags when jax is imported
(frameworks.load sets them); it can be held to one thread or left at all CPUs, nothing in
between, and machine_info records which applied.

BENCH_FRAMEWORKS (frameworks.py) runs only the named frameworks' cases in this process and
loads no other peer: torch and jax are imported only when named, the suites that are no
comparison between frameworks are not collected, and the session fails at its end if an
unnamed peer was imported after all.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import frameworks
import machine_probe
from frameworks import bench_threads
from tinygrad_like.backend import native

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    threadpool_info = threadpool_limits = None

SEED = 0
CHAIN_ELEMENTS = 16  # so small that the per-op overhead is nearly all of the time
MATMUL_SIZE = 1024
# the suites that time frameworks against each other; an isolated process runs only these
PEER_SUITES = ("test_bench_core.py", "test_bench_kernels.py", "test_bench_training.py")


def pytest_configure(config):
    frameworks.confine_to_bench_threads()  # before any framework starts a thread


def pytest_ignore_collect(collection_path, config):
    if frameworks.isolated() and collection_path.name.startswith("test_bench_"):
        return collection_path.name not in PEER_SUITES or None
    return None


@pytest.fixture(scope="session", autouse=True)
def pinned_threads():
    threads = bench_threads()
    restore = []
    if "torch" in frameworks.selected():
        torch = frameworks.load("torch")
        restore.append((torch.set_num_threads, torch.get_num_threads()))
        torch.set_num_threads(threads)
    if "tinygrad_like" in frameworks.selected():  # else its native pool is never started
        restore.append((native.set_num_threads, native.get_num_threads()))
        native.set_num_threads(threads)
    if threadpool_limits is None:
        yield threads
    else:
        with threadpool_limits(limits=threads):
            yield threads
    for set_threads, previous in restore:
        set_threads(previous)
    leaked = frameworks.unnamed_peers_loaded()
    if leaked:
        raise RuntimeError(f"BENCH_FRAMEWORKS={','.join(frameworks.selected())}, but this "
                           f"process imported {leaked}: its timings are not isolated")


@pytest.fixture(autouse=True)
def probe_the_machine(request):
    """The machine probe just before and just after each timed case (machine_probe.py), so
    that report.py can say how steady the machine was over the run."""
    benchmark = (request.getfixturevalue("benchmark") if "benchmark" in request.fixturenames
                 else None)
    if benchmark is None or benchmark.disabled:  # --benchmark-disable (CI) times nothing
        yield
        return
    before = machine_probe.slowest_cpu_us()
    yield
    benchmark.extra_info["probe_us"] = [before, machine_probe.slowest_cpu_us()]


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what the timings depend on beyond the CPU, so report.py can print it."""
    machine_info["threads"] = bench_threads()
    machine_info["frameworks"] = list(frameworks.selected())
    machine_info["numpy_threads_pinned"] = threadpool_limits is not None
    machine_info["numpy"] = np.__version__
    for peer in frameworks.PEERS:  # the versions of the peers this process loaded
        if frameworks.loaded(peer):
            machine_info[peer] = sys.modules[peer].__version__
    machine_info["jax_threads"] = frameworks.xla_threads_applied()
    machine_info["xla_flags"] = os.environ.get("XLA_FLAGS")
    # OpenBLAS picks its kernels for the CPU at load time unless OPENBLAS_CORETYPE names
    # them; a machine that pins an older core type runs NumPy's GEMMs (and so tinygrad_like's)
    # without its newest vector units, while PyTorch's oneDNN and MKL ignore the variable
    machine_info["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE")
    if "tinygrad_like" in frameworks.selected() and native.available():
        machine_info["native_isa"] = native.build_info()["isa"]  # which clones of the kernels
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
