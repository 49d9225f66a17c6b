"""Which MD frames to label: farthest-point sampling and a MaxVol extrapolation grade, both in
NEP descriptor space.

* :func:`farthest_point_sampling` is the NEP-ZBL paper's selection (GPUMDkit's): structure-averaged
  descriptors; repeatedly take the candidate farthest from everything already chosen (the
  training set included) until that distance falls below ``min_distance``.
* :func:`maxvol_active_set` and :func:`extrapolation_grade` are the D-optimal idea of moment
  tensor potentials and TorchNEP: from the training descriptors choose the rows spanning the
  largest volume (the *active set* A); a descriptor x is then written as x = c A, and
  grade(x) = max |c|. Inside the convex hull of the active set the grade is <= 1; above 1 the
  model extrapolates.
"""

from __future__ import annotations

import numpy as np

__all__ = ["structure_descriptors", "atom_descriptors", "farthest_point_sampling",
           "maxvol_active_set", "extrapolation_grade", "ActiveSet",
           "species_active_sets", "species_grades"]


def atom_descriptors(model, frames) -> list[np.ndarray]:
    """Per-atom descriptors (q_scaler applied, the network input) of every frame, each
    (N_atoms, D)."""
    from ..engine import Evaluator

    evaluator = Evaluator(model)
    return [out["descriptors"] for out in evaluator.evaluate_many(list(frames),
                                                                  ("descriptors",))]


def structure_descriptors(model, frames) -> np.ndarray:
    """Structure-averaged descriptors, shape (len(frames), D)."""
    per_atom = atom_descriptors(model, frames)
    if not per_atom:
        return np.zeros((0, model.descriptor_dim))
    return np.array([d.mean(axis=0) for d in per_atom])


def farthest_point_sampling(candidates, reference=None, *, min_distance: float = 0.0,
                            max_count: int | None = None) -> list[int]:
    """Greedy farthest-point sampling.

    Parameters
    ----------
    candidates
        (M, D) points to choose from.
    reference
        (K, D) points already chosen (the training set), or None.
    min_distance
        Stop when the farthest candidate is closer than this (Euclidean) to everything chosen.
    max_count
        Choose at most this many.

    Returns
    -------
    list[int]
        Indices into ``candidates`` in the order chosen. Without a reference the first is the
        candidate farthest from the candidates' mean. Ties go to the lowest index.
    """
    points = np.asarray(candidates, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"candidates must be (M, D), got shape {points.shape}")
    m = points.shape[0]
    limit = m if max_count is None else min(m, int(max_count))
    if m == 0 or limit <= 0:
        return []
    nearest = np.full(m, np.inf)
    if reference is not None and len(reference):
        ref = np.asarray(reference, dtype=np.float64)
        if ref.ndim != 2 or ref.shape[1] != points.shape[1]:
            raise ValueError(f"reference must be (K, {points.shape[1]}), got {ref.shape}")
        for row in ref:  # row by row: memory O(M), not O(M K)
            nearest = np.minimum(nearest, np.linalg.norm(points - row, axis=1))
    chosen: list[int] = []
    if not np.isfinite(nearest).any():
        first = int(np.argmax(np.linalg.norm(points - points.mean(axis=0), axis=1)))
        chosen.append(first)
        nearest = np.linalg.norm(points - points[first], axis=1)
    while len(chosen) < limit:
        nearest_masked = nearest.copy()
        nearest_masked[chosen] = -np.inf
        best = int(np.argmax(nearest_masked))
        if not nearest_masked[best] >= min_distance or nearest_masked[best] == -np.inf:
            break
        chosen.append(best)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[best], axis=1))
    return chosen


class ActiveSet:
    """A D-optimal active set: ``rows`` of the training matrix and the inverse of the (r, r)
    submatrix in the ``basis`` the training matrix spans (r = its rank)."""

    def __init__(self, rows: np.ndarray, basis: np.ndarray, inverse: np.ndarray):
        self.rows = rows
        self.basis = basis  # (D, r): orthonormal columns
        self.inverse = inverse  # (r, r)

    def coefficients(self, points) -> np.ndarray:
        """c with x = c A for every point x (rows), in the span of the training set."""
        projected = np.asarray(points, dtype=np.float64) @ self.basis
        return projected @ self.inverse

    def grade(self, points) -> np.ndarray:
        """max_k |c_k| per point (row)."""
        if len(points) == 0:
            return np.zeros(0)
        return np.max(np.abs(self.coefficients(points)), axis=1)


