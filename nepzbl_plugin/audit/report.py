"""Presenting an audit: the terminal table, the JSON object and the PNG of the dimer curves."""

from __future__ import annotations

import json

import numpy as np

from ..io.atomic import atomic_temporary_path

__all__ = ["format_report", "report_json", "plot_dimers", "plot_comparison"]

_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skipped": "skip"}


def _num(value, fmt: str, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{fmt}}{unit}"


def format_report(report) -> str:
    """The audit as text: one row per pair, then one line per check, then the verdict."""
    lines = [f"nepzbl audit: {report.name}  (species {' '.join(report.species)})", ""]
    header = (f"{'pair':<8}{'barrier':>10}{'at':>9}{'path max':>10}{'at':>9}{'maxima':>8}"
              f"{'wall/ZBL':>10}{'data min':>10}{'ZBL outer':>11}  verdict")
    lines += [header, "-" * len(header)]
    for name, a in report.analyses.items():
        data_min = outer = None
        if report.overlaps and name in report.overlaps:
            data_min = report.overlaps[name].data_min_distance
            outer = report.overlaps[name].zbl_outer
        elif report.data_min_distances:
            data_min = report.data_min_distances.get(name)
        verdict = "collapse path" if a.collapse_path else (
            "walled barrier" if a.barrier is not None else "ok")
        lines.append(
            f"{name:<8}{_num(a.barrier, '.3f', ' eV'):>10}"
            f"{_num(a.breakdown_distance, '.2f', ' Å'):>9}"
            f"{_path_barrier(a):>10}{_num(a.path_barrier_distance, '.2f', ' Å'):>9}"
            f"{len(a.local_maxima):>8}{_num(a.wall_ratio, '.3f'):>10}"
            f"{_num(data_min, '.2f', ' Å'):>10}{_num(outer, '.2f', ' Å'):>11}  {verdict}"
        )
    lines.append("")
    relative = report.settings.get("relative_tolerance", 0.0)
    lines.append(f"barrier: first maximum >= {report.settings['barrier_tolerance_eV']:g} eV "
                 f"(and >= {relative:g} x the curve's depth) coming in from {_far(report)} Å, "
                 "the paper's definition; path max: highest maximum on the collapse path "
                 "('downhill': none, the way in is open)")
    lines.append(f"wall/ZBL: lowest E(r)/ZBL(r) for r <= {report.settings['deep_distance_A']:g} Å "
                 f"(collapse path below {report.settings['wall_fraction']:g})")
    if report.stress is not None:
        d = report.stress.as_dict()
        lines.append(
            f"hot MD: {d['num_atoms']} atoms, {d['temperature_K']:.0f} K "
            f"({d['temperature_source']}), {d['duration_ps']:.2f} ps in {d['wall_seconds']:.0f} s; "
            f"collapsed frames {100 * d['collapsed_fraction']:.1f} %, onset "
            f"{_num(d['collapse_onset_ps'], '.3f', ' ps')}, shortest distance "
            f"{_num(d['min_distance'], '.2f', ' Å')}")
        knock = d.get("knock_on")
        if knock:
            lines.append(
                f"knock-on: {knock['collisions']} head-on collisions of "
                f"{knock['energy_eV']:.2f} eV "
                f"({knock['energy_over_kT']:.1f} k_B T: a run of {knock['horizon_atom_ns']:g} "
                f"atom ns) over {', '.join(knock['pairs'])}; {_first_collapse(knock)}; "
                f"closest approach {_num(knock['closest_approach'], '.2f', ' Å')}")
        lines += _power_lines(report.md_power)
        peaks = [f"{k} g={v['g']:.2f} at {v['distance']:.2f} Å"
                 for k, v in d["rdf_peaks_below_1.5"].items() if v["g"] > 0]
        lines.append("partial RDF below 1.5 Å: " + ("; ".join(peaks) if peaks else "empty"))
    lines.append("")
    for key, check in report.checks.items():
        lines.append(f"[{_MARK.get(check.status, check.status)}] {key}: {check.message}")
    lines.append("")
    lines.append("verdict: SAFE" if report.safe else "verdict: UNSAFE")
    return "\n".join(lines)


def _percent(fraction: float) -> str:
    if fraction < 1e-4:
        return "< 0.01 %"
    return f"{100 * fraction:.2g} %" if fraction < 0.1 else f"{100 * fraction:.0f} %"


def _power_lines(power) -> list[str]:
    """What the stress test could have missed: per pair with a collapse path, its collisions and
    the estimated chance that all of them missed it."""
    if not power or not power["pairs"]:
        return []
    target = _percent(power["miss_target"])
    lines = ["MD power, per pair with a collapse path (an estimate from the path barrier that "
             "ignores the neighbours, docs/audit.md):"]
    for pair, p in power["pairs"].items():
        need = p["collisions_for_miss_target"]
        text = (f"  {pair:<8}{p['collisions']:>3} collisions"
                + ("" if p["energy_eV"] is None else f" at {p['energy_eV']:.2f} eV")
                + f" against {p['barrier_eV']:.2f} eV: ")
        if p["energy_eV"] is None:
            text += "plain NVT only, no estimate"
        elif p["collisions"] == 0:
            text += ("not collided (collisions go to the pairs the data bring within 4 Å, or "
                     "to those of --kick-pairs; --kick-pairs A-B adds it), "
                     f"{_percent(p['crossing_probability'])} per collision")
        else:
            text += (f"{_percent(p['crossing_probability'])} per collision, all miss "
                     f"{_percent(p['miss_chance'])}")
            if need is None:
                text += "; more collisions will not help: raise --kick-energy or --horizon"
            elif need > p["collisions"]:
                text += f" ({need} collisions for < {target})"
        lines.append(text)
    if power["kicks_per_pair"] is not None:
        lines.append(f"  --kicks-per-pair {power['kicks_per_pair']} brings the miss chance of "
                     f"every collided pair that can cross below {target}")
    return lines


