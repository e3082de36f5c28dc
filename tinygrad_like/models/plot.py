"""Training curves as a PNG: losses on the left, every other metric on the right."""

from __future__ import annotations

import os


def plot_history(history: list[dict], path: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("plot_history: there is no epoch to plot")
    epochs = [row["epoch"] for row in history]
    series = [key for key in history[0] if key not in ("epoch", "seconds")]
    losses = [key for key in series if key.endswith("loss")]
    others = [key for key in series if key not in losses]
    figure, axes = plt.subplots(1, 2 if others else 1, figsize=(11 if others else 6, 4),
                                squeeze=False)
    for axis, keys, label in ((axes[0][0], losses, "loss"),
                              (axes[0][-1], others, "metric")):
        if not keys or (axis is axes[0][0] and label == "metric"):
            continue
        for key in keys:
            axis.plot(epochs, [row[key] for row in history], marker="o", label=key)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
