"""ASE calculators on nepzbl's engines.

* :class:`NEP`: the native calculator. Honours ``atoms.pbc`` (open directions have no images),
  runs on the CPU engine (float64) or a CUDA GPU, and reports the NEP and ZBL parts separately
  through :meth:`NEP.get_components`.
* :class:`CPUNEP`: a drop-in replacement for ``calorine.calculators.CPUNEP`` with the same
  constructor arguments and the same conventions (every cell periodic, per-atom ``stresses``
  as calorine returns them), so that changing the import line is enough.

The model is read once, when the calculator is created; later steps only re-evaluate.
``copy.copy``, ``copy.deepcopy`` and ``pickle`` give an independent calculator whose engine is
rebuilt from the model (ASE workflows copy calculators; multiprocessing pickles them).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from .engine import Evaluator, System
from .errors import InputError, MissingFileError
from .model import Model, checked_temperature

__all__ = ["NEP", "CPUNEP"]


def _voigt(tensor: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6) in ASE's Voigt order xx yy zz yz xz xy."""
    t = np.asarray(tensor)
    return np.stack(
        [t[..., 0, 0], t[..., 1, 1], t[..., 2, 2], t[..., 1, 2], t[..., 0, 2], t[..., 0, 1]],
        axis=-1,
    )


class NEP(Calculator):
    """ASE calculator for a NEP / NEP-ZBL model.

    Parameters
    ----------
    model
        A :class:`Model` or the path of a ``nep.txt``.
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (see :class:`nepzbl_plugin.engine.Evaluator`).
    num_threads
        OpenMP threads of the CPU engine (``None``: OpenMP's default).
    precision
        ``"float64"`` or ``"float32"`` for the CUDA engine (the CPU engine is always float64).
    temperature
        Temperature in K, the extra input of GPUMD's temperature models (``nep4_temperature``);
        when None, ``atoms.info["temperature"]`` is used. Other models ignore it. Change it
        with ``calc.set(temperature=...)``, which also clears the stored results.
    **kwargs
        Passed to :class:`ase.calculators.calculator.Calculator` (``atoms``, ``label``, ...).

    Notes
    -----
    Results: ``energy`` and ``free_energy`` (eV), ``forces`` (eV/Angstrom), ``stress``
    (eV/Angstrom^3, ASE Voigt order, tensile positive: -virial/volume), ``energies`` (eV per
    atom, ZBL split half/half) and ``stresses`` ((N, 6), -per-atom virial/volume, summing to
    ``stress``). Stress needs a cell with nonzero volume.
    """

    default_parameters: dict = {"temperature": None}

    def __init__(self, model: Model | str | Path, device: str = "cpu",
                 num_threads: int | None = None, precision: str = "float64",
                 temperature: float | None = None, **kwargs):
        self.evaluator = Evaluator(model, device=device, num_threads=num_threads,
                                   precision=precision)
        # per instance, so that subclasses and instances never share a mutable list
        self.implemented_properties = [
            "energy", "free_energy", "forces", "stress", "energies", "stresses",
        ]
        Calculator.__init__(self, temperature=temperature, **kwargs)

    @property
    def model(self) -> Model:
        return self.evaluator.model

    def __copy__(self):
        """A deep copy: a shallow one would share the engine and the parameter dict, so that
        one copy's ``set(temperature=...)`` would change the other's results. The engine is
        rebuilt from the model (:meth:`nepzbl_plugin.engine.Evaluator.__reduce__`)."""
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        temperature = self.parameters.get("temperature")
        fixed = "" if temperature is None else f", temperature={temperature:g}"
        return f"{type(self).__name__}({self.evaluator.description()}{fixed})"

    def set(self, **kwargs) -> dict:
        """ASE's ``set``; a new ``temperature`` changes every result, so it clears them.
        Other keys are refused: nothing else can change once the calculator exists."""
        unknown = sorted(set(kwargs) - set(self.default_parameters))
        if unknown:
            raise InputError(
                f"{type(self).__name__}: unknown or fixed parameter {', '.join(unknown)}; only "
                f"{', '.join(sorted(self.default_parameters))} can be set (create a new "
                "calculator for another model or device)")
        if kwargs.get("temperature") is not None:
            kwargs["temperature"] = checked_temperature(kwargs["temperature"])
        changed = Calculator.set(self, **kwargs)
        if "temperature" in changed:
            self.reset()
        return changed

    # ------------------------------------------------------------------ helpers
    def _pbc(self, atoms) -> tuple[bool, bool, bool]:
        return tuple(bool(p) for p in atoms.pbc)

    def _system(self, atoms) -> System:
        system = self.evaluator.system(atoms)
        temperature = self.parameters.get("temperature")
        return System(system.types, system.positions, system.cell, self._pbc(atoms),
                      system.temperature if temperature is None else temperature)

    def _volume(self, atoms) -> float:
        volume = abs(float(np.linalg.det(atoms.cell.array)))
        if not volume > 0.0:
            raise PropertyNotImplementedError(
                "stress needs a cell with nonzero volume (this structure has none)"
            )
        return volume

    def _per_atom_stress(self, virials: np.ndarray, volume: float) -> np.ndarray:
        return -_voigt(virials) / volume

    # ------------------------------------------------------------------ ASE interface
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        props = ["energy", "forces", "virial"]
        if "energies" in properties:
            props.append("energies")
        if "stresses" in properties:
            props.append("virials")
        out = self.evaluator.evaluate(self._system(self.atoms), props)
        self.results["energy"] = out["energy"]
        self.results["free_energy"] = out["energy"]
        self.results["forces"] = out["forces"]
        if "energies" in out:
            self.results["energies"] = out["energies"]
        if "stress" in properties or "stresses" in properties:
            volume = self._volume(self.atoms)
            self.results["stress"] = -_voigt(out["virial"]) / volume
            if "virials" in out:
                self.results["stresses"] = self._per_atom_stress(out["virials"], volume)
        else:
            volume = abs(float(np.linalg.det(self.atoms.cell.array)))
            if volume > 0.0:
                self.results["stress"] = -_voigt(out["virial"]) / volume

    def get_components(self, atoms=None) -> dict:
        """The NEP (network) and ZBL parts of energy, forces, virial and stress.

        Returns
        -------
        dict
            ``{"nep": {...}, "zbl": {...}}``, each with ``energy`` (eV), ``energies`` (N,),
            ``forces`` (N, 3), ``virial`` (3, 3) eV and, for a cell with volume, ``stress``
            (ASE Voigt, eV/Angstrom^3). The two parts sum to the calculator's totals.
        """
        if atoms is None:
            atoms = self.atoms
        if atoms is None:
            raise InputError("no atoms: pass the structure, calc.get_components(atoms) (ASE "
                             "gives a calculator its atoms only when it first computes)")
        out = self.evaluator.evaluate(
            self._system(atoms), ("energy", "energies", "forces", "virial", "zbl")
        )
        zbl = {
            "energy": out["energy_zbl"],
            "energies": out["energies_zbl"],
            "forces": out["forces_zbl"],
            "virial": out["virial_zbl"],
        }
        nep = {
            "energy": out["energy"] - out["energy_zbl"],
            "energies": out["energies"] - out["energies_zbl"],
            "forces": out["forces"] - out["forces_zbl"],
            "virial": out["virial"] - out["virial_zbl"],
        }
        volume = abs(float(np.linalg.det(atoms.cell.array)))
        if volume > 0.0:
            for part in (nep, zbl):
                part["stress"] = -_voigt(part["virial"]) / volume
        return {"nep": nep, "zbl": zbl}


