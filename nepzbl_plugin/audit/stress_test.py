"""The hot-MD stress test: short Langevin NVT above the data's temperature, watching for atoms
that come unphysically close (the collapse of the NEP-ZBL paper: Li-Li g(r) peaks at 0.13 Å).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..elements import COVALENT_RADII, atomic_number
from ..md import NVTResult, run_nvt

__all__ = ["StressTestSettings", "StressTestResult", "stress_test", "collapse_distances",
           "TEMPERATURE_FACTOR", "FALLBACK_TEMPERATURE", "COLLAPSE_FRACTION", "RDF_CHECK_RANGE"]

TEMPERATURE_FACTOR = 1.2  # default stress temperature: 1.2 x the hottest data
FALLBACK_TEMPERATURE = 1200.0  # K, when the data carry no temperature
COLLAPSE_FRACTION = 0.6  # collapsed: a pair closer than 0.6 x the data's shortest such pair
COVALENT_COLLAPSE_FRACTION = 0.35  # ... or, without data, 0.35 x (R_cov,a + R_cov,b)
RDF_CHECK_RANGE = 1.5  # Angstrom: the paper's partial-RDF check looks below this


def collapse_distances(species, data_min_distances: dict | None = None,
                       fraction: float = COLLAPSE_FRACTION) -> dict[str, float]:
    """Per-pair distance below which a sample counts as collapsed (Angstrom)."""
    species = list(species)
    out = {}
    for p, a in enumerate(species):
        for b in species[p:]:
            name = f"{a}-{b}"
            d = (data_min_distances or {}).get(name)
            if d is None:
                d = (data_min_distances or {}).get(f"{b}-{a}")
            if d is not None:
                out[name] = fraction * d
            else:
                rsum = COVALENT_RADII[atomic_number(a) - 1] + COVALENT_RADII[atomic_number(b) - 1]
                out[name] = COVALENT_COLLAPSE_FRACTION * rsum
    return out


@dataclass
class StressTestSettings:
    """Settings of the hot-MD stress test (temperature K, time step fs, friction 1/fs)."""

    temperature: float | None = None  # None: TEMPERATURE_FACTOR x data temperature
    steps: int = 2000
    timestep: float = 1.0
    friction: float = 0.01
    sample_interval: int = 10
    min_atoms: int = 0  # repeat the start structure until it has at least this many atoms
    seed: int = 42
    # Gaussian displacements (Angstrom, per component) of the start structure: a thermal spike
    # that brings some pairs close at once, so a rare collapse shows in a short run
    rattle: float = 0.0
    num_threads: int | None = None  # threads of nepzbl's engine when the audit builds it


@dataclass
class StressTestResult:
    temperature: float
    temperature_source: str
    num_atoms: int
    run: NVTResult
    rdf_peaks: dict  # {"A-B": (distance Å, g)} the highest g below RDF_CHECK_RANGE

    @property
    def collapsed_fraction(self) -> float:
        return self.run.collapsed_fraction

    @property
    def collapse_onset(self) -> float | None:
        return self.run.collapse_onset

    @property
    def passed(self) -> bool:
        return self.collapsed_fraction == 0.0 and self.run.aborted is None

    def as_dict(self) -> dict:
        run = self.run
        return {
            "temperature_K": self.temperature,
            "temperature_source": self.temperature_source,
            "num_atoms": self.num_atoms,
            "steps": run.steps_done,
            "duration_ps": float(run.times[-1] / 1000.0) if run.times.size else 0.0,
            "collapsed_fraction": self.collapsed_fraction,
            "collapse_onset_ps": None if self.collapse_onset is None else self.collapse_onset / 1e3,
            "min_distance": float(np.min(run.min_distance)) if run.min_distance.size else None,
            "collapse_distances": run.collapse_distances,
            "rdf_peaks_below_1.5": {k: {"distance": v[0], "g": v[1]}
                                    for k, v in self.rdf_peaks.items()},
            "aborted": run.aborted,
            "wall_seconds": run.wall_seconds,
            "passed": self.passed,
        }


def _start_structure(structures, min_atoms: int):
    from .distances import load_structures

    frames = load_structures(structures)
    atoms = max(frames, key=len).copy()
    atoms.calc = None
    if min_atoms and len(atoms) < min_atoms and atoms.pbc.all():
        # repeat along the shortest cell vectors first, one at a time
        reps = [1, 1, 1]
        while len(atoms) * np.prod(reps) < min_atoms:
            lengths = atoms.cell.lengths() * np.array(reps)
            reps[int(np.argmin(lengths))] += 1
        atoms = atoms.repeat(reps)
    return atoms


def stress_test(calc, structures, settings: StressTestSettings | None = None, *,
                data_min_distances: dict | None = None, progress: bool = True,
                species=None) -> StressTestResult:
    """Run the hot-MD stress test with any ASE calculator.

    Parameters
    ----------
    calc
        The ASE calculator of the model under audit.
    structures
        Training data (path, Atoms list or TrainingStructures): the largest frame is the start
        structure, and the data give the temperature and the collapse distances.
    settings
        :class:`StressTestSettings`; the temperature defaults to 1.2 x the data's highest
        temperature (:func:`~nepzbl_plugin.audit.distances.data_temperature`), or 1200 K.
    data_min_distances
        Shortest distance per pair in the data (computed when not given).
    """
    from .distances import data_temperature, load_structures, min_pair_distances

    settings = settings or StressTestSettings()
    frames = load_structures(structures)
    atoms = _start_structure(frames, settings.min_atoms)
    if species is None:
        species = []
        for s in atoms.get_chemical_symbols():
            if s not in species:
                species.append(s)
    if settings.temperature is not None:
        temperature, source = float(settings.temperature), "set by the user"
    else:
        found, why = data_temperature(frames)
        if found is None:
            temperature, source = FALLBACK_TEMPERATURE, f"fallback ({why})"
        else:
            temperature = TEMPERATURE_FACTOR * found
            source = f"{TEMPERATURE_FACTOR} x {found:.0f} K from the data ({why})"
    if data_min_distances is None:
        data_min_distances = min_pair_distances(frames, species)
    limits = collapse_distances(species, data_min_distances)
    if settings.rattle > 0:
        rng = np.random.default_rng(settings.seed + 1)
        atoms.positions += rng.normal(0.0, settings.rattle, atoms.positions.shape)
        source += f"; start rattled by {settings.rattle:g} Å"
    run = run_nvt(atoms, calc, temperature, settings.steps, timestep=settings.timestep,
                  friction=settings.friction, sample_interval=settings.sample_interval,
                  collapse_distances=limits, rdf_r_max=RDF_CHECK_RANGE, seed=settings.seed,
                  progress=progress, species=species)
    peaks = {}
    for name, g in run.rdf.items():
        k = int(np.argmax(g))
        peaks[name] = (float(run.rdf_r[k]), float(g[k])) if g[k] > 0 else (None, 0.0)
    return StressTestResult(temperature, source, len(atoms), run, peaks)
