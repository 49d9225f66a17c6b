"""Species pairs: their names and their shortest distances.

One home for what the audit (:func:`nepzbl_plugin.audit.distances.min_pair_distances`), the
stress test and MD (``md.pair_min_distances``) compute: a pair is named ``"A-B"`` with A the
species that comes first in a given species list, and its minimum distance includes periodic
images.
"""

from __future__ import annotations

import numpy as np

from ._base import AnalysisError

__all__ = ["pair_key", "pair_names", "pair_distances", "pair_min_distances", "MinPairDistances"]


def pair_key(a: str, b: str, species) -> str:
    """``"A-B"`` for the unordered pair {a, b}, A the one listed first in ``species``."""
    species = list(species)
    if species.index(a) > species.index(b):
        a, b = b, a
    return f"{a}-{b}"


def pair_names(species) -> list[str]:
    """Every unordered pair of ``species``: A-A, A-B, ..., B-B, ... in list order."""
    species = list(species)
    return [f"{a}-{b}" for i, a in enumerate(species) for b in species[i:]]


def pair_distances(atoms, r_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, d): every ordered pair i != j (periodic images included) closer than ``r_max``.

    An orthorhombic, fully periodic cell whose half width exceeds ``r_max`` holds at most one
    image of each atom within reach, so the minimum image of every pair (numpy, in blocks of
    rows) gives the same list as ASE's ``neighbor_list("ijd", ...)`` (up to order) and is much
    faster for a few thousand atoms; other cells go through ASE.
    """
    from ase.neighborlist import neighbor_list

    cell = atoms.cell.array
    lengths = np.diag(cell)
    orthorhombic = (np.all(atoms.pbc) and np.allclose(cell, np.diag(lengths))
                    and np.all(lengths > 2.0 * r_max))
    if not orthorhombic or len(atoms) > 20000:
        return neighbor_list("ijd", atoms, r_max)
    positions = atoms.positions
    n = len(atoms)
    found_i, found_j, found_d = [], [], []
    rows = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n, rows):
        block = positions[start:start + rows]
        delta = positions[None, :, :] - block[:, None, :]
        delta -= lengths * np.round(delta / lengths)
        distance = np.sqrt(np.einsum("abk,abk->ab", delta, delta))
        a, b = np.nonzero(distance < r_max)
        a += start
        keep = a != b
        found_i.append(a[keep])
        found_j.append(b[keep])
        found_d.append(distance[a[keep] - start, b[keep]])
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)


def _pair_minimum(atoms, index: dict, cutoff: float, best: np.ndarray) -> None:
    """Lower ``best[p, q]`` (p <= q type indices) by the pairs of ``atoms`` within ``cutoff``;
    atoms of species not in ``index`` are left out."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, cutoff)
    if d.size == 0:
        return
    types = np.array([index.get(s, -1) for s in atoms.get_chemical_symbols()])
    ti, tj = types[i], types[j]
    keep = (ti >= 0) & (tj >= 0)
    ti, tj, d = ti[keep], tj[keep], d[keep]
    np.minimum.at(best, (np.minimum(ti, tj), np.maximum(ti, tj)), d)


def pair_min_distances(frames, species, cutoff: float) -> dict[str, float]:
    """Shortest distance (Angstrom, periodic images included) per unordered species pair over
    one ``ase.Atoms`` or a list of them; ``inf`` when no pair of that kind is closer than
    ``cutoff``. Pairs are named by :func:`pair_key` in the order of ``species``; atoms of other
    species are ignored."""
    if hasattr(frames, "get_chemical_symbols"):
        frames = [frames]
    if not (np.isfinite(cutoff) and cutoff > 0):  # NaN or <= 0 found no pair: "inf" everywhere
        raise AnalysisError(f"the search cutoff must be a positive number of Å, not {cutoff}")
    species = list(species)
    index = {s: k for k, s in enumerate(species)}
    T = len(species)
    best = np.full((T, T), np.inf)
    for atoms in frames:
        if len(atoms) < 2 and not np.any(atoms.pbc):
            continue
        _pair_minimum(atoms, index, cutoff, best)
    return {f"{species[p]}-{species[q]}": float(best[p, q])
            for p in range(T) for q in range(p, T)}


class MinPairDistances:
    """Running minimum distance per species pair, accumulated over frames (freud style).

    ``accumulate(atoms)`` lowers the running minima; ``compute(atoms)`` resets first. The
    result ``distances`` is {"A-B": Å or inf}.
    """

    def __init__(self, species, cutoff: float = 4.0):
        self.species = list(species)
        self.cutoff = float(cutoff)
        self._best = None

    def reset(self) -> None:
        self._best = None

    def accumulate(self, atoms) -> MinPairDistances:
        if self._best is None:
            self._best = np.full((len(self.species),) * 2, np.inf)
        index = {s: k for k, s in enumerate(self.species)}
        if len(atoms) >= 2 or np.any(atoms.pbc):
            _pair_minimum(atoms, index, self.cutoff, self._best)
        return self

    def compute(self, atoms) -> MinPairDistances:
        self.reset()
        return self.accumulate(atoms)

    @property
    def distances(self) -> dict[str, float]:
        if self._best is None:
            from ._base import NotComputedError

            raise NotComputedError("MinPairDistances.distances is not available: call "
                                   "compute() or accumulate() first")
        T = len(self.species)
        return {f"{self.species[p]}-{self.species[q]}": float(self._best[p, q])
                for p in range(T) for q in range(p, T)}

    def __repr__(self) -> str:
        return (f"<MinPairDistances species={self.species} cutoff={self.cutoff} Å "
                f"({'computed' if self._best is not None else 'not computed'})>")
