"""Observers of an MD run: what is measured or done to the atoms between steps.

Minimum distances per species pair (the collapse monitor), partial radial distribution
functions, and knock-on collisions (:class:`KnockOns`, :func:`knock_on`). Used by the ASE Langevin
run (:func:`~nepzbl_plugin.md.ase_nvt.run_nvt`, the audit's stress test) and by the array MD
engine (:mod:`nepzbl_plugin.md.dynamics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis.pairs import pair_key as _pair_key  # noqa: F401 (md's name for it)
from ..analysis.pairs import pair_min_distances
from ..errors import NepzblError
from ..io.atomic import AtomicStream, atomic_write_text

__all__ = ["KnockOns", "knock_on", "partial_rdf_counts", "partial_rdf", "pair_min_distances",
           "DistanceMonitor", "ThermoLog", "TrajectoryWriter", "OutputExistsError",
           "THERMO_COLUMNS"]


def partial_rdf_counts(atoms, species, r_max: float, bins: int) -> dict[str, np.ndarray]:
    """Histogram of ordered pair distances below ``r_max`` for every unordered species pair
    (A-B counts i in A, j in B; A-A counts both orders)."""
    from ase.neighborlist import neighbor_list

    species = list(species)
    edges = np.linspace(0.0, r_max, bins + 1)
    i, j, d = neighbor_list("ijd", atoms, r_max)
    symbols = np.array(atoms.get_chemical_symbols())
    out = {}
    for p, a in enumerate(species):
        for b in species[p:]:
            mask = (symbols[i] == a) & (symbols[j] == b)
            out[f"{a}-{b}"] = np.histogram(d[mask], bins=edges)[0].astype(np.float64)
    return out


def partial_rdf(counts: dict, atoms, species, r_max: float, bins: int, frames: int):
    """Normalise accumulated :func:`partial_rdf_counts` into g_AB(r).

    g_AB(r) = V / (N_A N_B') * n_AB(r) / (4 pi r^2 dr) / frames, with N_B' = N_B - 1 for A = B.
    Returns (bin centres, {"A-B": g}).
    """
    edges = np.linspace(0.0, r_max, bins + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    volume = atoms.get_volume()
    symbols = atoms.get_chemical_symbols()
    out = {}
    for key, n in counts.items():
        a, b = key.split("-")
        na, nb = symbols.count(a), symbols.count(b)
        pairs = na * (nb - 1) if a == b else na * nb
        if pairs <= 0 or frames <= 0:
            out[key] = np.zeros(bins)
            continue
        out[key] = n * volume / (pairs * shell * frames)
    return centres, out


@dataclass
class KnockOns:
    """Head-on collisions delivered during an NVT run (see :func:`knock_on`).

    After ``first`` steps and then every ``interval`` steps, one pair of the next kind in
    ``pairs`` (round robin) gets ``energy`` eV of relative kinetic energy along its bond, towards
    each other. Samples taken less than ``settle`` steps after a collision are *transient*: the
    collision itself brings the pair close for a few tens of fs even with a hard wall, so those
    samples do not count towards the collapse verdict.
    """

    pairs: list  # ["A-B", ...], kicked in this order
    energy: float  # eV
    first: int = 1000
    interval: int = 200
    settle: int = 100


def knock_on(atoms, first: str, second: str, energy: float, rng) -> dict | None:
    """Send a random ``first`` atom and its nearest ``second`` neighbour head-on at each other.

    Along their bond the pair gets a relative speed whose kinetic energy in the pair's centre of
    mass frame is ``energy`` eV (0.5 mu v_rel^2, mu the reduced mass); the centre-of-mass speed
    along the bond and every perpendicular component are kept, so momentum is conserved. This is
    a primary knock-on event, the tail of the Maxwell-Boltzmann distribution delivered on demand.
    Returns {"atoms": [i, j], "distance": Å before} or None when no such pair exists.
    """
    if not energy > 0:
        raise ValueError(f"knock_on needs a positive collision energy, not {energy} eV")
    symbols = np.array(atoms.get_chemical_symbols())
    heads = np.flatnonzero(symbols == first)
    targets = np.flatnonzero(symbols == second)
    if heads.size == 0:
        return None
    i = int(rng.choice(heads))
    targets = targets[targets != i]
    if targets.size == 0:
        return None
    vectors = atoms.get_distances(i, targets, mic=True, vector=True)
    lengths = np.linalg.norm(vectors, axis=1)
    k = int(np.argmin(lengths))
    j = int(targets[k])
    bond = vectors[k] / lengths[k]  # from i to j
    masses = atoms.get_masses()
    velocities = atoms.get_velocities()
    mi, mj = masses[i], masses[j]
    mu = mi * mj / (mi + mj)
    centre = (mi * velocities[i] @ bond + mj * velocities[j] @ bond) / (mi + mj)
    approach = np.sqrt(2.0 * energy / mu)  # ASE units: eV, amu, Angstrom
    velocities[i] += (centre + mj / (mi + mj) * approach - velocities[i] @ bond) * bond
    velocities[j] += (centre - mi / (mi + mj) * approach - velocities[j] @ bond) * bond
    atoms.set_velocities(velocities)
    return {"atoms": [i, j], "distance": float(lengths[k])}


class OutputExistsError(NepzblError, FileExistsError):
    """An MD output would replace a file that this run did not write."""


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; choose another output folder or allow "
                                "overwriting it")


class DistanceMonitor:
    """Shortest distance per species pair every ``every`` steps; stops the run when a pair comes
    closer than its limit (``limits``: one distance in Angstrom for all pairs, or {"A-B": Å},
    pairs not named unwatched).

    ``history`` holds (step, {"A-B": Å}) per sample; ``collapse`` the reason once stopped.
    """

    def __init__(self, limits: dict | float = 0.5, every: int = 10, species=None,
                 search: float = 3.0, stop: bool = True):
        self.limits = limits
        self.every = int(every)
        self.species = None if species is None else list(species)
        self.search = float(search)
        self.stop = stop
        self.history: list = []
        self.collapse: str | None = None

    def _limit(self, pair: str) -> float | None:
        if not isinstance(self.limits, dict):
            return float(self.limits)
        a, b = pair.split("-")
        value = self.limits.get(pair, self.limits.get(f"{b}-{a}"))
        return None if value is None else float(value)

    def __call__(self, frame) -> str | None:
        if self.species is None:
            self.species = list(dict.fromkeys(frame.symbols))
        search = self.search
        if isinstance(self.limits, dict) and self.limits:
            search = max(search, max(self.limits.values()) + 0.5)
        elif not isinstance(self.limits, dict):
            search = max(search, float(self.limits) + 0.5)
        distances = pair_min_distances(frame.atoms(wrap=True), self.species, search)
        return self.check(frame, distances)

    def check(self, frame, distances: dict[str, float]) -> str | None:
        """Record one sample's {"A-B": Angstrom} (measured here or by the device MD loop) and
        return the collapse reason when a pair is below its limit."""
        self.history.append((frame.step, distances))
        for pair, d in distances.items():
            limit = self._limit(pair)
            if limit is not None and d < limit:
                self.collapse = (f"collapse at step {frame.step} ({frame.time_fs:g} fs): "
                                 f"{pair} at {d:.3f} Å, below {limit:g} Å")
                return self.collapse if self.stop else None
        return None

    @property
    def minimum(self) -> dict[str, float]:
        """Shortest distance per pair over the whole run, Angstrom."""
        out: dict[str, float] = {}
        for _, distances in self.history:
            for pair, d in distances.items():
                out[pair] = min(out.get(pair, np.inf), d)
        return out


THERMO_COLUMNS = ("step", "time_fs", "T_K", "E_pot_eV", "E_kin_eV", "E_total_eV", "P_GPa",
                  "Pxx_GPa", "Pyy_GPa", "Pzz_GPa", "a_A", "b_A", "c_A", "alpha_deg",
                  "beta_deg", "gamma_deg", "V_A3", "ax_A", "ay_A", "az_A", "bx_A", "by_A",
                  "bz_A", "cx_A", "cy_A", "cz_A")


class ThermoLog:
    """Thermodynamic quantities every ``every`` steps (:data:`THERMO_COLUMNS`, units in the
    names: K, eV, GPa, Angstrom, degrees; the 9 cell components a, b, c row by row).

    ``rows`` is an (n, 26) array; with a ``path`` the table is written at ``close`` (and every
    ``flush_every`` samples), atomically, as plain text with a ``#`` header.
    """

    def __init__(self, path=None, every: int = 100, overwrite: bool = False,
                 flush_every: int = 100):
        self.path = None if path is None else Path(path)
        self.every = int(every)
        self.flush_every = int(flush_every)
        self._rows: list = []
        if self.path is not None:
            _refuse_existing(self.path, overwrite)

    def __call__(self, frame) -> None:
        from ase.geometry import cell_to_cellpar

        cell = np.asarray(frame.cell)
        volume = abs(np.linalg.det(cell)) if all(frame.pbc) else np.nan
        diagonal = np.diag(frame.pressure_tensor)
        self._rows.append([frame.step, frame.time_fs, frame.temperature, frame.potential_energy,
                           frame.kinetic_energy, frame.potential_energy + frame.kinetic_energy,
                           frame.pressure, *diagonal, *cell_to_cellpar(cell), volume,
                           *cell.reshape(-1)])
        if self.path is not None and len(self._rows) % self.flush_every == 0:
            self.write()
        return None

    @property
    def rows(self) -> np.ndarray:
        return np.array(self._rows, dtype=float).reshape(-1, len(THERMO_COLUMNS))

    def column(self, name: str) -> np.ndarray:
        return self.rows[:, THERMO_COLUMNS.index(name)]

    def write(self) -> None:
        lines = ["# " + " ".join(THERMO_COLUMNS)]
        for row in self._rows:
            lines.append(f"{int(row[0])} " + " ".join(f"{x:.10g}" for x in row[1:]))
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def close(self) -> None:
        if self.path is not None:
            self.write()


class TrajectoryWriter:
    """Extended XYZ frames every ``every`` steps: UNWRAPPED positions (mean square displacements
    need them), velocities (as ASE momenta), and info ``step``, ``time_fs``, ``E_pot_eV``,
    ``T_K`` and ``unwrapped=True``; readable with ``ase.io.read(path, ":")``.

    Frames are streamed into a hidden file next to ``path``, which takes ``path``'s name at
    ``close``: an interrupted run never leaves a half-written ``path``, and a file that was there
    before is replaced only with ``overwrite``.
    """

    def __init__(self, path, every: int = 100, overwrite: bool = False):
        self.path = Path(path)
        self.every = int(every)
        _refuse_existing(self.path, overwrite)
        self._stream = AtomicStream(self.path)
        self.frames = 0

    def __call__(self, frame) -> None:
        from ase.io import write

        atoms = frame.atoms(wrap=False)
        atoms.info.update(step=int(frame.step), time_fs=float(frame.time_fs),
                          E_pot_eV=float(frame.potential_energy),
                          T_K=float(frame.temperature), unwrapped=True)
        write(self._stream.handle, atoms, format="extxyz")
        self.frames += 1
        return None

    def close(self) -> None:
        if self._stream is not None:
            self._stream.commit()
            self._stream = None
