"""The per-iteration PNG: failure ratio and new frames per iteration (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.atomic import atomic_temporary_path

__all__ = ["plot_iterations"]


def plot_iterations(records: list[dict], path) -> Path:
    """Two panels against the iteration: the MD failure ratio (%, filled markers where the model
    was retrained) and the new and total training frames. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iterations = np.array([r["iteration"] for r in records])
    failure = np.array([100.0 * r["failure_ratio"] for r in records])
    updated = np.array([bool(r["updated"]) for r in records])
    new = np.array([r["new_frames"] for r in records])
    size = np.array([r["training_size"] for r in records])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True)
    top.plot(iterations, failure, "-", color="C3", lw=1)
    top.plot(iterations[updated], failure[updated], "o", color="C3", label="model retrained")
    top.plot(iterations[~updated], failure[~updated], "o", mfc="white", color="C3",
             label="model kept")
    for r, f in zip(records, failure, strict=True):
        t_low, t_high = r["temperature_K"]
        top.annotate(f"{t_low:.0f}-{t_high:.0f} K", (r["iteration"], f), fontsize=7,
                     textcoords="offset points", xytext=(0, 6), ha="center")
    top.set_ylabel("MD failure ratio (%)")
    top.set_ylim(0, max(1.0, 1.15 * float(failure.max())))
    top.legend(fontsize=8)
    bottom.bar(iterations, new, color="C0", label="new frames")
    bottom.plot(iterations, size, "s-", color="C2", label="training set size")
    bottom.set_xlabel("iteration")
    bottom.set_ylabel("frames")
    bottom.set_xticks(iterations)
    bottom.legend(fontsize=8)
    fig.suptitle("nepzbl al: active-learning iterations")
    fig.tight_layout()
    path = Path(path)
    with atomic_temporary_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path
