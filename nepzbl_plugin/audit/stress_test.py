"""The hot-MD stress test: short Langevin NVT above the data's temperature, watching for atoms
that come unphysically close (the collapse of the NEP-ZBL paper: Li-Li g(r) peaks at 0.13 Å).

Collapse in plain MD is a rare event: a pair must meet head-on with more relative energy than the
model's spurious barrier, which at 1300 K happens in the paper's 12288-atom cells but not in a
short run on a few hundred atoms. The test therefore delivers those rare collisions on purpose
(knock-on events, :func:`~nepzbl_plugin.md.knock_on`) at the energy a long production run
reaches anyway:

    E* = k_B T ln(nu N t)

the relative energy along the bond that one head-on collision exceeds, on average, among the
nu N t collision attempts of N atoms over a time t (attempt frequency nu = 10 THz, about one
per atom per vibration; the flux of pairs meeting with more than E falls as exp(-E / k_B T)).
The default horizon N t = 1e5 atom ns (10 ns of 10,000 atoms, a long GPUMD production run)
gives E* = 20.7 k_B T: 2.32 eV at 1300 K. A model that survives these collisions survives such
a run; a model with a collapse path lets the pair fall in and keeps it there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..elements import COVALENT_RADII, atomic_number
from ..md import KnockOns, NVTResult, _pair_key, run_nvt

__all__ = ["StressTestSettings", "StressTestResult", "stress_test", "collapse_distances",
           "knock_on_energy", "crossing_probability", "detection_power", "MISS_TARGET",
           "TEMPERATURE_FACTOR", "FALLBACK_TEMPERATURE", "COLLAPSE_FRACTION", "RDF_CHECK_RANGE",
           "HORIZON_ATOM_NS", "ATTEMPT_FREQUENCY"]

TEMPERATURE_FACTOR = 1.2  # default stress temperature: 1.2 x the hottest data
FALLBACK_TEMPERATURE = 1200.0  # K, when the data carry no temperature
COLLAPSE_FRACTION = 0.6  # collapsed: a pair closer than 0.6 x the data's shortest such pair
COVALENT_COLLAPSE_FRACTION = 0.35  # ... or, without data, 0.35 x (R_cov,a + R_cov,b)
RDF_CHECK_RANGE = 1.5  # Angstrom: the paper's partial-RDF check looks below this
BOLTZMANN = 8.617333262e-5  # eV/K
ATTEMPT_FREQUENCY = 1e13  # 1/s: collision attempts per atom, about one per vibration
HORIZON_ATOM_NS = 1e5  # atom ns: 10 ns of 10,000 atoms, a long production run
MISS_TARGET = 0.01  # the report says how many collisions per pair bring the miss chance below
MIN_USEFUL_PROBABILITY = 0.05  # below this chance per collision, more collisions are not the fix


def knock_on_energy(temperature: float, horizon_atom_ns: float = HORIZON_ATOM_NS) -> float:
    """E* = k_B T ln(nu N t) in eV: the head-on collision energy that a production run of
    ``horizon_atom_ns`` (N atoms times t ns) at ``temperature`` K exceeds about once."""
    if temperature <= 0 or horizon_atom_ns <= 0:
        raise ValueError("knock_on_energy needs a positive temperature and horizon")
    attempts = ATTEMPT_FREQUENCY * horizon_atom_ns * 1e-9
    return BOLTZMANN * temperature * float(np.log(max(attempts, 1.0)))


def crossing_probability(energy: float, barrier: float, temperature: float) -> float:
    """The chance that one head-on collision of ``energy`` eV carries the pair over a barrier of
    ``barrier`` eV at ``temperature`` K (an estimate).

    The relative velocity along the bond is the kick's v* plus the pair's thermal relative
    velocity u, Gaussian with variance k_B T / mu. The pair crosses when mu (v* + u)^2 / 2 > B:
    p = Phi(sqrt(2) (sqrt(E*) - sqrt(B)) / sqrt(k_B T)), independent of the masses. It ignores
    the neighbours, which can block or help: measured on LLZO at 1300 K and E* = 2.32 eV
    (docs/audit.md), NEP802 Li-Li (B = 2.05 eV) collapsed after 11 of 20 collisions where this
    says 0.65, and NEPstd (B = 2.56 eV) after 0 of 5 where it says 0.37.
    """
    from math import erf, sqrt

    kT = BOLTZMANN * temperature
    x = sqrt(2.0) * (sqrt(max(energy, 0.0)) - sqrt(max(barrier, 0.0))) / sqrt(kT)
    return 0.5 * (1.0 + erf(x / sqrt(2.0)))


def detection_power(stress, barriers: dict, miss_target: float = MISS_TARGET) -> dict:
    """The statistical power of a stress test against the collapse paths the dimer scans found.

    ``barriers``: {"A-B": barrier in eV} for the pairs with a collapse path (0 for a way in
    that is downhill all along). Per pair: the collisions it got, their energy, the crossing
    chance per collision (:func:`crossing_probability`), the chance that every one of them
    missed, and the collisions per pair that would bring that chance below ``miss_target``
    (None when one collision has less than a 5 % chance: then raise the energy, not the
    count). ``kicks_per_pair``: the ``--kicks-per-pair`` that brings every pair that was
    collided and can be crossed below ``miss_target`` (None when the run already does).
    """
    import math

    counts: dict = {}
    for kick in stress.run.kicks:
        counts[kick["pair"]] = counts.get(kick["pair"], 0) + 1
    energy = stress.kick_energy
    pairs = {}
    kicks_needed = None
    for pair, barrier in barriers.items():
        n = counts.get(pair, 0)
        p = 0.0 if energy is None else crossing_probability(energy, barrier, stress.temperature)
        miss = (1.0 - p) ** n
        if p >= 1.0 - 1e-12:
            needed = 1
        elif p >= MIN_USEFUL_PROBABILITY:
            needed = math.ceil(math.log(miss_target) / math.log(1.0 - p))
        else:
            needed = None
        pairs[pair] = {"collisions": n, "energy_eV": energy, "barrier_eV": barrier,
                       "crossing_probability": p, "miss_chance": miss,
                       "collisions_for_miss_target": needed}
        if n and needed is not None and needed > n:
            kicks_needed = max(kicks_needed or 0, needed)
    return {"pairs": pairs, "kicks_per_pair": kicks_needed, "miss_target": miss_target,
            "temperature_K": stress.temperature}


def collapse_distances(species, data_min_distances: dict | None = None,
                       fraction: float = COLLAPSE_FRACTION) -> dict[str, float]:
    """Per-pair distance below which a sample counts as collapsed (Angstrom)."""
    species = list(species)
    out = {}
    for p, a in enumerate(species):
        for b in species[p:]:
            name = f"{a}-{b}"
            d = _pair_value(data_min_distances, name)
            if d is not None:
                out[name] = fraction * d
            else:
                rsum = COVALENT_RADII[atomic_number(a) - 1] + COVALENT_RADII[atomic_number(b) - 1]
                out[name] = COVALENT_COLLAPSE_FRACTION * rsum
    return out


def _pair_value(mapping: dict | None, pair: str):
    """``mapping["A-B"]``, or ``mapping["B-A"]``, or None."""
    a, b = pair.split("-")
    mapping = mapping or {}
    return mapping.get(pair, mapping.get(f"{b}-{a}"))


def _canonical_pair(pair: str, species) -> str:
    """'B-A' -> 'A-B' in the order of ``species``; ValueError for unknown species."""
    parts = pair.split("-")
    if len(parts) != 2 or any(x not in species for x in parts):
        raise ValueError(f"pair {pair!r} is not two of the species {' '.join(species)} "
                         "joined by '-'")
    return _pair_key(parts[0], parts[1], list(species))


@dataclass
class StressTestSettings:
    """Settings of the hot-MD stress test (temperature K, time step fs, friction 1/fs)."""

    temperature: float | None = None  # None: TEMPERATURE_FACTOR x data temperature
    steps: int = 1000  # plain NVT before the first knock-on collision
    # knock-on collisions: rounds over every pair the data bring into contact (0: plain NVT)
    kicks_per_pair: int = 3
    kick_interval: int = 200  # steps between collisions
    kick_energy: float | None = None  # eV; None: knock_on_energy(temperature, horizon)
    horizon: float = HORIZON_ATOM_NS  # atom ns of the production run the collisions stand for
    settle: int = 100  # steps after a collision whose samples do not count
    kick_pairs: list | None = None  # ["A-B", ...] to collide; None: every pair in contact
    timestep: float = 1.0
    friction: float = 0.01
    sample_interval: int = 10
    min_atoms: int = 0  # repeat the start structure until it has at least this many atoms
    seed: int = 42
    # Gaussian displacements (Angstrom, per component) of the start structure: a thermal spike
    # that brings some pairs close at once, so a rare collapse shows in a short run
    rattle: float = 0.0
    num_threads: int | None = None  # threads of nepzbl's engine when the audit builds it

    def __post_init__(self):
        problems = []
        if self.temperature is not None and not self.temperature > 0:
            problems.append(f"temperature must be > 0 K, not {self.temperature}")
        if self.steps < 0 or self.kicks_per_pair < 0:
            problems.append("steps and kicks_per_pair must be >= 0")
        if self.kick_energy is not None and not self.kick_energy > 0:
            problems.append(f"kick_energy must be > 0 eV, not {self.kick_energy}")
        if not self.horizon > 0:
            problems.append(f"horizon must be > 0 atom ns, not {self.horizon}")
        if self.kicks_per_pair and not 0 <= self.settle < self.kick_interval:
            problems.append(f"settle ({self.settle} steps) must be below kick_interval "
                            f"({self.kick_interval} steps), or no sample would count")
        if not self.timestep > 0 or self.sample_interval < 1:
            problems.append("timestep must be > 0 fs and sample_interval >= 1 step")
        if not 0 <= self.rattle < math.inf:  # also refuses NaN
            problems.append(f"rattle must be a finite length >= 0 Å, not {self.rattle}")
        if self.num_threads is not None and self.num_threads < 1:
            problems.append(f"num_threads must be at least 1, not {self.num_threads}")
        if self.seed is not None and self.seed < 0:
            problems.append(f"seed must be >= 0, not {self.seed}")
        if problems:
            raise ValueError("stress test: " + "; ".join(problems))


@dataclass
class StressTestResult:
    temperature: float
    temperature_source: str
    num_atoms: int
    run: NVTResult
    rdf_peaks: dict  # {"A-B": (distance Å, g)} the highest g below RDF_CHECK_RANGE
    kick_energy: float | None = None  # eV, None without knock-on collisions
    horizon: float | None = None  # atom ns

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
        shortest = run.min_distance[run.counted]
        kicks = [dict(k) for k in run.kicks]
        knock = None
        if self.kick_energy is not None:
            knock = {
                "energy_eV": self.kick_energy,
                "horizon_atom_ns": self.horizon,
                "energy_over_kT": self.kick_energy / (BOLTZMANN * self.temperature),
                "collisions": len(kicks),
                "pairs": sorted({k["pair"] for k in kicks}),
                # the collision the first collapse followed (None: none, or in plain NVT)
                "first_collapse_after": _collision_before(kicks, self.collapse_onset),
                "closest_approach": (float(np.min(run.min_distance))
                                     if run.min_distance.size else None),
                "events": kicks,
            }
        return {
            "temperature_K": self.temperature,
            "temperature_source": self.temperature_source,
            "num_atoms": self.num_atoms,
            "steps": run.steps_done,
            "duration_ps": float(run.times[-1] / 1000.0) if run.times.size else 0.0,
            "collapsed_fraction": self.collapsed_fraction,
            "collapse_onset_ps": None if self.collapse_onset is None else self.collapse_onset / 1e3,
            "min_distance": float(np.min(shortest)) if shortest.size else None,
            "collapse_distances": run.collapse_distances,
            "rdf_peaks_below_1.5": {k: {"distance": v[0], "g": v[1]}
                                    for k, v in self.rdf_peaks.items()},
            "knock_on": knock,
            "aborted": run.aborted,
            "wall_seconds": run.wall_seconds,
            "passed": self.passed,
        }


def _collision_before(kicks: list, onset_fs: float | None) -> dict | None:
    """The last collision before ``onset_fs`` as {"index", "pair", "time_fs"}, or None."""
    if onset_fs is None:
        return None
    before = [(n, k) for n, k in enumerate(kicks) if k["time_fs"] < onset_fs]
    if not before:
        return None
    n, kick = before[-1]
    return {"index": n, "pair": kick["pair"], "time_fs": kick["time_fs"]}


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
                data_min_distances: dict | None = None, progress=None,
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
        temperature, source = float(settings.temperature), "set by --temperature"
    else:
        found, why = data_temperature(frames)
        if found is None:
            temperature = FALLBACK_TEMPERATURE
            source = f"fallback {FALLBACK_TEMPERATURE:.0f} K: {why}"
        else:
            temperature = TEMPERATURE_FACTOR * found
            source = (f"{TEMPERATURE_FACTOR} x the data's hottest, {found:.0f} K: {why}")
    if data_min_distances is None:
        data_min_distances = min_pair_distances(frames, species)
    limits = collapse_distances(species, data_min_distances)
    if settings.rattle > 0:
        rng = np.random.default_rng(settings.seed + 1)
        atoms.positions += rng.normal(0.0, settings.rattle, atoms.positions.shape)
        source += f"; start rattled by {settings.rattle:g} Å"
    knock_ons = energy = None
    if settings.kicks_per_pair > 0:
        present = set(atoms.get_chemical_symbols())

        def in_contact(pair: str) -> bool:
            return _pair_value(data_min_distances, pair) is not None

        # the pairs the data bring into contact (every pair present when the data say nothing)
        contact = [p for p in limits if set(p.split("-")) <= present]
        if settings.kick_pairs:
            wanted = {_canonical_pair(p, species) for p in settings.kick_pairs}
            contact = [p for p in contact if p in wanted]
        elif any(in_contact(p) for p in contact):
            contact = [p for p in contact if in_contact(p)]
        if settings.kick_energy is not None:
            energy = float(settings.kick_energy)
        else:
            energy = knock_on_energy(temperature, settings.horizon)
        if contact and energy > 0:
            knock_ons = KnockOns(pairs=contact * int(settings.kicks_per_pair), energy=energy,
                                 first=settings.steps, interval=settings.kick_interval,
                                 settle=settings.settle)
        else:
            energy = None
    run = run_nvt(atoms, calc, temperature, settings.steps, timestep=settings.timestep,
                  friction=settings.friction, sample_interval=settings.sample_interval,
                  collapse_distances=limits, rdf_r_max=RDF_CHECK_RANGE, seed=settings.seed,
                  progress=progress, species=species, knock_ons=knock_ons)
    peaks = {}
    for name, g in run.rdf.items():
        k = int(np.argmax(g))
        peaks[name] = (float(run.rdf_r[k]), float(g[k])) if g[k] > 0 else (None, 0.0)
    return StressTestResult(temperature, source, len(atoms), run, peaks, energy,
                            settings.horizon if energy is not None else None)
