"""The MD of an active-learning iteration: one run explores, the frames it samples are the
candidates, and frames with too-short distances are filtered and counted.

:func:`run_md` is the one place the loop calls MD. It runs the array MD engine
(:func:`nepzbl_plugin.md.run_md`) on the current model's engine evaluator through
:class:`~nepzbl_plugin.md.EngineForces`: no ASE calculator per step, and with ``device =
"cuda"`` the CUDA evaluator (and the device-resident loop where the md package has one).
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
    produced fewer, and its missing samples count as failures. A run its caller stopped
    (``stopped``: the callback's reason) counts only the samples it took."""

    frames: list
    failed: list[bool]
    planned: int
    aborted: str | None = None
    temperatures: list[float] = field(default_factory=list)  # kinetic T per sample, K
    min_distances: list[float] = field(default_factory=list)  # shortest pair per sample, Å
    wall_seconds: float = 0.0  # of the MD itself
    steps_done: int = 0  # MD steps run
    stopped: str | None = None  # why the caller's callback ended the run early
    knock_on_energy: float | None = None  # eV of each knock-on collision, None without
    knock_ons: list[dict] = field(default_factory=list)  # step, pair, atoms, distance (Å)

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


def _force_field(engine, atoms):
    """An MD force field from an engine :class:`~nepzbl_plugin.engine.Evaluator` (the C or CUDA
    engine, arrays in and out), an ASE calculator, or a force-field callable as it is."""
    from ..md import CalculatorForces, EngineForces

    if hasattr(engine, "evaluate") and hasattr(engine, "system"):
        return EngineForces(engine, atoms)
    if hasattr(engine, "get_potential_energy"):
        return CalculatorForces(engine, atoms)
    return engine


class _Sampler:
    """MD observer: every ``every`` steps, the frame (wrapped), its kinetic temperature and the
    too-short verdict; stops the run when positions turn non-finite.

    The MD engine turns an exception inside the run into a stop reason (a model that blows up
    is a finding); an exception of this observer or of the progress callback (a bug, an
    interruption the caller asked for) is kept in ``error`` instead and raised again after the
    run, so it is never mistaken for a failed run."""

    def __init__(self, every: int, planned: int, limits, result: MDRunResult, callback):
        self.every, self.planned, self.limits = every, planned, limits
        self.result, self.callback = result, callback
        self.error: Exception | None = None
        self.stop_reason: str | None = None  # the callback's, when it asked to stop
        # steps of the current run (a segment between knock-ons) whose samples are transient:
        # a collision brings its pair close for a few tens of fs even against a hard wall
        self.skip_before = 0

    def __call__(self, frame) -> str | None:
        if frame.step == 0 or frame.step < self.skip_before:
            return None
        if not (np.all(np.isfinite(frame.positions)) and np.isfinite(frame.potential_energy)):
            return f"non-finite energy or positions at step {frame.step}"
        try:
            self.stop_reason = self._sample(frame)
        except Exception as error:
            self.error = error
            return f"{type(error).__name__} in the sampler"
        return self.stop_reason

    def _sample(self, frame) -> str | None:
        atoms = frame.atoms(wrap=True)
        atoms.info = {"md_temperature_K": float(frame.temperature)}
        hit, shortest = too_short(atoms, self.limits)
        self.result.frames.append(atoms)
        self.result.failed.append(bool(hit))
        self.result.temperatures.append(float(frame.temperature))
        self.result.min_distances.append(shortest)
        if self.callback is None:
            return None
        reason = self.callback(len(self.result.frames), self.planned)
        return reason if isinstance(reason, str) and reason else None


