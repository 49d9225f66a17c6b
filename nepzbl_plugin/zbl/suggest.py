"""Choosing ZBL from data: outer radii below the distances a training set contains.

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

from ..audit.zbl import UNIVERSAL
from ..elements import COVALENT_RADII, atomic_number
from ..errors import NepzblError

__all__ = ["ZBLSuggestion", "suggest_zbl", "ZBLChoiceError"]

MARGIN = 0.9  # suggested outer radius = 0.9 x the data's shortest distance of that pair
NO_DATA_FACTOR = 0.7  # pairs the data never bring within the search: GPUMD's typewise default
TYPEWISE_MIN_FACTOR = 0.5  # GPUMD refuses smaller factors
UNIVERSAL_RANGE = (1.0, 4.0)  # GPUMD's limits on the zbl value in nep.in
TYPEWISE_TOLERANCE = 0.75  # typewise fits when every pair keeps >= 75 % of its wanted radius
MAX_FLEXIBLE_TYPES = 10
MIN_DATA_DISTANCE = 0.1  # Å: a closer pair is atoms on top of each other, not a contact
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
        from ..model import ZBLSettings

        if self.form == "flexible":
            return ZBLSettings("flexible", 0.0, 0.0, flexible=self.table())
        if self.form == "typewise":
            return ZBLSettings("typewise", self.zbl_value / 2, self.zbl_value, factor=self.factor)
        return ZBLSettings("universal", self.zbl_value / 2, self.zbl_value)

    def write(self, directory) -> list[str]:
        """Write ``zbl.in`` (flexible only) and ``nep.in.zbl`` (the nep.in lines) into
        ``directory``; returns the paths written."""
        import os

        from ..io.nep_txt import atomic_write_text

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
    from ..audit.distances import DISTANCE_SEARCH_CUTOFF, load_structures, min_pair_distances
    from ..errors import InputError

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
    for name, d in dmin.items():
        if d is not None and d < MIN_DATA_DISTANCE:  # 0 was a ZeroDivisionError
            named = isinstance(data, (str, bytes)) or hasattr(data, "__fspath__")
            where = distance_sources.get(name) or (str(data) if named else "the data")
            raise InputError(f"{where}: a {name} pair only {d:.3g} Å apart (atoms on top of "
                             f"each other?); ZBL radii need data with no pair closer than "
                             f"{MIN_DATA_DISTANCE:g} Å")
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
