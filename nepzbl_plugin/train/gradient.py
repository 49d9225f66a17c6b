"""Exact gradients of a linear functional of the predictions, for gradient-based training.

For structures s with total energy E_s, forces F_si and total virial W_s (eV, compression
positive, the engine's convention) and adjoint weights alpha_s, a_si, B_s,

    g = sum_s [ alpha_s dE_s/dz + sum_i a_si . dF_si/dz + sum_ab B_s,ab dW_s,ab/dz ]

over the flat parameter vector z (:attr:`Model.parameters`, GPUMD order). With the
adjoints dL/dE, dL/dF and dL/dW of a loss L this is dL/dz. The C code (``cext/nep_train.c``)
is exact (forward-over-reverse differentiation, no finite differences) and runs in parallel
over atoms; the same call also returns the predictions.

Build a :class:`TrainingBatch` once per set of structures and reuse it for every call. A
trainer that calls again and again on subsets of one fixed set of structures also keeps a
:class:`TrainingCache` and gives each batch the ``structure_ids`` of its structures in that
set: neighbour lists are then built once per structure, not once per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..engine.base import model_spec
from ..errors import EngineError

__all__ = [
    "TrainingBatch",
    "TrainingCache",
    "GradientPredictions",
    "linear_functional_gradient",
    "predict",
    "model_spec",
]


def _core():
    from .. import _core

    return _core


@dataclass
class TrainingBatch:
    """Structures flattened for the C code: build once, reuse for every gradient call.

    Attributes
    ----------
    types
        (A,) int32 type indices of all atoms, structures concatenated.
    positions
        (A, 3) Cartesian positions in Angstrom.
    cells
        (S, 3, 3) cells, rows a, b, c.
    pbc
        (S, 3) int32, nonzero for periodic directions.
    atom_offsets
        (S + 1,) int64: structure s owns atoms atom_offsets[s]:atom_offsets[s+1].
    structure_ids
        (S,) int32 stable ids of the structures for a :class:`TrainingCache` (an id always
        denotes the same structure), or None.
    temperatures
        (S,) float64 temperature of each structure in K (train.xyz's ``temperature=``), the
        input of temperature models; zeros when not given (GPUMD's default).
    """

    types: np.ndarray
    positions: np.ndarray
    cells: np.ndarray
    pbc: np.ndarray
    atom_offsets: np.ndarray
    structure_ids: np.ndarray | None = None
    temperatures: np.ndarray | None = None

    def __post_init__(self):
        self.types = np.ascontiguousarray(self.types, dtype=np.int32).reshape(-1)
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.cells = np.ascontiguousarray(self.cells, dtype=np.float64).reshape(-1, 3, 3)
        self.pbc = np.ascontiguousarray(self.pbc, dtype=np.int32).reshape(-1, 3)
        self.atom_offsets = np.ascontiguousarray(self.atom_offsets, dtype=np.int64).reshape(-1)
        S = self.num_structures
        if self.cells.shape[0] != S or self.pbc.shape[0] != S:
            raise ValueError(f"{S} structures in atom_offsets but {self.cells.shape[0]} cells "
                             f"and {self.pbc.shape[0]} pbc rows")
        if self.atom_offsets[0] != 0 or np.any(np.diff(self.atom_offsets) < 0):
            raise ValueError("atom_offsets must start at 0 and not decrease")
        if self.types.size != self.atom_offsets[-1] or self.positions.shape[0] != self.types.size:
            raise ValueError("types/positions do not match atom_offsets")
        if self.temperatures is None:
            self.temperatures = np.zeros(S)
        self.temperatures = np.ascontiguousarray(self.temperatures, dtype=np.float64).reshape(-1)
        if self.temperatures.shape != (S,) or not np.all(np.isfinite(self.temperatures)):
            raise ValueError(f"temperatures must be {S} finite values (K)")
        if self.structure_ids is not None:
            self.structure_ids = np.ascontiguousarray(self.structure_ids, dtype=np.int32)
            if self.structure_ids.shape != (S,) or np.any(self.structure_ids < 0):
                raise ValueError(f"structure_ids must be {S} ids >= 0")

    @property
    def num_structures(self) -> int:
        return self.atom_offsets.size - 1

    @property
    def num_atoms(self) -> np.ndarray:
        """(S,) atoms per structure."""
        return np.diff(self.atom_offsets)

    @classmethod
    def from_structures(cls, structures, species: Sequence[str] | None = None) -> TrainingBatch:
        """Flatten structures.

        Each structure is an object with ``types`` (or, with ``species`` given, ase-like
        ``get_chemical_symbols()``/``symbols``), ``positions``, ``cell`` and optionally
        ``pbc`` (default periodic in all directions, as GPUMD's trainer) and ``temperature``
        (K; None or absent: 0), or a tuple ``(types, positions, cell[, pbc[, temperature]])``.
        """
        index = {s: k for k, s in enumerate(species)} if species is not None else None
        types, positions, cells, pbcs, counts, temperatures = [], [], [], [], [], []
        for k, st in enumerate(structures):
            if isinstance(st, tuple):
                t, pos, cell = st[0], st[1], st[2]
                pbc = st[3] if len(st) > 3 else (True, True, True)
                temperature = st[4] if len(st) > 4 else None
            else:
                pos, cell = st.positions, st.cell
                pbc = getattr(st, "pbc", (True, True, True))
                temperature = getattr(st, "temperature", None)
                t = getattr(st, "types", None)
                if t is None:
                    if index is None:
                        raise ValueError(f"structure {k} has no types; pass species")
                    symbols = (st.get_chemical_symbols() if hasattr(st, "get_chemical_symbols")
                               else list(st.symbols))
                    try:
                        t = [index[s] for s in symbols]
                    except KeyError as err:
                        raise ValueError(f"structure {k}: species {err.args[0]!r} is not in "
                                         f"the model {list(species)}") from None
            t = np.asarray(t, dtype=np.int32).reshape(-1)
            pos = np.asarray(pos, dtype=np.float64).reshape(-1, 3)
            if pos.shape[0] != t.size:
                raise ValueError(f"structure {k}: {t.size} types but {pos.shape[0]} positions")
            types.append(t)
            positions.append(pos)
            cells.append(np.asarray(cell, dtype=np.float64).reshape(3, 3))
            pbcs.append(np.broadcast_to(np.asarray(pbc, dtype=np.int32), (3,)))
            counts.append(t.size)
            temperatures.append(0.0 if temperature is None else float(temperature))
        offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        return cls(
            np.concatenate(types) if types else np.zeros(0, np.int32),
            np.concatenate(positions) if positions else np.zeros((0, 3)),
            np.array(cells).reshape(-1, 3, 3),
            np.array(pbcs, dtype=np.int32).reshape(-1, 3),
            offsets,
            temperatures=np.array(temperatures, dtype=np.float64),
        )


class TrainingCache:
    """State kept between gradient calls on one fixed set of structures: the neighbour list
    of every structure seen (they do not depend on the parameters), the work arrays, and the
    model's header fields. Used with batches that carry ``structure_ids``; the model's
    header, cutoffs, ZBL and q_scaler must not change while the cache is in use (only the
    parameter vector may). Memory: about 28 bytes per neighbour pair of every structure
    seen."""

    def __init__(self):
        self._core_cache = _core().TrainCache()
        self._model = None
        self._spec = None

    def spec(self, model, parameters) -> dict:
        """model_spec(model, parameters), the header part built once per model."""
        if self._model is not model:
            self._spec = model_spec(model)
            self._model = model
        params = model.parameters if parameters is None else parameters
        params = np.ascontiguousarray(params, dtype=np.float64)
        if params.shape != (model.num_parameters,):
            raise ValueError(f"expected {model.num_parameters} parameters, got {params.shape}")
        if not np.isfinite(params).all():
            raise ValueError("parameters must be finite")
        return {**self._spec, "parameters": params}


@dataclass
class GradientPredictions:
    """Predictions of a gradient call: energy (S,) eV, forces (A, 3) eV/Angstrom in the
    batch's atom order, virial (S, 3, 3) eV (NEP + ZBL totals)."""

    energy: np.ndarray
    forces: np.ndarray
    virial: np.ndarray


def _as_batch(batch, model) -> TrainingBatch:
    if isinstance(batch, TrainingBatch):
        return batch
    return TrainingBatch.from_structures(batch, model.types)


def _vector(value, size, what) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, list | tuple) and value and np.ndim(value[0]) > 0:
        value = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in value])
    arr = np.ascontiguousarray(value, dtype=np.float64).ravel()
    if arr.size != size:
        raise ValueError(f"{what}: expected {size} values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: values must be finite")
    return arr


