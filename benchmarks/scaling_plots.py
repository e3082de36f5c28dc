"""Draws scaling.json's curves, one PNG per part, each against the physical limit it meets.

Figures are built without pyplot (matplotlib.figure.Figure renders through Agg on savefig),
so drawing needs no display and changes no global matplotlib state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

COLORS = {"tinygrad_like": "C0", "torch": "C1", "numpy": "C2"}
BOUND = {"color": "black", "linestyle": "--", "linewidth": 1}
CONTRAST = {"color": "grey", "linestyle": ":", "linewidth": 1.5}
MIB = 2**20


def _figure(panels: int, title: str, machine: str) -> tuple[Figure, list]:
    figure = Figure(figsize=(6.5 * panels, 5), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    figure.suptitle(f"{title}\n{machine}", fontsize=10)
    return figure, list(axes)


def _points(series: list[dict], key: str = "median_s") -> tuple[np.ndarray, np.ndarray]:
    return (np.array([point["x"] for point in series], dtype=float),
            np.array([point[key] for point in series], dtype=float))


def _draw_series(axis, part_series: dict, key: str = "median_s", scale: float = 1.0) -> None:
    for framework, series in part_series.items():
        x, y = _points(series, key)
        axis.plot(x, y * scale, marker="o", markersize=3, color=COLORS[framework],
                  label=framework)


def _size_axis(axis, series: dict, label: str) -> None:
    """A log2 x axis ticked at the measured sizes, labelled as plain integers."""
    sizes = [point["x"] for point in next(iter(series.values()))]
    axis.set_xscale("log", base=2)
    axis.set_xticks(sizes, [str(int(size)) for size in sizes], rotation=45, fontsize=7)
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xlabel(label)


def _save(figure: Figure, axes: list, path: Path) -> Path:
    for axis in axes:
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.savefig(path, dpi=110)
    return path


def per_op(part: dict, machine: dict, path: Path) -> Path:
    bandwidth = machine["copy_bandwidth"]["gb_per_s"] * 1e9
    figure, axes = _figure(len(part["ops"]), "elementwise op forward: time vs elements (float32)",
                           part["measured_on"])
    for axis, (op, result) in zip(axes, part["ops"].items(), strict=True):
        _draw_series(axis, result["series"], scale=1e6)
        for framework, series in result["series"].items():  # time at the smallest size
            axis.axhline(series[0]["median_s"] * 1e6, color=COLORS[framework], **{
                key: value for key, value in CONTRAST.items() if key != "color"})
        sizes, _ = _points(next(iter(result["series"].values())))
        bytes_moved = sizes * result["bytes_per_element"]
        axis.plot(sizes, bytes_moved / bandwidth * 1e6, **BOUND,
                  label=f"{result['bytes_per_element']} B/element at copy bandwidth "
                        f"{bandwidth / 1e9:.1f} GB/s")
        axis.plot([], [], **CONTRAST, label="dotted: time at the smallest size (per-call "
                                            "overhead)")
        axis.set(xscale="log", yscale="log", title=op, xlabel="elements",
                 ylabel="time per call (µs)")
    return _save(figure, axes, path)


def matmul(part: dict, machine: dict, path: Path) -> Path:
    peak = machine["peak"]
    figure, axes = _figure(1, "matmul (n, n) @ (n, n) float32 forward: GFLOP/s = 2 n³ / time",
                           part["measured_on"])
    _draw_series(axes[0], part["series"], key="gflops")
    axes[0].axhline(peak["gflops"], **BOUND, label=f"FMA peak {peak['gflops']:.0f} GFLOP/s =\n"
                                                   + peak["assumption"].replace(" (", "\n("))
    _size_axis(axes[0], part["series"], "n")
    # the clock is the nominal one the kernel reports and the cores boost above it, so the
    # axis reaches past the line to whatever was measured
    highest = max(max(_points(series, key="gflops")[1]) for series in part["series"].values())
    axes[0].set(ylabel="GFLOP/s", ylim=(0, max(peak["gflops"], highest) * 1.1))
    return _save(figure, axes, path)


def _flop_bound(axis, part_series: dict, peak: dict, formula: str) -> None:
    """time = FLOP / peak, from the FLOP count stored with each point."""
    x, flops = _points(next(iter(part_series.values())), key="flops")
    axis.plot(x, flops / (peak["gflops"] * 1e9) * 1e3, **BOUND,
              label=f"{formula} at the FMA peak {peak['gflops']:.0f} GFLOP/s")


def attention(part: dict, machine: dict, path: Path) -> Path:
    batch, heads, dim = (part["shape"][key] for key in ("batch", "heads", "dim"))
    figure, axes = _figure(2, f"causal attention fwd+bwd, B={batch} H={heads} D={dim} float32",
                           part["measured_on"])
    time_axis, memory_axis = axes
    _draw_series(time_axis, part["series"], scale=1e3)
    _flop_bound(time_axis, part["series"], machine["peak"], "6 T² D B H FLOP")
    _size_axis(time_axis, part["series"], "sequence length T")
    time_axis.set(yscale="log", ylabel="time per fwd+bwd (ms)", title="time")
    _draw_series(memory_axis, part["memory"], key="peak_growth_mib")
    lengths, _ = _points(next(iter(part["memory"].values())), key="peak_growth_mib")
    linear = 4 * batch * heads * lengths * dim * 4 / MIB
    scores = batch * heads * lengths**2 * 4 / MIB
    memory_axis.plot(lengths, linear, **BOUND, label="O(T): output + 3 gradients, 4 B H T D x 4 B")
    memory_axis.plot(lengths, scores, **CONTRAST, label="O(T²): one score matrix, B H T² x 4 B")
    _size_axis(memory_axis, part["memory"], "sequence length T")
    memory_axis.set(yscale="log", ylabel="peak resident-set growth (MiB)",
                    title="peak memory of a fresh process (Linux VmHWM)")
    return _save(figure, axes, path)


def conv2d(part: dict, machine: dict, path: Path) -> Path:
    shape = part["shape"]
    figure, axes = _figure(1, f"conv2d {shape['kernel']}x{shape['kernel']} pad 1, "
                              f"N={shape['batch']} {shape['height']}x{shape['width']}, C = K, "
                              "fwd+bwd float32", part["measured_on"])
    _draw_series(axes[0], part["series"], scale=1e3)
    _flop_bound(axes[0], part["series"], machine["peak"],
                "3 x 2 N K C 9 H W FLOP (direct convolution;\nWinograd needs fewer)")
    _size_axis(axes[0], part["series"], "channels C = K")
    axes[0].set(yscale="log", ylabel="time per fwd+bwd (ms)")
    return _save(figure, axes, path)


def training(part: dict, machine: dict, path: Path) -> Path:
    peak = machine["peak"]
    figure, axes = _figure(len(part["workloads"]), "training step (zero_grad, forward, backward, "
                                                    "optimizer step) vs batch size",
                           part["measured_on"])
    for axis, (workload, result) in zip(axes, part["workloads"].items(), strict=True):
        _draw_series(axis, result["series"], key="samples_per_s")
        bound = peak["gflops"] * 1e9 / result["flops_per_sample"]
        axis.axhline(bound, **BOUND, label=f"FMA peak / {result['flops_per_sample'] / 1e6:.2f} "
                                           "MFLOP per sample (Linear and Conv2d layers,\n"
                                           "forward + backward = 3 x forward)")
        _size_axis(axis, result["series"], "batch size")
        axis.set(yscale="log", ylabel="samples / s", title=workload.upper())
    return _save(figure, axes, path)


DRAW = {"per_op": per_op, "matmul": matmul, "attention": attention, "conv2d": conv2d,
        "training": training}
