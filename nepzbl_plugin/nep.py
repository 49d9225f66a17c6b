"""calorine-compatible functions (``calorine.nep``) on nepzbl's C engine.

Same arguments, shapes, units and layouts as calorine 4.1, so that changing the import line is
enough::

    from nepzbl_plugin.nep import get_descriptors, get_potential_forces_and_virials

Like calorine (NEP_CPU), every structure with a cell is treated as periodic in all three
directions, whatever its ``pbc``; a structure without a cell (``cell.rank == 0``) is evaluated
with open boundaries (calorine puts it in a 100 Angstrom periodic box, which gives the same
result for a molecule smaller than 100 Angstrom minus the cutoff). For nepzbl's own handling of
``pbc`` use :class:`nepzbl_plugin.engine.Evaluator`.

The ``*_batch`` variants take a list of structures and evaluate them in one engine call,
in parallel over structures.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .engine import Evaluator, System
from .model import Model

__all__ = [
    "get_descriptors",
    "get_latent_space",
    "get_potential_forces_and_virials",
    "get_descriptors_batch",
    "get_latent_space_batch",
    "get_potential_forces_and_virials_batch",
]

_CACHE_SIZE = 4
_evaluators: OrderedDict = OrderedDict()


def _evaluator(model_filename=None, model: Model | None = None) -> Evaluator:
    """An Evaluator for a file (cached by path, size and modification time) or a Model."""
    if model is not None:
        if not isinstance(model, Model):
            raise TypeError(f"model must be a nepzbl Model, got {type(model).__name__}")
        return Evaluator(model)
    if model_filename is None:
        raise ValueError("Model is undefined")
    path = Path(model_filename)
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    stat = os.stat(path)
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    ev = _evaluators.get(key)
    if ev is None:
        ev = Evaluator(path)
        _evaluators[key] = ev
        while len(_evaluators) > _CACHE_SIZE:
            _evaluators.popitem(last=False)
    else:
        _evaluators.move_to_end(key)
    return ev


def _system(ev: Evaluator, structure) -> System:
    """calorine's boundary conventions: periodic everywhere unless there is no cell."""
    system = ev.system(structure)
    periodic = structure.cell.rank != 0
    return System(system.types, system.positions, system.cell, (periodic,) * 3,
                  system.temperature)


def _resolve(model_filename, model, debug):
    # calorine's third positional argument is ``debug``; accept it there too
    if isinstance(model, bool):
        model, debug = None, model
    return model, debug


def get_descriptors(structure, model_filename=None, model: Model | None = None,
                    debug: bool = False) -> np.ndarray:
    """Per-atom descriptors, scaled by q_scaler (the network input), shape (N, D).

    Parameters
    ----------
    structure
        ``ase.Atoms``.
    model_filename
        Path to a ``nep.txt``.
    model
        A :class:`Model` instead of a file.
    debug
        Accepted for calorine compatibility; nepzbl prints nothing either way.
    """
    model, debug = _resolve(model_filename, model, debug)
    ev = _evaluator(model_filename, model)
    return ev.evaluate(_system(ev, structure), ("descriptors",))["descriptors"]


def get_latent_space(structure, model_filename=None, debug: bool = False,
                     model: Model | None = None) -> np.ndarray:
    """Hidden-layer contributions w1_k tanh(...) per atom and neuron, shape (N, N1), as
    calorine's ``get_latent_space`` (NEP_CPU stores the activation times its output weight)."""
    if model_filename is None and model is None:
        raise ValueError("Model is undefined")
    ev = _evaluator(model_filename, model)
    return ev.evaluate(_system(ev, structure), ("latent",))["latent"]


def get_potential_forces_and_virials(structure, model_filename=None, debug: bool = False,
                                     model: Model | None = None
                                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-atom energies (N,) in eV, forces (N, 3) in eV/Angstrom and per-atom virials (N, 9)
    in eV, row-major xx xy xz yx yy yz zx zy zz (NEP_CPU's layout and partition)."""
    if model_filename is None and model is None:
        raise ValueError("Model is undefined")
    ev = _evaluator(model_filename, model)
    out = ev.evaluate(_system(ev, structure), ("energies", "forces", "virials"))
    return out["energies"], out["forces"], out["virials"].reshape(-1, 9)


def _batch(structures, model_filename, model, properties):
    if model_filename is None and model is None:
        raise ValueError("Model is undefined")
    ev = _evaluator(model_filename, model)
    systems = [_system(ev, s) for s in structures]
    return ev.evaluate_many(systems, properties)


def get_descriptors_batch(structures, model_filename=None, model: Model | None = None
                          ) -> list[np.ndarray]:
    """:func:`get_descriptors` for a list of structures (one parallel engine call)."""
    return [o["descriptors"] for o in _batch(structures, model_filename, model,
                                             ("descriptors",))]


def get_latent_space_batch(structures, model_filename=None, model: Model | None = None
                           ) -> list[np.ndarray]:
    """:func:`get_latent_space` for a list of structures (one parallel engine call)."""
    return [o["latent"] for o in _batch(structures, model_filename, model, ("latent",))]


def get_potential_forces_and_virials_batch(structures, model_filename=None,
                                           model: Model | None = None) -> list[tuple]:
    """:func:`get_potential_forces_and_virials` for a list of structures (one parallel
    engine call); one (energies, forces, virials) tuple per structure."""
    outs = _batch(structures, model_filename, model, ("energies", "forces", "virials"))
    return [(o["energies"], o["forces"], o["virials"].reshape(-1, 9)) for o in outs]
