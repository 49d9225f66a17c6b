"""The one evaluator contract both engines implement, and what they share.

* :class:`System`: one structure in model type indices (the engines' input).
* :func:`model_spec`: the single conversion of a :class:`~nepzbl_plugin.model.Model` into the
  fields of ``nep_model_spec`` (``cext/nep.h``), with the single check of what the engines
  support (:func:`check_supported`). The CPU engine, the CUDA engine and the training gradient
  all go through it.
* :class:`EvaluatorBase`: structure conversion (``ase.Atoms`` -> :class:`System`), output
  allocation, the finiteness check and the parameter checks; an engine adds ``evaluate``,
  ``evaluate_many`` and ``_set_parameters``.

Defaults are shared too: :data:`DEFAULT_PRECISION` (float64, the CPU engine's numbers) and
:class:`~nepzbl_plugin.errors.CudaUnavailableError` whenever CUDA is asked for and absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import whole_number
from ..errors import EngineError, InputError, InputTypeError, UnsupportedModelError
from ..model import Model, checked_temperature, read_model

__all__ = [
    "System", "PROPERTIES", "PRECISIONS", "DEFAULT_PRECISION", "EvaluatorBase", "load_model",
    "check_supported", "check_parameters", "model_spec", "structure_temperature",
    "temperature_input",
]

# Properties evaluate() understands; "zbl" adds energy_zbl, energies_zbl, forces_zbl, virial_zbl.
PROPERTIES = ("energy", "energies", "forces", "virial", "virials", "descriptors", "latent", "zbl")
ZBL_OUTPUTS = ("energy_zbl", "energies_zbl", "forces_zbl", "virial_zbl")

# Arithmetic of the CUDA engine (the CPU engine always computes in float64); the value is the
# code the CUDA extension takes.
PRECISIONS = {"float64": 0, "float32": 1}
DEFAULT_PRECISION = "float64"


#: The most OpenMP threads an evaluator takes: beyond it a typo (1e6, 2**40) would ask the
#: system for that many threads (or overflow the engine's C int) on a large structure.
MAX_THREADS = 4096


def check_threads(num_threads) -> int:
    """``num_threads`` (None: OpenMP's default, returned as 0) as an int from 1 to
    :data:`MAX_THREADS`, or one InputError naming the argument."""
    if num_threads is None:
        return 0
    value = whole_number(num_threads)
    if value is None:
        raise InputError(f"num_threads must be a whole number, got {num_threads!r}")
    if not 1 <= value <= MAX_THREADS:
        raise InputError(f"num_threads must be 1 to {MAX_THREADS} (or None for OpenMP's "
                         f"default), got {value}")
    return value


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"precision must be 'float64' or 'float32', not {precision!r}")
    return precision


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
    temperature
        Temperature in K: the extra input of GPUMD's temperature models (``nep4_temperature``),
        as ``temperature=`` in train.xyz or the target temperature of an MD run. Other models
        ignore it; temperature models refuse a structure without one.
    """

    types: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: tuple[bool, bool, bool] = (True, True, True)
    temperature: float | None = None

    def __post_init__(self):
        self.types = _whole_numbers(self.types, "types")
        positions = _numbers(self.positions, "positions")
        if positions.size == 0:
            positions = positions.reshape(0, 3)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise InputError(f"System: positions must have shape (N, 3), got {positions.shape}")
        self.positions = np.ascontiguousarray(positions)
        cell = _numbers(self.cell, "cell")
        if cell.shape != (3, 3):
            raise InputError(f"System: cell must have shape (3, 3) (rows a, b, c), got "
                             f"{cell.shape}")
        self.cell = np.ascontiguousarray(cell)
        pbc = np.asarray(self.pbc, dtype=bool).reshape(-1)
        if pbc.size not in (1, 3):
            raise InputError(f"System: pbc must be one flag or three, got {pbc.size}")
        self.pbc = tuple(bool(p) for p in np.broadcast_to(pbc, (3,)))
        if self.positions.shape[0] != self.types.shape[0]:
            raise InputError(
                f"System: {self.types.shape[0]} types but {self.positions.shape[0]} positions"
            )

    def __len__(self) -> int:
        return int(self.types.shape[0])


def _numbers(values, name: str) -> np.ndarray:
    """``values`` as a float64 array, or one InputError naming the argument."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"System: {name} must be numbers, got {_short(values)}") from None


def _whole_numbers(values, name: str) -> np.ndarray:
    """``values`` as a contiguous (N,) C-int array, or one InputError: a fraction or a value
    beyond a C int is never truncated or wrapped into some other type index."""
    try:
        array = np.asarray(values)
        if array.dtype.kind not in "iub":
            floats = array.astype(np.float64)
            if not np.all(np.isfinite(floats)) or np.any(floats != np.round(floats)):
                raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"System: {name} must be whole numbers (type indices), got "
                         f"{_short(values)}") from None
    array = array.reshape(-1)
    if array.size and (array.min() < np.iinfo(np.intc).min or array.max() > np.iinfo(np.intc).max):
        raise InputError(f"System: {name} must be type indices of the model, got "
                         f"{int(array.min())}..{int(array.max())}")
    return np.ascontiguousarray(array, dtype=np.intc)


def _check_periodic_cell(system: System) -> System:
    """One clear error for a periodic direction without a cell vector (an ``ase.Atoms`` made
    with ``pbc=True`` and no cell), instead of the engine's 'singular cell'."""
    for axis, (periodic, row) in enumerate(zip(system.pbc, system.cell, strict=True)):
        if periodic and not np.any(row):
            name = "abc"[axis]
            raise InputError(f"the structure is periodic along {name} but its cell vector {name} "
                             "is zero: give the cell, or make that direction open (pbc False)")
    return system


def _short(values) -> str:
    text = repr(values)
    return text if len(text) <= 60 else text[:57] + "..."


def structure_temperature(structure) -> float | None:
    """The temperature (K) an ``ase.Atoms`` carries in ``info["temperature"]`` (where ASE's
    extxyz reader puts train.xyz's ``temperature=``), or None."""
    info = getattr(structure, "info", None)
    value = info.get("temperature") if isinstance(info, dict) else None
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"atoms.info['temperature'] must be a number of kelvin, "
                         f"not {value!r}") from None