def run_md(atoms, engine, spec: MDRunSpec, limits: dict[tuple[str, str], float], *,
           seed: int = 0, callback=None, knock_pairs=None) -> MDRunResult:
    """NVT MD from ``atoms`` (not modified) through :func:`nepzbl_plugin.md.run_md`, the target
    temperature ramped linearly from ``spec.t_start`` to ``spec.t_end`` K over the run
    (Langevin or Bussi, ``spec.thermostat``, coupling time 1 / ``spec.friction``); a frame every
    ``spec.sample_interval`` steps.

    ``engine`` is the current model's :class:`~nepzbl_plugin.engine.Evaluator` (driven through
    :class:`~nepzbl_plugin.md.EngineForces`; a CUDA evaluator runs on the GPU), an ASE
    calculator (:class:`~nepzbl_plugin.md.CalculatorForces`) or any force-field callable.

    A frame is *too short* when some pair is closer than its limit in ``limits`` ({(A, B): Å},
    sorted species). The run continues after such frames (as a production run would); it ends
    early only when energies or positions turn non-finite or the force field raises.
    ``callback(done_samples, planned_samples)`` after each sample; when it returns a non-empty
    string the run ends there (a wall-time budget, say): ``stopped`` is that string and
    ``planned`` the samples taken, so the failure ratio is that of the shorter run.

    With knock-on collisions in ``spec`` (:attr:`MDRunSpec.knocks_on`) and ``knock_pairs``
    (species pairs (A, B) to collide, in turn), the run stops at each of
    :meth:`MDRunSpec.knock_on_steps`, sends a random A atom and its nearest B head-on at each
    other with :meth:`MDRunSpec.collision_energy` eV (:func:`nepzbl_plugin.md.observers.knock_on`)
    and goes on from there, the ramp unbroken; samples in the first
    min(100, interval / 2) steps after a collision are transient and not taken. ``knock_ons``
    lists the collisions.
    """
    from ..md import TemperatureSchedule
    from ..md import run_md as run_dynamics
    from ..md.observers import knock_on

    pairs = list(knock_pairs or ()) if spec.knocks_on else []
    problem = spec.knock_on_shortfall(len(pairs))
    if problem:
        raise ValueError(problem)
    kicks = spec.knock_on_steps(len(pairs))
    if kicks:
        steps = spec.steps
        segments = list(zip([0, *kicks], [*kicks, steps], strict=True))
    else:
        steps = max(1, spec.steps // spec.sample_interval) * spec.sample_interval
        segments = [(0, steps)]
    settle = min(100, spec.knock_on_interval // 2)
    planned = sum(_samples(end - begin, spec.sample_interval, settle if begin else 0)
                  for begin, end in segments)
    result = MDRunResult(frames=[], failed=[], planned=max(1, planned),
                         knock_on_energy=spec.collision_energy() if kicks else None)
    sampler = _Sampler(spec.sample_interval, result.planned, limits, result, callback)
    ensemble = {"langevin": "nvt-langevin", "bussi": "nvt-bussi"}[spec.thermostat]
    forces = _force_field(engine, atoms)
    # which atoms collide: a stream of its own, so the MD's noise is the plain run's up to the
    # first collision (and each segment's thermostat noise gets its own seed below)
    rng = np.random.default_rng(None if seed is None else seed + 1)
    ramp = TemperatureSchedule.linear(spec.t_start, spec.t_end, steps)
    current, outcome = atoms, None
    for n, (begin, end) in enumerate(segments):
        sampler.skip_before = settle if begin else 0
        outcome = run_dynamics(
            current, forces, end - begin, spec.timestep, ensemble=ensemble,
            temperature=TemperatureSchedule.linear(ramp(begin), ramp(end), end - begin),
            tau_temperature=1.0 / spec.friction, observers=[sampler], thermalize=n == 0,
            seed=None if seed is None else seed + 7919 * n)
        result.wall_seconds += outcome.wall_seconds
        result.steps_done += outcome.steps_done
        if outcome.stopped is not None or end == steps:
            break
        current = outcome.atoms
        first, second = pairs[n % len(pairs)]
        event = knock_on(current, first, second, result.knock_on_energy, rng)
        if event is not None:
            result.knock_ons.append({"step": end, "pair": f"{first}-{second}", **event})
    if sampler.error is not None:
        raise sampler.error
    if sampler.stop_reason is not None:  # the caller's stop: a shorter run, not a failure
        result.stopped = sampler.stop_reason
        result.planned = len(result.frames)
    elif outcome.stopped is not None:  # the model blew up: a finding of the run, not a crash
        result.aborted = outcome.stopped
    return result


def _samples(steps: int, every: int, skip_before: int) -> int:
    """Samples an observer called every ``every`` steps takes in a run of ``steps``, leaving out
    step 0 and those before ``skip_before``."""
    return sum(1 for step in range(every, steps + 1, every) if step >= skip_before)
