"""Markdown tables from a pytest-benchmark JSON file, one per benchmark group.

    python benchmarks/report.py benchmarks/results.json > benchmarks/RESULTS.md

Each row is one framework (the test's `framework` parameter) with its median time, and
the last column divides tinygrad_like's median by that row's: 3.0× means tinygrad_like
takes three times as long. GFLOP/s and µs per op come from the tests' extra_info.

The native-kernel cases (test_bench_native.py, whose extra_info names a kernel) go into one
table at the end instead: each native kernel's median beside the NumPy kernel it replaces,
at one workload's calls.
"""

from __future__ import annotations

import argparse
import json

SUBJECT = "tinygrad_like"
LABELS = {"tinygrad_like": "tinygrad_like", "torch": "PyTorch (CPU)", "numpy": "NumPy"}
# extra_info keys worth a column: heading and format
EXTRA_COLUMNS = {"gflop_per_s": ("GFLOP/s", "{:.1f}"), "us_per_op": ("µs per op", "{:.2f}"),
                 "tinygrad_like_peak_mib": ("tinygrad_like peak MiB", "{:.0f}"),
                 "torch_peak_mib": ("PyTorch peak MiB", "{:.0f}")}


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def framework(bench: dict) -> str:
    return (bench.get("params") or {}).get("framework", bench["name"])


def group_table(group: str, benches: list[dict]) -> list[str]:
    medians = {framework(b): b["stats"]["median"] for b in benches}
    subject = medians.get(SUBJECT)
    extras = [key for key in EXTRA_COLUMNS if any(key in b["extra_info"] for b in benches)]
    headings = (["framework", "median", "IQR", "rounds"]
                + [EXTRA_COLUMNS[key][0] for key in extras] + [f"{SUBJECT} ÷ this"])
    lines = [f"### {group}", "", "| " + " | ".join(headings) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(headings) - 1)) + "|"]
    for bench in benches:
        who = framework(bench)
        label = LABELS.get(who, who)
        if "note" in bench["extra_info"]:
            label += f" ({bench['extra_info']['note']})"
        stats = bench["stats"]
        cells = [label, format_seconds(stats["median"]), format_seconds(stats["iqr"]),
                 str(stats["rounds"])]
        for key in extras:
            value = bench["extra_info"].get(key)
            cells.append("" if value is None else EXTRA_COLUMNS[key][1].format(value))
        if who == SUBJECT or subject is None:
            cells.append("—")
        else:
            cells.append(f"{subject / stats['median']:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def machine_lines(data: dict) -> list[str]:
    info = data["machine_info"]
    cpu = info.get("cpu", {}).get("brand_raw", info.get("processor", "unknown CPU"))
    pinned = "pinned by threadpoolctl" if info.get("numpy_threads_pinned") else "NOT pinned"
    blas = ", ".join(info.get("blas", [])) or "unknown BLAS"
    coretype = info.get("openblas_coretype")
    coretype = (f"set to {coretype} in the environment" if coretype
                else "not set: OpenBLAS chose its kernels for this CPU")
    return [f"- run: {data['datetime']}, Python {info['python_version']}, {cpu}",
            f"- threads: {info.get('threads')} for PyTorch, NumPy's BLAS and tinygrad_like's "
            f"native kernels ({pinned})",
            f"- numpy {info.get('numpy')} ({blas}), torch {info.get('torch')}",
            f"- OPENBLAS_CORETYPE {coretype}",
            f"- tinygrad_like's native kernels: {info.get('native_isa', 'not loaded')}", ""]


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


def report(data: dict) -> str:
    groups: dict[str, list[dict]] = {}
    native_groups: dict[str, list[dict]] = {}
    for bench in data["benchmarks"]:
        into = native_groups if "kernel" in bench["extra_info"] else groups
        into.setdefault(bench["group"], []).append(bench)
    lines = ["# Benchmark results", ""] + machine_lines(data)
    for name, benches in groups.items():
        lines += group_table(name, benches)
    if native_groups:
        lines += native_table(native_groups)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="the file written by pytest --benchmark-json")
    args = parser.parse_args()
    with open(args.results, encoding="utf-8") as file:
        print(report(json.load(file)))


if __name__ == "__main__":
    main()