def temperature_input(model: Model, temperature: float | None) -> float:
    """The temperature input (K) the engines get: ``temperature`` for a temperature model
    (which needs one: finite, >= 0), 0 for every other model (they never read it)."""
    if not model.temperature:
        return 0.0
    if temperature is None:
        raise InputError(
            "this is a temperature model (nep4_temperature): give the structure a temperature "
            "in K (atoms.info['temperature'], the calculator's temperature=, or System(..., "
            "temperature=)); for a tool without a temperature option, `nepzbl model MODEL -o "
            "OUT --at-temperature T` writes the plain model it is at T"
        )
    return checked_temperature(temperature)


def load_model(model) -> Model:
    """A private copy of ``model`` (a :class:`Model`) or the model read from a path."""
    if isinstance(model, Model):
        return model.copy()
    if isinstance(model, (str, Path)):
        return read_model(model)
    raise InputTypeError(f"model must be a Model or the path of a nep.txt, not "
                         f"{type(model).__name__}")


#: The largest hidden layer of a two-layer network the engines hold (``NEP_MAX_NEURONS``).
MAX_NEURONS_TWO_LAYERS = 256


def check_supported(model: Model) -> None:
    """Raise :class:`UnsupportedModelError` for a model no nepzbl engine evaluates."""
    where = model.metadata.get("path", "<model>") if isinstance(model.metadata, dict) else "<model>"
    if model.n_neurons_second > 0 and max(model.n_neurons, model.n_neurons_second) > \
            MAX_NEURONS_TWO_LAYERS:
        raise UnsupportedModelError(
            where, None, f"two hidden layers of {model.n_neurons} and {model.n_neurons_second} "
            f"neurons: nepzbl's engines hold at most {MAX_NEURONS_TWO_LAYERS} per layer"
        )


def check_parameters(model: Model, parameters) -> np.ndarray:
    """``parameters`` as a contiguous float64 vector of the model's length, all finite."""
    try:
        p = np.ascontiguousarray(parameters, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"parameters must be a vector of {model.num_parameters} numbers, "
                         f"got {_short(parameters)}") from None
    if p.shape != (model.num_parameters,):
        raise InputError(f"expected {model.num_parameters} parameters, got {p.size}")
    if not np.all(np.isfinite(p)):
        bad = int(np.argmax(~np.isfinite(p)))
        raise InputError(f"parameters must be finite: parameter {bad} of {p.size} is {p[bad]}")
    return p


def model_spec(model: Model, parameters=None) -> dict:
    """The ``nep_model_spec`` fields (``cext/nep.h``) of a supported :class:`Model`.

    ``parameters`` replaces the model's own vector (checked by :func:`check_parameters`).
    Arrays are contiguous and of the C types the extensions take.
    """
    check_supported(model)
    rc_r, rc_a = model.pair_cutoffs()
    zbl = model.zbl_table()
    params = check_parameters(model, model.parameters if parameters is None else parameters)
    return {
        "version": int(model.version),
        "num_types": int(model.num_types),
        "n_max_radial": int(model.n_max_radial),
        "n_max_angular": int(model.n_max_angular),
        "basis_radial": int(model.basis_size_radial),
        "basis_angular": int(model.basis_size_angular),
        "l_max": int(model.l_max),
        "flags": [1 if f else 0 for f in model.flags_on],
        "num_neurons": int(model.n_neurons),
        "rc_radial": np.ascontiguousarray(rc_r, dtype=np.float64).ravel(),
        "rc_angular": np.ascontiguousarray(rc_a, dtype=np.float64).ravel(),
        "atomic_numbers": np.ascontiguousarray(model.atomic_numbers, dtype=np.intc),
        "use_zbl": 0 if zbl is None else 1,
        # (T, T, 10) flattened: per pair of types, GPUMD's ZBL switch and fitted coefficients
        "zbl": None if zbl is None else np.ascontiguousarray(zbl, dtype=np.float64).ravel(),
        "parameters": params,
        "q_scaler": np.ascontiguousarray(model.q_scaler, dtype=np.float64),
        # 1: the descriptor's last entry is the structure's temperature (nep4_temperature)
        "temperature": 1 if model.temperature else 0,
        # > 0: a second hidden layer of that many neurons (GPUMD's ANN N1 N2)
        "num_neurons_second": int(model.n_neurons_second),
    }


