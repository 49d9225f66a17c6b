"""The link between the trainer and the engine: predictions and analytic gradients of the
structures of a training set for a flat parameter vector.

The trainer only talks to :class:`EngineBackend`: it wraps the training code of
:mod:`nepzbl_plugin.train.gradient` (predictions and the gradient of a linear functional of
them) and, for descriptors, :class:`nepzbl_plugin.engine.Evaluator`.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..errors import EngineError
from .loss import Adjoints, Labels, Loss, LossValue, Predictions, c_loss_arguments

__all__ = ["EngineBackend", "structures_to_systems", "zbl_only_model", "selection_array",
           "located_errors"]


@contextmanager
def located_errors(structures, indices=None):
    """An :class:`EngineError` that names a structure (``error.structure``: an index into
    ``indices``, or into ``structures`` without them) is raised again with the file and line
    the frame was read from, so that a bad frame of a 2000-frame train.xyz can be found."""
    try:
        yield
    except EngineError as error:
        k = error.structure
        if k is not None and indices is not None:
            k = int(indices[k]) if 0 <= k < len(indices) else None
        source = (getattr(structures[k], "source", None)
                  if k is not None and 0 <= k < len(structures) else None)
        if source is None:
            raise
        raise EngineError(f"{source}: {error}", structure=k) from None


def selection_array(indices) -> np.ndarray:
    """Structure indices (any iterable of ints) as the contiguous int32 array the C and CUDA
    training code take."""
    return np.ascontiguousarray(np.fromiter((int(i) for i in indices), dtype=np.intc))


def structures_to_systems(structures, species: list[str]):
    """Engine ``System`` objects of training structures.

    Every frame is periodic in all three directions, as in GPUMD's trainer (which ignores
    ``pbc=``).
    """
    from ..engine import System

    systems = []
    for k, st in enumerate(structures):
        flat = _Flat(st, species, k)
        systems.append(System(flat.types, np.asarray(flat.positions, dtype=np.float64),
                              np.asarray(flat.cell, dtype=np.float64), flat.pbc,
                              flat.temperature))
    return systems


def zbl_only_model(model):
    """A copy of ``model`` whose network outputs exactly 0, so it evaluates ZBL alone.

    With every parameter 0 the hidden layer is tanh(0) = 0 and the output is −b1 = 0.
    """
    copy = model.copy()
    copy.parameters[:] = 0.0
    return copy


def _get(result, key):
    if isinstance(result, dict):
        return result[key]
    return getattr(result, key)


class EngineBackend:
    """Predictions and gradients for one model and one list of structures.

    Predictions and gradients both come from the training code of
    :mod:`nepzbl_plugin.train.gradient` (one C call, exact, parallel over atoms), so the
    gradient is the derivative of exactly the predicted values. A
    :class:`~nepzbl_plugin.train.gradient.TrainingCache` keeps every structure's neighbour
    list and the work arrays between calls (structure ids: indices into ``structures``).

    Parameters
    ----------
    model
        The :class:`~nepzbl_plugin.model.Model` (header, q_scaler and ZBL); its parameters are
        replaced by each call's vector.
    structures
        Training structures (``symbols``, ``positions``, ``cell``).
    num_threads
        OpenMP threads (<= 0: the default).
    """

    def __init__(self, model, structures, num_threads: int = 0):
        from .gradient import TrainingBatch, TrainingCache

        self.model = model.copy()
        self.structures = list(structures)
        self.num_threads = int(num_threads)
        full = TrainingBatch.from_structures(
            [_Flat(st, self.model.types, k) for k, st in enumerate(self.structures)]
        )
        full.structure_ids = np.arange(full.num_structures, dtype=np.int32)
        self._full = full
        self._cache: dict[tuple, object] = {}
        self._training_cache = TrainingCache()

    def _batch(self, indices):
        from .gradient import TrainingBatch

        idx = np.asarray(list(indices), dtype=np.int64)
        key = tuple(idx.tolist())
        batch = self._cache.get(key)
        if batch is None:
            full = self._full
            off = full.atom_offsets
            atoms = np.concatenate([np.arange(off[i], off[i + 1]) for i in idx]) if idx.size \
                else np.zeros(0, np.int64)
            counts = off[idx + 1] - off[idx]
            batch = TrainingBatch(full.types[atoms], full.positions[atoms], full.cells[idx],
                                  full.pbc[idx], np.concatenate([[0], np.cumsum(counts)]),
                                  structure_ids=idx, temperatures=full.temperatures[idx])
            if len(self._cache) < 64:  # fixed batches (SNES, full batch) hit; others pass
                self._cache[key] = batch
        return batch

    def predict(self, params: np.ndarray, indices) -> Predictions:
        """Energies, forces and virials of structures ``indices`` (in that order)."""
        from .gradient import predict

        with located_errors(self.structures):
            p = predict(self.model, self._batch(indices), self.num_threads,
                        parameters=np.ascontiguousarray(params, dtype=np.float64),
                        cache=self._training_cache)
        return Predictions(p.energy, p.forces, p.virial)

    def gradient(self, params: np.ndarray, indices, adjoints: Adjoints) -> np.ndarray:
        """dL/dz = Σ α_s dE_s/dz + Σ a_si·dF_si/dz + Σ B_s:dW_s/dz + the regularisation."""
        from .gradient import linear_functional_gradient

        with located_errors(self.structures):
            g = linear_functional_gradient(
                self.model, self._batch(indices), adjoints.energy, adjoints.forces,
                adjoints.virial, self.num_threads,
                parameters=np.ascontiguousarray(params, dtype=np.float64),
                cache=self._training_cache,
            )
        return np.asarray(g, dtype=np.float64) + adjoints.regularisation

    # ------------------------------------------------------------ the loss in C
    has_loss = False

    def attach_loss(self, labels: Labels, loss: Loss) -> None:
        """Keeps the labels of every structure (in the order of ``structures``) and the
        loss's weights for the C loss (``cext/nep_train_loss.h``, the pieces the GPU sums
        too); then :meth:`loss_and_gradient` and :meth:`population_losses` compute the loss
        without numpy."""
        from .. import _core

        if labels.num_structures != len(self.structures):
            raise ValueError("the labels do not belong to this backend's structures")
        self._loss = _core.LossSet(**c_loss_arguments(labels, loss))
        self._num_types = loss.num_types
        self.has_loss = True

    def _loss_of(self, params, idx, want_adjoints):
        pred = self.predict(params, idx)
        out = self._loss.evaluate(
            idx, np.ascontiguousarray(pred.energy), np.ascontiguousarray(pred.forces),
            np.ascontiguousarray(pred.virial), np.ascontiguousarray(params, dtype=np.float64),
            want_adjoints)
        return LossValue.from_record(out[0], self._num_types), out[1:]

    def loss_and_gradient(self, params: np.ndarray, indices, want_gradient: bool = True
                          ) -> tuple[LossValue, np.ndarray | None]:
        """GPUMD's loss of ``params`` on structures ``indices`` and its exact gradient
        dL(T)/dz (regularisation included; None when the loss is not finite)."""
        idx = selection_array(indices)
        value, (alpha, fadj, vadj, reg) = self._loss_of(params, idx, want_gradient)
        if not want_gradient or not value.is_finite():
            return value, None
        return value, self.gradient(params, idx, Adjoints(alpha, fadj, vadj, reg))

    def population_losses(self, population, indices) -> list[LossValue]:
        """The loss of every row of ``population`` on structures ``indices``."""
        idx = selection_array(indices)
        return [self._loss_of(z, idx, False)[0] for z in population]

    def descriptors(self, indices, model=None) -> list[np.ndarray]:
        """Per-atom descriptors (scaled by the model's q_scaler) of structures ``indices``."""
        model = self.model if model is None else model
        indices = list(indices)  # read twice: a generator would leave the error's map empty
        structures = [self.structures[i] for i in indices]
        from ..engine import Evaluator

        systems = structures_to_systems(structures, model.types)
        with located_errors(self.structures, indices):
            results = Evaluator(model).evaluate_many(systems, properties=("descriptors",))
        return [np.asarray(_get(r, "descriptors")) for r in _as_list(results, len(systems))]


class _Flat:
    """A training structure as :class:`~nepzbl_plugin.train.gradient.TrainingBatch` and
    :func:`structures_to_systems` see it: types from the model's species, periodic in all
    directions (as GPUMD's trainer), its temperature (K or None)."""

    def __init__(self, st, species, k):
        index = {s: i for i, s in enumerate(species)}
        try:
            self.types = np.array([index[s] for s in st.symbols], dtype=np.int32)
        except KeyError as err:
            raise ValueError(
                f"structure {k}: species {err.args[0]!r} is not in the model {list(species)}"
            ) from None
        self.positions = st.positions
        self.cell = st.cell
        self.pbc = (True, True, True)
        self.temperature = getattr(st, "temperature", None)  # temperature models' input (K)


def _as_list(results, n):
    if isinstance(results, dict):
        return [{k: v[i] for k, v in results.items()} for i in range(n)]
    return list(results)
