"""What the MD loops share: units, the ensembles, temperature schedules, the frame observers
see and the result of a run (used by :mod:`.dynamics`, the CPU loop, and :mod:`.cuda_loop`,
the device-resident one; :mod:`.dynamics` re-exports every public name)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import units

from ..checks import whole_number
from ..errors import NepzblError

__all__ = ["BOLTZMANN", "GPA", "ENSEMBLES", "MDSetupError", "TemperatureSchedule", "Frame",
           "MDResult"]

BOLTZMANN = units.kB  # eV/K
GPA = units.GPa  # 1 GPa in eV/Angstrom^3

# name -> (thermostat, barostat, anisotropic)
ENSEMBLES = {
    "nve": (None, None, False),
    "nvt": ("bussi", None, False),
    "nvt-bussi": ("bussi", None, False),
    "nvt-langevin": ("langevin", None, False),
    "nvt-berendsen": ("berendsen", None, False),
    "npt": ("bussi", "scr", False),
    "npt-scr": ("bussi", "scr", False),
    "npt-aniso": ("bussi", "scr", True),
    "npt-scr-aniso": ("bussi", "scr", True),
    "npt-berendsen": ("berendsen", "berendsen", False),
    "npt-berendsen-aniso": ("berendsen", "berendsen", True),
}


class MDSetupError(NepzblError, ValueError):
    """Inconsistent MD settings (unknown ensemble, missing temperature, bad step count...)."""


class TemperatureSchedule:
    """Target temperature against the step: piecewise linear between ``(step, K)`` points,
    constant before the first and after the last.

    >>> TemperatureSchedule.linear(600, 1200, 1000)(500)
    900.0
    """

    def __init__(self, points: Sequence[tuple[float, float]]):
        try:
            points = sorted((float(s), float(t)) for s, t in points)
        except (TypeError, ValueError):
            raise MDSetupError(f"a temperature schedule takes (step, K) numbers, not "
                               f"{points!r:.80}") from None
        if not points:
            raise MDSetupError("a temperature schedule needs at least one (step, K) point")
        for _, t in points:
            if not (np.isfinite(t) and t >= 0):
                raise MDSetupError(f"temperatures must be finite and >= 0 K, not {t}")
        self.steps = np.array([p[0] for p in points])
        self.temperatures = np.array([p[1] for p in points])

    @classmethod
    def constant(cls, temperature: float) -> TemperatureSchedule:
        return cls([(0, temperature)])

    @classmethod
    def linear(cls, start: float, end: float, steps: int) -> TemperatureSchedule:
        """From ``start`` K at step 0 to ``end`` K at step ``steps``."""
        return cls([(0, start), (steps, end)])

    def __call__(self, step: float) -> float:
        return float(np.interp(step, self.steps, self.temperatures))

    @property
    def is_constant(self) -> bool:
        return bool(np.all(self.temperatures == self.temperatures[0]))


@dataclass
class Frame:
    """The state an observer sees. Positions unwrapped (Angstrom), velocities in Angstrom/fs,
    energies in eV, temperature in K, pressure tensor in GPa."""

    step: int
    time_fs: float
    symbols: list
    masses: np.ndarray
    positions: np.ndarray
    velocities_per_fs: np.ndarray
    cell: np.ndarray
    pbc: tuple
    potential_energy: float
    kinetic_energy: float
    temperature: float
    pressure_tensor: np.ndarray
    target_temperature: float | None

    @property
    def pressure(self) -> float:
        """Hydrostatic pressure, GPa."""
        return float(np.trace(self.pressure_tensor) / 3.0)

    def atoms(self, wrap: bool = False):
        """An ``ase.Atoms`` of this frame (velocities included; positions unwrapped unless
        ``wrap``)."""
        from ase import Atoms

        atoms = Atoms(self.symbols, positions=self.positions, cell=self.cell, pbc=self.pbc,
                      masses=self.masses)
        atoms.set_velocities(self.velocities_per_fs / units.fs)
        if wrap:
            atoms.wrap()
        return atoms


@dataclass
class MDResult:
    """What a run did. Times in fs, temperatures in K, pressures in GPa, energies in eV."""

    steps_done: int
    time_fs: float
    wall_seconds: float
    stopped: str | None  # why the run ended early (an observer, a blow-up), None if it did not
    atoms: object  # final state: ase.Atoms, unwrapped positions, velocities
    mean_temperature: float
    mean_pressure: float
    mean_potential_energy: float
    energy_drift_per_atom: float  # (E_total end - E_total start) / N, eV/atom
    extra: dict = field(default_factory=dict)

    @property
    def atom_steps_per_second(self) -> float:
        return len(self.atoms) * self.steps_done / self.wall_seconds if self.wall_seconds else 0.0


def _pressure_tensor(masses, velocities, virial, volume) -> np.ndarray:
    """(kinetic + virial) / V in eV/Angstrom^3; velocities in ASE units."""
    kinetic = np.einsum("i,ia,ib->ab", masses, velocities, velocities)
    return (kinetic + virial) / volume


def _thermalize_velocities(masses, temperature, rng) -> np.ndarray:
    sigma = np.sqrt(BOLTZMANN * temperature / masses)[:, None]
    return rng.standard_normal((masses.size, 3)) * sigma


def _checked_run(atoms, ensemble, steps, timestep, temperature, pressure, tau_temperature,
                 tau_pressure, compressibility):
    """The run settings that the CPU and the device loop both check, one error each:
    (thermostat, barostat, anisotropic, steps, temperature schedule or None, target pressure
    (3,) in eV/Angstrom^3, beta = compressibility in Angstrom^3/eV)."""
    if ensemble not in ENSEMBLES:
        raise MDSetupError(f"unknown ensemble {ensemble!r}; choose from {', '.join(ENSEMBLES)}")
    thermostat, barostat, anisotropic = ENSEMBLES[ensemble]
    steps_in = steps
    steps = whole_number(steps_in)
    if steps is None:
        raise MDSetupError(f"steps must be a whole number >= 0, not {steps_in!r}")
    if steps < 0:
        raise MDSetupError(f"steps must be >= 0, not {steps}")
    timestep = _md_number(timestep, "the time step (fs)")
    tau_temperature = _md_number(tau_temperature, "tau_temperature (fs)")
    tau_pressure = _md_number(tau_pressure, "tau_pressure (fs)")
    compressibility = _md_number(compressibility, "compressibility (1/GPa)")
    if not (timestep > 0 and np.isfinite(timestep)):
        raise MDSetupError(f"the time step must be a positive number of fs, not {timestep}")
    _check_atoms(atoms)
    if temperature is None and thermostat is not None:
        raise MDSetupError(f"ensemble {ensemble} needs a temperature")
    if temperature is not None and not isinstance(temperature, TemperatureSchedule):
        temperature = TemperatureSchedule.constant(temperature)
    try:
        target_pressure = np.asarray(pressure, dtype=float).reshape(-1)
        if target_pressure.size not in (1, 3):
            raise ValueError
    except (TypeError, ValueError):
        raise MDSetupError(f"the target pressure must be one number or three (xx, yy, zz) in "
                           f"GPa, not {pressure!r}") from None
    target_pressure = np.broadcast_to(target_pressure, (3,)) * GPA
    if barostat is not None:
        if not all(atoms.pbc):
            raise MDSetupError("NPT needs a cell periodic in all three directions")
        if not np.all(np.isfinite(target_pressure)):
            raise MDSetupError(f"the target pressure must be finite (GPa), not {pressure}")
        if not (0 < compressibility < np.inf and 0 < tau_pressure < np.inf):
            raise MDSetupError("NPT needs a positive, finite compressibility and pressure "
                               f"coupling time, not {compressibility} and {tau_pressure}")
    if thermostat is not None and not 0 < tau_temperature < np.inf:
        raise MDSetupError("the temperature coupling time must be positive and finite, not "
                           f"{tau_temperature}")
    beta = compressibility / GPA  # Angstrom^3 / eV
    return thermostat, barostat, anisotropic, steps, temperature, target_pressure, beta


def _md_number(value, name: str) -> float:
    """A number: int, float, a numpy scalar or a 0-d numeric array (as ``np.load`` gives)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_, str, bytes)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise MDSetupError(f"{name} must be a number, not {value!r}")
    return float(value)


