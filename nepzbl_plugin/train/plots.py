"""Parity plots (predicted vs reference energy, force, virial) written as PNG at the end of
training. Uses matplotlib's Agg backend, so no display is needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .loss import virial_six

__all__ = ["parity_plots"]


def _panel(ax, reference, predicted, label, unit):
    reference = np.asarray(reference).ravel()
    predicted = np.asarray(predicted).ravel()
    keep = np.isfinite(reference) & np.isfinite(predicted)
    reference, predicted = reference[keep], predicted[keep]
    if reference.size == 0:
        ax.set_axis_off()
        ax.set_title(f"{label}: no data")
        return
    rmse = float(np.sqrt(np.mean((predicted - reference) ** 2)))
    ax.plot(reference, predicted, "o", ms=3, alpha=0.5, mew=0)
    lo = min(reference.min(), predicted.min())
    hi = max(reference.max(), predicted.max())
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.set_xlabel(f"reference {label} ({unit})")
    ax.set_ylabel(f"predicted {label} ({unit})")
    scale, shown = (1e3, "meV") if unit.startswith("eV") else (1.0, "")
    shown_unit = unit.replace("eV", shown) if shown else unit
    ax.set_title(f"RMSE {rmse * scale:.3g} {shown_unit}")


def parity_plots(directory, train_structures, train_pred, test_structures=None,
                 test_pred=None) -> list[Path]:
    """Write ``parity_train.png`` (and ``parity_test.png``) in ``directory``; returns paths.

    The energies are per atom, forces per component, virials per atom (6 components); the
    virial panel is left out when no structure has a reference virial.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    sets = [("train", train_structures, train_pred)]
    if test_structures and test_pred is not None:
        sets.append(("test", test_structures, test_pred))
    for name, structures, pred in sets:
        n = np.array([len(s.symbols) for s in structures], dtype=np.float64)
        e_ref = np.array([s.energy for s in structures]) / n
        f_ref = np.concatenate([np.asarray(s.forces).reshape(-1, 3) for s in structures])
        v_ref = np.array([virial_six(s.virial) if s.virial is not None else np.full(6, np.nan)
                          for s in structures]).reshape(-1, 6) / n[:, None]
        panels = [(e_ref, pred.energy / n, "energy", "eV/atom"),
                  (f_ref, pred.forces, "force", "eV/Å")]
        if np.isfinite(v_ref).any():  # data without virials get no empty virial panel
            panels.append((v_ref, virial_six(pred.virial) / n[:, None], "virial", "eV/atom"))
        fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 4.2))
        for ax, panel in zip(axes, panels, strict=True):
            _panel(ax, *panel)
        fig.suptitle(f"nepzbl train: {name} set ({len(structures)} structures)")
        fig.tight_layout()
        path = Path(directory) / f"parity_{name}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        tmp.replace(path)
        written.append(path)
    return written