def maxvol_active_set(matrix, *, tolerance: float = 1.05, max_iterations: int = 200,
                      rank_tolerance: float = 1e-10) -> ActiveSet:
    """The MaxVol algorithm (Goreinov et al.) on the rows of ``matrix`` (n, D).

    The matrix is first expressed in the basis of its leading right singular vectors (r =
    numerical rank), so that fewer rows than descriptor components still give an invertible
    active set. Starting from the rows of a pivoted LU, a row of the active set is swapped for
    an outside row whenever that multiplies |det| by more than ``tolerance``.
    """
    from scipy.linalg import lu

    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"maxvol needs a non-empty (n, D) matrix, got shape {data.shape}")
    _, singular, vt = np.linalg.svd(data, full_matrices=False)
    rank = int(np.sum(singular > rank_tolerance * max(singular[0], 1e-300)))
    if rank == 0:
        raise ValueError("maxvol: the training descriptors are all zero")
    basis = vt[:rank].T
    reduced = data @ basis  # (n, r)
    # initial rows: the pivots of an LU with partial pivoting of the (n, r) matrix
    perm, _, _ = lu(reduced, permute_l=False)
    order = np.argmax(perm, axis=0)  # perm @ L @ U = reduced: row i of PLU is row order[i]
    rows = np.array(order[:rank])
    sub = reduced[rows]
    inverse = np.linalg.inv(sub)
    for _ in range(max_iterations):
        coefficients = reduced @ inverse  # (n, r): reduced = C sub
        i, j = np.unravel_index(np.argmax(np.abs(coefficients)), coefficients.shape)
        if abs(coefficients[i, j]) <= tolerance:
            break
        rows[j] = i  # |det| grows by |C[i, j]|
        inverse = np.linalg.inv(reduced[rows])
    return ActiveSet(rows, basis, inverse)


def extrapolation_grade(active_set: ActiveSet, per_structure_atoms) -> np.ndarray:
    """Grade of each structure: the largest grade of its atoms (per-atom descriptors, a list of
    (N, D) arrays) or of its rows when given an (M, D) matrix of structure descriptors."""
    if isinstance(per_structure_atoms, np.ndarray) and per_structure_atoms.ndim == 2:
        return active_set.grade(per_structure_atoms)
    return np.array([float(np.max(active_set.grade(a))) if len(a) else 0.0
                     for a in per_structure_atoms])


def species_active_sets(model, frames) -> dict[str, ActiveSet]:
    """One active set per species from the per-atom descriptors of ``frames`` (each species
    has its own network in NEP, so its own region of trust)."""
    per_atom = atom_descriptors(model, frames)
    sets = {}
    for species in model.types:
        rows = [d[np.array(_symbols(f)) == species] for f, d in zip(frames, per_atom,
                                                                   strict=True)]
        rows = [r for r in rows if len(r)]
        if rows:
            sets[species] = maxvol_active_set(np.concatenate(rows))
    return sets


def species_grades(model, active_sets: dict[str, ActiveSet], frames) -> np.ndarray:
    """Per frame: the largest extrapolation grade of any atom, each atom graded by its
    species' active set (a species without one grades infinite: never seen)."""
    per_atom = atom_descriptors(model, frames)
    out = np.zeros(len(per_atom))
    for k, (frame, d) in enumerate(zip(frames, per_atom, strict=True)):
        symbols = np.array(_symbols(frame))
        worst = 0.0
        for species in set(symbols.tolist()):
            rows = d[symbols == species]
            if species not in active_sets:
                worst = np.inf
                break
            worst = max(worst, float(np.max(active_sets[species].grade(rows))))
        out[k] = worst
    return out


def _symbols(frame) -> list[str]:
    if hasattr(frame, "get_chemical_symbols"):
        return frame.get_chemical_symbols()
    return list(frame.symbols)