def _run(model, batch, alpha, force_adjoint, virial_adjoint, want_gradient, parameters,
         num_threads, cache=None, want_predictions=True):
    batch = _as_batch(batch, model)
    if cache is not None and batch.structure_ids is None:
        cache = None  # no ids: nothing to key the kept lists on
    spec = model_spec(model, parameters) if cache is None else cache.spec(model, parameters)
    S, A = batch.num_structures, int(batch.atom_offsets[-1])
    alpha = _vector(alpha, S, "alpha")
    force_adjoint = _vector(force_adjoint, 3 * A, "force_adjoint")
    virial_adjoint = _vector(virial_adjoint, 9 * S, "virial_adjoint")
    gradient = np.zeros(model.num_parameters) if want_gradient else None
    # a gradient alone skips the forces' terms in C (the same gradient, bit for bit)
    energy, forces, virials = ((np.zeros(S), np.zeros(3 * A), np.zeros(9 * S))
                               if want_predictions or not want_gradient else (None, None, None))
    statuses = np.zeros(S, dtype=np.int32)
    status = _core().train_gradient(
        spec, batch.types, batch.positions, batch.cells, batch.pbc, batch.atom_offsets,
        alpha, force_adjoint, virial_adjoint, gradient, energy, forces, virials, statuses,
        int(num_threads), None if cache is None else cache._core_cache,
        None if cache is None else batch.structure_ids, batch.temperatures,
    )
    if status != 0:
        bad = np.flatnonzero(statuses)
        structure = None
        if bad.size:  # the index in the caller's set: the batch's own id when it has one
            structure = int(bad[0] if batch.structure_ids is None else batch.structure_ids[bad[0]])
        where = "" if structure is None else f" (structure {structure})"
        raise EngineError(f"training gradient failed{where}: {_core().strerror(int(status))}",
                          structure=structure)
    if energy is None:
        return gradient, None
    predictions = GradientPredictions(energy, forces.reshape(A, 3), virials.reshape(S, 3, 3))
    return gradient, predictions


