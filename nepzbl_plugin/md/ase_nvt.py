"""Langevin NVT through ASE's integrator and any ASE calculator, with a minimum-distance monitor,
a partial RDF and optional knock-on collisions.

Used by the audit's hot-MD stress test (:mod:`nepzbl_plugin.audit.stress_test`). The array MD
engine for production runs is :mod:`nepzbl_plugin.md.dynamics`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..progress import with_progress
from .observers import KnockOns, knock_on, pair_min_distances, partial_rdf, partial_rdf_counts

__all__ = ["NVTResult", "run_nvt"]


def _thermalize(atoms, temperature: float, rng) -> None:
    """Maxwell-Boltzmann momenta (ASE >= 3.28 names it thermalize_momenta)."""
    from ase.md import velocitydistribution as vd

    if hasattr(vd, "thermalize_momenta"):
        vd.thermalize_momenta(atoms, temperature, rng=rng)
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)


@dataclass
class NVTResult:
    """One monitored NVT run. Times in fs, distances in Angstrom, temperatures in K."""

    times: np.ndarray
    min_distance: np.ndarray  # shortest distance of any pair, per sample
    pair_min_distance: dict[str, np.ndarray]  # per pair, per sample (inf: none within search)
    temperature: np.ndarray  # kinetic temperature per sample
    collapsed: np.ndarray  # per sample: some pair below its collapse distance
    collapse_distances: dict[str, float]
    rdf_r: np.ndarray
    rdf: dict[str, np.ndarray]
    steps_done: int
    wall_seconds: float
    counted: np.ndarray  # per sample: counts towards the verdict (not a collision transient)
    aborted: str | None = None
    kicks: list = field(default_factory=list)  # one dict per knock-on collision
    extra: dict = field(default_factory=dict)

    @property
    def collapsed_fraction(self) -> float:
        """Fraction of the counted samples (transients after a collision left out) that
        collapsed."""
        return (float(np.mean(self.collapsed[self.counted])) if np.any(self.counted)
                else 0.0)

    @property
    def collapse_onset(self) -> float | None:
        """Time (fs) of the first counted collapsed sample, None if none."""
        hits = np.nonzero(self.collapsed & self.counted)[0]
        return float(self.times[hits[0]]) if hits.size else None


def run_nvt(
    atoms,
    calc,
    temperature: float,
    steps: int,
    *,
    timestep: float = 1.0,
    friction: float = 0.01,
    sample_interval: int = 10,
    collapse_distances: dict[str, float] | float = 0.5,
    rdf_r_max: float = 1.5,
    rdf_bins: int = 150,
    seed: int = 42,
    progress=None,
    stop_on_collapse: bool = False,
    species=None,
    knock_ons: KnockOns | None = None,
) -> NVTResult:
    """Langevin NVT with a minimum-distance monitor.

    Parameters
    ----------
    atoms
        Start structure (copied; the copy gets ``calc``).
    calc
        Any ASE calculator.
    temperature
        Target temperature in K; velocities start from a Maxwell-Boltzmann distribution.
    steps
        Number of MD steps of ``timestep`` fs; ``friction`` in 1/fs.
    sample_interval
        Steps between samples of the distance monitor and the RDF.
    collapse_distances
        A sample is *collapsed* when some pair is closer than its distance here ({"A-B": Å},
        pairs not named use the smallest one given), or than one number for all pairs.
    rdf_r_max, rdf_bins
        Range and resolution of the partial RDF accumulated over all samples.
    progress
        ``None`` (default) or ``progress(done, total, label)`` after each sample.
    stop_on_collapse
        End the run at the first collapsed sample.
    species
        Element order that names the pairs ("A-B" with A first); default order of appearance.
    knock_ons
        Head-on collisions to deliver during the run (:class:`KnockOns`); the run is extended
        to end ``interval`` steps after the last one. Their step numbers are rounded up to
        multiples of ``sample_interval``.

    A run whose energies or positions turn non-finite, or whose calculator raises, ends there
    with ``aborted`` set; the last sample then counts as collapsed.
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary

    atoms = atoms.copy()
    atoms.calc = calc
    present = []
    for s in atoms.get_chemical_symbols():
        if s not in present:
            present.append(s)
    if species is not None:
        species = [s for s in species if s in present] + [s for s in present if s not in species]
    else:
        species = present
    pairs = [f"{a}-{b}" for i, a in enumerate(species) for b in species[i:]]
    if isinstance(collapse_distances, dict):
        fallback = min(collapse_distances.values()) if collapse_distances else 0.5
        limits = {}
        for p in pairs:
            a, b = p.split("-")
            limits[p] = float(collapse_distances.get(p, collapse_distances.get(f"{b}-{a}",
                                                                                 fallback)))
    else:
        limits = {p: float(collapse_distances) for p in pairs}
    search = max(3.0, rdf_r_max, max(limits.values()) + 0.5)

    rng = np.random.default_rng(seed)
    _thermalize(atoms, temperature, rng)
    Stationary(atoms)
    dyn = Langevin(atoms, timestep * units.fs, temperature_K=temperature,
                   friction=friction / units.fs, fixcm=False, rng=rng)

    sample_interval = max(1, int(sample_interval))

    def aligned(step: int) -> int:
        return -(-int(step) // sample_interval) * sample_interval

    schedule = []  # (step, "A-B") of each collision
    settle = 0
    if knock_ons is not None and knock_ons.pairs:
        settle = int(knock_ons.settle)
        for k, pair in enumerate(knock_ons.pairs):
            schedule.append((aligned(knock_ons.first + k * knock_ons.interval), pair))
        steps = max(steps, schedule[-1][0] + aligned(knock_ons.interval))
    kicks = []
    last_kick = None

    times, dmin, temps, collapsed, counted = [], [], [], [], []
    per_pair = {p: [] for p in pairs}
    counts = None
    aborted = None
    n_samples = max(1, steps // sample_interval)
    iterator = with_progress(range(n_samples), progress, f"NVT {temperature:.0f} K")
    start = time.perf_counter()
    done = 0
    distances = None  # of the latest sample, taken at the current positions
    for _ in iterator:
        while schedule and schedule[0][0] <= done:
            _, pair = schedule.pop(0)
            a, b = pair.split("-")
            event = knock_on(atoms, a, b, knock_ons.energy, rng)
            if event is not None:
                if kicks:  # two collisions before any sample: measure once here
                    distances = distances or pair_min_distances(atoms, species, search)
                    _close_kick(kicks[-1], atoms, limits, distances)
                event.update(pair=pair, time_fs=done * timestep)
                kicks.append(event)
                last_kick = done
        try:
            dyn.run(sample_interval)
            energy = atoms.get_potential_energy()
            ok = np.isfinite(energy) and np.all(np.isfinite(atoms.positions))
        except Exception as error:  # the model blew up: that is a finding, not a crash
            ok = False
            aborted = f"{type(error).__name__}: {error}"
        done += sample_interval
        if not ok:
            aborted = aborted or "non-finite energy or positions"
            times.append(done * timestep)
            dmin.append(0.0)
            temps.append(np.nan)
            collapsed.append(True)
            counted.append(True)
            for p in pairs:
                per_pair[p].append(0.0)
            break
        distances = pair_min_distances(atoms, species, search)
        transient = last_kick is not None and done - last_kick < settle
        if not transient:  # the RDF, like the verdict, leaves collision transients out
            sample_counts = partial_rdf_counts(atoms, species, rdf_r_max, rdf_bins)
            counts = sample_counts if counts is None else {k: counts[k] + v
                                                           for k, v in sample_counts.items()}
        counted.append(not transient)
        times.append(done * timestep)
        dmin.append(min(distances.values()))
        temps.append(atoms.get_temperature())
        hit = any(distances[p] < limits[p] for p in pairs)
        collapsed.append(hit)
        for p in pairs:
            per_pair[p].append(distances[p])
        if hit and stop_on_collapse and not transient:
            break
    wall = time.perf_counter() - start
    if kicks and aborted is None:
        _close_kick(kicks[-1], atoms, limits, distances)
    elif kicks:
        kicks[-1].update(distance_after=None, collapsed_after=["the run blew up"])
    # samples that reached the RDF
    frames = int(np.sum(np.isfinite(temps) & np.array(counted, dtype=bool)))
    if counts is None:
        counts = {p: np.zeros(rdf_bins) for p in pairs}
    r, g = partial_rdf(counts, atoms, species, rdf_r_max, rdf_bins, frames)
    return NVTResult(
        times=np.array(times), min_distance=np.array(dmin),
        pair_min_distance={p: np.array(v) for p, v in per_pair.items()},
        temperature=np.array(temps), collapsed=np.array(collapsed, dtype=bool),
        collapse_distances=limits, rdf_r=r, rdf=g, steps_done=done, wall_seconds=wall,
        aborted=aborted, counted=np.array(counted, dtype=bool), kicks=kicks,
    )


def _close_kick(kick: dict, atoms, limits, distances) -> None:
    """Record how a collision ended: the kicked pair's distance and the pairs collapsed just
    before the next collision (or the end of the run), from that sample's ``distances``."""
    i, j = kick["atoms"]
    kick["distance_after"] = float(atoms.get_distance(i, j, mic=True))
    kick["collapsed_after"] = sorted(p for p in limits if distances[p] < limits[p])
