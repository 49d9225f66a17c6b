"""What the training data contain: minimum distance per species pair and the temperatures.

The audit compares these with the ZBL switching region of a model (a switch reaching into
distances the data contain means the network was fitted to DFT minus a ZBL that is not negligible
there) and uses the temperature to choose the hot-MD stress test's temperature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..analysis.pairs import pair_min_distances
from .dimer import pair_name

__all__ = [
    "load_structures",
    "min_pair_distances",
    "data_temperature",
    "zbl_overlap",
    "DISTANCE_SEARCH_CUTOFF",
]

DISTANCE_SEARCH_CUTOFF = 4.0  # Angstrom: pairs never closer than this are reported as None
_KELVIN = re.compile(r"(\d+(?:\.\d+)?)\s*K\b")
_TEMPERATURE_KEYS = ("temperature", "temperature_K", "temp", "T", "Temperature")


def _as_atoms(structure):
    from ase import Atoms

    if isinstance(structure, Atoms):
        return structure
    # nepzbl_plugin.io.xyz.TrainingStructure and anything shaped like it
    atoms = Atoms(
        symbols=list(structure.symbols),
        positions=np.asarray(structure.positions, dtype=np.float64),
        cell=np.asarray(structure.cell, dtype=np.float64),
        pbc=getattr(structure, "pbc", True),
    )
    info = getattr(structure, "info", None)
    if isinstance(info, dict):
        atoms.info.update(info)
    # as TrainingStructure.to_atoms and ASE's extxyz reader put them: data_temperature reads both
    for key in ("config_type", "temperature"):
        value = getattr(structure, key, None)
        if value is not None:
            atoms.info.setdefault(key, value)
    return atoms


def load_structures(data) -> list:
    """A list of ``ase.Atoms`` from a path to an extended-XYZ file (GPUMD ``train.xyz``), a list
    of ``Atoms``, or a list of :class:`nepzbl_plugin.io.xyz.TrainingStructure`."""
    from ..errors import NepFormatError

    if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        from ase.io import read

        from ..io.xyz import read_train_xyz

        try:
            frames = read(data, index=":", format="extxyz")
        except FileNotFoundError:
            raise
        except Exception as error:  # ASE raises many kinds: let GPUMD's reader name the line
            structures = read_train_xyz(data, require_forces=False, require_energy=False)
            if not structures:
                raise NepFormatError(data, None, f"cannot read as extended XYZ: {error}") from None
            return [_as_atoms(s) for s in structures]
        if not frames:
            raise NepFormatError(data, None, "no structures in the file")
        from ..io.xyz import check_frames

        check_frames(data, frames)
        return frames
    return [_as_atoms(s) for s in data]


def min_pair_distances(structures, species=None, cutoff: float = DISTANCE_SEARCH_CUTOFF) -> dict:
    """Shortest distance (Angstrom, periodic images included) per unordered species pair.

    Returns ``{"A-B": distance or None}`` with pairs named in the order of ``species`` (default:
    the species of the data in order of first appearance); None when no such pair is closer than
    ``cutoff``.
    """
    frames = load_structures(structures)
    if species is None:
        species = []
        for atoms in frames:
            for s in atoms.get_chemical_symbols():
                if s not in species:
                    species.append(s)
    distances = pair_min_distances(frames, list(species), cutoff)
    return {name: value if np.isfinite(value) else None for name, value in distances.items()}


def data_temperature(structures) -> tuple[float | None, str]:
    """The highest temperature the data suggest, and where it came from.

    Looked for in every frame: an ``info`` key (temperature, temperature_K, temp, T), a number
    followed by K in ``config_type`` or any other string entry, and the kinetic temperature of
    ``momenta``. The highest of these is returned, with the rule that found it; (None, reason)
    when nothing says. For momenta that is the hottest frame's kinetic temperature: one frame's
    reading fluctuates by sqrt(2 / 3N) about its thermostat (6 % for 192 atoms), so it errs on
    the hot side, which is the safe side for a stress test.
    """
    from ase.units import kB

    frames = load_structures(structures)
    found = []
    kinetic_temperatures = []
    for atoms in frames:
        for key in _TEMPERATURE_KEYS:
            if key in atoms.info:
                try:
                    found.append((float(atoms.info[key]), f"info key {key!r}"))
                except (TypeError, ValueError):
                    pass
        for key, value in atoms.info.items():
            if isinstance(value, str):
                for match in _KELVIN.finditer(value):
                    found.append((float(match.group(1)), f"info {key!r}"))
        if "momenta" in atoms.arrays and len(atoms) > 1:
            momenta = atoms.arrays["momenta"]
            if np.any(momenta != 0):
                kinetic = 0.5 * np.sum(momenta**2 / atoms.get_masses()[:, None])
                kinetic_temperatures.append(2.0 * kinetic / (3.0 * len(atoms) * kB))
    if kinetic_temperatures:
        value = float(np.max(kinetic_temperatures))
        found.append((value, f"kinetic temperature of the hottest frame's momenta "
                             f"(of {len(kinetic_temperatures)} frames)"))
    if not found:
        return None, "the data carry no temperature"
    value, source = max(found)
    return value, source


@dataclass
class PairOverlap:
    """The ZBL switching region of one pair against the data's minimum distance."""

    pair: str
    data_min_distance: float | None
    zbl_inner: float | None
    zbl_outer: float | None

    @property
    def reaches_into_data(self) -> bool:
        return (self.zbl_outer is not None and self.data_min_distance is not None
                and self.zbl_outer > self.data_min_distance)

    def as_dict(self) -> dict:
        return {"data_min_distance": self.data_min_distance, "zbl_inner": self.zbl_inner,
                "zbl_outer": self.zbl_outer, "zbl_reaches_into_data": self.reaches_into_data}


def zbl_overlap(model, min_distances: dict) -> dict:
    """{"A-B": PairOverlap} for every pair of ``model.types``; ZBL radii None without ZBL.

    ZBL acts only inside the angular cutoff, so the effective outer radius is
    min(r_outer, rc_angular(pair)).
    """
    table = model.zbl_table()
    _, angular = model.pair_cutoffs()
    out = {}
    for p, a in enumerate(model.types):
        for q in range(p, model.num_types):
            name = pair_name(a, model.types[q])
            inner = outer = None
            if table is not None:
                inner = float(table[p, q, 0])
                outer = float(min(table[p, q, 1], angular[p, q]))
            out[name] = PairOverlap(name, min_distances.get(name), inner, outer)
    return out