def _path_barrier(analysis) -> str:
    if not analysis.collapse_path:
        return "-"
    if analysis.path_barrier is None:
        return "downhill"
    return f"{analysis.path_barrier:.3f} eV"


def _first_collapse(knock: dict) -> str:
    first = knock.get("first_collapse_after")
    if first is None:
        return "no collapse after any collision"
    return (f"first collapse after collision {first['index'] + 1} ({first['pair']}, "
            f"{first['time_fs'] / 1e3:.1f} ps)")


def _far(report) -> str:
    for curve in report.curves.values():
        return f"{curve.reference_distance:.2f}"
    return "?"


def report_json(report) -> str:
    """One JSON object (see :meth:`AuditReport.as_dict`); NaN and inf become null."""
    def clean(value):
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, (np.floating, float)):
            return float(value) if np.isfinite(value) else None
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.bool_):
            return bool(value)
        return value

    return json.dumps(clean(report.as_dict()), indent=1)


def _save(fig, path) -> None:
    with atomic_temporary_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)


def _axes_grid(count: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, count)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.ravel()[count:]:
        ax.set_visible(False)
    return plt, fig, axes.ravel()


def _ylim(curves) -> tuple[float, float]:
    """Show the chemistry and the start of any wall: from the lowest point to a few eV above
    the highest point beyond 1.2 Å (8 to 30 eV), not the hundreds of eV of a ZBL core."""
    low = min(float(np.min(c.energy)) for c in curves)
    high = max(float(np.max(c.energy[c.distances >= 1.2])) for c in curves
               if np.any(c.distances >= 1.2))
    return low - 0.5, float(np.clip(high + 3.0, 8.0, 30.0))


def plot_dimers(report, path) -> None:
    """PNG of every pair's dimer curve (total, and NEP/ZBL parts when known), barriers marked."""
    curves = list(report.curves.values())
    plt, fig, axes = _axes_grid(len(curves))
    for ax, curve in zip(axes, curves, strict=False):
        analysis = report.analyses[curve.name]
        ax.plot(curve.distances, curve.energy, color="k", lw=1.5, label="total")
        if curve.energy_zbl is not None and np.any(curve.energy_zbl != 0):
            ax.plot(curve.distances, curve.energy_nep, color="tab:blue", lw=1, ls="--", label="NEP")
            ax.plot(curve.distances, curve.energy_zbl, color="tab:orange", lw=1, ls=":",
                    label="ZBL")
        if analysis.barrier is not None:
            ax.plot([analysis.breakdown_distance], [analysis.barrier], "o", color="tab:red",
                    ms=5, label=f"barrier {analysis.barrier:.2f} eV")
        status = "collapse path" if analysis.collapse_path else "safe"
        ax.set_title(f"{curve.name}: {status}", fontsize=9,
                     color="tab:red" if analysis.collapse_path else "k")
        ax.set_ylim(*_ylim([curve]))
        ax.axhline(0, color="0.7", lw=0.5)
        ax.set_xlabel("distance (Å)", fontsize=8)
        ax.set_ylabel("energy (eV)", fontsize=8)
        ax.legend(fontsize=6, loc="upper right")
        ax.tick_params(labelsize=7)
    fig.suptitle(f"dimer curves: {report.name} ({'SAFE' if report.safe else 'UNSAFE'})")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_comparison(reports, path, labels=None, title: str | None = None) -> None:
    """PNG overlaying the dimer curves of several audited models, one panel per pair; the
    distances the data contain (first report's data) are shaded."""
    labels = labels or [r.name for r in reports]
    names = list(reports[0].curves)
    plt, fig, axes = _axes_grid(len(names))
    colours = ["tab:red", "tab:green", "tab:blue", "tab:purple"]
    for ax, name in zip(axes, names, strict=False):
        for k, (report, label) in enumerate(zip(reports, labels, strict=False)):
            curve = report.curves[name]
            analysis = report.analyses[name]
            tag = "collapse path" if analysis.collapse_path else "safe"
            ax.plot(curve.distances, curve.energy, color=colours[k % len(colours)], lw=1.3,
                    label=f"{label}: {tag}")
        ax.set_ylim(*_ylim([r.curves[name] for r in reports]))
        ax.axhline(0, color="0.7", lw=0.5)
        data_min = (reports[0].data_min_distances or {}).get(name)
        if data_min is not None:
            xlim = ax.get_xlim()
            ax.axvspan(data_min, xlim[1], color="0.9", zorder=0)
            ax.set_xlim(*xlim)
            ax.axvline(data_min, color="0.5", lw=0.8, ls="--",
                       label=f"data from {data_min:.2f} Å")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("distance (Å)", fontsize=8)
        ax.set_ylabel("energy (eV)", fontsize=8)
        ax.legend(fontsize=6, loc="upper right")
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
