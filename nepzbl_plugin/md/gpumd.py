"""The same MD run as GPUMD input: ``run.in``, ``model.xyz`` and the model as ``nep.txt``.

GPUMD's coupling times are given in time steps, its pressures in GPa and its barostat takes
elastic moduli (GPa, 1 / compressibility) instead of compressibilities. A piecewise-linear
temperature schedule becomes one ``ensemble`` + ``run`` block per segment (GPUMD ramps T1 to T2
linearly over one ``run``). GPUMD's ``dump_exyz`` writes wrapped positions; ``compute_msd``
accumulates the mean square displacement itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write_bytes, atomic_write_text
from ..model import read_model
from ..neighbours import estimate_neighbour_counts
from .dynamics import ENSEMBLES, MDSetupError, TemperatureSchedule

__all__ = ["gpumd_run_in", "gpumd_model_xyz", "write_gpumd_inputs", "GpumdResults",
           "read_gpumd_results", "thermo_rows_from_gpumd", "write_thermo_table"]

_THERMOSTATS = {"bussi": "nvt_bdp", "langevin": "nvt_lan", "berendsen": "nvt_ber"}
_BAROSTATS = {"scr": "npt_scr", "berendsen": "npt_ber"}


def _ensemble_line(ensemble: str, t1: float, t2: float, timestep: float, tau_temperature: float,
                   pressure, tau_pressure: float, compressibility: float) -> str:
    thermostat, barostat, anisotropic = ENSEMBLES[ensemble]
    if thermostat is None:
        return "ensemble nve"
    t_coup = max(tau_temperature / timestep, 1.0)
    if barostat is None:
        return f"ensemble {_THERMOSTATS[thermostat]} {t1:g} {t2:g} {t_coup:g}"
    p_coup = max(tau_pressure / timestep, 1.0)
    modulus = 1.0 / compressibility
    pressure = np.broadcast_to(np.asarray(pressure, dtype=float), (3,))
    if anisotropic:
        ps = " ".join(f"{p:g}" for p in pressure)
        cs = " ".join([f"{modulus:g}"] * 3)
        return f"ensemble {_BAROSTATS[barostat]} {t1:g} {t2:g} {t_coup:g} {ps} {cs} {p_coup:g}"
    return (f"ensemble {_BAROSTATS[barostat]} {t1:g} {t2:g} {t_coup:g} {pressure[0]:g} "
            f"{modulus:g} {p_coup:g}")


def gpumd_run_in(*, ensemble: str, steps: int, timestep: float,
                 temperature: float | TemperatureSchedule | None, every: int,
                 pressure=0.0, tau_temperature: float = 100.0, tau_pressure: float = 1000.0,
                 compressibility: float = 0.01, model_name: str = "nep.txt",
                 rdf_cutoff: float | None = 6.0, rdf_bins: int = 300) -> str:
    """The text of a GPUMD ``run.in`` for the run that :func:`~.dynamics.run_md` would do."""
    if ensemble not in ENSEMBLES:
        raise MDSetupError(f"unknown ensemble {ensemble!r}; choose from {', '.join(ENSEMBLES)}")
    if temperature is None:
        if ENSEMBLES[ensemble][0] is not None:
            raise MDSetupError(f"ensemble {ensemble} needs a temperature")
        temperature = TemperatureSchedule.constant(300.0)
    elif not isinstance(temperature, TemperatureSchedule):
        temperature = TemperatureSchedule.constant(temperature)
    every = max(1, int(every))
    lines = [f"potential {model_name}", f"velocity {temperature(0):g}", "",
             f"time_step {timestep:g}"]
    # segments of the schedule inside [0, steps]
    knots = [0] + [int(round(s)) for s in temperature.steps if 0 < s < steps] + [steps]
    knots = sorted(set(knots))
    blocks = []
    for begin, end in zip(knots[:-1], knots[1:], strict=True):
        blocks.append((end - begin, temperature(begin), temperature(end)))
    if not blocks:
        blocks = [(0, temperature(0), temperature(0))]
    first = True
    for length, t1, t2 in blocks:
        lines.append(_ensemble_line(ensemble, t1, t2, timestep, tau_temperature, pressure,
                                    tau_pressure, compressibility))
        if first:
            lines.append(f"dump_thermo {every}")
            lines.append(f"dump_exyz {every} 1 0")
            correlation = max(1, length // (2 * every))
            lines.append(f"compute_msd {every} {correlation}")
            if rdf_cutoff is not None:
                lines.append(f"compute_rdf {rdf_cutoff:g} {rdf_bins} {every}")
            first = False
        lines.append(f"run {length}")
        lines.append("")
    return "\n".join(lines)


def gpumd_model_xyz(atoms) -> str:
    """GPUMD's ``model.xyz``: extended XYZ with lattice, periodicity, species, positions and
    masses (velocities too when the atoms carry them)."""
    n = len(atoms)
    cell = " ".join(f"{x:.10f}" for x in atoms.cell.array.reshape(-1))
    pbc = " ".join("T" if p else "F" for p in atoms.pbc)
    velocities = atoms.get_velocities()
    has_velocities = velocities is not None and np.any(velocities)
    properties = "species:S:1:pos:R:3:mass:R:1" + (":vel:R:3" if has_velocities else "")
    lines = [str(n), f'pbc="{pbc}" Lattice="{cell}" Properties={properties}']
    from ase import units

    rows = zip(atoms.get_chemical_symbols(), atoms.positions, atoms.get_masses(), strict=True)
    for k, (symbol, position, mass) in enumerate(rows):
        row = f"{symbol} {position[0]:.10f} {position[1]:.10f} {position[2]:.10f} {mass:.6f}"
        if has_velocities:  # GPUMD reads velocities in Angstrom/fs
            v = velocities[k] * units.fs
            row += f" {v[0]:.10f} {v[1]:.10f} {v[2]:.10f}"
        lines.append(row)
    return "\n".join(lines) + "\n"


def write_gpumd_inputs(folder, model_path, atoms, log=None, **run) -> list[Path]:
    """Write ``run.in``, ``model.xyz`` and ``nep.txt`` into ``folder``; ``run`` as for
    :func:`gpumd_run_in`. Returns the paths written.

    ``nep.txt`` is a copy of ``model_path`` when GPUMD runs it as it is. Current GPUMD runs only
    nep4/nep5 and sizes its neighbour lists from the cutoff line's counts, so a nep3 model is
    written upgraded (exactly, :meth:`Model.to_nep4`) and a model without counts gets the
    generous estimate of :func:`~nepzbl_plugin.neighbours.estimate_neighbour_counts`; ``log``
    (a callable taking one line, default none) is told of either."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atoms = atoms.copy()
    atoms.wrap()
    if all(atoms.pbc):
        widths = atoms.cell.volume / np.linalg.norm(np.cross(atoms.cell[[1, 2, 0]],
                                                             atoms.cell[[2, 0, 1]]), axis=1)
        run.setdefault("rdf_cutoff", round(min(6.0, 0.5 * float(widths.min()) - 0.01), 2))
    else:
        run.setdefault("rdf_cutoff", None)
    paths = [folder / "run.in", folder / "model.xyz", folder / "nep.txt"]
    atomic_write_text(paths[0], gpumd_run_in(model_name="nep.txt", **run))
    atomic_write_text(paths[1], gpumd_model_xyz(atoms))
    model = read_model(model_path)
    changes = []
    if model.version == 3:
        model = model.to_nep4()
        changes.append("upgraded nep3 to nep4 (current GPUMD runs no nep3)")
    if model.max_neighbors_radial <= 0 or model.max_neighbors_angular <= 0:
        counts = estimate_neighbour_counts(model)
        model.max_neighbors_radial, model.max_neighbors_angular = counts
        changes.append(f"the model has no neighbour counts; wrote estimates {counts[0]} "
                       f"{counts[1]} (GPUMD sizes its neighbour lists with them)")
    if changes:
        model.write(paths[2])
        for change in changes:
            if log is not None:
                log(f"{paths[2]}: {change}")
    else:
        atomic_write_bytes(paths[2], Path(model_path).read_bytes())
    return paths


