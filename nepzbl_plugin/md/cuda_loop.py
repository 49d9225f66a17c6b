"""The device-resident MD loop: :func:`~nepzbl_plugin.md.dynamics.run_md` on the GPU.

``run_md`` hands its run here when its force field is an :class:`~.dynamics.EngineForces` on a
CUDA evaluator (``Evaluator(model, device="cuda")``, as ``nepzbl md --device cuda`` makes).
Positions, velocities, forces, the neighbour list and the random numbers stay on the device
(cext/nep_cuda_md.h); the host sees the run only at *sample steps*, the steps where an observer
is due (``step % observer.every == 0``) and the progress points, where the state is downloaded
and a :class:`~.dynamics.Frame` built for the observers. Between samples nothing is copied
but a few scalars per step (the Verlet-list check; the kinetic tensor and virial when a Bussi
or Berendsen thermostat or a barostat needs them).

The integrator is the CPU engine's step for step (same splitting, same thermostat and barostat
formulas), so NVE trajectories agree with ``run_md`` on the CPU to round-off; the stochastic
ensembles draw their noise from a counter-based generator (Philox-4x32-10, keyed by ``seed``)
instead of NumPy's, so they agree in distribution only.

On-device observers: a :class:`~.observers.DistanceMonitor` is fed the minimum distance per
species pair computed from the device neighbour list (when its search radius fits inside the
model's cutoff), and :class:`DeviceRDF` and :class:`DeviceMSD` accumulate partial RDFs and mean
square displacements per species there. Both also work on the CPU engine (from the frames).

Differences from the CPU loop, by design: means (temperature, pressure, potential energy) are
over the sample steps, not every step; a non-finite energy or overlapping atoms are noticed at
the next sample step rather than at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from ase import units

from ..engine.base import temperature_input
from ..errors import NepzblError
from .base import (
    BOLTZMANN,
    GPA,
    Frame,
    MDResult,
    MDSetupError,
    TemperatureSchedule,
    _checked_observers,
    _checked_run,
    _close_observers,
    _md_result,
    _pressure_tensor,
    _starting_state,
)
from .observers import DistanceMonitor, _pair_key, partial_rdf_counts

__all__ = ["DeviceRDF", "DeviceMSD", "cuda_model_of", "run_md_cuda"]


def cuda_model_of(forces):
    """The ``_cuda.CudaModel`` behind an :class:`~.dynamics.EngineForces` on a CUDA evaluator,
    or None (any other force field, or the CPU engine)."""
    evaluator = getattr(forces, "evaluator", None)
    if evaluator is None or getattr(evaluator, "device", "cpu") != "cuda":
        return None
    for holder in (evaluator, getattr(evaluator, "_cuda", None)):
        model = getattr(holder, "_gpu", None)
        if model is not None:
            return model
    return None


class DeviceRDF:
    """Partial RDF counts every ``every`` steps, in the convention of
    :class:`nepzbl_plugin.analysis.RDF` (ordered pairs, A-A both orders, each frame weighted by
    its volume over the number of pairs). On the device loop the histogram is filled on the
    GPU from the neighbour list (integer counts); elsewhere from the frame's atoms.
    ``r_max`` must not exceed the model's largest cutoff on the device.

    ``sums`` {"A-B": (bins,) sum over frames of counts x V / pairs}; :attr:`rdf` g(r).
    """

    def __init__(self, r_max: float = 5.0, bins: int = 100, every: int = 100, species=None):
        if not r_max > 0 or int(bins) < 1:
            raise MDSetupError(f"DeviceRDF needs r_max > 0 and bins >= 1, not {r_max}, {bins}")
        self.r_max = float(r_max)
        self.bins = int(bins)
        self.every = int(every)
        self.species = None if species is None else list(species)
        self.edges = np.linspace(0.0, self.r_max, self.bins + 1)
        self.sums: dict[str, np.ndarray] = {}
        self.frames = 0

    def _add(self, counts: dict[str, np.ndarray], symbols, volume: float) -> None:
        for key, n in counts.items():
            a, b = key.split("-")
            na, nb = symbols.count(a), symbols.count(b)
            pairs = na * (nb - 1) if a == b else na * nb
            total = self.sums.setdefault(key, np.zeros(self.bins))
            if pairs > 0:
                total += n * (volume / pairs)
        self.frames += 1

    def __call__(self, frame) -> None:
        atoms = frame.atoms(wrap=True)
        if self.species is None:
            self.species = list(dict.fromkeys(frame.symbols))
        counts = partial_rdf_counts(atoms, self.species, self.r_max, self.bins)
        self._add(counts, list(frame.symbols), atoms.get_volume())

    def _device_sample(self, md, frame, model_types) -> None:
        if self.species is None:
            self.species = list(dict.fromkeys(frame.symbols))
        md.rdf_setup(self.r_max, self.bins)
        md.rdf_sample()
        hist, _ = md.rdf_counts()
        index = {s: t for t, s in enumerate(model_types)}
        counts = {}
        for p, a in enumerate(self.species):
            for b in self.species[p:]:
                counts[f"{a}-{b}"] = hist[index[a], index[b]].copy()
        self._add(counts, list(frame.symbols), abs(np.linalg.det(frame.cell)))

    @property
    def rdf(self) -> dict[str, np.ndarray]:
        """{"A-B": g(r)} averaged over the frames (dimensionless)."""
        shell = 4.0 / 3.0 * np.pi * (self.edges[1:] ** 3 - self.edges[:-1] ** 3)
        return {k: v / (shell * max(self.frames, 1)) for k, v in self.sums.items()}


class DeviceMSD:
    """Mean square displacement per species and axis from the start of the run, every
    ``every`` steps (positions unwrapped; one time origin). On the device loop the sums run on
    the GPU in a fixed order; elsewhere from the frame's positions.

    ``history``: (step, {"A": (3,) Angstrom^2}) per sample.
    """

    def __init__(self, every: int = 100):
        self.every = int(every)
        self.history: list = []
        self._origin = None

    def __call__(self, frame) -> None:
        if self._origin is None:
            self._origin = frame.positions.copy()
        symbols = np.array(frame.symbols)
        squared = (frame.positions - self._origin) ** 2
        self.history.append((frame.step, {s: squared[symbols == s].mean(axis=0)
                                          for s in dict.fromkeys(frame.symbols)}))

    def _device_sample(self, md, frame, model_types) -> None:
        values = md.msd()
        present = dict.fromkeys(frame.symbols)
        self.history.append((frame.step, {s: values[t].copy() for t, s in enumerate(model_types)
                                          if s in present}))


def _device_distances(monitor: DistanceMonitor, md, frame, model_types, cutoff):
    """Feed a DistanceMonitor from the device; None when its search radius does not fit in the
    list (then it runs on the frame as usual)."""
    search = monitor.search
    if isinstance(monitor.limits, dict) and monitor.limits:
        search = max(search, max(monitor.limits.values()) + 0.5)
    elif not isinstance(monitor.limits, dict):
        search = max(search, float(monitor.limits) + 0.5)
    search = min(search, cutoff)
    if monitor.species is None:
        monitor.species = list(dict.fromkeys(frame.symbols))
    species = monitor.species
    best = md.min_distances(search)
    index = {s: t for t, s in enumerate(model_types)}
    distances = {}
    for p, a in enumerate(species):
        for b in species[p:]:
            ta, tb = index[a], index[b]
            distances[_pair_key(a, b, species)] = float(min(best[ta, tb], best[tb, ta]))
    return monitor.check(frame, distances)


def run_md_cuda(
    atoms,
    forces,
    steps: int,
    timestep: float = 1.0,
    *,
    ensemble: str = "nve",
    temperature: float | TemperatureSchedule | None = None,
    pressure: float | Sequence[float] = 0.0,
    tau_temperature: float = 100.0,
    tau_pressure: float = 1000.0,
    compressibility: float = 0.01,
    seed: int | None = None,
    observers: Sequence = (),
    progress: Callable[[int, int], None] | None = None,
    thermalize: bool | None = None,
) -> MDResult:
    """:func:`~nepzbl_plugin.md.dynamics.run_md` on the device loop; same arguments and result
    (``forces`` an ``EngineForces`` on a CUDA evaluator)."""
    from .._cuda import CudaMD

    gpu = cuda_model_of(forces)
    if gpu is None:
        raise MDSetupError("the device MD loop needs EngineForces on a CUDA evaluator")
    thermostat, barostat, anisotropic, steps, temperature, target_pressure, beta = _checked_run(
        atoms, ensemble, steps, timestep, temperature, pressure, tau_temperature, tau_pressure,
        compressibility)
    rng = np.random.default_rng(seed)

    symbols, masses, positions, cell, pbc, velocities, dof = _starting_state(
        atoms, temperature, thermostat, thermalize, rng)
    observers = _checked_observers(observers)
    # the Philox key: the seed given, or one drawn from the same generator
    key = int(seed) & (2**64 - 1) if seed is not None else int(rng.integers(0, 2**63))

    evaluator = forces.evaluator
    model_types = list(evaluator.model.types)
    types = forces.types
    cutoff = float(np.max(np.maximum(*evaluator.model.pair_cutoffs())))
    # a temperature model's input: the target of step 0, then every step's (as GPUMD's MD)
    model_temperature = temperature_input(
        evaluator.model, temperature(0) if temperature is not None else forces.temperature)
    md = CudaMD(gpu, types, masses, positions, velocities, cell, pbc,
                dt=timestep * units.fs, thermostat=thermostat, barostat=barostat,
                anisotropic=anisotropic, dof=dof,
                dt_over_tau_t=timestep / tau_temperature if thermostat else 0.0,
                dt_over_tau_p=timestep / tau_pressure if barostat else 0.0, beta=beta,
                target_pressure=target_pressure, boltzmann=BOLTZMANN, seed=key,
                model_temperature=model_temperature)

    def frame(state) -> Frame:
        step = int(state["step"])
        v = state["velocities"]
        h = state["cell"]
        kinetic = 0.5 * float(np.trace(state["kinetic"]))
        volume = abs(np.linalg.det(h)) if all(pbc) else np.nan
        tensor = _pressure_tensor(masses, v, state["virial"], volume) / GPA
        return Frame(step=step, time_fs=step * timestep, symbols=symbols, masses=masses,
                     positions=state["positions"], velocities_per_fs=v * units.fs, cell=h,
                     pbc=pbc, potential_energy=float(state["energy"]), kinetic_energy=kinetic,
                     temperature=2.0 * kinetic / (dof * BOLTZMANN), pressure_tensor=tensor,
                     target_temperature=None if temperature is None else temperature(step))

    def observe(fr, step) -> str | None:
        reason = None
        for obs in observers:
            if step % obs.every:
                continue
            if isinstance(obs, DistanceMonitor):
                result = _device_distances(obs, md, fr, model_types, cutoff)
            elif hasattr(obs, "_device_sample"):
                result = obs._device_sample(md, fr, model_types)
            else:
                result = obs(fr)
            reason = reason or result
        return reason

    progress_every = max(1, steps // 200)
    stopped = None
    sums = np.zeros(3)
    samples = 0
    start = time.perf_counter()
    step = 0
    fr = frame(md.state())
    start_total = fr.potential_energy + fr.kinetic_energy
    end_total = start_total
    try:
        stopped = observe(fr, 0)
        while step < steps and stopped is None:
            due = [steps]
            if progress is not None:
                due.append((step // progress_every + 1) * progress_every)
            due += [(step // obs.every + 1) * obs.every for obs in observers]
            stop_at = min(due)
            count = stop_at - step
            targets = (np.array([temperature(step + k + 1) for k in range(count)])
                       if temperature is not None else None)
            try:
                md.run(count, targets)
            except NepzblError as error:
                done = int(getattr(error, "steps_done", 0))
                step += done
                stopped = f"{error} at step {step + 1}"
                break
            step = stop_at
            fr = frame(md.state())
            end_total = fr.potential_energy + fr.kinetic_energy
            pressure_now = fr.pressure if all(pbc) else np.nan
            sums += (fr.temperature, pressure_now, fr.potential_energy)
            samples += 1
            stopped = observe(fr, step) or stopped
            if progress is not None and (step % progress_every == 0 or step == steps):
                progress(step, steps)
    finally:
        _close_observers(observers)
    wall = time.perf_counter() - start
    state = md.state()
    return _md_result(steps_done=step, timestep=timestep, wall=wall, stopped=stopped,
                      symbols=symbols, masses=masses, positions=state["positions"],
                      velocities=state["velocities"], cell=state["cell"], pbc=pbc, sums=sums,
                      samples=samples, start_total=start_total, end_total=end_total,
                      extra={"device": "cuda", "samples": samples})
