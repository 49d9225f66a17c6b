"""The audit: dimer scans, data distances and the hot-MD stress test, with a verdict per check.

A model is *safe* when no check fails. The checks (``docs/audit.md``):

* ``dimer``: fails when some pair has a collapse path (see :mod:`.dimer`);
* ``zbl_vs_data``: warns when a ZBL switching region reaches into distances the data contain
  (skipped without data or without ZBL);
* ``hot_md``: fails when any sample of the stress test collapsed or the run blew up (skipped
  when not run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .dimer import (
    BARRIER_TOLERANCE,
    DEEP_DISTANCE,
    RELATIVE_TOLERANCE,
    WALL_FRACTION,
    CurveAnalysis,
    DimerCurve,
    analyse_curve,
    check_criteria,
    scan_pairs,
)

__all__ = ["Check", "AuditReport", "audit", "make_calculator", "PASS", "WARN", "FAIL", "SKIPPED"]

PASS, WARN, FAIL, SKIPPED = "pass", "warn", "fail", "skipped"


@dataclass
class Check:
    status: str
    message: str

    def as_dict(self) -> dict:
        return {"status": self.status, "message": self.message}


@dataclass
class AuditReport:
    """Everything the audit found; :meth:`as_dict` is the ``--json`` object."""

    name: str
    species: list[str]
    curves: dict[str, DimerCurve]
    analyses: dict[str, CurveAnalysis]
    checks: dict[str, Check]
    data_min_distances: dict | None = None
    overlaps: dict | None = None
    stress: object | None = None  # StressTestResult
    settings: dict = field(default_factory=dict)
    md_power: dict | None = None  # stress_test.detection_power of the stress test

    @property
    def safe(self) -> bool:
        return all(c.status != FAIL for c in self.checks.values())

    def as_dict(self) -> dict:
        pairs = {}
        for name, analysis in self.analyses.items():
            entry = analysis.as_dict()
            if self.overlaps is not None and name in self.overlaps:
                entry.update(self.overlaps[name].as_dict())
            elif self.data_min_distances is not None:
                entry["data_min_distance"] = self.data_min_distances.get(name)
            pairs[name] = entry
        return {
            "model": self.name,
            "safe": self.safe,
            "species": list(self.species),
            "pairs": pairs,
            "checks": {k: c.as_dict() for k, c in self.checks.items()},
            "hot_md": None if self.stress is None else {**self.stress.as_dict(),
                                                         "power": self.md_power},
            "settings": dict(self.settings),
            "units": {"energy": "eV", "distance": "Angstrom", "time": "ps", "temperature": "K"},
        }


def make_calculator(model, num_threads: int | None = None):
    """nepzbl's ASE calculator for a model (a :class:`~nepzbl_plugin.model.Model` or a
    nep.txt path). ``num_threads``: threads of the engine (None: its default, which keeps
    tiny systems such as dimers on one thread)."""
    from ..calculators import NEP

    return NEP(model, num_threads=num_threads)


def _dimer_check(analyses: dict[str, CurveAnalysis]) -> Check:
    bad = [a for a in analyses.values() if a.collapse_path]
    walled = [a for a in analyses.values() if a.barrier is not None and not a.collapse_path]
    if bad:
        names = ", ".join(a.pair for a in bad)
        return Check(FAIL, f"collapse path in {len(bad)} of {len(analyses)} pairs ({names}): "
                           f"below {bad[0].deep_distance:.2f} Å the energy stays under "
                           f"{bad[0].wall_fraction:g} x the ZBL repulsion")
    if walled:
        names = ", ".join(f"{a.pair} {a.barrier:.2f} eV at {a.breakdown_distance:.2f} Å"
                          for a in walled)
        return Check(PASS, f"no collapse path; local maxima closed by a wall: {names}")
    return Check(PASS, "no collapse path, no spurious maximum")


def _overlap_check(overlaps: dict | None, has_zbl: bool) -> Check:
    if overlaps is None:
        return Check(SKIPPED, "no data given (--data)")
    if not has_zbl:
        return Check(SKIPPED, "the model has no ZBL")
    reach = [o for o in overlaps.values() if o.reaches_into_data]
    if reach:
        names = ", ".join(f"{o.pair} (outer {o.zbl_outer:.2f} Å > data {o.data_min_distance:.2f} Å)"
                          for o in reach)
        return Check(WARN, f"ZBL switching reaches into the data for {names}; "
                           "'nepzbl zbl suggest' proposes radii below the data")
    return Check(PASS, "every ZBL switching region ends below the data's shortest distances")


def _md_check(stress) -> Check:
    if stress is None:
        return Check(SKIPPED, "not run (needs --data, or was switched off)")
    d = stress.as_dict()
    if stress.run.aborted:
        return Check(FAIL, f"the MD run blew up at {d['duration_ps']:.3f} ps: {stress.run.aborted}")
    knock = d.get("knock_on")
    kicks = ("" if not knock else f" with {knock['collisions']} knock-on collisions of "
             f"{knock['energy_eV']:.2f} eV")
    if stress.collapsed_fraction > 0:
        after = ""
        first = knock.get("first_collapse_after") if knock else None
        if first is not None:
            after = f"; after the {first['pair']} collision at {first['time_fs'] / 1e3:.1f} ps"
        return Check(FAIL, f"{100 * stress.collapsed_fraction:.1f} % of frames collapsed at "
                           f"{stress.temperature:.0f} K{kicks}, first at "
                           f"{d['collapse_onset_ps']:.3f} ps (shortest distance "
                           f"{d['min_distance']:.2f} Å{after})")
    return Check(PASS, f"no collapse in {d['duration_ps']:.2f} ps at {stress.temperature:.0f} K"
                       f"{kicks} (shortest distance {d['min_distance']:.2f} Å)")


def audit(
    model=None,
    *,
    data=None,
    calculator=None,
    species=None,
    name: str | None = None,
    distances=None,
    tolerance: float = BARRIER_TOLERANCE,
    deep_distance: float = DEEP_DISTANCE,
    wall_fraction: float = WALL_FRACTION,
    relative_tolerance: float = RELATIVE_TOLERANCE,
    hot_md=True,
    progress=None,
) -> AuditReport:
    """Audit a model, or any ASE calculator, for collapse.

    Parameters
    ----------
    model
        A :class:`~nepzbl_plugin.model.Model` or a nep.txt path. Gives the species, the ZBL
        part of the dimer curves and (unless ``calculator`` is given) the calculator.
    data
        Training data (train.xyz path, Atoms or TrainingStructures): enables the distance
        check and the hot-MD stress test.
    calculator
        Any ASE calculator to audit instead of the model's own (``species`` then required
        when there is no model).
    distances
        Dimer separations (default 0.10..6.00 Å by 0.01 Å).
    tolerance, deep_distance, wall_fraction, relative_tolerance
        The criterion of :func:`~nepzbl_plugin.audit.dimer.analyse_curve`.
    hot_md
        ``True`` (default settings), ``False``/``None`` (skip), or a
        :class:`~nepzbl_plugin.audit.stress_test.StressTestSettings`.
    """
    from ..model import Model, read_model
    from .distances import load_structures, min_pair_distances, zbl_overlap
    from .stress_test import StressTestSettings, detection_power, stress_test

    check_criteria(tolerance, deep_distance, wall_fraction, relative_tolerance)
    if model is not None and not isinstance(model, Model):
        name = name or os.path.basename(str(model))
        model_obj = read_model(model)
    else:
        model_obj = model
    if model_obj is not None:
        species = list(model_obj.types)
    elif species is None:
        raise ValueError("audit needs a model or the species of the calculator")
    if calculator is None:
        if model_obj is None:
            raise ValueError("audit needs a model or a calculator")
        source = model if isinstance(model, Model) else str(model)
        dimer_calculator = make_calculator(source)
        threads = getattr(hot_md, "num_threads", None)
        md_calculator = make_calculator(source, num_threads=threads)
    else:
        dimer_calculator = md_calculator = calculator
    name = name or ("model" if model_obj is not None else type(dimer_calculator).__name__)
    zbl_table = model_obj.zbl_table() if model_obj is not None else None

    split = model_obj is None or model_obj.zbl is not None
    curves = scan_pairs(dimer_calculator, species, distances, zbl_table=zbl_table, split=split,
                        progress=progress)
    analyses = {k: analyse_curve(c, tolerance=tolerance, deep_distance=deep_distance,
                                 wall_fraction=wall_fraction,
                                 relative_tolerance=relative_tolerance)
                for k, c in curves.items()}
    checks = {"dimer": _dimer_check(analyses)}

    frames = min_distances = overlaps = stress = None
    if data is not None:
        frames = load_structures(data)
        unknown = sorted({s for atoms in frames for s in atoms.get_chemical_symbols()}
                         - set(species))
        if unknown:
            from ..errors import NepzblError

            raise NepzblError(f"the data contain {', '.join(unknown)}, which the model "
                              f"({' '.join(species)}) does not know")
        min_distances = min_pair_distances(frames, species)
        if model_obj is not None:
            overlaps = zbl_overlap(model_obj, min_distances)
    has_zbl = model_obj is not None and model_obj.zbl is not None
    checks["zbl_vs_data"] = _overlap_check(overlaps, has_zbl)
    if frames is not None and hot_md:
        settings = hot_md if isinstance(hot_md, StressTestSettings) else StressTestSettings()
        stress = stress_test(md_calculator, frames, settings, data_min_distances=min_distances,
                             progress=progress, species=species)
    checks["hot_md"] = _md_check(stress)
    power = None
    if stress is not None:
        barriers = {k: (a.path_barrier or 0.0) for k, a in analyses.items() if a.collapse_path}
        power = detection_power(stress, barriers)
    return AuditReport(
        name=name, species=species, curves=curves, analyses=analyses, checks=checks,
        data_min_distances=min_distances, overlaps=overlaps, stress=stress, md_power=power,
        settings={"barrier_tolerance_eV": tolerance, "relative_tolerance": relative_tolerance,
                  "deep_distance_A": deep_distance, "wall_fraction": wall_fraction},
    )
