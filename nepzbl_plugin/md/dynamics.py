"""The array MD engine: velocity Verlet on positions, velocities and forces held as arrays.

Forces come from a *force field*, a callable ``(positions, cell) -> (energy, forces, virial)``:
:class:`EngineForces` calls nepzbl's C engine directly (no ASE calculator round trip per step),
:class:`CalculatorForces` wraps any ASE calculator (EMT in the tests, any model elsewhere).

Ensembles (:data:`ENSEMBLES`): NVE; NVT with Langevin (BAOAB splitting), Bussi's stochastic
velocity rescaling or Berendsen; NPT with stochastic cell rescaling (Bernetti & Bussi 2020) or
Berendsen, each isotropic or anisotropic (the three cell axes independently). The target
temperature may follow a :class:`TemperatureSchedule` (linear or piecewise-linear ramps).

Observers (:mod:`.observers`) are called every ``observer.every`` steps with a :class:`Frame`;
one that returns a string stops the run with that reason (the collapse monitor does).

Units: Angstrom, eV, amu; times given in fs; velocities inside are ASE's (Angstrom per ASE time
unit, ``ase.units.fs`` of which make one fs); pressures given and reported in GPa,
compressibilities in 1/GPa. Positions are never wrapped into the cell, so they stay unwrapped
for mean square displacements (the engine maps them into the cell itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from ase import units

from ..checks import whole_number
from ..errors import NepzblError
from .base import (
    BOLTZMANN,
    ENSEMBLES,
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

__all__ = ["ENSEMBLES", "TemperatureSchedule", "EngineForces", "CalculatorForces", "Frame",
           "MDResult", "run_md", "MDSetupError"]


class EngineForces:
    """Energy, forces and virial from a :class:`~nepzbl_plugin.engine.Evaluator`, arrays in and
    out; the atom types and periodicity are fixed from ``atoms`` once.

    ``temperature`` (K) is the input of temperature models (``nep4_temperature``): it starts as
    ``atoms.info["temperature"]`` and :func:`run_md` sets it to each step's target temperature,
    as GPUMD's MD does. Other models ignore it."""

    def __init__(self, evaluator, atoms):
        from ..engine import System

        self._system_class = System
        self.evaluator = evaluator
        system = evaluator.system(atoms)
        self.types, self.pbc = system.types, system.pbc
        self.temperature = system.temperature

    def __call__(self, positions, cell):
        out = self.evaluator.evaluate(
            self._system_class(self.types, positions, cell, self.pbc, self.temperature),
            ("energy", "forces", "virial"))
        return out["energy"], out["forces"], out["virial"]


def check_temperature_input(forces, temperature) -> None:
    """A temperature model needs the run's temperature as its input: refuse a run that has
    none (no target temperature and no ``atoms.info["temperature"]``) before it starts."""
    if (isinstance(forces, EngineForces) and forces.evaluator.model.temperature
            and temperature is None and forces.temperature is None):
        raise MDSetupError(
            "this is a temperature model (nep4_temperature), whose input is the run's "
            "temperature: give a temperature (--temperature, or temperature= in Python; an NVE "
            "run keeps it as the input throughout)")


def follow_target(forces, temperature, step: int) -> None:
    """Give a temperature model the run's target temperature of ``step`` as its input (what
    GPUMD's MD feeds it); nothing without a target or for other force fields."""
    if temperature is not None and isinstance(forces, EngineForces):
        forces.temperature = float(temperature(step))


class CalculatorForces:
    """Energy, forces and virial (-stress x volume) from any ASE calculator."""

    def __init__(self, calc, atoms):
        self.atoms = atoms.copy()
        self.atoms.calc = calc

    def __call__(self, positions, cell):
        self.atoms.set_cell(cell, scale_atoms=False)
        self.atoms.positions = positions
        energy = self.atoms.get_potential_energy()
        forces = self.atoms.get_forces()
        try:
            stress = self.atoms.get_stress(voigt=False)
            virial = -stress * self.atoms.get_volume()
        except Exception:  # calculators without stress: NVE and NVT need no virial
            virial = np.full((3, 3), np.nan)
        return energy, forces, virial


def _bussi_factor(kinetic: float, target: float, dof: int, dt_over_tau: float, rng) -> float:
    """Bussi, Donadio & Parrinello (2007): the factor that moves the kinetic energy one step of
    the stochastic rescaling towards the canonical distribution of ``target`` (= dof kT / 2)."""
    if kinetic <= 0.0:
        return 1.0
    decay = np.exp(-dt_over_tau) if np.isfinite(dt_over_tau) else 0.0
    r1 = rng.standard_normal()
    others = rng.chisquare(dof - 1) if dof > 1 else 0.0
    new = (kinetic + (1.0 - decay) * (target * (others + r1 * r1) / dof - kinetic)
           + 2.0 * r1 * np.sqrt(kinetic * target / dof * (1.0 - decay) * decay))
    return float(np.sqrt(max(new, 0.0) / kinetic))


