"""``nepzbl md``: molecular dynamics with a NEP / NEP-ZBL model on nepzbl's engine, or the same run
written for GPUMD."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import NepFormatError, NepzblError
from ..md.dynamics import ENSEMBLES, TemperatureSchedule
from ._common import ProgressBars, non_negative_float, positive_int, seed

__all__ = ["register"]

_HELP = """\
Molecular dynamics from any ASE-readable start structure with a nep.txt model, on nepzbl's
C engine (velocity Verlet, positions and forces as arrays).

Ensembles: nve; nvt (= nvt-bussi, stochastic velocity rescaling), nvt-langevin, nvt-berendsen;
npt (= npt-scr, stochastic cell rescaling with a Bussi thermostat, isotropic), npt-aniso (the
three cell axes independently, for tetragonal-cubic transitions), npt-berendsen(-aniso).

Outputs in --out: thermo.txt (a plain table; header names the columns and units: step, time_fs,
T_K, energies in eV, pressures in GPa, cell lengths in Å, angles in degrees, volume in Å^3 and
the 9 cell components) and trajectory.xyz (extended XYZ with UNWRAPPED positions and
velocities, info step, time_fs, unwrapped=True), both every --every steps. The run stops when
two atoms come closer than --min-distance (a collapse).

--gpumd writes the same run as GPUMD's run.in, model.xyz and nep.txt into --out instead, and
runs gpumd there when it is on PATH.

