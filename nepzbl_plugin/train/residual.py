"""Labels minus ZBL: what the network of a NEP-ZBL model has to learn.

GPUMD adds ZBL to the network output before the loss (``nep-reference.md`` 3.5), so the
network fits E − E_ZBL, F − F_ZBL and W − W_ZBL. :func:`zbl_residual` computes these for a
training set, and how much spread ZBL adds to and removes from the labels, per species pair.
:func:`zbl_setup` says which ZBL a ``nep.in`` trains with, where its radii came from and whether
it switches inside distances the training data contain.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..model import Model
from .loss import Predictions, virial_six

__all__ = ["zbl_residual", "ResidualReport", "PairResidual", "zbl_predictions", "zbl_setup",
           "ZBLSetup"]


def _spread(label, part) -> tuple[float, float, float]:
    """(ZBL adds, ZBL removes, residual spread), square roots of variances in the labels' unit.

    var(label − ZBL) = var(label) + var(ZBL) − 2 cov(label, ZBL): ZBL *adds* var(ZBL) and
    *removes* 2 cov(label, ZBL) (0 when ZBL points against the labels, which then only adds).
    """
    label, part = np.asarray(label, float), np.asarray(part, float)
    if label.size == 0:
        return (0.0, 0.0, 0.0)
    cov = float(np.mean((label - label.mean()) * (part - part.mean())))
    return (float(np.sqrt(part.var())), float(np.sqrt(max(2.0 * cov, 0.0))),
            float(np.sqrt((label - part).var())))


@dataclasses.dataclass
class PairResidual:
    """The force spread (eV/Å) that the ZBL of one species pair alone adds to and removes from
    the labels, the label spread left (labels minus this pair's ZBL), and the largest force
    component that pair's ZBL puts on any atom of the data (> 0: its switch reaches into
    distances the data contain)."""

    pair: str
    adds: float
    removes: float
    residual: float
    max_force: float

    @property
    def acts_on_data(self) -> bool:
        return self.max_force > 0.0


@dataclasses.dataclass
class ResidualReport:
    """Variances of the labels and of the residuals (labels − ZBL).

    ``*_variance`` are the variances of the labels, of ZBL and of the residual: energy per
    atom across structures (eV²/atom²), force components (eV²/Å²), virial components per
    atom over structures with a virial (eV²/atom²). ``spreads`` gives, per quantity, what ZBL
    adds and removes and the residual spread as square roots (eV/atom, eV/Å; see
    :func:`_spread`), ``pairs`` the same for the forces of each species pair's ZBL alone.
    ``explained`` = 1 − var(residual)/var(label) is kept for scripts; it turns negative (and
    unreadable) when ZBL is large inside the data, which is why the table shows spreads.
    """

    num_structures: int
    energy_variance: tuple[float, float, float]
    force_variance: tuple[float, float, float]
    virial_variance: tuple[float, float, float]
    # (ZBL adds, ZBL removes, label-ZBL spread) per quantity, square roots: eV/atom, eV/Å
    spreads: dict = dataclasses.field(default_factory=dict)
    pairs: dict = dataclasses.field(default_factory=dict)  # {"A-B": PairResidual}

    @staticmethod
    def _explained(v):
        return float(1.0 - v[2] / v[0]) if v[0] > 0 else float("nan")

    @property
    def explained(self) -> dict[str, float]:
        return {
            "energy": self._explained(self.energy_variance),
            "force": self._explained(self.force_variance),
            "virial": self._explained(self.virial_variance),
        }

    @property
    def overlapping_pairs(self) -> list[str]:
        """Pairs whose ZBL acts on the data (switch inside distances the data contain)."""
        return [name for name, p in self.pairs.items() if p.acts_on_data]

    def table(self) -> str:
        """The report as text: spreads (square roots of variances) with units."""
        rows = [f"{'quantity':<18}{'label':>10}{'ZBL adds':>10}{'removes':>10}{'label-ZBL':>11}"]
        for name, unit, v in (
            ("energy", "eV/atom", self.energy_variance),
            ("force", "eV/Å", self.force_variance),
            ("virial", "eV/atom", self.virial_variance),
        ):
            adds, removes, left = self.spreads.get(name, (np.nan, np.nan, np.nan))
            rows.append(f"{name + ' (' + unit + ')':<18}{np.sqrt(v[0]):>10.4g}{adds:>10.4g}"
                        f"{removes:>10.4g}{left:>11.4g}")
        rows.append("spread = standard deviation; var(label-ZBL) = var(label) + adds² - "
                    "removes²")
        if self.pairs:
            rows.append("")
            rows.append(f"{'force per pair':<18}{'ZBL adds':>10}{'removes':>10}{'label-ZBL':>11}"
                        f"{'max ZBL':>10}  (eV/Å, that pair's ZBL alone)")
            for name, p in self.pairs.items():
                flag = "  OVERLAP: ZBL acts inside the data" if p.acts_on_data else ""
                rows.append(f"{name:<18}{p.adds:>10.4g}{p.removes:>10.4g}{p.residual:>11.4g}"
                            f"{p.max_force:>10.4g}{flag}")
        overlap = self.overlapping_pairs
        if overlap:
            rows.append(f"WARNING: the ZBL of {', '.join(overlap)} switches inside distances the "
                        "data contain: the network must learn labels minus that ZBL there "
                        "('nepzbl zbl suggest' proposes radii below the data)")
        return "\n".join(rows)


def zbl_predictions(model, structures) -> Predictions:
    """Energies, forces and virials of the ZBL part of ``model`` alone."""
    from ._backend import EngineBackend, zbl_only_model

    if model.zbl is None:
        raise ValueError("the model has no ZBL part (no `zbl` line in nep.in)")
    zmodel = zbl_only_model(model)
    backend = EngineBackend(zmodel, structures)
    parts = [backend.predict(zmodel.parameters, range(i, min(len(structures), i + 64)))
             for i in range(0, len(structures), 64)]
    return Predictions(
        np.concatenate([p.energy for p in parts]),
        np.concatenate([p.forces for p in parts]),
        np.concatenate([p.virial for p in parts]),
    )


def _pair_only_model(model, pair_row: int):
    """A copy of ``model`` whose network outputs 0 and whose ZBL acts for one unordered type
    pair only: GPUMD's flexible form with the model's own resolved radii and coefficients, and
    every other pair's amplitudes set to 0."""
    from ..model import ZBLSettings
    from ._backend import zbl_only_model

    table = model.zbl_table()
    T = model.num_types
    rows = np.array([table[a, b] for a in range(T) for b in range(a, T)])
    keep = np.zeros(len(rows), dtype=bool)
    keep[pair_row] = True
    rows[~keep, 2::2] = 0.0
    copy = zbl_only_model(model)
    copy.zbl = ZBLSettings("flexible", 0.0, 0.0, flexible=rows)
    return copy