@dataclass
class GpumdResults:
    """What a ``gpumd`` run left in its folder, in nepzbl's terms (None where the file is
    absent): ``thermo`` rows in :data:`~.observers.THERMO_COLUMNS` order, ``msd`` (the
    :class:`~nepzbl_plugin.io.gpumd_outputs.MsdOut` of each run block), ``rdf`` (the
    :class:`~nepzbl_plugin.io.gpumd_outputs.RdfOut` of each run block, pairs named A-B)."""

    thermo: np.ndarray | None
    msd: list | None
    rdf: list | None

    def diffusion(self) -> dict | None:
        """D and D per axis (cm^2/s) of the first msd block, fitted over the first half of
        its window (D = slope / 6)."""
        if not self.msd:
            return None
        total, axes = self.msd[0].diffusion_cm2_per_s()
        return {"D_cm2_per_s": total, "D_axis_cm2_per_s": list(axes),
                "window_ps": float(self.msd[0].time_ps[-1])}


def thermo_rows_from_gpumd(thermo, every: int, timestep: float) -> np.ndarray:
    """``thermo.out`` as rows of :data:`~.observers.THERMO_COLUMNS`: GPUMD samples after steps
    every, 2 every, ... (``(step + 1) % every == 0``), times in fs."""
    from .observers import THERMO_COLUMNS

    n = len(thermo)
    rows = np.empty((n, len(THERMO_COLUMNS)))
    steps = np.arange(1, n + 1) * int(every)
    cells = thermo.cell
    lengths = np.linalg.norm(cells, axis=2)

    def angle(u, v):
        cosine = np.einsum("ij,ij->i", u, v) / (np.linalg.norm(u, axis=1)
                                                * np.linalg.norm(v, axis=1))
        return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))

    rows[:, 0] = steps
    rows[:, 1] = steps * float(timestep)
    rows[:, 2] = thermo.temperature_K
    rows[:, 3] = thermo.potential_eV
    rows[:, 4] = thermo.kinetic_eV
    rows[:, 5] = thermo.potential_eV + thermo.kinetic_eV
    rows[:, 6] = thermo.pressure_GPa[:, :3].mean(axis=1)
    rows[:, 7:10] = thermo.pressure_GPa[:, :3]
    rows[:, 10:13] = lengths
    rows[:, 13] = angle(cells[:, 1], cells[:, 2])
    rows[:, 14] = angle(cells[:, 0], cells[:, 2])
    rows[:, 15] = angle(cells[:, 0], cells[:, 1])
    rows[:, 16] = np.abs(np.linalg.det(cells))
    rows[:, 17:26] = cells.reshape(n, 9)
    return rows


