"""Markdown tables from pytest-benchmark JSON files, one per benchmark group.

    python benchmarks/report.py benchmarks/results.json > benchmarks/RESULTS.md
    python benchmarks/report.py benchmarks/results.json \\
        --separate benchmarks/results-separate-*.json \\
        --one-thread benchmarks/results-1-thread.json > benchmarks/RESULTS.md

The first file is the same-process run: every framework timed in one process. --separate
takes the runs that each time one framework alone (BENCH_FRAMEWORKS), --one-thread the run
with BENCH_THREADS=1; benchmarks/run_bench.py (`make bench`) writes all of them.

Each row is one framework (the test's `framework` parameter) with its median time, and a
ratio column divides tinygrad_like's median by that row's, within one kind of run: 3.0× means
tinygrad_like takes three times as long. In the separate-process column both medians come
from each framework's own process. GFLOP/s and µs per op come from the tests' extra_info. A
summary table first gives every peer's three ratios per workload.

The native-kernel cases (test_bench_native.py, whose extra_info names a kernel) go into one
table at the end instead: each native kernel's median beside the NumPy kernel it replaces,
at one workload's calls.

conftest.py probes the machine just before and after each case (machine_probe.py), and the
report says how steady the machine was over each kind of run. It marks no single case: the
host changes speed from one second to the next, and two probes per case did not tell which
ratios were off (docs/performance.md, "The machine's slow stretches").
"""

from __future__ import annotations

import argparse
import json

SUBJECT = "tinygrad_like"
LABELS = {"tinygrad_like": "tinygrad_like", "torch": "PyTorch (CPU)", "numpy": "NumPy",
          "jax": "JAX (CPU, jit)"}
# extra_info keys worth a column: heading and format
EXTRA_COLUMNS = {"gflop_per_s": ("GFLOP/s", "{:.1f}"), "us_per_op": ("µs per op", "{:.2f}"),
                 "tinygrad_like_peak_mib": ("tinygrad_like peak MiB", "{:.0f}"),
                 "torch_peak_mib": ("PyTorch peak MiB", "{:.0f}"),
                 "jax_peak_mib": ("JAX peak MiB", "{:.0f}")}
SAME, SEPARATE, ONE_THREAD = "same process", "separate processes", "1 thread"
# A probe this many times its run's fastest or slower fell in one of the host's slow
# stretches: the probe's fast seconds spread by under 1.1x, its slow ones start at 1.3x
# (docs/performance.md, "The machine's slow stretches").
SLOW_PROBE = 1.25
# the runs beside the same-process one: their column headings
OTHER_RUNS = {SEPARATE: "own process", ONE_THREAD: "1 thread"}

Runs = dict[str, dict[str, dict[str, dict]]]  # kind of run -> group -> framework -> case


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def framework(bench: dict) -> str:
    return (bench.get("params") or {}).get("framework", bench["name"])


def ratio(cases: dict[str, dict], who: str) -> float | None:
    """tinygrad_like's median ÷ `who`'s, within one run's cases of a group."""
    if who == SUBJECT or SUBJECT not in cases or who not in cases:
        return None
    return cases[SUBJECT]["stats"]["median"] / cases[who]["stats"]["median"]