def zbl_residual(model, structures, *, per_pair: bool = True):
    """Structures with labels minus ZBL, and a :class:`ResidualReport`.

    ``per_pair``: also split the force spread by species pair (one ZBL-only evaluation per
    pair).

    Returns
    -------
    (list, ResidualReport)
        Copies of ``structures`` whose energy, forces and virial (where present) have the
        ZBL contribution subtracted.
    """
    zbl = zbl_predictions(model, structures)
    out = []
    start = 0
    e_label, e_zbl, f_label, f_zbl, v_label, v_zbl = [], [], [], [], [], []
    for k, st in enumerate(structures):
        n = len(st.symbols)
        fz = zbl.forces[start : start + n]
        start += n
        virial = None
        if st.virial is not None:
            virial = np.asarray(st.virial) - zbl.virial[k]
            v_label.append(virial_six(st.virial) / n)
            v_zbl.append(virial_six(zbl.virial[k]) / n)
        out.append(dataclasses.replace(
            st,
            energy=st.energy - zbl.energy[k],
            forces=np.asarray(st.forces) - fz,
            virial=virial,
        ))
        e_label.append(st.energy / n)
        e_zbl.append(zbl.energy[k] / n)
        f_label.append(np.asarray(st.forces).ravel())
        f_zbl.append(fz.ravel())

    def variances(label, part):
        label, part = np.asarray(label, float), np.asarray(part, float)
        if label.size == 0:
            return (0.0, 0.0, 0.0)
        return (float(label.var()), float(part.var()), float((label - part).var()))

    forces = np.concatenate(f_label)
    pairs = {}
    if per_pair:
        T = model.num_types
        names = [f"{model.types[a]}-{model.types[b]}" for a in range(T) for b in range(a, T)]
        for k, name in enumerate(names):
            part = zbl_predictions(_pair_only_model(model, k), structures).forces.ravel()
            adds, removes, left = _spread(forces, part)
            pairs[name] = PairResidual(name, adds, removes, left,
                                       float(np.max(np.abs(part))) if part.size else 0.0)
    report = ResidualReport(
        num_structures=len(structures),
        energy_variance=variances(e_label, e_zbl),
        force_variance=variances(forces, np.concatenate(f_zbl)),
        virial_variance=variances(np.ravel(v_label), np.ravel(v_zbl)),
        spreads={"energy": _spread(e_label, e_zbl),
                 "force": _spread(forces, np.concatenate(f_zbl)),
                 "virial": _spread(np.ravel(v_label), np.ravel(v_zbl))},
        pairs=pairs,
    )
    return out, report


