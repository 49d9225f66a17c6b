"""The oracle that labels selected frames: any ASE calculator.

A spec is ``module:callable`` (``ase.calculators.emt:EMT``; the callable is called without
arguments and must return an ASE calculator), ``emt`` (short for ASE's EMT), or the path of a
``nep.txt`` (evaluated by nepzbl, as the NEP-ZBL paper labelled with NEPstd). ``external`` means
no calculator: the frames are exported for DFT and the labels imported back.
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from ..errors import NepzblError

__all__ = ["load_oracle", "label_frames", "OracleError"]


class OracleError(NepzblError, RuntimeError):
    """The oracle could not be built or failed on a frame."""


def load_oracle(spec: str, *, num_threads: int | None = None):
    """An ASE calculator from a spec (see the module docstring)."""
    if spec == "external":
        raise OracleError("the oracle is 'external': export the frames with "
                          "'nepzbl al CONFIG --export FILE' and import the labels with --import")
    if spec.lower() == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    if os.path.isfile(spec):
        from ..calculators import NEP

        return NEP(spec, num_threads=num_threads)
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise OracleError(f"oracle {spec!r}: not 'module:callable', 'emt' or a nep.txt file")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise OracleError(f"oracle {spec!r}: cannot import {module_name} ({error})") from None
    try:
        factory = getattr(module, attribute)
    except AttributeError:
        raise OracleError(f"oracle {spec!r}: {module_name} has no {attribute!r}") from None
    calc = factory() if callable(factory) else factory
    if not hasattr(calc, "get_potential_energy") and not hasattr(calc, "calculate"):
        raise OracleError(f"oracle {spec!r} did not give an ASE calculator "
                          f"(got {type(calc).__name__})")
    return calc


def label_frames(frames, calc, *, config_type: str | None = None, callback=None) -> list:
    """Energy, forces and (when the calculator has it) the virial of every frame, as
    :class:`~nepzbl_plugin.io.xyz.TrainingStructure`. ``callback(done, total)`` after each."""
    from ase.calculators.calculator import PropertyNotImplementedError

    from ..io.xyz import TrainingStructure

    out = []
    for k, frame in enumerate(frames):
        atoms = frame.copy()
        atoms.calc = calc
        try:
            energy = float(atoms.get_potential_energy())
            forces = np.array(atoms.get_forces())
        except Exception as error:
            raise OracleError(f"the oracle failed on frame {k}: {type(error).__name__}: "
                              f"{error}") from error
        virial = None
        if atoms.cell.rank == 3:
            try:
                stress = atoms.get_stress(voigt=False)
                virial = -np.asarray(stress) * atoms.get_volume()
                virial = 0.5 * (virial + virial.T)
            except (PropertyNotImplementedError, NotImplementedError):
                virial = None
        if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
            raise OracleError(f"the oracle gave non-finite labels for frame {k}")
        info = {str(k2): v for k2, v in frame.info.items()
                if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
        out.append(TrainingStructure(
            symbols=atoms.get_chemical_symbols(), positions=atoms.get_positions(),
            cell=np.array(atoms.get_cell()), pbc=np.array(atoms.pbc), energy=energy,
            forces=forces, virial=virial, config_type=config_type, info=info))
        if callback is not None:
            callback(k + 1, len(frames))
    return out