def read_gpumd_results(folder, *, every: int, timestep: float, species=None) -> GpumdResults:
    """Read ``thermo.out``, ``msd.out`` and ``rdf.out`` of a finished ``gpumd`` run in
    ``folder`` (the ``dump_thermo`` interval ``every`` in steps, ``timestep`` in fs, the
    model's ``species`` in order to name the RDF pairs)."""
    from ..io.gpumd_outputs import read_msd_out, read_rdf_out, read_thermo_out

    folder = Path(folder)
    thermo = msd = rdf = None
    if (folder / "thermo.out").is_file():
        thermo = thermo_rows_from_gpumd(read_thermo_out(folder / "thermo.out"), every, timestep)
    if (folder / "msd.out").is_file():
        msd = read_msd_out(folder / "msd.out")
    if (folder / "rdf.out").is_file():
        rdf = read_rdf_out(folder / "rdf.out", species=species)
    return GpumdResults(thermo=thermo, msd=msd, rdf=rdf)


def write_thermo_table(path, rows) -> Path:
    """Write rows of :data:`~.observers.THERMO_COLUMNS` as nepzbl's ``thermo.txt``."""
    from .observers import THERMO_COLUMNS

    lines = ["# " + " ".join(THERMO_COLUMNS)]
    for row in rows:
        lines.append(f"{int(row[0])} " + " ".join(f"{x:.10g}" for x in row[1:]))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)
