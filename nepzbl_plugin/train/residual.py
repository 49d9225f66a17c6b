"""Labels minus ZBL: what the network of a NEP-ZBL model has to learn.

GPUMD adds ZBL to the network output before the loss (``nep-reference.md`` 3.5), so the
network fits E − E_ZBL, F − F_ZBL and W − W_ZBL. :func:`zbl_residual` computes these for a
training set and how much of the label variance ZBL accounts for.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .loss import Predictions, virial_six

__all__ = ["zbl_residual", "ResidualReport", "zbl_predictions"]


@dataclasses.dataclass
class ResidualReport:
    """Variances of the labels and of the residuals (labels − ZBL).

    ``*_variance`` are the variances of the labels, of ZBL and of the residual: energy per
    atom across structures (eV²/atom²), force components (eV²/Å²), virial components per
    atom over structures with a virial (eV²/atom²). ``explained`` = 1 − var(residual)/var(label):
    the fraction of the label variance that ZBL carries.
    """

    num_structures: int
    energy_variance: tuple[float, float, float]
    force_variance: tuple[float, float, float]
    virial_variance: tuple[float, float, float]

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

    def table(self) -> str:
        rows = [
            "quantity            var(label)      var(ZBL)        var(label-ZBL)  "
            "ZBL fraction",
        ]
        for name, unit, v in (
            ("energy", "eV²/atom²", self.energy_variance),
            ("force", "eV²/Å²", self.force_variance),
            ("virial", "eV²/atom²", self.virial_variance),
        ):
            rows.append(
                f"{name:<7s}{unit:<12s} {v[0]:<15.6g} {v[1]:<15.6g} {v[2]:<15.6g} "
                f"{self._explained(v):.4f}"
            )
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


def zbl_residual(model, structures):
    """Structures with labels minus ZBL, and a :class:`ResidualReport`.

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

    report = ResidualReport(
        num_structures=len(structures),
        energy_variance=variances(e_label, e_zbl),
        force_variance=variances(np.concatenate(f_label), np.concatenate(f_zbl)),
        virial_variance=variances(np.ravel(v_label), np.ravel(v_zbl)),
    )
    return out, report
