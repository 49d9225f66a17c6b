"""The neighbour counts of a model's ``cutoff`` line (``nep-reference.md`` section 1.4).

GPUMD writes ``cutoff rc_R rc_A MN_R MN_A``, where MN_R and MN_A are the largest numbers of
radial and angular neighbours of any atom in the training and test sets, counted with the pair
cutoffs. GPUMD's MD sizes its neighbour lists as ceil(1.25 * MN) from them, so a model written
with 0 does not run there. :func:`max_neighbour_counts` counts them the way GPUMD does: every
periodic image is a separate neighbour (only an atom's own zero-shift image is excluded), and
a pair is a neighbour when its distance is strictly below the pair cutoff.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["max_neighbour_counts", "neighbour_counts", "set_neighbour_counts",
           "estimate_neighbour_counts", "GPUMD_MAX_NEIGHBORS"]

GPUMD_MAX_NEIGHBORS = 819  # GPUMD refuses a larger radial count
_DENSE_NUMBER_DENSITY = 0.15  # atoms per A^3: denser than almost every solid


def _image_shifts(cell: np.ndarray, cutoff: float) -> np.ndarray:
    """Integer shifts (k, 3) covering every image within ``cutoff`` of the home cell."""
    volume = abs(float(np.linalg.det(cell)))
    reps = []
    for i in range(3):
        b, c = cell[(i + 1) % 3], cell[(i + 2) % 3]
        thickness = volume / float(np.linalg.norm(np.cross(b, c)))
        reps.append(math.ceil(cutoff / thickness))
    ranges = [np.arange(-n, n + 1) for n in reps]
    return np.array(np.meshgrid(*ranges, indexing="ij")).reshape(3, -1).T


def neighbour_counts(model, structure) -> tuple[np.ndarray, np.ndarray]:
    """Radial and angular neighbour counts of every atom of ``structure`` (any object with
    ``symbols``, ``positions`` and ``cell``) under ``model``'s pair cutoffs."""
    index = {s: t for t, s in enumerate(model.types)}
    types = np.array([index[s] for s in structure.symbols], dtype=np.intp)
    positions = np.asarray(structure.positions, dtype=np.float64).reshape(-1, 3)
    cell = np.asarray(structure.cell, dtype=np.float64).reshape(3, 3)
    # into the cell first: the image shifts below reach a cutoff beyond the cell only from
    # atoms inside it (an atom 0.2 cells outside has neighbours two images away)
    fractional = positions @ np.linalg.inv(cell)
    positions = (fractional - np.floor(fractional)) @ cell
    pair_radial, pair_angular = model.pair_cutoffs()
    shifts = _image_shifts(cell, float(np.max(pair_radial)))
    offsets = shifts @ cell
    rc2_r = pair_radial[types[:, None], types[None, :]] ** 2  # (N, N)
    rc2_a = pair_angular[types[:, None], types[None, :]] ** 2
    n = len(types)
    radial = np.zeros(n, dtype=np.int64)
    angular = np.zeros(n, dtype=np.int64)
    home = np.flatnonzero(~shifts.any(axis=1))[0]
    for k, offset in enumerate(offsets):
        d = positions[None, :, :] + offset - positions[:, None, :]
        d2 = np.einsum("ijx,ijx->ij", d, d)
        if k == home:
            np.fill_diagonal(d2, np.inf)
        radial += np.count_nonzero(d2 < rc2_r, axis=1)
        angular += np.count_nonzero(d2 < rc2_a, axis=1)
    return radial, angular


def max_neighbour_counts(model, *structure_sets: Iterable, count=neighbour_counts
                         ) -> tuple[int, int]:
    """The largest radial and angular neighbour counts over every structure of every set
    (``None`` sets are skipped), as GPUMD writes them on the ``cutoff`` line; (0, 0) without
    structures. ``count(model, structure)`` counts one structure: :func:`neighbour_counts`
    by default, the C engine's :func:`nepzbl_plugin.engine.cpu.neighbour_counts` (the same
    counts, much faster) where the caller may use the engine."""
    best_r = best_a = 0
    for structures in structure_sets:
        for structure in structures or ():
            radial, angular = count(model, structure)
            if radial.size:
                best_r = max(best_r, int(radial.max()))
                best_a = max(best_a, int(angular.max()))
    return best_r, best_a


def set_neighbour_counts(model, *structure_sets: Iterable, count=neighbour_counts
                         ) -> tuple[int, int]:
    """Put the data's largest neighbour counts on ``model`` (GPUMD needs at least 1); a model
    without data keeps the counts it was read with. Returns the counts now on the model.
    ``count`` as for :func:`max_neighbour_counts`."""
    radial, angular = max_neighbour_counts(model, *structure_sets, count=count)
    if radial > 0 or angular > 0:
        model.max_neighbors_radial = max(1, radial)
        model.max_neighbors_angular = max(1, angular)
    return int(model.max_neighbors_radial), int(model.max_neighbors_angular)


def estimate_neighbour_counts(model) -> tuple[int, int]:
    """Generous radial and angular neighbour counts for a model whose file has none: the atoms
    within the largest pair cutoffs at a number density of 0.15 per A^3 (denser than almost
    every solid), the radial count capped at GPUMD's limit of 819."""
    radial, angular = (float(np.max(c)) for c in model.pair_cutoffs())
    count = [
        math.ceil(4.0 / 3.0 * math.pi * rc**3 * _DENSE_NUMBER_DENSITY) for rc in (radial, angular)
    ]
    return min(count[0], GPUMD_MAX_NEIGHBORS), min(count[1], GPUMD_MAX_NEIGHBORS)
