"""The MD of an active-learning iteration: one run explores, the frames it samples are the
candidates, and frames with too-short distances are filtered and counted.

:func:`run_md` is the one place the loop calls MD; switching to another engine (nepzbl's own MD
package, the GPU loop) means changing only it. Today it is ASE's Langevin driven by nepzbl's
calculator, with the target temperature ramped linearly between samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..analysis.pairs import pair_min_distances as pair_min_distances_by_name
from .config import MDRunSpec

__all__ = ["MDRunResult", "run_md", "pair_min_distances", "too_short"]


@dataclass
class MDRunResult:
    """One MD run: its frames (``ase.Atoms``, positions wrapped into the cell) and which were
    too short. ``planned`` counts the samples the run should have produced; a run that blew up
    produced fewer, and its missing samples count as failures."""

    frames: list
    failed: list[bool]
    planned: int
    aborted: str | None = None
    temperatures: list[float] = field(default_factory=list)  # kinetic T per sample, K
    min_distances: list[float] = field(default_factory=list)  # shortest pair per sample, Å

    @property
    def num_failed(self) -> int:
        return int(sum(self.failed)) + max(0, self.planned - len(self.frames))

    @property
    def failure_ratio(self) -> float:
        return self.num_failed / self.planned if self.planned else 0.0

    @property
    def good_frames(self) -> list:
        return [f for f, bad in zip(self.frames, self.failed, strict=True) if not bad]


def pair_min_distances(atoms, cutoff: float) -> dict[tuple[str, str], float]:
    """Shortest distance (Å, periodic images included) per unordered pair of species present
    closer than ``cutoff``; keys are sorted (A, B) tuples (the numbers of
    :func:`nepzbl_plugin.analysis.pairs.pair_min_distances`)."""
    species = sorted(set(atoms.get_chemical_symbols()))
    distances = pair_min_distances_by_name(atoms, species, cutoff)
    return {tuple(name.split("-")): value for name, value in distances.items()
            if np.isfinite(value)}


def too_short(atoms, limits: dict[tuple[str, str], float]) -> tuple[bool, float]:
    """(some pair closer than its limit, the shortest distance of any pair in Å)."""
    # search far enough to report the shortest distance of an ordinary structure too
    cutoff = max(3.0, max(limits.values(), default=0.0) + 0.5)
    distances = pair_min_distances(atoms, cutoff)
    shortest = min(distances.values()) if distances else np.inf
    hit = any(d < limits.get(pair, 0.0) for pair, d in distances.items())
    return hit, float(shortest)


def _thermalize(atoms, temperature: float, rng) -> None:
    from ase.md import velocitydistribution as vd

    if hasattr(vd, "thermalize_momenta"):
        vd.thermalize_momenta(atoms, temperature, rng=rng)
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)


def run_md(atoms, calc, spec: MDRunSpec, limits: dict[tuple[str, str], float], *,
           seed: int = 0, callback=None) -> MDRunResult:
    """Langevin MD from ``atoms`` (copied) with ``calc``, the target temperature ramped linearly
    from ``spec.t_start`` to ``spec.t_end`` K; a frame every ``spec.sample_interval`` steps.

    A frame is *too short* when some pair is closer than its limit in ``limits`` ({(A, B): Å},
    sorted species). The run continues after such frames (as a production run would); it ends
    early only when energies or positions turn non-finite or the calculator raises.
    ``callback(done_samples, planned_samples)`` after each sample.
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary

    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    _thermalize(atoms, spec.t_start, rng)
    Stationary(atoms)
    dyn = Langevin(atoms, spec.timestep * units.fs, temperature_K=spec.t_start,
                   friction=spec.friction / units.fs, fixcm=False, rng=rng)
    planned = max(1, spec.steps // spec.sample_interval)
    result = MDRunResult(frames=[], failed=[], planned=planned)
    for sample in range(planned):
        # the target of this stretch: the ramp's value at its midpoint
        fraction = (sample + 0.5) / planned
        dyn.set_temperature(temperature_K=spec.t_start + fraction * (spec.t_end - spec.t_start))
        try:
            dyn.run(spec.sample_interval)
            energy = atoms.get_potential_energy()
            finite = np.isfinite(energy) and np.all(np.isfinite(atoms.positions))
        except Exception as error:  # the model blew up: a finding of the run, not a crash
            result.aborted = f"{type(error).__name__}: {error}"
            break
        if not finite:
            result.aborted = "non-finite energy or positions"
            break
        frame = atoms.copy()
        frame.calc = None
        frame.wrap()
        frame.info = {"md_temperature_K": float(atoms.get_temperature())}
        hit, shortest = too_short(frame, limits)
        result.frames.append(frame)
        result.failed.append(bool(hit))
        result.temperatures.append(float(atoms.get_temperature()))
        result.min_distances.append(shortest)
        if callback is not None:
            callback(sample + 1, planned)
    return result
