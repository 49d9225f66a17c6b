"""The evaluation front end: one :class:`Evaluator` per model, on the CPU or a CUDA GPU.

>>> from nepzbl_plugin.engine import Evaluator          # doctest: +SKIP
>>> ev = Evaluator("nep.txt", num_threads=2)            # doctest: +SKIP
>>> out = ev.evaluate(atoms, ("energy", "forces", "virial"))  # doctest: +SKIP

The CPU engine (``nepzbl_plugin._core``) is evaluated here; ``device="cuda"`` hands every call
to :class:`~nepzbl_plugin.engine.cuda.CudaEvaluator`, which implements the same contract
(:class:`~nepzbl_plugin.engine.base.EvaluatorBase`).

Units: Angstrom, eV, eV/Angstrom. The virial is the total W = -dE/d(strain) (positive under
compression, eV); per-atom virials use GPUMD's and NEP_CPU's partition
(``nep-reference.md`` section 2.11).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import EngineError, InputError
from ..model import Model
from .base import (
    DEFAULT_PRECISION,
    EvaluatorBase,
    check_precision,
    check_supported,
    check_threads,
    load_model,
    model_spec,
)
from .cuda import CudaEvaluator, cuda_available

__all__ = ["Evaluator", "core_model_from", "neighbour_counts"]


def core_model_from(model: Model):
    """A C-engine model (``nepzbl_plugin._core.CoreModel``) built from a :class:`Model`."""
    from .. import _core

    spec = model_spec(model)
    zbl = spec["zbl"]
    T = spec["num_types"]
    return _core.CoreModel(
        spec["version"],
        T,
        spec["n_max_radial"],
        spec["n_max_angular"],
        spec["basis_radial"],
        spec["basis_angular"],
        spec["l_max"],
        spec["flags"],
        spec["num_neurons"],
        spec["rc_radial"].reshape(T, T),
        spec["rc_angular"].reshape(T, T),
        spec["atomic_numbers"],
        None if zbl is None else zbl.reshape(T, T, -1),
        spec["parameters"],
        spec["q_scaler"],
        bool(spec["temperature"]),
        int(spec["num_neurons_second"]),
    )


def neighbour_counts(model: Model, structure) -> tuple[np.ndarray, np.ndarray]:
    """Every atom's radial and angular neighbour counts under ``model``'s pair cutoffs, as
    GPUMD counts them for a model's ``cutoff`` line, from the C engine's cell list: what
    :func:`nepzbl_plugin.neighbours.neighbour_counts` counts with numpy over every image pair
    (about 30 ms for a 192-atom LLZO frame against about 1 ms here: ``bench_train.py
    startup``), and a ``count`` for
    :func:`~nepzbl_plugin.neighbours.set_neighbour_counts`. A frame the C list refuses (two
    atoms at one place) is counted by the numpy function, so that the error its user sees is
    the one that names the frame, from the engine or the trainer."""
    from .. import _core
    from ..neighbours import neighbour_counts as numpy_counts

    index = {symbol: t for t, symbol in enumerate(model.types)}
    types = np.array([index[s] for s in structure.symbols], dtype=np.intc)
    radial, angular = (np.ascontiguousarray(c, dtype=np.float64) for c in model.pair_cutoffs())
    try:
        counts = _core.neighbour_counts(
            types, np.ascontiguousarray(structure.positions, dtype=np.float64).reshape(-1, 3),
            np.ascontiguousarray(structure.cell, dtype=np.float64).reshape(3, 3), radial, angular)
    except EngineError:
        return numpy_counts(model, structure)
    return tuple(np.asarray(c, dtype=np.int64) for c in counts)


def _cuda_available() -> bool:
    try:
        return bool(cuda_available())
    except Exception:
        return False


class Evaluator(EvaluatorBase):
    """Evaluate a NEP / NEP-ZBL model on structures.

    Parameters
    ----------
    model
        A :class:`Model` (copied) or the path of a ``nep.txt``.
    device
        ``"cpu"`` (the C engine, float64), ``"cuda"`` (the CUDA engine;
        :class:`~nepzbl_plugin.errors.CudaUnavailableError` when it is not available) or
        ``"auto"`` (CUDA when available, else CPU).
    num_threads
        OpenMP threads of the CPU engine; ``None`` means OpenMP's default.
    precision
        Arithmetic of the CUDA engine: ``"float64"`` (default; the same numbers as the CPU
        engine) or ``"float32"`` (GPUMD's choice: float32 maths, float64 accumulation; faster).
        The CPU engine always computes in float64.
    """

    def __init__(self, model: Model | str | Path, device: str = "cpu",
                 num_threads: int | None = None, precision: str = DEFAULT_PRECISION):
        self.precision = check_precision(precision)
        self.model = load_model(model)
        check_supported(self.model)
        self.num_threads = check_threads(num_threads)
        if device not in ("cpu", "cuda", "auto"):
            raise InputError(f"device must be 'cpu', 'cuda' or 'auto', not {device!r}")
        self._requested_device = device  # "auto" is resolved again where a copy is rebuilt
        if device == "auto":
            device = "cuda" if _cuda_available() else "cpu"
        self.device = device
        self._type_index = {symbol: t for t, symbol in enumerate(self.model.types)}
        self._cuda = None
        self._core = None
        if device == "cuda":
            self._cuda = CudaEvaluator(self.model, precision=precision)
        else:
            self._core = core_model_from(self.model)

    def __reduce__(self):
        """Copies and pickles are rebuilt from the model (its current parameters) and the
        options: the engine itself holds C (or GPU) memory, which cannot be pickled, and a
        rebuilt engine gives the same numbers. ``device="auto"`` is resolved again where
        the copy is made (a worker process without a GPU gets the CPU engine)."""
        return (type(self), (self.model, self._requested_device, self.num_threads or None,
                             self.precision))

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, structure, properties: Sequence[str] = ("energy", "forces", "virial")
                 ) -> dict:
        """Evaluate one structure.

        Parameters
        ----------
        structure
            ``ase.Atoms`` or :class:`System`.
        properties
            Any of ``energy`` (float, eV), ``energies`` (N,), ``forces`` (N, 3) eV/Angstrom,
            ``virial`` (3, 3) eV (total, compression positive), ``virials`` (N, 3, 3),
            ``descriptors`` (N, D) (scaled by q_scaler: the network input), ``latent``
            (N, N1) and ``zbl`` (adds ``energy_zbl``, ``energies_zbl``, ``forces_zbl``,
            ``virial_zbl``, the ZBL part alone, already included in the totals).

        Returns
        -------
        dict
            One entry per requested output.
        """
        if isinstance(properties, str):
            properties = (properties,)
        if self._cuda is not None:
            return self._check_finite(self._cuda.evaluate(structure, properties))
        system = self.system(structure)
        arrays = self._allocate(len(system), properties)
        self._core.evaluate(system.types, system.positions, system.cell, system.pbc, arrays,
                            self.num_threads, self.temperature_of(system))
        return self._check_finite(self._finish(arrays))

    def evaluate_many(self, structures: Sequence, properties: Sequence[str] = (
            "energy", "forces", "virial")) -> list[dict]:
        """Evaluate many structures in one engine call (parallel over structures).

        Raises :class:`EngineError` naming the first structure the engine refused.
        """
        if isinstance(properties, str):
            properties = (properties,)
        if self._cuda is not None:
            results = self._cuda.evaluate_many(structures, properties)
            for k, result in enumerate(results):
                self._check_finite(result, f"structure {k}: ")
            return results
        systems = self.systems(structures)
        arrays = [self._allocate(len(s), properties) for s in systems]
        statuses = self._core.evaluate_batch(
            [(s.types, s.positions, s.cell, s.pbc, self.temperature_of(s)) for s in systems],
            arrays, self.num_threads,
        )
        for k, status in enumerate(statuses):
            if status != 0:
                from .._core import strerror

                raise EngineError(f"structure {k}: {strerror(status)}", structure=k)
        return [self._check_finite(self._finish(a), f"structure {k}: ")
                for k, a in enumerate(arrays)]

    def _set_parameters(self, parameters: np.ndarray) -> None:
        if self._cuda is not None:
            self._cuda.update_parameters(parameters)
        else:
            self._core.set_parameters(parameters)