class EvaluatorBase:
    """What every engine shares: input conversion, output allocation and checks.

    A subclass sets :attr:`model` (its own copy, checked by :func:`check_supported`) and
    implements ``evaluate``, ``evaluate_many`` and ``_set_parameters``.
    """

    model: Model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description()})"

    def description(self) -> str:
        """The model and the options in one line: ``nep4_zbl Li O, device='cpu'``."""
        threads = getattr(self, "num_threads", 0)
        device = getattr(self, "device", "cpu")
        return (f"{self.model.model_token} {' '.join(self.model.types)}, device={device!r}"
                + (f", precision={self.precision!r}" if device == "cuda" else "")
                + (f", num_threads={threads}" if threads else ""))

    # ------------------------------------------------------------------ inputs
    def systems(self, structures) -> list[System]:
        """:meth:`system` of each of a list of structures, an input error naming the one it
        refused (``evaluate_many``'s inputs, on every device)."""
        if isinstance(structures, System) or hasattr(structures, "get_positions"):
            raise InputError("evaluate_many takes a list of structures; for one structure use "
                             "evaluate(structure)")
        systems = []
        for k, structure in enumerate(structures):
            try:
                systems.append(self.system(structure))
            except InputError as error:
                raise InputError(f"structure {k}: {error}") from None
        return systems

    def system(self, structure) -> System:
        """Convert an ``ase.Atoms`` (species mapped by symbol) or a :class:`System`."""
        if isinstance(structure, System):
            if len(structure) and (
                structure.types.min() < 0 or structure.types.max() >= self.model.num_types
            ):
                bad = int(np.argmax((structure.types < 0)
                                    | (structure.types >= self.model.num_types)))
                raise InputError(
                    f"atom {bad} has type {int(structure.types[bad])}: types must be "
                    f"0..{self.model.num_types - 1} for this model ({', '.join(self.model.types)})"
                )
            return _check_periodic_cell(structure)
        try:
            numbers = np.asarray(structure.numbers)
        except AttributeError:
            raise InputTypeError(
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
            raise InputError(  # a ValueError too
                f"species {name!r} is not in the model (species: "
                f"{', '.join(self.model.types)})"
            )
        return _check_periodic_cell(System(types, structure.get_positions(), structure.cell.array,
                                           structure.pbc, structure_temperature(structure)))

    def temperature_of(self, system: System) -> float:
        """The temperature input of ``system`` for this model (:func:`temperature_input`)."""
        return temperature_input(self.model, system.temperature)

    def _allocate(self, n: int, properties: Iterable[str]) -> dict[str, np.ndarray]:
        D, N1 = self.model.descriptor_dim, self.model.n_neurons
        shapes = {
            "energy": (1,), "energies": (n,), "forces": (n, 3), "virial": (3, 3),
            "virials": (n, 3, 3), "descriptors": (n, D), "latent": (n, N1),
            "energy_zbl": (1,), "energies_zbl": (n,), "forces_zbl": (n, 3),
            "virial_zbl": (3, 3),
        }
        arrays = {}
        if isinstance(properties, str) or not isinstance(properties, Iterable):
            raise InputError(f"properties must be a list of names ({', '.join(PROPERTIES)}), "
                             f"not {properties!r}")
        for name in properties:
            if name == "zbl":
                for z in ZBL_OUTPUTS:
                    arrays[z] = np.zeros(shapes[z])
            elif name == "latent" and self.model.n_neurons_second > 0:
                raise InputError("the latent space (calorine's) is defined for one hidden "
                                 "layer; this model has two (ANN N1 N2)")
            elif name in shapes:
                arrays[name] = np.zeros(shapes[name])
            else:
                raise InputError(
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
        raise NotImplementedError

    def evaluate_many(self, structures: Sequence, properties: Sequence[str] = (
            "energy", "forces", "virial")) -> list[dict]:
        raise NotImplementedError

    def _set_parameters(self, parameters: np.ndarray) -> None:
        raise NotImplementedError

    def update_parameters(self, parameters) -> None:
        """Replace the flat parameter vector (GPUMD order, same length); :attr:`model` follows."""
        p = check_parameters(self.model, parameters)
        self._set_parameters(p)
        self.model.parameters[:] = p
