"""GPUMD's flexible ZBL coefficients (``zbl.in``) fitted to the dimer energies of an oracle.

The table runs in GPUMD unchanged (``nep-reference.md`` sections 3.3 and 4.1): at most 10
species, T(T+1)/2 lines of 10 numbers ``r_inner r_outer A1 B1 A2 B2 A3 B3 A4 B4`` in GPUMD
pair order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..audit.zbl import COULOMB_K, UNIVERSAL, screening_length
from ..elements import atomic_number
from ..progress import with_progress
from .suggest import (
    MAX_FLEXIBLE_TYPES,
    MAX_RELATIVE_RMS,
    MIN_SCREENING_AT_ZERO,
    ZBLChoiceError,
    ZBLSuggestion,
    _pairs,
)

__all__ = ["FlexibleZBLFit", "fit_flexible_zbl", "oracle_dimer_energies"]


def oracle_dimer_energies(calc, species, distances=None, *, reference_distance: float = 6.0,
                          progress=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dimer energies (eV, relative to ``reference_distance``) of any ASE calculator for
    every pair: {"A-B": (r, E)}. Default distances 0.10..1.50 Å by 0.01 Å. ``progress``:
    ``None`` or ``progress(done, total, label)`` after each pair."""
    from ..audit.dimer import dimer_scan

    r = np.round(np.arange(10, 151) * 0.01, 2) if distances is None else np.asarray(distances)
    grid = np.append(r, reference_distance)
    out = {}
    for a, b in with_progress(_pairs(list(species)), progress, "oracle dimers"):
        curve = dimer_scan(calc, a, b, grid)
        out[f"{a}-{b}"] = (curve.distances[:-1], curve.energy[:-1])
    return out


@dataclass
class FlexibleZBLFit:
    """Fitted flexible ZBL: ``table`` (T(T+1)/2, 10) rows r_inner r_outer A1 B1 .. A4 B4,
    ``rms`` per pair (eV, over the fitted points), ``relative_rms`` per pair."""

    species: list[str]
    table: np.ndarray
    rms: dict[str, float]
    relative_rms: dict[str, float]

    def zbl_in_text(self) -> str:
        return "".join(" ".join(f"{v:.10g}" for v in row) + "\n" for row in self.table)

    def header_lines(self, version: int = 4) -> list[str]:
        return [f"nep{version}_zbl {len(self.species)} {' '.join(self.species)}", "zbl 0 0"]

    def zbl_settings(self):
        from ..model import ZBLSettings

        return ZBLSettings("flexible", 0.0, 0.0, flexible=self.table.copy())

    def write_zbl_in(self, path) -> None:
        from ..io.nep_txt import atomic_write_text

        atomic_write_text(path, self.zbl_in_text())


def _raw_columns(r, a: str, b: str, exponents) -> np.ndarray:
    x = r / screening_length(a, b)
    pref = COULOMB_K * atomic_number(a) * atomic_number(b) / r
    return np.stack([pref * np.exp(-bk * x) for bk in exponents], axis=1)


def _fit_pair(r, energy, a, b, fit_exponents: bool, energy_floor: float):
    from scipy.optimize import least_squares, nnls

    weight = 1.0 / np.maximum(np.abs(energy), energy_floor)
    exponents = UNIVERSAL.reshape(4, 2)[:, 1].copy()
    M = _raw_columns(r, a, b, exponents) * weight[:, None]
    amplitudes, _ = nnls(M, energy * weight)
    if fit_exponents:
        def residual(p):
            amps, expo = p[:4], p[4:]
            return (_raw_columns(r, a, b, expo) @ amps - energy) * weight

        start = np.concatenate([np.maximum(amplitudes, 1e-6), exponents])
        result = least_squares(residual, start, bounds=(np.full(8, 1e-8), np.full(8, 50.0)),
                               x_scale="jac", xtol=1e-14, ftol=1e-14, gtol=1e-14, max_nfev=20000)
        amplitudes, exponents = result.x[:4], result.x[4:]
        order = np.argsort(-exponents)
        amplitudes, exponents = amplitudes[order], exponents[order]
    fitted = _raw_columns(r, a, b, exponents) @ amplitudes
    coefficients = np.ravel(np.column_stack([amplitudes, exponents]))
    rms = float(np.sqrt(np.mean((fitted - energy) ** 2)))
    rel = float(np.sqrt(np.mean(((fitted - energy) * weight) ** 2)))
    return coefficients, rms, rel