def format_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def group_table(group: str, runs: Runs) -> list[str]:
    same = runs[SAME][group]
    others = [kind for kind in OTHER_RUNS if group in runs.get(kind, {})]
    whos = list(same) + [who for kind in others for who in runs[kind][group] if who not in same]
    benches = list(same.values())
    extras = [key for key in EXTRA_COLUMNS if any(key in b["extra_info"] for b in benches)]
    headings = (["framework", "median", "IQR", "rounds"]
                + [EXTRA_COLUMNS[key][0] for key in extras] + [f"{SUBJECT} ÷ this"])
    for kind in others:
        headings += [f"median, {OTHER_RUNS[kind]}", f"÷ this, {OTHER_RUNS[kind]}"]
    lines = [f"### {group}", "", "| " + " | ".join(headings) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(headings) - 1)) + "|"]
    for who in dict.fromkeys(whos):
        bench = same.get(who) or next(runs[kind][group][who] for kind in others
                                      if who in runs[kind][group])
        label = LABELS.get(who, who)
        if "note" in bench["extra_info"]:
            label += f" ({bench['extra_info']['note']})"
        cells = [label]
        if who in same:
            stats = bench["stats"]
            cells += [format_seconds(stats["median"]), format_seconds(stats["iqr"]),
                      str(stats["rounds"])]
            for key in extras:
                value = bench["extra_info"].get(key)
                cells.append("" if value is None else EXTRA_COLUMNS[key][1].format(value))
        else:
            cells += [""] * (3 + len(extras))
        cells.append(format_ratio(ratio(same, who)))
        for kind in others:
            case = runs[kind][group].get(who)
            cells += ["" if case is None else format_seconds(case["stats"]["median"]),
                      format_ratio(ratio(runs[kind][group], who))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def summary_table(runs: Runs) -> list[str]:
    """Per workload and peer: tinygrad_like ÷ peer in each kind of run, in one cell."""
    kinds = [SAME] + [kind for kind in OTHER_RUNS if runs.get(kind)]
    peers = [who for who in LABELS if who != SUBJECT
             and any(who in cases for cases in runs[SAME].values())]
    lines = ["## tinygrad_like's time ÷ each peer's (lower is better)", "",
             f"Each cell: {' / '.join(kinds)}; — where a run has no such case.", "",
             "| workload | " + " | ".join(LABELS[who] for who in peers) + " |",
             "|---|" + "---:|" * len(peers)]
    for group, same in runs[SAME].items():
        if SUBJECT not in same or len(same) < 2:
            continue
        cells = []
        for who in peers:
            values = [ratio(runs[kind].get(group, {}), who) for kind in kinds]
            cells.append("" if who not in same else " / ".join(
                "—" if value is None else f"{value:.2f}" for value in values))
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return lines + [""]


def machine_lines(data: dict) -> list[str]:
    info = data["machine_info"]
    cpu = info.get("cpu", {}).get("brand_raw", info.get("processor", "unknown CPU"))
    pinned = "pinned by threadpoolctl" if info.get("numpy_threads_pinned") else "NOT pinned"
    blas = ", ".join(info.get("blas", [])) or "unknown BLAS"
    coretype = info.get("openblas_coretype")
    coretype = (f"set to {coretype} in the environment" if coretype
                else "not set: OpenBLAS chose its kernels for this CPU")
    lines = [f"- run: {data['datetime']}, Python {info['python_version']}, {cpu}",
             f"- threads: {info.get('threads')} for PyTorch, NumPy's BLAS and tinygrad_like's "
             f"native kernels ({pinned}); JAX: {info.get('jax_threads', 'not run')}",
             f"- numpy {info.get('numpy')} ({blas}), torch {info.get('torch', 'not loaded')}, "
             f"jax {info.get('jax', 'not loaded')}",
             f"- OPENBLAS_CORETYPE {coretype}",
             f"- tinygrad_like's native kernels: {info.get('native_isa', 'not loaded')}"]
    summary = probe_summary([data])
    if summary:
        lines.append(f"- machine probe (a pure-Python loop on the slower CPU, before and after "
                     f"each case): {summary}")
    return lines + [""]


def probe_summary(datasets: list[dict]) -> str:
    """How steady the machine was over these runs, from the probes of all their cases; ""
    for files from before the probe."""
    probes = sorted(us for data in datasets for bench in data["benchmarks"]
                    for us in bench["extra_info"].get("probe_us", ()))
    if not probes:
        return ""
    slow = sum(us >= SLOW_PROBE * probes[0] for us in probes)
    return (f"fastest {probes[0]:.0f} µs, median {probes[len(probes) // 2]:.0f} µs; {slow} of "
            f"{len(probes)} probes at {SLOW_PROBE}× the fastest or slower")


def run_lines(kind: str, datasets: list[dict]) -> list[str]:
    """One line saying how a kind of run beside the same-process one was made."""
    infos = [data["machine_info"] for data in datasets]
    who = ", ".join(", ".join(info.get("frameworks", [])) for info in infos)
    threads = ", ".join(str(count) for count in sorted({info.get("threads") for info in infos}))
    jax_threads = sorted({info["jax_threads"] for info in infos if "jax" in info})
    jax_note = f"; JAX: {', '.join(jax_threads)}" if jax_threads else ""
    layout = "one process each for" if kind == SEPARATE else "one process for"
    summary = probe_summary(datasets)
    probe_note = f"; machine probe {summary}" if summary else ""
    return [f"- {kind}: {layout} {who}, {threads} threads{jax_note}, "
            f"from {min(data['datetime'] for data in datasets)}{probe_note}"]


def native_table(groups: dict[str, list[dict]]) -> list[str]:
    lines = ["### native kernels against the NumPy path, at the workloads' calls", "",
             "| kernel | workload | calls | first call's arrays | native | NumPy path "
             "| native ÷ NumPy path |", "|---|---|---:|---|---:|---:|---:|"]
    for benches in groups.values():
        info = benches[0]["extra_info"]
        medians = {framework(b): b["stats"]["median"] for b in benches}
        native, numpy_path = medians.get(SUBJECT), medians.get("numpy_path")
        if native is None or numpy_path is None:
            continue
        lines.append(f"| {info['kernel']} | {info['workload']} | {info['calls']} "
                     f"| {info['arguments']} | {format_seconds(native)} "
                     f"| {format_seconds(numpy_path)} | {native / numpy_path:.2f}× |")
    return lines + [""]


def by_group(datasets: list[dict]) -> dict[str, dict[str, dict]]:
    """group -> framework -> case, over the framework-comparison cases of the files."""
    groups: dict[str, dict[str, dict]] = {}
    for data in datasets:
        for bench in data["benchmarks"]:
            if "kernel" not in bench["extra_info"]:
                groups.setdefault(bench["group"], {})[framework(bench)] = bench
    return groups


def report(data: dict, separate: list[dict] = (), one_thread: list[dict] = ()) -> str:
    others = {SEPARATE: list(separate), ONE_THREAD: list(one_thread)}
    runs: Runs = {SAME: by_group([data])}
    runs.update({kind: by_group(datasets) for kind, datasets in others.items() if datasets})
    native_groups: dict[str, list[dict]] = {}
    for bench in data["benchmarks"]:
        if "kernel" in bench["extra_info"]:
            native_groups.setdefault(bench["group"], []).append(bench)
    lines = ["# Benchmark results", ""] + machine_lines(data)
    if len(runs) > 1:
        lines += [f"- {SAME}: every framework in one process (the figures above)"]
        for kind, datasets in others.items():
            lines += run_lines(kind, datasets) if datasets else []
        lines += [""] + summary_table(runs)
    for group in runs[SAME]:
        lines += group_table(group, runs)
    if native_groups:
        lines += native_table(native_groups)
    return "\n".join(lines)


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="the same-process run's pytest --benchmark-json file")
    parser.add_argument("--separate", nargs="*", default=[],
                        help="files of the runs that each time one framework (BENCH_FRAMEWORKS)")
    parser.add_argument("--one-thread", nargs="*", default=[],
                        help="file(s) of the run with BENCH_THREADS=1")
    args = parser.parse_args()
    print(report(load(args.results), [load(path) for path in args.separate],
                 [load(path) for path in args.one_thread]))


if __name__ == "__main__":
    main()
