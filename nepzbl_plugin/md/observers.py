"""Observers of an MD run: what is measured or done to the atoms between steps.

Minimum distances per species pair (the collapse monitor), partial radial distribution
functions, and knock-on collisions (:class:`KnockOns`, :func:`knock_on`). Used by the ASE Langevin
run (:func:`~nepzbl_plugin.md.ase_nvt.run_nvt`, the audit's stress test) and by the array MD
engine (:mod:`nepzbl_plugin.md.dynamics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KnockOns", "knock_on", "partial_rdf_counts", "partial_rdf", "pair_min_distances"]


def _pair_key(a: str, b: str, species: list[str]) -> str:
    if species.index(a) > species.index(b):
        a, b = b, a
    return f"{a}-{b}"


def pair_min_distances(atoms, species, cutoff: float) -> dict[str, float]:
    """Shortest distance per unordered pair (periodic images included); ``inf`` when no pair of
    that kind is closer than ``cutoff``."""
    from ase.neighborlist import neighbor_list

    species = list(species)
    out = {_pair_key(a, b, species): np.inf for i, a in enumerate(species) for b in species[i:]}
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    if d.size == 0:
        return out
    index = {s: k for k, s in enumerate(species)}
    types = np.array([index[s] for s in atoms.get_chemical_symbols()])
    ti, tj = types[i], types[j]
    lo, hi = np.minimum(ti, tj), np.maximum(ti, tj)
    T = len(species)
    best = np.full((T, T), np.inf)
    np.minimum.at(best, (lo, hi), d)
    for p in range(T):
        for q in range(p, T):
            out[f"{species[p]}-{species[q]}"] = float(best[p, q])
    return out


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