class CPUNEP(NEP):
    """Drop-in replacement for ``calorine.calculators.CPUNEP`` (potential models).

    Parameters
    ----------
    model_filename
        Path to a ``nep.txt``.
    atoms
        Atoms to attach the calculator to.
    label
        Label for this calculator.
    debug
        Accepted for compatibility; nothing is printed either way.
    dftd3
        Not supported: anything but ``None`` raises :class:`NotImplementedError`.

    Notes
    -----
    As calorine (NEP_CPU), every structure is treated as periodic in all three directions and
    must have a cell; ``stresses`` are calorine's per-atom (N, 9) row-major virials divided by
    the volume (note the sign: compression positive, unlike ``stress``).
    """

    def __init__(self, model_filename: str, atoms=None, label: str | None = None,
                 debug: bool = False, dftd3: dict | None = None):
        if dftd3 is not None:
            raise NotImplementedError("nepzbl's CPUNEP does not implement the DFT-D3 correction")
        if not Path(model_filename).exists():
            raise MissingFileError(model_filename)  # a FileNotFoundError, as calorine's
        self.debug = debug
        self.model_filename = str(model_filename)
        super().__init__(model_filename, device="cpu", label=label, atoms=atoms)
        self.parameters["model_filename"] = str(model_filename)
        if atoms is not None:
            # like calorine: check the species now, and hold the structure as calc.atoms
            self.evaluator.system(atoms)
            self.atoms = atoms.copy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_filename!r})"

    def _pbc(self, atoms) -> tuple[bool, bool, bool]:
        return (True, True, True)

    def _system(self, atoms) -> System:
        if atoms.cell.rank == 0:
            raise InputError("Atoms must have a defined cell.")
        return super()._system(atoms)

    def _per_atom_stress(self, virials: np.ndarray, volume: float) -> np.ndarray:
        return virials.reshape(-1, 9) / volume