def _check_atoms(atoms) -> None:
    """Masses and velocities the integrator can use: a zero, negative or NaN mass (or a NaN
    velocity) otherwise turned every position into NaN at the first step, which the engine
    then reported as 'NaN, infinite or huge position'."""
    masses = np.asarray(atoms.get_masses(), dtype=float)
    bad = ~(np.isfinite(masses) & (masses > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise MDSetupError(f"atom {i} ({atoms.get_chemical_symbols()[i]}) has mass {masses[i]}: "
                           "every mass must be a positive number of amu (atoms.set_masses)")
    velocities = np.asarray(atoms.get_velocities(), dtype=float)
    if not np.all(np.isfinite(velocities)):
        i = int(np.argmax(~np.all(np.isfinite(velocities), axis=1)))
        raise MDSetupError(f"atom {i} has a NaN or infinite velocity")


def _starting_state(atoms, temperature, thermostat, thermalize, rng):
    """The state both loops start from, with the same generator calls in the same order (so a
    seed gives the same run on the CPU and the device): (symbols, masses, positions, cell, pbc,
    velocities in ASE units, degrees of freedom)."""
    n = len(atoms)
    symbols = atoms.get_chemical_symbols()
    masses = atoms.get_masses().astype(float)
    positions = np.array(atoms.get_positions(), dtype=float)
    cell = np.array(atoms.cell.array, dtype=float)
    pbc = tuple(bool(p) for p in atoms.pbc)
    velocities = np.array(atoms.get_velocities(), dtype=float)
    if thermalize is None:
        thermalize = temperature is not None or not np.any(velocities)
    if thermalize and temperature is not None:
        velocities = _thermalize_velocities(masses, temperature(0), rng)
    # no drift of the centre of mass (Langevin noise brings some back; that is physical there)
    velocities -= (masses @ velocities) / masses.sum()
    dof = max(3 * n - (0 if thermostat == "langevin" else 3), 1)
    if thermalize and temperature is not None and n > 1:
        kinetic = 0.5 * float(np.sum(masses[:, None] * velocities ** 2))
        if kinetic > 0:  # exactly the starting temperature, as GPUMD's `velocity` does
            velocities *= np.sqrt(0.5 * dof * BOLTZMANN * temperature(0) / kinetic)
    return symbols, masses, positions, cell, pbc, velocities, dof


def _checked_observers(observers) -> list:
    observers = list(observers)
    for obs in observers:
        if int(getattr(obs, "every", 0)) < 1:
            raise MDSetupError(f"observer {type(obs).__name__} needs every >= 1")
    return observers


def _close_observers(observers) -> None:
    """``close()`` on every observer that has one: the end of a run, however it ended."""
    for obs in observers:
        close = getattr(obs, "close", None)
        if close is not None:
            close()


def _md_result(*, steps_done: int, timestep: float, wall: float, stopped: str | None,
               symbols, masses, positions, velocities, cell, pbc, sums, samples: int,
               start_total: float, end_total: float, extra: dict | None = None) -> MDResult:
    """The :class:`MDResult` of either loop: the final state as atoms (``velocities`` in ASE
    units), the means of (T, P, E_pot) over the ``samples`` summed in ``sums`` (NaN without
    any), the total energy's drift per atom."""
    final = Frame(step=steps_done, time_fs=steps_done * timestep, symbols=symbols,
                  masses=masses, positions=positions, velocities_per_fs=velocities * units.fs,
                  cell=cell, pbc=pbc, potential_energy=np.nan, kinetic_energy=np.nan,
                  temperature=np.nan, pressure_tensor=np.full((3, 3), np.nan),
                  target_temperature=None).atoms()
    means = sums / samples if samples else np.full(3, np.nan)
    return MDResult(steps_done=steps_done, time_fs=steps_done * timestep, wall_seconds=wall,
                    stopped=stopped, atoms=final, mean_temperature=float(means[0]),
                    mean_pressure=float(means[1]), mean_potential_energy=float(means[2]),
                    energy_drift_per_atom=float((end_total - start_total) / max(len(masses), 1)),
                    extra=dict(extra or {}))