def run_md(
    atoms,
    forces: Callable,
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
    """Run ``steps`` steps of ``timestep`` fs from ``atoms`` (not modified).

    Parameters
    ----------
    forces
        A force field: :class:`EngineForces`, :class:`CalculatorForces` or any callable
        ``(positions, cell) -> (energy eV, forces eV/Angstrom (N, 3), virial eV (3, 3))``.
    ensemble
        One of :data:`ENSEMBLES`.
    temperature
        Target in K, or a :class:`TemperatureSchedule`; needed by every ensemble but NVE, where
        it sets the starting velocities.
    pressure
        Target in GPa: one number, or three (xx, yy, zz) for the anisotropic barostats.
    tau_temperature, tau_pressure
        Coupling times in fs (Langevin: 1 / friction).
    compressibility
        Isothermal compressibility guess in 1/GPa (sets how fast the cell responds).
    seed
        Seed of the starting velocities and of the stochastic thermostats and barostats.
    observers
        Objects with ``every`` (steps) and ``__call__(frame)``, called at step 0 and every
        ``every`` steps; a returned string stops the run. ``close()`` is called at the end.
    progress
        ``progress(step, steps)`` now and then; the default does nothing.
    thermalize
        Draw Maxwell-Boltzmann velocities at the starting temperature (default: when a
        temperature is given, or when ``atoms`` carries no velocities).

    With :class:`EngineForces` on a CUDA evaluator the run goes to the device-resident loop
    (:mod:`.cuda_loop`): the same integrator and outputs, with positions kept on the GPU
    between the steps where an observer is due.
    """
    from .cuda_loop import cuda_model_of, run_md_cuda

    if not callable(forces):
        raise MDSetupError(f"forces must be EngineForces, CalculatorForces or a callable "
                           f"(positions, cell) -> (energy, forces, virial), not "
                           f"{type(forces).__name__}")
    if seed is not None and (whole_number(seed, floats=False) is None or seed < 0):
        raise MDSetupError(f"seed must be None or a whole number >= 0, not {seed!r}")
    if isinstance(forces, EngineForces) and len(forces.types) != len(atoms):
        raise MDSetupError(f"the EngineForces were made for {len(forces.types)} atoms, these "
                           f"atoms are {len(atoms)}: make them from the same atoms")
    check_temperature_input(forces, temperature)
    if cuda_model_of(forces) is not None:  # a CUDA evaluator: the device-resident loop
        return run_md_cuda(atoms, forces, steps, timestep, ensemble=ensemble,
                           temperature=temperature, pressure=pressure,
                           tau_temperature=tau_temperature, tau_pressure=tau_pressure,
                           compressibility=compressibility, seed=seed, observers=observers,
                           progress=progress, thermalize=thermalize)
    thermostat, barostat, anisotropic, steps, temperature, target_pressure, beta = _checked_run(
        atoms, ensemble, steps, timestep, temperature, pressure, tau_temperature, tau_pressure,
        compressibility)
    rng = np.random.default_rng(seed)

    symbols, masses, positions, cell, pbc, velocities, dof = _starting_state(
        atoms, temperature, thermostat, thermalize, rng)
    n = len(atoms)
    inv_mass = (1.0 / masses)[:, None]

    dt = timestep * units.fs
    dt_over_tau_t = timestep / tau_temperature if thermostat else 0.0
    observers = _checked_observers(observers)

    def evaluate(step):
        follow_target(forces, temperature, step)
        energy, f, w = forces(positions, cell)
        return float(energy), np.asarray(f, dtype=float), np.asarray(w, dtype=float)

    def frame(step, energy, virial, kinetic):
        volume = abs(np.linalg.det(cell)) if all(pbc) else np.nan
        tensor = _pressure_tensor(masses, velocities, virial, volume) / GPA
        return Frame(step=step, time_fs=step * timestep, symbols=symbols, masses=masses,
                     positions=positions.copy(), velocities_per_fs=velocities * units.fs,
                     cell=cell.copy(), pbc=pbc, potential_energy=energy,
                     kinetic_energy=kinetic, temperature=2.0 * kinetic / (dof * BOLTZMANN),
                     pressure_tensor=tensor,
                     target_temperature=None if temperature is None else temperature(step))

    stopped = None
    start_total = end_total = np.nan  # a run that fails at its first evaluation has no drift
    sums = np.zeros(3)  # T, P, E_pot over the steps
    samples = 0
    start = time.perf_counter()
    step = 0
    progress_every = max(1, steps // 200)
    try:
        energy, force, virial = evaluate(0)
        kinetic = 0.5 * float(np.sum(masses[:, None] * velocities ** 2))
        start_total = energy + kinetic
        end_total = start_total
        for obs in observers:
            reason = obs(frame(0, energy, virial, kinetic))
            stopped = stopped or reason
        while step < steps and stopped is None:
            target = temperature(step + 1) if temperature is not None else None
            velocities += (0.5 * dt) * force * inv_mass
            positions += (0.5 * dt) * velocities
            if thermostat == "langevin":
                decay = np.exp(-dt_over_tau_t)
                noise = np.sqrt((1.0 - decay * decay) * BOLTZMANN * target * inv_mass)
                velocities *= decay
                velocities += noise * rng.standard_normal((n, 3))
            positions += (0.5 * dt) * velocities
            energy, force, virial = evaluate(step + 1)
            if not np.isfinite(energy):
                step += 1
                stopped = f"non-finite energy at step {step}"
                break
            velocities += (0.5 * dt) * force * inv_mass
            kinetic = 0.5 * float(np.sum(masses[:, None] * velocities ** 2))
            if thermostat == "bussi":
                velocities *= _bussi_factor(kinetic, 0.5 * dof * BOLTZMANN * target, dof,
                                            dt_over_tau_t, rng)
            elif thermostat == "berendsen" and kinetic > 0:
                current = 2.0 * kinetic / (dof * BOLTZMANN)
                velocities *= np.sqrt(max(1.0 + dt_over_tau_t * (target / current - 1.0), 0.0))
            if barostat is not None:
                _barostat_step(barostat, anisotropic, positions, velocities, cell, masses,
                               virial, target_pressure, beta, timestep / tau_pressure,
                               BOLTZMANN * target, rng)
            if thermostat in ("bussi", "berendsen") or barostat is not None:
                kinetic = 0.5 * float(np.sum(masses[:, None] * velocities ** 2))
            step += 1
            end_total = energy + kinetic
            if all(pbc):
                volume = abs(np.linalg.det(cell))
                pressure_now = (2.0 * kinetic + np.trace(virial)) / (3.0 * volume) / GPA
            else:
                pressure_now = np.nan
            sums += (2.0 * kinetic / (dof * BOLTZMANN), pressure_now, energy)
            samples += 1
            for obs in observers:
                if step % obs.every == 0:
                    stopped = obs(frame(step, energy, virial, kinetic)) or stopped
            if progress is not None and (step % progress_every == 0 or step == steps):
                progress(step, steps)
    except NepzblError:
        raise
    except Exception as error:  # the model or the engine gave up: report, keep the outputs
        stopped = f"{type(error).__name__} at step {step + 1}: {error}"
    finally:
        _close_observers(observers)
    wall = time.perf_counter() - start
    return _md_result(steps_done=step, timestep=timestep, wall=wall, stopped=stopped,
                      symbols=symbols, masses=masses, positions=positions,
                      velocities=velocities, cell=cell, pbc=pbc, sums=sums, samples=samples,
                      start_total=start_total, end_total=end_total)


def _barostat_step(kind, anisotropic, positions, velocities, cell, masses, virial,
                   target_pressure, beta, dt_over_tau, kT, rng) -> None:
    """Scale cell, positions (and, for stochastic cell rescaling, velocities) in place.

    Berendsen: mu = 1 - beta dt / (3 tau) (P0 - P). Stochastic cell rescaling (Bernetti & Bussi,
    J. Chem. Phys. 153, 114107 (2020)): d(ln V) = -(beta / tau)(P0 - P - kT / V) dt +
    sqrt(2 kT beta dt / (V tau)) R, lengths scaled by exp(d ln V / 3), velocities by the
    inverse; anisotropic: each axis with its own diagonal pressure and a third of the noise.
    """
    volume = abs(np.linalg.det(cell))
    tensor = _pressure_tensor(masses, velocities, virial, volume)
    if anisotropic:
        current = np.diag(tensor).copy()
    else:
        current = np.full(3, np.trace(tensor) / 3.0)
    if kind == "berendsen":
        mu = 1.0 - beta * dt_over_tau / 3.0 * (target_pressure - current)
        if not anisotropic:
            mu = np.full(3, mu[0])
        mu = np.clip(mu, 0.99, 1.01)  # one step never moves the cell by more than 1%
        positions *= mu
        cell *= mu
        return
    drift = -beta * dt_over_tau * (target_pressure - current - kT / volume)
    spread = np.sqrt(2.0 * kT * beta * dt_over_tau / volume)
    if anisotropic:
        strain = drift / 3.0 + spread / np.sqrt(3.0) * rng.standard_normal(3)
    else:
        strain = np.full(3, (drift[0] + spread * rng.standard_normal()) / 3.0)
    mu = np.exp(np.clip(strain, -0.01, 0.01))
    positions *= mu
    cell *= mu
    velocities /= mu