@dataclasses.dataclass
class ZBLSetup:
    """Which ZBL a ``nep.in`` trains with, per pair, against the training data.

    ``form``: universal, typewise or flexible; ``source``: where the radii came from (nep.in
    lines, zbl.in); ``pairs``: {"A-B": (r_inner, r_outer, data shortest distance or None)} in
    Å, r_outer capped at the angular cutoff (ZBL acts only inside it); ``inside``: the pairs
    whose switch reaches into distances the data contain; ``force_variance_fraction``:
    var(F_ZBL) / var(F_label) over the force components (None when not computed).
    """

    form: str
    source: str
    pairs: dict
    inside: list
    force_variance_fraction: float | None = None


def zbl_setup(nep_in, structures, *, force_variance: bool = True) -> ZBLSetup | None:
    """The ZBL set-up of ``nep_in`` and how it meets ``structures`` (None without ZBL).

    The data's shortest distance per pair is searched up to the largest outer radius only, so
    this is quick even on large sets; ``force_variance`` adds one ZBL-only evaluation of the
    structures for the fraction of the label force variance that ZBL carries.
    """
    from ..audit.distances import min_pair_distances

    settings = nep_in.zbl_settings()
    if settings is None:
        return None
    lines = nep_in.lines
    zbl_line = f"nep.in line {lines['zbl']} 'zbl {nep_in.zbl:g}'" if "zbl" in lines else "zbl"
    if settings.mode == "flexible":
        import os

        folder = os.path.dirname(str(nep_in.path)) or "."
        source = (f"{os.path.join(folder, 'zbl.in')} (flexible: radii and coefficients per "
                  f"pair; {zbl_line} only switches ZBL on)")
    elif settings.mode == "typewise":
        factor_line = lines.get("use_typewise_cutoff_zbl")
        source = (f"{zbl_line} and nep.in line {factor_line} 'use_typewise_cutoff_zbl "
                  f"{settings.factor:g}': outer radius min({settings.factor:g} x (R_cov,a + "
                  f"R_cov,b), {settings.outer:g} Å), inner 0")
    else:
        source = (f"{zbl_line}: universal ZBL, {settings.inner:g} to {settings.outer:g} Å for "
                  "every pair (no zbl.in beside nep.in)")
    model = Model.from_nep_in(nep_in)
    table = model.zbl_table()
    _, angular = model.pair_cutoffs()
    T = model.num_types
    outer = {}
    for a in range(T):
        for b in range(a, T):
            outer[(a, b)] = (float(table[a, b, 0]), float(min(table[a, b, 1], angular[a, b])))
    reach = max(o for _, o in outer.values())
    dmin = min_pair_distances(structures, model.types, cutoff=reach) if reach > 0 else {}
    pairs, inside = {}, []
    for (a, b), (r_in, r_out) in outer.items():
        name = f"{model.types[a]}-{model.types[b]}"
        d = dmin.get(name)
        pairs[name] = (r_in, r_out, d)
        if d is not None and d < r_out:
            inside.append(name)
    fraction = None
    if force_variance and inside:
        labels = np.concatenate([np.asarray(st.forces).ravel() for st in structures])
        zbl = zbl_predictions(model, structures).forces.ravel()
        fraction = float(zbl.var() / labels.var()) if labels.var() > 0 else float("inf")
    elif force_variance:
        fraction = 0.0
    return ZBLSetup(settings.mode, source, pairs, inside, fraction)