Example: nepzbl md nep.txt POSCAR --ensemble nvt --temperature 600 --temperature-end 1200
         --steps 100000 --dt 1 --every 1000 --out heat"""


def register(subparsers) -> None:
    md = subparsers.add_parser(
        "md", help="molecular dynamics (NVE, NVT, NPT, temperature ramps) or GPUMD input",
        description=_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    md.add_argument("model", help="nep.txt of the model")
    md.add_argument("structure", help="start structure, any format ase.io.read knows "
                                      "(the last frame of a trajectory)")
    md.add_argument("--ensemble", choices=list(ENSEMBLES), default="nvt",
                    help="thermodynamic ensemble (default nvt: Bussi)")
    md.add_argument("--temperature", type=float, default=None,
                    help="target (or starting) temperature in K")
    md.add_argument("--temperature-end", type=float, default=None,
                    help="ramp linearly from --temperature to this temperature in K over the run")
    md.add_argument("--temperature-points", default=None, metavar="STEP:K,...",
                    help="piecewise-linear schedule, e.g. '0:1200,5000:1200,20000:600' "
                         "(replaces --temperature and --temperature-end)")
    md.add_argument("--pressure", type=float, nargs="+", default=[0.0], metavar="GPa",
                    help="target pressure in GPa for npt (one value, or xx yy zz for aniso; "
                         "default 0)")
    md.add_argument("--steps", type=int, default=1000, help="MD steps (default 1000)")
    md.add_argument("--dt", type=float, default=1.0, help="time step in fs (default 1)")
    md.add_argument("--every", type=positive_int, default=100,
                    help="steps between thermo rows and trajectory frames (default 100)")
    md.add_argument("--out", default="md", help="output folder (default ./md)")
    md.add_argument("--overwrite", action="store_true",
                    help="replace thermo.txt and trajectory.xyz already in --out")
    md.add_argument("--seed", type=seed, default=None, help="random seed (velocities, thermostat)")
    md.add_argument("--threads", type=positive_int, default=None,
                    help="CPU threads of the engine (default: OpenMP's)")
    md.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                    help="engine device (default cpu); cuda runs the device-resident loop "
                         "(positions stay on the GPU between --every samples)")
    md.add_argument("--precision", choices=("float64", "float32"), default="float64",
                    help="arithmetic of the CUDA engine (default float64; float32 is "
                         "GPUMD's and faster); the CPU engine is always float64")
    md.add_argument("--tau-t", type=float, default=100.0,
                    help="thermostat coupling time in fs (default 100)")
    md.add_argument("--tau-p", type=float, default=1000.0,
                    help="barostat coupling time in fs (default 1000)")
    md.add_argument("--compressibility", type=float, default=0.01,
                    help="compressibility guess for the barostat in 1/GPa (default 0.01)")
    md.add_argument("--min-distance", type=non_negative_float, default=0.5,
                    help="stop when any two atoms come closer than this, Å (default 0.5; "
                         "0: off)")
    md.add_argument("--check-every", type=positive_int, default=None,
                    help="steps between minimum-distance checks (default --every)")
    md.add_argument("--gpumd", action="store_true",
                    help="write run.in, model.xyz and nep.txt for GPUMD into --out (and run "
                         "gpumd when it is on PATH) instead of running here")
    md.add_argument("--no-progress", action="store_true", help="no progress bar")
    md.set_defaults(func=_run_md)


def _schedule(args) -> TemperatureSchedule | None:
    if args.temperature_points:
        points = []
        for item in args.temperature_points.split(","):
            try:
                step, kelvin = item.split(":")
                points.append((float(step), float(kelvin)))
            except ValueError:
                raise NepzblError(f"--temperature-points: expected STEP:K items separated by "
                                  f"commas, found {item!r}") from None
        return TemperatureSchedule(points)
    if args.temperature is None:
        if args.temperature_end is not None:
            raise NepzblError("--temperature-end needs --temperature (the start of the ramp)")
        return None
    if args.temperature_end is not None:
        return TemperatureSchedule.linear(args.temperature, args.temperature_end, args.steps)
    return TemperatureSchedule.constant(args.temperature)


def _read_structure(path: str):
    from ase.io import read

    if not Path(path).exists():
        raise FileNotFoundError(2, "No such file or directory", path)
    from ..io.xyz import check_frames

    try:
        atoms = read(path, index=-1)
    except Exception as error:
        raise NepFormatError(path, None, f"not a structure ase.io.read understands ({error})"
                             ) from None
    check_frames(path, [atoms], labels=["the last frame"])
    return atoms


def _run_md(args) -> int:
    from ..engine import Evaluator
    from ..md.dynamics import EngineForces, run_md
    from ..md.observers import DistanceMonitor, ThermoLog, TrajectoryWriter

    schedule = _schedule(args)
    thermostat, barostat, anisotropic = ENSEMBLES[args.ensemble]
    if thermostat is not None and schedule is None:
        raise NepzblError(f"--ensemble {args.ensemble} needs --temperature K")
    if len(args.pressure) not in (1, 3) or (len(args.pressure) == 3 and not anisotropic
                                             and barostat is not None):
        raise NepzblError("--pressure takes one value, or three (xx yy zz) with an aniso "
                          "ensemble")
    if args.steps < 0:
        raise NepzblError(f"--steps must be >= 0, not {args.steps}")
    pressure = args.pressure[0] if len(args.pressure) == 1 else args.pressure
    atoms = _read_structure(args.structure)
    out = Path(args.out)
    run = dict(ensemble=args.ensemble, steps=args.steps, timestep=args.dt,
               temperature=schedule, pressure=pressure, tau_temperature=args.tau_t,
               tau_pressure=args.tau_p, compressibility=args.compressibility)

    if args.gpumd:
        from ..md.gpumd import write_gpumd_inputs

        paths = write_gpumd_inputs(out, args.model, atoms, every=args.every,
                                   log=lambda line: print(f"nepzbl: note: {line}", file=sys.stderr),
                                   **run)
        print(f"GPUMD inputs: {', '.join(str(p) for p in paths)}")
        gpumd = shutil.which("gpumd")
        if gpumd is None:
            print(f"gpumd is not on PATH; run it with: cd {out} && gpumd")
            return 0
        print(f"running {gpumd} in {out} ...", flush=True)
        status = subprocess.run([gpumd], cwd=out).returncode
        outputs = [name for name in ("thermo.out", "msd.out", "rdf.out", "dump.xyz")
                   if (out / name).exists()]
        print(f"gpumd exited with status {status}; outputs in {out}: "
              f"{', '.join(outputs) or 'none'}")
        if status == 0:
            _report_gpumd_results(out, args)
        return 0 if status == 0 else 1

    try:
        evaluator = Evaluator(args.model, device=args.device, num_threads=args.threads,
                              precision=args.precision)
    except RuntimeError as error:  # the engine's "CUDA not available"
        raise NepzblError(str(error)) from None
    try:
        forces = EngineForces(evaluator, atoms)
    except ValueError as error:
        raise NepzblError(f"{args.structure}: {error}") from None
    out.mkdir(parents=True, exist_ok=True)
    for name in ("thermo.txt", "trajectory.xyz"):
        if (out / name).exists() and not args.overwrite:
            raise NepzblError(f"{out / name} exists; choose another --out or pass --overwrite")
    thermo = ThermoLog(out / "thermo.txt", every=args.every, overwrite=args.overwrite)
    trajectory = TrajectoryWriter(out / "trajectory.xyz", every=args.every,
                                  overwrite=args.overwrite)
    observers = [thermo, trajectory]
    monitor = None
    if args.min_distance > 0:
        monitor = DistanceMonitor(args.min_distance, every=args.check_every or args.every)
        observers.append(monitor)

    bars = ProgressBars(unit="step") if not args.no_progress and sys.stderr.isatty() else None
    label = f"MD {args.ensemble}"
    progress = None if bars is None else (lambda step, total: bars(step, total, label))
    try:
        result = run_md(atoms, forces, seed=args.seed, observers=observers, progress=progress,
                        **run)
    finally:
        if bars is not None:
            bars.close()

    n = len(atoms)
    print(f"nepzbl md: {args.ensemble}, {n} atoms, {result.steps_done} of {args.steps} steps "
          f"of {args.dt:g} fs = {result.time_fs / 1000:.4g} ps")
    print(f"  wall time        {result.wall_seconds:.3f} s "
          f"({result.atom_steps_per_second:.4g} atom-steps/s, {args.device})")
    if result.steps_done == 0:  # stopped before the first step: no means to report
        print("  means            n/a (no step was made)")
    else:
        print(f"  mean temperature {result.mean_temperature:.2f} K")
        print(f"  mean pressure    {result.mean_pressure:.4f} GPa")
        print(f"  mean E_pot       {result.mean_potential_energy / n:.6f} eV/atom")
    if args.ensemble == "nve" and result.steps_done:
        print(f"  energy drift     {result.energy_drift_per_atom * 1000:.4g} meV/atom")
    if monitor is not None and monitor.minimum:
        closest = ", ".join(f"{p} {d:.3f} Å" for p, d in monitor.minimum.items()
                            if d != float("inf"))
        print(f"  closest pairs    {closest}")
    print(f"  outputs          {out / 'thermo.txt'}, {out / 'trajectory.xyz'} "
          f"({trajectory.frames} frames)")
    if result.stopped:
        print(f"  stopped early: {result.stopped}")
        return 1
    return 0


def _report_gpumd_results(out: Path, args) -> None:
    """Read GPUMD's thermo.out, msd.out and rdf.out back: thermo.txt in nepzbl's columns,
    gpumd_results.json, and a summary with units."""
    import json

    from ..io.atomic import atomic_write_text
    from ..md.gpumd import read_gpumd_results, write_thermo_table
    from ..model import read_model

    species = list(read_model(args.model).types)
    results = read_gpumd_results(out, every=args.every, timestep=args.dt, species=species)
    summary = {}
    if results.thermo is not None and len(results.thermo):
        path = write_thermo_table(out / "thermo.txt", results.thermo)
        rows = results.thermo
        summary["thermo"] = {"rows": int(len(rows)), "mean_T_K": float(rows[:, 2].mean()),
                             "mean_P_GPa": float(rows[:, 6].mean())}
        print(f"  thermo.out -> {path}: {len(rows)} rows, mean T {rows[:, 2].mean():.2f} K, "
              f"mean P {rows[:, 6].mean():.4f} GPa")
    diffusion = results.diffusion()
    if diffusion is not None:
        summary["msd"] = diffusion
        axes = ", ".join(f"{x:.3e}" for x in diffusion["D_axis_cm2_per_s"])
        print(f"  msd.out: D (all atoms of the msd group) {diffusion['D_cm2_per_s']:.3e} cm²/s "
              f"(x, y, z: {axes} cm²/s; fit over the first half of a "
              f"{diffusion['window_ps']:g} ps window)")
    if results.rdf:
        block = results.rdf[-1]
        peaks = {name: float(block.r_A[int(g.argmax())]) for name, g in block.partial.items()}
        summary["rdf_first_peak_A"] = peaks
        shown = ", ".join(f"{name} {r:.3f} Å" for name, r in peaks.items()) or "none"
        print(f"  rdf.out: {len(block.r_A)} bins to {block.r_A[-1]:.3f} Å; highest peak per "
              f"pair: {shown}")
    atomic_write_text(out / "gpumd_results.json", json.dumps(summary, indent=1) + "\n")