def fit_flexible_zbl(
    dimers: dict,
    species,
    radii,
    *,
    fit_exponents: bool = False,
    fit_range: tuple[float, float] | None = None,
    energy_floor: float = 1.0,
) -> FlexibleZBLFit:
    """Fit GPUMD's flexible ZBL coefficients per pair to dimer energies.

    Parameters
    ----------
    dimers
        {"A-B": (r, E)}: dimer energies in eV relative to separated atoms (an oracle's, e.g.
        :func:`oracle_dimer_energies`, or read from files).
    species
        The type order of the model (fixes the zbl.in row order).
    radii
        A :class:`ZBLSuggestion`, or {"A-B": (r_inner, r_outer)}.
    fit_exponents
        False (default): keep the universal exponents B_k and fit the amplitudes A_k >= 0 by
        non-negative linear least squares (well conditioned); True: then refine A_k and B_k.
    fit_range
        (r_min, r_max) in Angstrom of the points to fit; default all points up to the pair's
        r_inner, where the switch is 1 and the model energy is the ZBL term alone.
    energy_floor
        Residuals are relative, (phi - E) / max(|E|, energy_floor).

    Raises
    ------
    ZBLChoiceError
        A pair's dimer curve is not ZBL-like (the fitted screening function at r = 0 is below
        0.1, or the relative RMS above 0.5): such an oracle (EMT, a NEP without ZBL, ...) has
        no nuclear repulsion to fit, and the near-zero amplitudes would remove ZBL's wall.
    """
    species = list(species)
    if len(species) > MAX_FLEXIBLE_TYPES:
        raise ZBLChoiceError(f"flexible ZBL supports at most {MAX_FLEXIBLE_TYPES} species")
    if isinstance(radii, ZBLSuggestion):
        radii = {p: (radii.inner[p], radii.outer[p]) for p in radii.outer}
    rows, rms, rel = [], {}, {}
    for a, b in _pairs(species):
        name = f"{a}-{b}"
        key = name if name in dimers else f"{b}-{a}"
        if key not in dimers:
            raise ZBLChoiceError(f"no dimer energies for {name}")
        rad = radii.get(name, radii.get(f"{b}-{a}"))
        if rad is None:
            raise ZBLChoiceError(f"no ZBL radii for {name}")
        inner, outer = float(rad[0]), float(rad[1])
        if not 0 <= inner < outer < math.inf:  # what zbl.in readers (GPUMD's, nepzbl's) accept
            from ..errors import InputError

            raise InputError(f"{name}: ZBL radii must satisfy 0 <= r_inner < r_outer, got "
                             f"{inner:g} {outer:g}")
        r, e = (np.asarray(v, dtype=np.float64) for v in dimers[key])
        lo, hi = fit_range if fit_range is not None else (0.0, max(inner, float(r.min())))
        mask = (r >= lo - 1e-12) & (r <= hi + 1e-12) & np.isfinite(e)
        if mask.sum() < 4:
            raise ZBLChoiceError(f"{name}: need at least 4 dimer energies in "
                                 f"{lo:.2f}..{hi:.2f} Å, found {int(mask.sum())}")
        coefficients, rms[name], rel[name] = _fit_pair(r[mask], e[mask], a, b, fit_exponents,
                                                       energy_floor)
        screening_at_zero = float(np.sum(coefficients[0::2]))
        if screening_at_zero < MIN_SCREENING_AT_ZERO or rel[name] > MAX_RELATIVE_RMS:
            r_probe = float(r[mask].min())
            zbl_value = float((_raw_columns(np.array([r_probe]), a, b,
                                            UNIVERSAL.reshape(4, 2)[:, 1]) @ UNIVERSAL[0::2])[0])
            oracle_value = float(e[mask][np.argmin(r[mask])])
            raise ZBLChoiceError(
                f"{name}: the dimer energies are not ZBL-like (at {r_probe:.2f} Å the oracle "
                f"gives {oracle_value:.3g} eV, universal ZBL {zbl_value:.3g} eV; fitted "
                f"screening at r = 0 is {screening_at_zero:.3g} instead of about 1, relative "
                f"RMS {rel[name]:.2g}); refusing to write near-zero ZBL. Use an oracle with "
                "real short-range repulsion (DFT), or keep the universal ZBL coefficients")
        rows.append([inner, outer, *coefficients])
    return FlexibleZBLFit(species, np.array(rows), rms, rel)
