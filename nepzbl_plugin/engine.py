"""The evaluation front end: one :class:`Evaluator` per model, on the CPU or a CUDA GPU.

>>> from nepzbl_plugin.engine import Evaluator          # doctest: +SKIP
>>> ev = Evaluator("nep.txt", num_threads=2)            # doctest: +SKIP
>>> out = ev.evaluate(atoms, ("energy", "forces", "virial"))  # doctest: +SKIP

Units: Angstrom, eV, eV/Angstrom. The virial is the total W = -dE/d(strain) (positive under
compression, eV); per-atom virials use GPUMD's and NEP_CPU's partition
(``nep-reference.md`` section 2.11).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EngineError, UnsupportedModelError
from .model import Model, read_model

__all__ = ["Evaluator", "System", "PROPERTIES", "core_model_from"]

# Properties evaluate() understands; "zbl" adds energy_zbl, energies_zbl, forces_zbl, virial_zbl.
PROPERTIES = ("energy", "energies", "forces", "virial", "virials", "descriptors", "latent", "zbl")
_ZBL_OUTPUTS = ("energy_zbl", "energies_zbl", "forces_zbl", "virial_zbl")


@dataclass
class System:
    """One structure in model type indices.

    Parameters
    ----------
    types
        (N,) type index of each atom, 0..T-1 in the order of the model's element list.
    positions
        (N, 3) Cartesian positions in Angstrom.
    cell
        (3, 3) cell, rows a, b, c, in Angstrom. Rows of open (non-periodic) directions are not
        used and may be zero.
    pbc
        Periodicity of each cell direction.
    """

    types: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: tuple[bool, bool, bool] = (True, True, True)

    def __post_init__(self):
        self.types = np.ascontiguousarray(self.types, dtype=np.intc).reshape(-1)
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.cell = np.ascontiguousarray(self.cell, dtype=np.float64).reshape(3, 3)
        pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,))
        self.pbc = tuple(bool(p) for p in pbc)
        if self.positions.shape[0] != self.types.shape[0]:
            raise ValueError(
                f"{self.types.shape[0]} types but {self.positions.shape[0]} positions"
            )

    def __len__(self) -> int:
        return int(self.types.shape[0])


def _load_model(model) -> Model:
    if isinstance(model, Model):
        return model.copy()
    if isinstance(model, (str, Path)):
        return read_model(model)
    raise TypeError(f"expected a Model or a path to a nep.txt, got {type(model).__name__}")


def _check_supported(model: Model) -> None:
    where = model.metadata.get("path", "<model>") if isinstance(model.metadata, dict) else "<model>"
    if model.temperature:
        raise UnsupportedModelError(
            where, None, "temperature-dependent NEP models are not evaluated by nepzbl's engines"
        )
    if model.n_neurons_second > 0:
        raise UnsupportedModelError(
            where, None, "NEP models with two hidden layers (ANN N1 N2, N2 > 0) are not evaluated"
        )


def core_model_from(model: Model):
    """A C-engine model (``nepzbl_plugin._core.CoreModel``) built from a :class:`Model`."""
    from . import _core

    _check_supported(model)
    rc_radial, rc_angular = model.pair_cutoffs()
    zbl = model.zbl_table()
    return _core.CoreModel(
        model.version,
        model.num_types,
        model.n_max_radial,
        model.n_max_angular,
        model.basis_size_radial,
        model.basis_size_angular,
        model.l_max,
        [int(f) for f in model.flags_on],
        model.n_neurons,
        np.ascontiguousarray(rc_radial, dtype=np.float64),
        np.ascontiguousarray(rc_angular, dtype=np.float64),
        np.ascontiguousarray(model.atomic_numbers, dtype=np.intc),
        None if zbl is None else np.ascontiguousarray(zbl, dtype=np.float64),
        np.ascontiguousarray(model.parameters, dtype=np.float64),
        np.ascontiguousarray(model.q_scaler, dtype=np.float64),
    )


def _cuda_available() -> bool:
    try:
        from .cuda_engine import cuda_available
    except ImportError:
        return False
    try:
        return bool(cuda_available())
    except Exception:
        return False


class Evaluator:
    """Evaluate a NEP / NEP-ZBL model on structures.

    Parameters
    ----------
    model
        A :class:`Model` (copied) or the path of a ``nep.txt``.
    device
        ``"cpu"`` (the C engine, float64), ``"cuda"`` (the CUDA engine; RuntimeError when it is
        not available) or ``"auto"`` (CUDA when available, else CPU).
    num_threads
        OpenMP threads of the CPU engine; ``None`` means OpenMP's default.
    precision
        Arithmetic of the CUDA engine: ``"float64"`` (default; the same numbers as the CPU
        engine) or ``"float32"`` (GPUMD's choice: float32 maths, float64 accumulation; faster).
        The CPU engine always computes in float64.
    """

    def __init__(self, model: Model | str | Path, device: str = "cpu",
                 num_threads: int | None = None, precision: str = "float64"):
        if precision not in ("float64", "float32"):
            raise ValueError(f"precision must be 'float64' or 'float32', not {precision!r}")
        self.precision = precision
        self.model = _load_model(model)
        _check_supported(self.model)
        self.num_threads = 0 if num_threads is None else int(num_threads)
        if num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {num_threads}")
        if device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', not {device!r}")
        if device == "auto":
            device = "cuda" if _cuda_available() else "cpu"
        self.device = device
        self._type_index = {symbol: t for t, symbol in enumerate(self.model.types)}
        self._cuda = None
        self._core = None
        if device == "cuda":
            try:
                from .cuda_engine import CudaEvaluator
            except ImportError as exc:
                raise RuntimeError(
                    "device='cuda' needs nepzbl's CUDA engine, which is not available in this "
                    f"build or on this machine ({exc})"
                ) from exc
            self._cuda = CudaEvaluator(self.model, precision=precision)
        else:
            self._core = core_model_from(self.model)

    # ------------------------------------------------------------------ inputs
    def system(self, structure) -> System:
        """Convert an ``ase.Atoms`` (species mapped by symbol) or a :class:`System`."""
        if isinstance(structure, System):
            if len(structure) and (
                structure.types.min() < 0 or structure.types.max() >= self.model.num_types
            ):
                raise ValueError(
                    f"atom types must be 0..{self.model.num_types - 1} for this model"
                )
            return structure
        try:
            numbers = np.asarray(structure.numbers)
        except AttributeError:
            raise TypeError(
                f"expected ase.Atoms or nepzbl System, got {type(structure).__name__}"
            ) from None
        table = self.__dict__.get("_type_of_number")
        if table is None:
            # atomic number -> type index (-1: not in the model), built once
            table = np.full(256, -1, dtype=np.intc)
            for t, z in enumerate(self.model.atomic_numbers):
                table[z] = t
            self.__dict__["_type_of_number"] = table
        types = table[np.clip(numbers, 0, 255)]
        if len(types) and types.min() < 0:
            from ase.data import chemical_symbols

            bad = int(numbers[np.argmax(types < 0)])
            name = chemical_symbols[bad] if 0 <= bad < len(chemical_symbols) else str(bad)
            raise ValueError(
                f"species {name!r} is not in the model (species: "
                f"{', '.join(self.model.types)})"
            )
        return System(types, structure.get_positions(), structure.cell.array, structure.pbc)

    def _allocate(self, n: int, properties: Iterable[str]) -> dict[str, np.ndarray]:
        D, N1 = self.model.descriptor_dim, self.model.n_neurons
        shapes = {
            "energy": (1,), "energies": (n,), "forces": (n, 3), "virial": (3, 3),
            "virials": (n, 3, 3), "descriptors": (n, D), "latent": (n, N1),
            "energy_zbl": (1,), "energies_zbl": (n,), "forces_zbl": (n, 3),
            "virial_zbl": (3, 3),
        }
        arrays = {}
        for name in properties:
            if name == "zbl":
                for z in _ZBL_OUTPUTS:
                    arrays[z] = np.zeros(shapes[z])
            elif name in shapes:
                arrays[name] = np.zeros(shapes[name])
            else:
                raise ValueError(
                    f"unknown property {name!r}; choose from {', '.join(PROPERTIES)}"
                )
        return arrays

    @staticmethod
    def _check_finite(out: dict, where: str = "") -> dict:
        """Never return inf or NaN silently: finite inputs with extreme parameters (|w| near
        1e308) overflow inside the network."""
        for name, value in out.items():
            if not np.all(np.isfinite(value)):
                raise EngineError(
                    f"{where}the engine computed a non-finite {name} (inf or NaN): the model's "
                    "parameters are far outside any trained model's range (see 'nepzbl info')"
                )
        return out

    @staticmethod
    def _finish(arrays: dict[str, np.ndarray]) -> dict:
        out = dict(arrays)
        for key in ("energy", "energy_zbl"):
            if key in out:
                out[key] = float(out[key][0])
        return out

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
                            self.num_threads)
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
        systems = [self.system(s) for s in structures]
        arrays = [self._allocate(len(s), properties) for s in systems]
        statuses = self._core.evaluate_batch(
            [(s.types, s.positions, s.cell, s.pbc) for s in systems], arrays, self.num_threads
        )
        for k, status in enumerate(statuses):
            if status != 0:
                from ._core import strerror

                raise EngineError(f"structure {k}: {strerror(status)}")
        return [self._check_finite(self._finish(a), f"structure {k}: ")
                for k, a in enumerate(arrays)]

    def update_parameters(self, parameters) -> None:
        """Replace the flat parameter vector (GPUMD order, same length); :attr:`model` follows."""
        p = np.ascontiguousarray(parameters, dtype=np.float64).reshape(-1)
        if p.shape != (self.model.num_parameters,):
            raise ValueError(
                f"expected {self.model.num_parameters} parameters, got {p.size}"
            )
        if not np.all(np.isfinite(p)):
            raise ValueError("parameters must be finite")
        if self._cuda is not None:
            self._cuda.update_parameters(p)
        else:
            self._core.set_parameters(p)
        self.model.parameters[:] = p
