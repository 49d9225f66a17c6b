"""Device MD loop checks that need a GPU (issue 13's targets), on LLZO with NEP802-ZBL.

* ``drift``: NVE energy drift per atom over ``--nve-steps`` steps (default 10000, 1 fs) from a
  1000 K start, float32 and float64, against the CPU engine's drift over the same steps when
  ``--cpu-steps`` > 0 (the CPU run is shorter by default: its drift is reported per step too);
* ``angular``: ``evaluate`` throughput at ``--ab-atoms`` atoms with the register-resident
  angular kernels and with the generic ones (NEPZBL_CUDA_GENERIC_ANGULAR=1, in a subprocess:
  the switch is read once per process);
* ``nvt`` (last: the longest part): wall time of ``--nvt-steps`` steps (default 100000 =
  100 ps at 1 fs) of Bussi NVT at 1000 K on 12288 atoms, float32 (target: under 100 s; GPUMD
  about 112 s).

Prints each part as JSON and rewrites ``--output`` after each, so a time limit keeps what
was done. Usage::

    PYTHONPATH=. python benchmarks/bench_gpu_md.py --output gpu_md.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("nepzbl_plugin") is None:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_gpu import SHARED, jiggled, llzo_supercell, time_steps  # noqa: E402
from rehearsal import REHEARSAL, rehearsed  # noqa: E402

from nepzbl_plugin.engine import Evaluator  # noqa: E402
from nepzbl_plugin.md import EngineForces, ThermoLog, run_md  # noqa: E402


def drift(model, atoms, precision, device, steps):
    evaluator = Evaluator(model, device=device, precision=precision)
    thermo = ThermoLog(every=max(1, steps // 100))
    start = time.perf_counter()
    result = run_md(atoms, EngineForces(evaluator, atoms), steps, 1.0, ensemble="nve",
                    temperature=1000.0, seed=1, observers=[thermo])
    wall = time.perf_counter() - start
    total = thermo.column("E_total_eV")
    return {"steps": result.steps_done, "stopped": result.stopped,
            "drift_eV_per_atom": result.energy_drift_per_atom,
            "drift_eV_per_atom_per_ps": result.energy_drift_per_atom / (steps / 1000.0),
            "spread_eV_per_atom": float((total.max() - total.min()) / len(atoms)),
            "atom_steps_per_s": len(atoms) * result.steps_done / wall}


def nvt_wall(model, atoms, steps):
    evaluator = Evaluator(model, device="cuda", precision="float32")
    forces = EngineForces(evaluator, atoms)
    thermo = ThermoLog(every=max(1, steps // 100))
    run_md(atoms, forces, 10, 1.0, ensemble="nvt-bussi", temperature=1000.0, seed=1)
    start = time.perf_counter()
    result = run_md(atoms, forces, steps, 1.0, ensemble="nvt-bussi", temperature=1000.0,
                    seed=2, observers=[thermo])
    wall = time.perf_counter() - start
    return {"atoms": len(atoms), "steps": result.steps_done, "wall_s": wall,
            "mean_T_K": result.mean_temperature, "atom_steps_per_s":
            len(atoms) * result.steps_done / wall, "stopped": result.stopped}


def evaluate_rate(model, n_atoms, precision):
    from nepzbl_plugin.engine.cuda import CudaEvaluator

    atoms = llzo_supercell(n_atoms)
    ev = CudaEvaluator(model, precision=precision)
    pos0 = atoms.positions.copy()
    work = atoms.copy()

    def step(k):
        work.positions = jiggled(pos0, k)
        ev.evaluate(work, ("energy", "forces", "virial"))

    return time_steps(step, n_atoms, rehearsed(2.0, 0.2), rehearsed(30.0, 2.0))[0]


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_device_scripts.py parses the device scripts' calls)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(SHARED / "NEP802-ZBL.txt"))
    parser.add_argument("--nve-atoms", type=int, default=1536)
    parser.add_argument("--nve-steps", type=int, default=10000)
    parser.add_argument("--cpu-steps", type=int, default=1000,
                        help="steps of the CPU engine's NVE reference (0: none)")
    parser.add_argument("--nvt-atoms", type=int, default=12288)
    parser.add_argument("--nvt-steps", type=int, default=100000)
    parser.add_argument("--ab-atoms", type=int, default=98304)
    parser.add_argument("--only", choices=("drift", "nvt", "angular"), nargs="+",
                        default=("drift", "nvt", "angular"))
    parser.add_argument("--evaluate-only", nargs=2, metavar=("ATOMS", "PRECISION"),
                        help=argparse.SUPPRESS)  # the subprocess of the angular A/B
    parser.add_argument("--output", default="bench_gpu_md.json")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if REHEARSAL and not args.evaluate_only:  # tools/rehearse_device.py: 192 atoms, 20 steps
        args.nve_atoms = args.nvt_atoms = args.ab_atoms = 192
        args.nve_steps, args.nvt_steps = 20, 20
        args.cpu_steps = min(args.cpu_steps, 20)
        print("rehearsal (NEPZBL_REHEARSAL=1): 192 atoms, 20 steps", flush=True)
    if args.evaluate_only:
        print(evaluate_rate(args.model, int(args.evaluate_only[0]), args.evaluate_only[1]))
        return
    out = {}
    if "drift" in args.only:
        atoms = llzo_supercell(args.nve_atoms)
        out["drift"] = {p: drift(args.model, atoms, p, "cuda", args.nve_steps)
                        for p in ("float32", "float64")}
        if args.cpu_steps > 0:
            out["drift"]["cpu_float64"] = drift(args.model, atoms, "float64", "cpu",
                                                args.cpu_steps)
        print(json.dumps(out["drift"], indent=1), flush=True)
        Path(args.output).write_text(json.dumps(out, indent=1) + "\n")  # kept if cut short
    if "angular" in args.only:
        out["angular"] = {}
        for label, generic in (("register", "0"), ("generic", "1")):
            for precision in ("float32", "float64"):
                done = subprocess.run(
                    [sys.executable, __file__, "--model", args.model, "--evaluate-only",
                     str(args.ab_atoms), precision],
                    env={**os.environ, "NEPZBL_CUDA_GENERIC_ANGULAR": generic},
                    capture_output=True, text=True)
                value = done.stdout.strip().splitlines()[-1] if done.returncode == 0 else None
                out["angular"][f"{label}_{precision}"] = (float(value) if value else
                                                          done.stderr[-500:])
        print(json.dumps(out["angular"], indent=1), flush=True)
        Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    if "nvt" in args.only:
        out["nvt"] = nvt_wall(args.model, llzo_supercell(args.nvt_atoms), args.nvt_steps)
        print(json.dumps(out["nvt"], indent=1), flush=True)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
