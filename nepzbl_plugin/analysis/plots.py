"""PNG plots of the analyses (matplotlib, Agg backend: no display needed). Every function
draws one analysis object, writes the PNG atomically to ``path`` and returns the path; the
caller (the CLI) chooses where."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write_bytes

__all__ = ["plot_rdf", "plot_msd", "plot_arrhenius", "plot_lattice", "plot_locality",
           "plot_descriptor_map"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    _pyplot().close(fig)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_rdf(rdf, path, title: str | None = None) -> Path:
    """Partial RDFs g_AB(r) of an :class:`~nepzbl_plugin.analysis.rdf.RDF`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, g in rdf.rdf.items():
        ax.plot(rdf.bin_centers, g, lw=1.2, label=key)
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_xlim(0, rdf.r_max)
    ax.legend(title="pair", ncol=2, fontsize=8)
    ax.set_title(title or f"partial RDFs ({rdf.frames} frames)")
    return _save(fig, path)


def plot_msd(msd, path, title: str | None = None) -> Path:
    """MSD per species and axis with the fitted lines over the first half of the window."""
    plt = _pyplot()
    species = list(msd.msd)
    fig, axes = plt.subplots(1, len(species), figsize=(5.2 * len(species), 4.2), squeeze=False)
    t_ps = msd.lag_times_fs / 1000.0
    fit_end = msd.fit_range_fs[1] / 1000.0
    for ax, s in zip(axes[0], species, strict=True):
        curve = msd.msd[s]
        for axis, name in enumerate("xyz"):
            ax.plot(t_ps, curve[:, axis], lw=1.0, label=f"{name}")
        ax.plot(t_ps, curve.sum(axis=1) / 3.0, "k-", lw=1.5, label="mean of x, y, z")
        slope = msd.diffusion[s] * 2.0 / 0.1  # cm²/s -> Å²/fs per axis
        intercept = float(np.mean(msd.fit_intercept[s]))
        ax.plot(t_ps, intercept + slope * msd.lag_times_fs, "k--", lw=0.9,
                label="fit (D slope)")
        ax.axvspan(0, fit_end, color="0.9", zorder=0, label="fit range")
        ax.set_xlabel("lag time (ps)")
        ax.set_ylabel("MSD per axis (Å²)")
        ax.set_title(f"{s}: D = {msd.diffusion[s]:.3g} ± {msd.diffusion_error[s]:.2g} cm²/s")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _ea_label(ea: float, error: float | None) -> str:
    """Ea with its standard error, or without one (two points fix the line exactly)."""
    return f"Ea = {ea:.3f} eV" if error is None else f"Ea = {ea:.3f} ± {error:.2g} eV"


def plot_arrhenius(arrhenius, path, unit: str = "cm²/s", title: str | None = None) -> Path:
    """ln D against 1000/T with the fitted line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    T, D, error = arrhenius.temperatures, arrhenius.diffusion, arrhenius.diffusion_error
    ax.errorbar(1000.0 / T, D, yerr=error, fmt="o", capsize=3, label="data")
    line_T = np.linspace(T.min(), T.max(), 100)
    ax.plot(1000.0 / line_T, arrhenius.predict(line_T), "k-",
            label=_ea_label(arrhenius.activation_energy, arrhenius.activation_energy_error))
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(f"D ({unit})")
    ax.legend()
    ax.set_title(title or "Arrhenius fit")
    return _save(fig, path)


def plot_lattice(lattice, path, title: str | None = None) -> Path:
    """a, b, c and c/a against temperature, the transition temperature marked."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    T = lattice.temperatures
    for axis, name in enumerate("abc"):
        left.plot(T, lattice.lattice[:, axis], "o-", ms=3, label=name)
    left.set_xlabel("T (K)")
    left.set_ylabel("lattice parameter (Å)")
    left.legend()
    right.plot(T, lattice.c_over_a, "o-", ms=3, label="c/a")
    right.axhspan(1 - lattice.tolerance, 1 + lattice.tolerance, color="0.9",
                  label=f"cubic within {lattice.tolerance:g}")
    if lattice.transition_temperature is not None:
        right.axvline(lattice.transition_temperature, color="C3", ls="--",
                      label=f"T_c = {lattice.transition_temperature:.0f} K")
    right.set_xlabel("T (K)")
    right.set_ylabel("c/a")
    right.legend()
    fig.suptitle(title or "lattice parameters against temperature")
    return _save(fig, path)


def plot_locality(locality, path, cutoffs: dict[str, float] | None = None,
                  title: str | None = None) -> Path:
    """Spread of the central force against the frozen radius (log scale; zeros at the floor),
    with vertical lines at ``cutoffs`` ({label: Å})."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    floor = 1e-16
    ax.plot(locality.radii, np.maximum(locality.force_std, floor), "o-", label="RMS spread")
    ax.plot(locality.radii, np.maximum(locality.force_max, floor), "s--", label="largest change")
    for k, (label, value) in enumerate((cutoffs or {}).items()):
        ax.axvline(value, color=f"C{k + 2}", ls=":", label=f"{label} = {value:g} Å")
    ax.set_yscale("log")
    ax.set_xlabel("radius of the frozen sphere R (Å)")
    ax.set_ylabel("central force spread (eV/Å; zero drawn at 1e-16)")
    ax.legend(fontsize=8)
    ax.set_title(title or f"locality test ({locality.samples} samples, "
                          f"±{locality.amplitude:g} Å)")
    return _save(fig, path)


def plot_descriptor_map(descriptor_map, path, title: str | None = None) -> Path:
    """Scatter of the first two map coordinates, one colour per species."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ratio = descriptor_map.explained_variance_ratio
    for s, rows in descriptor_map.by_species().items():
        y = rows[:, 1] if rows.shape[1] > 1 else np.zeros(rows.shape[0])
        ax.scatter(rows[:, 0], y, s=6, alpha=0.6, label=f"{s} ({rows.shape[0]})")
    name = descriptor_map.method.upper()
    if ratio is not None:
        ax.set_xlabel(f"{name} 1 ({100 * ratio[0]:.1f} % of variance, dimensionless)")
        ax.set_ylabel(f"{name} 2 ({100 * ratio[1]:.1f} % of variance, dimensionless)"
                      if ratio.size > 1 else f"{name} 2")
    else:
        ax.set_xlabel(f"{name} 1 (dimensionless)")
        ax.set_ylabel(f"{name} 2 (dimensionless)")
    ax.legend(title="species", markerscale=3)
    ax.set_title(title or "descriptor map")
    return _save(fig, path)
