"""Choosing ZBL from data: outer radii below the distances a training set contains, and
GPUMD's flexible ZBL coefficients fitted to dimer energies of an oracle.

Everything written here runs in GPUMD unchanged (``nep-reference.md`` sections 3.3 and 4.1):

* typewise (``zbl R`` + ``use_typewise_cutoff_zbl f``): f >= 0.5 and 1 <= R <= 4 Angstrom;
* flexible (``zbl R`` + ``zbl.in``): at most 10 species, T(T+1)/2 lines of 10 numbers
  ``r_inner r_outer A1 B1 A2 B2 A3 B3 A4 B4`` in GPUMD pair order;
* universal (``zbl R``): 1 <= R <= 4 Angstrom, inner radius R/2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .audit.zbl import COULOMB_K, UNIVERSAL, screening_length
from .elements import COVALENT_RADII, atomic_number
from .errors import NepzblError
from .progress import with_progress

__all__ = [
    "ZBLSuggestion",
    "suggest_zbl",
    "FlexibleZBLFit",
    "fit_flexible_zbl",
    "oracle_dimer_energies",
    "ZBLChoiceError",
    "MARGIN",
    "MAX_FLEXIBLE_TYPES",
]

MARGIN = 0.9  # suggested outer radius = 0.9 x the data's shortest distance of that pair
NO_DATA_FACTOR = 0.7  # pairs the data never bring within the search: GPUMD's typewise default
TYPEWISE_MIN_FACTOR = 0.5  # GPUMD refuses smaller factors
UNIVERSAL_RANGE = (1.0, 4.0)  # GPUMD's limits on the zbl value in nep.in
TYPEWISE_TOLERANCE = 0.75  # typewise fits when every pair keeps >= 75 % of its wanted radius
MAX_FLEXIBLE_TYPES = 10
# A fitted screening function whose value at r = 0 (the sum of the amplitudes A_k; 1 for the
# universal ZBL) is below this carries almost no nuclear repulsion: the oracle is not ZBL-like.
MIN_SCREENING_AT_ZERO = 0.1
MAX_RELATIVE_RMS = 0.5  # a worse fit means the curve has no ZBL shape at all


class ZBLChoiceError(NepzblError, ValueError):
    """No GPUMD ZBL set-up fits the request (reported as one line by the CLI)."""


def _rsum(a: str, b: str) -> float:
    return COVALENT_RADII[atomic_number(a) - 1] + COVALENT_RADII[atomic_number(b) - 1]


def _floor(value: float, digits: int) -> float:
    scale = 10.0**digits
    return math.floor(value * scale + 1e-9) / scale


def _pairs(species):
    return [(a, b) for i, a in enumerate(species) for b in species[i:]]


@dataclass
class ZBLSuggestion:
    """A ZBL set-up whose switching regions end below the data's shortest distances.

    Radii in Angstrom. ``outer`` / ``inner`` are what GPUMD will use per pair; ``wanted`` is
    MARGIN x the data's shortest distance (or the no-data default); ``zbl_value`` is the number
    of nep.in's ``zbl`` line (the cap for typewise, unused but required for flexible).
    """

    species: list[str]
    form: str
    wanted: dict[str, float]
    outer: dict[str, float]
    inner: dict[str, float]
    zbl_value: float
    factor: float | None = None
    data_min_distances: dict = field(default_factory=dict)
    coefficients: np.ndarray | None = None  # (T(T+1)/2, 8) for flexible; universal otherwise
    notes: list[str] = field(default_factory=list)
    # which structure file held each pair's shortest distance (when several were given)
    distance_sources: dict = field(default_factory=dict)

    def needs_zbl_in(self) -> str | None:
        """Why the nep.in lines are unsafe on their own (flexible ZBL), or None."""
        if self.form != "flexible":
            return None
        return (f"the nep.in line 'zbl {self.zbl_value:g}' needs this zbl.in in the same folder "
                f"as nep.in: without it GPUMD and nepzbl read universal ZBL switching from "
                f"{self.zbl_value / 2:g} to {self.zbl_value:g} Å for every pair, inside the "
                "data's distances")

    def table(self) -> np.ndarray:
        """Rows of zbl.in, (T(T+1)/2, 10), in GPUMD pair order."""
        rows = []
        for k, (a, b) in enumerate(_pairs(self.species)):
            name = f"{a}-{b}"
            coef = UNIVERSAL if self.coefficients is None else self.coefficients[k]
            rows.append([self.inner[name], self.outer[name], *coef])
        return np.array(rows)

    def nep_in_lines(self) -> list[str]:
        lines = [f"zbl {self.zbl_value:g}"]
        if self.form == "typewise":
            lines.append(f"use_typewise_cutoff_zbl {self.factor:g}")
        return lines

    def header_lines(self, version: int = 4) -> list[str]:
        """The first two lines of the nep.txt GPUMD writes for this set-up."""
        first = f"nep{version}_zbl {len(self.species)} {' '.join(self.species)}"
        if self.form == "flexible":
            return [first, "zbl 0 0"]
        if self.form == "typewise":
            return [first, f"zbl {self.zbl_value / 2:g} {self.zbl_value:g} {self.factor:g}"]
        return [first, f"zbl {self.zbl_value / 2:g} {self.zbl_value:g}"]

    def zbl_in_text(self) -> str:
        return "".join(" ".join(f"{v:.8g}" for v in row) + "\n" for row in self.table())

    def zbl_settings(self):
        """The :class:`~nepzbl_plugin.model.ZBLSettings` of this set-up."""
        from .model import ZBLSettings

        if self.form == "flexible":
            return ZBLSettings("flexible", 0.0, 0.0, flexible=self.table())
        if self.form == "typewise":
            return ZBLSettings("typewise", self.zbl_value / 2, self.zbl_value, factor=self.factor)
        return ZBLSettings("universal", self.zbl_value / 2, self.zbl_value)

    def write(self, directory) -> list[str]:
        """Write ``zbl.in`` (flexible only) and ``nep.in.zbl`` (the nep.in lines) into
        ``directory``; returns the paths written."""
        import os

        from .io.nep_txt import atomic_write_text

        os.makedirs(directory, exist_ok=True)
        written = []
        path = os.path.join(directory, "nep.in.zbl")
        atomic_write_text(path, "\n".join(self.nep_in_lines()) + "\n")
        written.append(path)
        if self.form == "flexible":
            path = os.path.join(directory, "zbl.in")
            atomic_write_text(path, self.zbl_in_text())
            written.append(path)
        return written

    def as_dict(self) -> dict:
        return {
            "form": self.form, "species": self.species, "zbl_value": self.zbl_value,
            "factor": self.factor, "nep_in": self.nep_in_lines(),
            "header": self.header_lines(),
            "pairs": {p: {"data_min_distance": self.data_min_distances.get(p),
                          "wanted_outer": self.wanted[p], "inner": self.inner[p],
                          "outer": self.outer[p]} for p in self.wanted},
            "notes": self.notes,
            "needs_zbl_in": self.needs_zbl_in(),
            "distance_sources": self.distance_sources,
        }


def suggest_zbl(
    data,
    species=None,
    *,
    form: str = "auto",
    margin: float = MARGIN,
    angular_cutoff: float = 4.0,
    inner_ratio: float = 0.5,
    extra=(),
) -> ZBLSuggestion:
    """Propose ZBL radii that stay below the distances the data contain.

    Parameters
    ----------
    data
        Training data: a train.xyz path, Atoms or TrainingStructures.
    species
        The ``type`` list (order matters for zbl.in); default: the data's, in order of appearance.
    form
        ``"auto"``: typewise when one factor f >= 0.5 keeps every pair below its data while
        giving each at least 75 % of its wanted radius, otherwise flexible (<= 10 species);
        or ``"typewise"``, ``"flexible"``, ``"universal"``.
    margin
        Wanted outer radius = margin x the data's shortest distance of the pair. Pairs the
        data never bring within 4 Å get 0.7 x (R_cov,a + R_cov,b), capped by the search.
    angular_cutoff
        ZBL acts only inside the angular cutoff; outer radii are capped there.
    inner_ratio
        Flexible and universal forms: r_inner = inner_ratio x r_outer (GPUMD uses 0.5).
    extra
        More structure files (or lists of Atoms) whose distances the radii must also stay
        below: test sets, frames of MD runs with the model. The training frames alone may miss
        the closest contacts that held-out frames of the same material have.
    """
    from .audit.distances import DISTANCE_SEARCH_CUTOFF, load_structures, min_pair_distances
    from .errors import InputError

    if form not in ("auto", "typewise", "flexible", "universal"):
        raise InputError(f"unknown ZBL form {form!r}")
    if not 0 < margin <= 1:  # also refuses NaN
        raise InputError(f"margin must be in (0, 1], got {margin:g}")
    if not 0 < angular_cutoff < math.inf:
        raise InputError(f"angular cutoff must be a positive length in Å, got {angular_cutoff:g}")
    if not 0 < inner_ratio < 1:
        raise InputError(f"inner_ratio must be in (0, 1), got {inner_ratio:g}")
    sources = [data, *extra]
    frame_sets = [load_structures(source) for source in sources]
    if species is not None:
        present = {s for frames in frame_sets for atoms in frames
                   for s in atoms.get_chemical_symbols()}
        missing = sorted(present - set(species))
        if missing:  # their pairs would be ignored: radii chosen blind to them
            raise InputError(f"the data contain {', '.join(missing)}, not in the species list "
                             f"{' '.join(species)}; give every species of the data")
    if species is None:
        species = []
        for frames in frame_sets:
            for atoms in frames:
                for symbol in atoms.get_chemical_symbols():
                    if symbol not in species:
                        species.append(symbol)
    dmin = min_pair_distances([a for frames in frame_sets for a in frames], species)
    distance_sources = {}
    if len(sources) > 1:
        for source, frames in zip(sources, frame_sets, strict=True):
            label = str(source) if isinstance(source, (str, bytes)) or hasattr(
                source, "__fspath__") else "<structures>"
            for name, d in min_pair_distances(frames, species).items():
                if d is not None and name not in distance_sources and d == dmin.get(name):
                    distance_sources[name] = label
    species = list(species)
    notes = []
    wanted = {}
    for a, b in _pairs(species):
        name = f"{a}-{b}"
        d = dmin.get(name)
        if d is None:
            value = min(NO_DATA_FACTOR * _rsum(a, b), margin * DISTANCE_SEARCH_CUTOFF)
            notes.append(f"{name}: no pair closer than {DISTANCE_SEARCH_CUTOFF:g} Å in the data; "
                         f"using {NO_DATA_FACTOR} x covalent radii = {value:.3f} Å")
        else:
            value = margin * d
        wanted[name] = _floor(min(value, angular_cutoff), 4)
    constrained = [p for p in wanted if dmin.get(p) is not None] or list(wanted)

    # typewise: the largest factor that keeps every pair at or below its wanted radius
    ratios = {p: wanted[p] / _rsum(*p.split("-")) for p in wanted}
    factor = _floor(min(ratios[p] for p in constrained), 3)
    typewise_outer = {p: factor * _rsum(*p.split("-")) for p in wanted}
    cap = _floor(min(max(UNIVERSAL_RANGE[0], max(typewise_outer.values())), UNIVERSAL_RANGE[1]), 4)
    typewise_outer = {p: min(v, cap) for p, v in typewise_outer.items()}
    kept = min(typewise_outer[p] / wanted[p] for p in constrained)
    typewise_ok = factor >= TYPEWISE_MIN_FACTOR
    chosen = form
    if form == "auto":
        if typewise_ok and kept >= TYPEWISE_TOLERANCE:
            chosen = "typewise"
        elif len(species) <= MAX_FLEXIBLE_TYPES:
            chosen = "flexible"
            why = (f"factor {factor:.3f} is below GPUMD's minimum 0.5" if not typewise_ok else
                   f"factor {factor:.3f} keeps only {100 * kept:.0f} % of some pair's radius")
            notes.append(f"typewise ZBL does not fit ({why}); flexible ZBL fits every pair")
        elif typewise_ok:
            chosen = "typewise"
        else:
            raise ZBLChoiceError("no GPUMD ZBL form fits: more than 10 species and typewise "
                                 f"factor {factor:.3f} < 0.5")
    if chosen == "typewise":
        if not typewise_ok:
            raise ZBLChoiceError(
                f"typewise ZBL needs a factor >= 0.5, but the data's shortest distances allow "
                f"only {factor:.3f}; use --form flexible (or auto)")
        return ZBLSuggestion(species, "typewise", wanted, typewise_outer,
                             {p: 0.0 for p in wanted}, cap, factor, dmin, None, notes,
                             distance_sources)
    if chosen == "flexible":
        if len(species) > MAX_FLEXIBLE_TYPES:
            raise ZBLChoiceError(f"flexible ZBL supports at most {MAX_FLEXIBLE_TYPES} species")
        inner = {p: _floor(inner_ratio * v, 4) for p, v in wanted.items()}
        value = min(max(UNIVERSAL_RANGE[0], max(wanted.values())), UNIVERSAL_RANGE[1])
        return ZBLSuggestion(species, "flexible", wanted, dict(wanted), inner, _floor(value, 4),
                             None, dmin, None, notes, distance_sources)
    value = _floor(min(wanted[p] for p in constrained), 4)
    if not UNIVERSAL_RANGE[0] <= value <= UNIVERSAL_RANGE[1]:
        raise ZBLChoiceError(
            f"universal ZBL needs 1 <= r_outer <= 4 Å; the data allow {value:.3f} Å")
    outer = {p: value for p in wanted}
    return ZBLSuggestion(species, "universal", wanted, outer, {p: value / 2 for p in wanted},
                         value, None, dmin, None, notes, distance_sources)


# ---------------------------------------------------------------------------- fitting
def oracle_dimer_energies(calc, species, distances=None, *, reference_distance: float = 6.0,
                          progress=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dimer energies (eV, relative to ``reference_distance``) of any ASE calculator for
    every pair: {"A-B": (r, E)}. Default distances 0.10..1.50 Å by 0.01 Å. ``progress``:
    ``None`` or ``progress(done, total, label)`` after each pair."""
    from .audit.dimer import dimer_scan

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
        from .model import ZBLSettings

        return ZBLSettings("flexible", 0.0, 0.0, flexible=self.table.copy())

    def write_zbl_in(self, path) -> None:
        from .io.nep_txt import atomic_write_text

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
            from .errors import InputError

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