def linear_functional_gradient(model, batch, alpha=None, force_adjoint=None,
                               virial_adjoint=None, num_threads: int = 0, *,
                               parameters=None, return_predictions: bool = False,
                               cache: TrainingCache | None = None):
    """dPhi/dz for Phi = sum_s alpha_s E_s + sum_si a_si . F_si + sum_s B_s : W_s.

    Parameters
    ----------
    model
        The :class:`~nepzbl_plugin.model.Model` (its header, q_scaler and ZBL).
    batch
        A :class:`TrainingBatch`, or a sequence of structures for
        :meth:`TrainingBatch.from_structures` (species = ``model.types``).
    alpha
        (S,) energy adjoints (1/eV units of the loss), or None for 0.
    force_adjoint
        (A, 3) force adjoints in batch atom order, or a list of (N_s, 3) arrays, or None.
    virial_adjoint
        (S, 3, 3) or (S, 9) virial adjoints B_s (row-major, ``B:W = sum_ab B_ab W_ab``), or
        None.
    num_threads
        OpenMP threads (<= 0: the default); the result does not depend on it.
    parameters
        The flat parameter vector z; default ``model.parameters``.
    return_predictions
        Also return the :class:`GradientPredictions` of the same call (no extra cost).
    cache
        A :class:`TrainingCache` for a batch with ``structure_ids`` (else ignored).

    Returns
    -------
    gradient : (N_par,) ndarray, or (gradient, GradientPredictions) with
    ``return_predictions=True``.
    """
    gradient, predictions = _run(model, batch, alpha, force_adjoint, virial_adjoint, True,
                                 parameters, num_threads, cache,
                                 want_predictions=return_predictions)
    return (gradient, predictions) if return_predictions else gradient


def predict(model, batch, num_threads: int = 0, *, parameters=None,
            cache: TrainingCache | None = None) -> GradientPredictions:
    """Energies, forces and virials from the training code's own forward pass (``cache``: as
    for :func:`linear_functional_gradient`)."""
    return _run(model, batch, None, None, None, False, parameters, num_threads, cache)[1]
