"""Which frameworks this benchmark process times, and the peers, imported only when named.

BENCH_FRAMEWORKS (a comma list of FRAMEWORKS) runs only the named frameworks' cases; unset,
every framework runs in one process, as `make bench`'s first run does. A peer that is not
named is never imported, so a process can time one framework with no other framework's
threads, allocator or loaded libraries beside it (benchmarks/run_bench.py runs each so).
torch, when loaded, is also what the reference checks compute with; a process that does not
name torch skips them, and the same-process run checks them.

BENCH_THREADS is the thread count every framework gets (conftest.py pins the pools). XLA reads
its CPU flags once, when jax is imported, so load("jax") sets them first.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

import pytest

FRAMEWORKS = ("tinygrad_like", "torch", "numpy", "jax")
PEERS = ("torch", "jax")  # the frameworks loaded only when named
REFERENCE = "torch"  # float64 autograd, shared with no timed implementation but torch's own
# XLA's CPU client sizes its thread pool from the CPUs the process may use and has no flag
# for another count; this flag runs its matmuls and convolutions on the calling thread
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"


def selected() -> tuple[str, ...]:
    """The frameworks this process times: BENCH_FRAMEWORKS's names, else all of them."""
    names = os.environ.get("BENCH_FRAMEWORKS", "")
    chosen = tuple(name.strip() for name in names.split(",") if name.strip())
    unknown = sorted(set(chosen) - set(FRAMEWORKS))
    if unknown:
        raise ValueError(f"BENCH_FRAMEWORKS names {unknown}; the frameworks are {FRAMEWORKS}")
    return chosen or FRAMEWORKS


def isolated() -> bool:
    """True in a process that times only some frameworks (BENCH_FRAMEWORKS is set)."""
    return selected() != FRAMEWORKS


def bench_threads() -> int:
    """The thread count every framework gets: BENCH_THREADS, or the CPUs we may run on."""
    if "BENCH_THREADS" in os.environ:
        return int(os.environ["BENCH_THREADS"])
    return available_cpus()


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def confine_to_bench_threads() -> None:
    """Keep every thread of this process, and every thread it starts later, to the first
    BENCH_THREADS of its CPUs when that is fewer than it may use. The pools that take a
    thread count are set to it as well (conftest.py), but XLA's CPU client sizes its own
    pool from the CPUs it may use and has no flag for another count: without this, JAX's
    "1 thread" run ran its matmuls on both cores."""
    if not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if bench_threads() >= len(cpus):
        return
    confined = set(cpus[:bench_threads()])
    for thread in os.listdir("/proc/self/task"):  # threads already started keep their own mask
        os.sched_setaffinity(int(thread), confined)


def xla_thread_flags() -> str:
    """The XLA_FLAGS that give XLA BENCH_THREADS threads, as far as XLA allows."""
    return XLA_ONE_THREAD if bench_threads() == 1 else ""


def xla_threads_applied() -> str:
    """What the JAX cases ran with, in words, for the results' machine_info."""
    if not loaded("jax"):
        return "jax not loaded"
    if XLA_ONE_THREAD in os.environ.get("XLA_FLAGS", ""):
        return f"1 ({XLA_ONE_THREAD}, on {available_cpus()} CPU)"
    cpus = available_cpus()
    pinned = "" if cpus == bench_threads() else f", NOT {bench_threads()}: XLA has no flag"
    return f"{cpus} (XLA's default: the CPUs this process may use{pinned})"


def loaded(name: str) -> bool:
    """Whether `name` was imported in this process (None in sys.modules blocks an import)."""
    return sys.modules.get(name) is not None


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def load(name: str) -> ModuleType:
    """The named peer's module, imported on first use; jax after its thread flags are set."""
    if name == "jax" and not loaded("jax"):
        flags = xla_thread_flags()
        if flags:
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()
    return importlib.import_module(name)


def reference_library() -> ModuleType | None:
    """torch for the float64 reference checks, or None where this process does not name it."""
    return load(REFERENCE) if REFERENCE in selected() else None


def params(*names: str) -> list:
    """pytest parameters for a case's frameworks, each skipped with its reason where it does not
    run here: not named in BENCH_FRAMEWORKS, or (jax) not installed."""
    chosen, marked = selected(), []
    for name in names:
        marks = []
        if name not in chosen:
            marks.append(pytest.mark.skip(
                reason=f"not named in BENCH_FRAMEWORKS={','.join(chosen)}"))
        elif name == "jax" and not installed("jax"):
            marks.append(pytest.mark.skip(
                reason="jax is not installed (pip install -e '.[bench]' adds it)"))
        marked.append(pytest.param(name, marks=marks))
    return marked


def unnamed_peers_loaded() -> list[str]:
    """Peers imported in this process although BENCH_FRAMEWORKS did not name them."""
    return [name for name in PEERS if name not in selected() and loaded(name)]
