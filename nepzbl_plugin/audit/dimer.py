"""Dimer scans of every species pair, and what the curves say about collapse.

The protocol is the NEP-ZBL paper's (Yan, Fan, Zhu, arXiv 2504.15925): two atoms in a 30 Angstrom
cubic periodic box, separations 0.10 to 6.00 Angstrom in 0.01 Angstrom steps, energy relative to
the energy at 6.00 Angstrom, force on the second atom along the bond (positive = repulsive).

Vocabulary (``docs/audit.md``):

* a *local maximum worth the name* is a grid maximum at least ``tolerance`` (default 0.05 eV)
  above the 6 Angstrom reference and at least ``tolerance`` above the lowest point inward of it
  before the curve climbs back over it (so a 3 meV ripple at 4.5 Angstrom does not count), and
  at least ``relative_tolerance`` (default 0.05) x the curve's depth above the reference, the
  depth being the highest such maximum minus the lowest point of the scan (so a 0.08 eV ripple
  at 4.3 Angstrom does not count on a curve that climbs to 3.8 eV further in);
* the *energy barrier* is the first such maximum met coming in from 6 Angstrom, and the
  *breakdown distance* is where it sits: there the force turns from repulsive to attractive
  (the paper's definition, used for its table);
* the *collapse-path barrier* is the highest such maximum between the far end and the collapse
  point: what a pair coming in from far away must climb over to collapse;
* a *collapse path* is a distance ``r <= deep_distance`` (default 0.5 Angstrom) where the dimer
  energy is below ``wall_fraction`` (default 0.5) of the universal ZBL repulsion at ``r``. It is
  what makes a pair unsafe; a barrier followed by a shallow dip that a wall then closes is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..elements import atomic_number
from ..progress import with_progress
from .zbl import universal_zbl_energy, zbl_energy_from_row

__all__ = [
    "DimerCurve",
    "CurveAnalysis",
    "default_distances",
    "dimer_scan",
    "scan_pairs",
    "analyse_curve",
    "check_criteria",
    "read_dimer_file",
    "species_pairs",
    "BARRIER_TOLERANCE",
    "RELATIVE_TOLERANCE",
    "DEEP_DISTANCE",
    "WALL_FRACTION",
]

BARRIER_TOLERANCE = 0.05  # eV: smaller maxima (long-range ripples of a few meV) are not barriers
# a maximum lower than this fraction of the curve's depth (highest maximum minus lowest point)
# is a ripple on the way to the real barrier, not a barrier
RELATIVE_TOLERANCE = 0.05
DEEP_DISTANCE = 0.5  # Angstrom: below this only nuclear repulsion is physical
WALL_FRACTION = 0.5  # a wall must reach this fraction of the universal ZBL repulsion
BOX = 30.0


def default_distances() -> np.ndarray:
    """0.10, 0.11, ..., 6.00 Angstrom (591 points), exactly on the 0.01 grid."""
    return np.round(np.arange(10, 601) * 0.01, 2)


def species_pairs(species) -> list[tuple[str, str]]:
    """Unordered pairs in GPUMD order: (0,0), (0,1), ..., (T-1,T-1)."""
    species = list(species)
    return [(a, b) for i, a in enumerate(species) for b in species[i:]]


def pair_name(a: str, b: str) -> str:
    return f"{a}-{b}"


@dataclass
class DimerCurve:
    """One dimer curve. Energies in eV relative to the last (reference) distance; ``force`` is
    the force on the second atom along the bond in eV/Angstrom (positive = repulsive)."""

    species: tuple[str, str]
    distances: np.ndarray
    energy: np.ndarray
    force: np.ndarray | None = None
    energy_nep: np.ndarray | None = None
    energy_zbl: np.ndarray | None = None

    @property
    def name(self) -> str:
        return pair_name(*self.species)

    @property
    def reference_distance(self) -> float:
        return float(self.distances[-1])

    def write(self, path) -> None:
        """Write in the paper's format (``Distance (Å)  Energy (eV)  Force (eV/Å)``); without
        forces, the first two columns."""
        from ..io.nep_txt import atomic_write_text

        if self.force is None:  # energies only: two columns
            lines = ["Distance (Å)  Energy (eV)"]
            lines += [f"{r:.2f} {e:.6f}" for r, e in zip(self.distances, self.energy, strict=True)]
        else:
            lines = ["Distance (Å)  Energy (eV)  Force (eV/Å)"]
            rows = zip(self.distances, self.energy, self.force, strict=True)
            lines += [f"{r:.2f} {e:.6f} {f:.6f}" for r, e, f in rows]
        atomic_write_text(path, "\n".join(lines) + "\n")


def read_dimer_file(path, species=("X", "X")) -> DimerCurve:
    """Read a dimer curve: a text file of ``distance energy [force]`` rows (a header line that
    does not start with a number is skipped). Energies are taken as they are."""
    from ..errors import NepFormatError

    rows = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise NepFormatError(path, number, "not a text file (invalid UTF-8 byte)") \
                    from None
            tokens = line.split("#")[0].split()
            if not tokens:
                continue
            try:
                values = [float(t) for t in tokens]
            except ValueError:
                if not rows:
                    continue  # header
                raise NepFormatError(path, number,
                                     f"expected numbers, found {line.strip()[:60]!r}") from None
            if len(values) < 2:
                raise NepFormatError(path, number, "expected 'distance energy [force]'")
            if not np.all(np.isfinite(values)):
                raise NepFormatError(path, number, "non-finite value")
            rows.append(values[:3] if len(values) >= 3 else values[:2] + [np.nan])
    if len(rows) < 3:
        raise NepFormatError(path, None,
                             f"expected at least 3 rows of dimer data, found {len(rows)}")
    data = np.array(rows)
    order = np.argsort(data[:, 0])
    data = data[order]
    if np.any(data[:, 0] <= 0) or np.any(np.diff(data[:, 0]) <= 0):
        raise NepFormatError(path, None, "distances must be positive and distinct")
    force = None if np.all(np.isnan(data[:, 2])) else data[:, 2]
    return DimerCurve(tuple(species), data[:, 0], data[:, 1], force)


def _components_from_calculator(calc) -> float | None:
    """The ZBL energy of the last calculation, when the calculator reports its parts."""
    getter = getattr(calc, "get_components", None)
    if getter is None:
        return None
    try:
        parts = getter()
    except Exception:  # a calculator without that feature working: fall back to the formula
        return None
    if not isinstance(parts, dict):
        return None
    zbl = parts.get("zbl", parts.get("energy_zbl"))
    if isinstance(zbl, dict):  # nepzbl's NEP: {"nep": {...}, "zbl": {"energy": ...}}
        zbl = zbl.get("energy")
    return None if zbl is None else float(np.sum(zbl))


def dimer_scan(
    calc,
    a: str,
    b: str,
    distances=None,
    *,
    zbl_row=None,
    box: float = BOX,
    split: bool = True,
) -> DimerCurve:
    """Scan the dimer a-b with any ASE calculator.

    Parameters
    ----------
    calc
        An ASE calculator (it is attached to a new two-atom ``Atoms``).
    a, b
        Element symbols; atom 1 is ``a`` at the box centre, atom 2 is ``b`` at +r along x.
    distances
        Separations in Angstrom, ascending; the last one is the energy reference.
        Default :func:`default_distances`.
    zbl_row
        One row of :meth:`Model.zbl_table` for (a, b), used to split off the ZBL part when the
        calculator does not report it (``get_components``). ``None``: no split unless reported.
    box
        Edge of the cubic periodic box in Angstrom.
    split
        False: do not split the curve (``energy_nep`` and ``energy_zbl`` stay None).
    """
    from ase import Atoms

    r = default_distances() if distances is None else np.asarray(distances, dtype=np.float64)
    centre = 0.5 * box
    atoms = Atoms([a, b], positions=[[centre, centre, centre], [centre + r[0], centre, centre]],
                  cell=[box, box, box], pbc=True)
    atoms.calc = calc
    energy = np.empty(r.size)
    force = np.empty(r.size)
    zbl_reported = np.full(r.size, np.nan)
    for i, x in enumerate(r):
        positions = atoms.get_positions()
        positions[1, 0] = centre + x
        atoms.set_positions(positions)
        energy[i] = atoms.get_potential_energy()
        force[i] = atoms.get_forces()[1, 0]
        if split and zbl_row is None:
            part = _components_from_calculator(calc)
            if part is not None:
                zbl_reported[i] = part
    if not (np.all(np.isfinite(energy)) and np.all(np.isfinite(force))):
        bad = r[~(np.isfinite(energy) & np.isfinite(force))]
        raise FloatingPointError(f"{a}-{b} dimer: non-finite energy or force at r = {bad[0]:.2f} Å")
    reference = energy[-1]
    energy = energy - reference
    energy_zbl = None
    if not split:
        pass
    elif zbl_row is not None:
        z1, z2 = atomic_number(a), atomic_number(b)
        phi = zbl_energy_from_row(r, z1, z2, zbl_row)
        energy_zbl = phi - phi[-1]
    elif np.all(np.isfinite(zbl_reported)):
        energy_zbl = zbl_reported - zbl_reported[-1]
    energy_nep = None if energy_zbl is None else energy - energy_zbl
    return DimerCurve((a, b), r, energy, force, energy_nep, energy_zbl)


def scan_pairs(calc, species, distances=None, *, zbl_table=None, split=True, progress=None):
    """:func:`dimer_scan` for every unordered pair of ``species``; returns {"A-B": DimerCurve}.

    ``zbl_table`` is :meth:`Model.zbl_table` (T, T, 10) with types in the order of ``species``;
    ``split=False`` leaves the curves unsplit (a model without ZBL). ``progress``: ``None`` or
    ``progress(done, total, label)`` after each pair (:mod:`nepzbl_plugin.progress`).
    """
    species = list(species)
    pairs = species_pairs(species)
    curves = {}
    for a, b in with_progress(pairs, progress, "dimer scans"):
        row = None
        if zbl_table is not None:
            row = zbl_table[species.index(a), species.index(b)]
        curves[pair_name(a, b)] = dimer_scan(calc, a, b, distances, zbl_row=row, split=split)
    return curves


@dataclass
class CurveAnalysis:
    """What a dimer curve says. Distances in Angstrom, energies in eV (relative to the far end).

    ``barrier`` / ``breakdown_distance`` are ``None`` when no maximum worth the name exists.
    ``dip_depth``: how far the curve falls inward of the barrier before climbing back above it
    (or to the end of the scan). ``wall_ratio``: the smallest E(r) / ZBL_universal(r) for
    r <= ``deep_distance`` (at ``wall_ratio_distance``). ``collapse_path``: wall_ratio below
    ``wall_fraction``. ``path_barrier`` / ``path_barrier_distance``: with a collapse path, the
    highest maximum between the far end and ``wall_ratio_distance`` (``None`` when the way in
    is downhill all along, or without a collapse path); the collapse point is the outermost
    r <= ``deep_distance`` below the wall criterion.
    """

    pair: str
    local_maxima: list[tuple[float, float]] = field(default_factory=list)
    barrier: float | None = None
    breakdown_distance: float | None = None
    dip_depth: float | None = None
    wall_ratio: float | None = None
    wall_ratio_distance: float | None = None
    collapse_path: bool = False
    path_barrier: float | None = None
    path_barrier_distance: float | None = None
    deep_distance: float = DEEP_DISTANCE
    wall_fraction: float = WALL_FRACTION
    tolerance: float = BARRIER_TOLERANCE
    relative_tolerance: float = RELATIVE_TOLERANCE

    @property
    def safe(self) -> bool:
        return not self.collapse_path

    def as_dict(self) -> dict:
        return {
            "barrier": self.barrier,
            "breakdown_distance": self.breakdown_distance,
            "local_maxima": [{"distance": r, "energy": e} for r, e in self.local_maxima],
            "dip_depth": self.dip_depth,
            "wall_ratio": self.wall_ratio,
            "wall_ratio_distance": self.wall_ratio_distance,
            "collapse_path": self.collapse_path,
            "collapse_path_barrier": self.path_barrier,
            "collapse_path_barrier_distance": self.path_barrier_distance,
            "safe": self.safe,
        }


def local_maxima(r, energy, tolerance: float = BARRIER_TOLERANCE,
                 relative_tolerance: float = 0.0) -> list[tuple[float, float, float]]:
    """Grid maxima worth the name, from the far end inward: (distance, energy, inward dip).

    A point i (with a flat top allowed) is a maximum when its neighbours on both sides are lower.
    It counts when E_i >= tolerance and the curve, going inward, falls at least ``tolerance``
    below E_i before it rises above E_i again (or before the scan ends). With
    ``relative_tolerance`` > 0 it must also reach relative_tolerance x the depth of the curve
    (the highest maximum counted so far minus the lowest energy of the scan).
    """
    r = np.asarray(r, dtype=np.float64)
    e = np.asarray(energy, dtype=np.float64)
    n = e.size
    found = []
    i = n - 2
    while i >= 1:
        # walk over a flat top: [j, i] all equal
        j = i
        while j - 1 >= 0 and e[j - 1] == e[i]:
            j -= 1
        if j >= 1 and e[i + 1] < e[i] and e[j - 1] < e[i] and e[i] >= tolerance:
            inward = e[:j]
            above = np.nonzero(inward > e[i])[0]
            stop = above[-1] + 1 if above.size else 0  # inward points before the curve climbs over
            segment = inward[stop:]
            dip = e[i] - segment.min() if segment.size else 0.0
            if dip >= tolerance:
                k = (i + j) // 2
                found.append((float(r[k]), float(e[k]), float(dip)))
        i = j - 1
    if relative_tolerance > 0 and found:
        depth = max(m[1] for m in found) - float(e.min())
        found = [m for m in found if m[1] >= relative_tolerance * depth]
    return found


def check_criteria(tolerance: float = BARRIER_TOLERANCE, deep_distance: float = DEEP_DISTANCE,
                   wall_fraction: float = WALL_FRACTION,
                   relative_tolerance: float = RELATIVE_TOLERANCE) -> None:
    """Raise :class:`~nepzbl_plugin.errors.InputError` for a criterion that is NaN, infinite
    or out of range (a NaN compares False everywhere and silently changes the verdict)."""
    from ..errors import InputError

    problems = []
    if not 0 <= tolerance < np.inf:
        problems.append(f"tolerance must be a finite energy >= 0 eV, not {tolerance}")
    if not 0 <= relative_tolerance < 1:
        problems.append(f"relative tolerance must be in [0, 1), not {relative_tolerance}")
    if not 0 < deep_distance < np.inf:
        problems.append(f"deep distance must be a finite length > 0 Å, not {deep_distance}")
    if not 0 < wall_fraction < np.inf:
        problems.append(f"wall fraction must be finite and > 0, not {wall_fraction}")
    if problems:
        raise InputError("audit criterion: " + "; ".join(problems))


def analyse_curve(
    curve: DimerCurve,
    *,
    tolerance: float = BARRIER_TOLERANCE,
    deep_distance: float = DEEP_DISTANCE,
    wall_fraction: float = WALL_FRACTION,
    relative_tolerance: float = RELATIVE_TOLERANCE,
) -> CurveAnalysis:
    """Barrier, breakdown distance, the collapse-path criterion and the collapse-path barrier
    for one curve."""
    check_criteria(tolerance, deep_distance, wall_fraction, relative_tolerance)
    r, e = curve.distances, curve.energy
    maxima = local_maxima(r, e, tolerance, relative_tolerance)
    out = CurveAnalysis(curve.name, [(m[0], m[1]) for m in maxima], deep_distance=deep_distance,
                        wall_fraction=wall_fraction, tolerance=tolerance,
                        relative_tolerance=relative_tolerance)
    if maxima:
        out.breakdown_distance, out.barrier, out.dip_depth = maxima[0]
    deep = r <= deep_distance + 1e-9
    if np.any(deep):
        a, b = curve.species
        wall = universal_zbl_energy(r[deep], a, b)
        ratio = e[deep] / wall
        k = int(np.argmin(ratio))
        out.wall_ratio = float(ratio[k])
        out.wall_ratio_distance = float(r[deep][k])
        out.collapse_path = bool(ratio[k] < wall_fraction)
    if out.collapse_path:
        # the first point below the wall met coming in: what lies outward of it is the way in
        entry = float(np.max(r[deep][ratio < wall_fraction]))
        on_path = [m for m in maxima if m[0] > entry]
        if on_path:
            highest = max(on_path, key=lambda m: m[1])
            out.path_barrier_distance, out.path_barrier = highest[0], highest[1]
    return out
