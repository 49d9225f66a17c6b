"""CPU benchmark: nepzbl's C engine against calorine's CPUNEP (NEP_CPU), plus an NVE drift run.

Throughput is energy + forces + virial per step, in atom-steps per second, through the ASE
calculators of both packages (``nepzbl_plugin.NEP`` and ``calorine.calculators.CPUNEP``): each
step moves every atom by a tiny amount, so nothing is cached, then asks for energy, forces and
stress. Cases:

* NEP802-ZBL (LLZO, ``nep4_zbl``) on the first ``NEP25-ZBL/train.xyz`` frame (192 atoms)
  replicated to 192, 1536, 12288 and 98304 atoms;
* PbTe_NEP4 on a PbTe training frame (250 atoms) replicated 2x2x2 (2000 atoms);
* Si_2022_NEP4_5body on diamond Si, 6x6x6 conventional cells (1728 atoms).

Every (case, engine) runs in its own subprocess, which also reports the peak resident memory
added by the evaluation (MiB, and bytes per atom). calorine (single-threaded NEP_CPU) is run
only up to ``--calorine-max-atoms`` (its fixed 1000-neighbour arrays need ~50 kB per atom).
Then a 1000-step NVE run (velocity Verlet, 1 fs, 300 K start) of the 192-atom LLZO frame with
NEP802-ZBL reports the energy drift in meV/atom.

Usage::

    PYTHONPATH=. python benchmarks/bench_cpu.py                 # full run (minutes)
    PYTHONPATH=. python benchmarks/bench_cpu.py --quick         # smoke run (seconds)
    PYTHONPATH=. python benchmarks/bench_cpu.py --output docs/bench_cpu_table.md
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("nepzbl_plugin") is None:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, str(REPO))

DATA = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared")) / "data"
LLZO_SIZES = {192: 1, 1536: 2, 12288: 4, 98304: 8}  # the CPU's sizes: atoms -> repeats
REPEATS = {**LLZO_SIZES, 786432: 16}  # every size llzo_supercell builds (the GPU's too)


# ----------------------------------------------------------------------- structures
def llzo_repeats(n_atoms: int) -> int:
    """k of the cubic LLZO supercell with n_atoms = 192 k^3 atoms (SystemExit for another
    size)."""
    reps = {v * v * v * 192: v for v in REPEATS.values()}
    if n_atoms not in reps:
        raise SystemExit(f"size {n_atoms} is not 192 k^3 for k in {sorted(REPEATS.values())}")
    return reps[n_atoms]


def llzo_supercell(n_atoms: int):
    """A cubic LLZO supercell with n_atoms = 192 k^3 atoms, from the first training frame."""
    from ase.io import read

    base = read(DATA / "llzo" / "NEP25-ZBL" / "train.xyz", 0)
    atoms = base.repeat(llzo_repeats(n_atoms))
    atoms.calc = None
    return atoms


def build_case(case: str, n_atoms: int | None):
    """(model path, ase.Atoms) for a case name."""
    from ase.build import bulk
    from ase.io import read

    if case == "llzo":
        atoms = llzo_supercell(n_atoms)
        model = DATA / "llzo" / "NEP802-ZBL.txt"
    elif case == "pbte":
        atoms = read(DATA / "pbte" / "train.xyz", 0).repeat(2)
        model = DATA / "models" / "PbTe_NEP4.txt"
    elif case == "si5body":
        atoms = bulk("Si", "diamond", 5.43, cubic=True).repeat(6)
        atoms.rattle(0.05, seed=1)
        model = DATA / "models" / "Si_2022_NEP4_5body.txt"
    else:
        raise ValueError(case)
    atoms.calc = None
    return str(model), atoms


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(spec: dict) -> dict:
    """Run one (case, engine) measurement in this process; returns a JSON-able dict."""
    model, atoms = build_case(spec["case"], spec.get("n_atoms"))
    if spec["engine"] == "calorine":
        from calorine.calculators import CPUNEP

        calc = CPUNEP(model)
    else:
        from nepzbl_plugin import NEP

        calc = NEP(model, num_threads=spec["threads"])
    atoms.calc = calc
    rss0 = _rss_mib()
    rng = np.random.default_rng(0)

    def step():
        atoms.positions += rng.normal(0.0, 1e-4, atoms.positions.shape)
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()

    t0 = time.perf_counter()
    step()  # warm-up (model set-up, first allocation)
    first = time.perf_counter() - t0
    steps = 0
    t0 = time.perf_counter()
    # at least min_steps and min_time, but stop after one step when a step is slow
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= spec["min_time"] and steps >= spec["min_steps"]:
            break
        if first > spec["max_step_time"] and steps >= 1:
            break
    return {
        "n_atoms": len(atoms),
        "steps": steps,
        "seconds": elapsed,
        "atom_steps_per_s": len(atoms) * steps / elapsed,
        "rss_mib": _rss_mib() - rss0,
    }


def run_worker(spec: dict, timeout: float) -> dict | None:
    env = dict(os.environ)
    if spec["engine"] == "calorine":
        env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=REPO)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        print(f"worker failed for {spec}:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------- NVE drift
def nve_drift(steps: int, timestep_fs: float = 1.0, temperature_k: float = 300.0,
              threads: int | None = None) -> dict:
    from ase import units
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    from nepzbl_plugin import NEP

    model, atoms = build_case("llzo", 192)
    atoms.calc = NEP(model, num_threads=threads)
    thermalize_momenta(atoms, temperature_K=temperature_k, rng=np.random.default_rng(42))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    e0 = atoms.get_total_energy()
    energies = [e0]
    t0 = time.perf_counter()
    with tqdm(total=steps, desc="NVE", unit="step", leave=False) as bar:
        for _ in range(steps // 10):
            dyn.run(10)
            energies.append(atoms.get_total_energy())
            bar.update(10)
    wall = time.perf_counter() - t0
    energies = np.array(energies)
    n = len(atoms)
    return {
        "steps": steps,
        "drift_mev_per_atom": 1e3 * (energies[-1] - e0) / n,
        "max_deviation_mev_per_atom": 1e3 * np.abs(energies - e0).max() / n,
        "temperature_end_k": atoms.get_temperature(),
        "seconds": wall,
    }


# ----------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="CPU benchmark of nepzbl's C engine against calorine's CPUNEP "
                    "(atom-steps/s for energy+forces+virial, memory per atom, NVE drift).")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 192 and 1536 atoms only, short timings, 100 NVE steps")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help=f"LLZO sizes (atoms), from {sorted(LLZO_SIZES)}")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="OpenMP thread counts for nepzbl (default: 1 2)")
    parser.add_argument("--min-time", type=float, default=2.0,
                        help="minimum seconds of timed steps per measurement (default 2)")
    parser.add_argument("--calorine-max-atoms", type=int, default=20000,
                        help="largest structure given to calorine (default 20000)")
    parser.add_argument("--nve-steps", type=int, default=1000,
                        help="NVE steps on 192-atom LLZO (default 1000; 0 skips)")
    parser.add_argument("--no-calorine", action="store_true", help="skip calorine")
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the table as markdown to this file")
    parser.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    sizes = args.sizes or ([192, 1536] if args.quick else sorted(LLZO_SIZES))
    min_time = 0.3 if args.quick else args.min_time
    nve_steps = min(args.nve_steps, 100) if args.quick else args.nve_steps
    cases = [("llzo", n, "NEP802-ZBL, LLZO") for n in sizes]
    if not args.quick:
        cases += [("pbte", None, "PbTe_NEP4, PbTe"), ("si5body", None, "Si_2022_NEP4_5body, Si")]
    engines = [("nepzbl", t) for t in args.threads]
    if not args.no_calorine:
        engines.append(("calorine", 1))

    rows = []
    jobs = [(c, e) for c in cases for e in engines]
    for (case, n, label), (engine, threads) in tqdm(jobs, desc="benchmark", unit="run"):
        n_atoms = n
        if engine == "calorine" and n_atoms is not None and n_atoms > args.calorine_max_atoms:
            rows.append((label, n_atoms, engine, threads, None))
            continue
        spec = {"case": case, "n_atoms": n, "engine": engine, "threads": threads,
                "min_time": min_time, "min_steps": 3 if args.quick else 5,
                "max_step_time": 20.0}
        rows.append((label, n_atoms, engine, threads, run_worker(spec, timeout=1800)))

    # table
    lines = [
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| model, structure | atoms | engine | threads | atom-steps/s | ratio vs calorine "
        "| peak memory (MiB) | bytes/atom |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    reference = {}
    for label, _n, engine, _threads, res in rows:
        if engine == "calorine" and res is not None:
            reference[(label, res["n_atoms"])] = res["atom_steps_per_s"]
    for label, n_atoms, engine, threads, res in rows:
        if res is None:
            lines.append(f"| {label} | {n_atoms or '-'} | {engine} | {threads} | skipped | "
                         "- | - | - |")
            continue
        ref = reference.get((label, res["n_atoms"]))
        ratio = f"{res['atom_steps_per_s'] / ref:.2f}x" if ref else "-"
        lines.append(
            f"| {label} | {res['n_atoms']} | {engine} | {threads} | "
            f"{res['atom_steps_per_s']:.3g} | {ratio} | {res['rss_mib']:.1f} | "
            f"{res['rss_mib'] * 2**20 / res['n_atoms']:.0f} |"
        )
    # linear scaling: time per atom at the largest LLZO size over 1536
    per_atom = {}
    for label, _n, engine, threads, res in rows:
        if res and label.startswith("NEP802") and engine == "nepzbl":
            per_atom[(threads, res["n_atoms"])] = 1.0 / res["atom_steps_per_s"]
    scaling = []
    for t in args.threads:
        if (t, 1536) in per_atom:
            big = max((n for (tt, n) in per_atom if tt == t), default=None)
            if big and big > 1536:
                scaling.append(f"{t} thread(s): time/atom at {big} atoms = "
                               f"{per_atom[(t, big)] / per_atom[(t, 1536)]:.2f} x that at 1536")
    if scaling:
        lines += ["", "Linear scaling: " + "; ".join(scaling) + "."]
    if nve_steps > 0:
        nve = nve_drift(nve_steps)
        lines += [
            "",
            f"NVE (NEP802-ZBL, LLZO 192 atoms, velocity Verlet 1 fs, 300 K start, "
            f"{nve['steps']} steps, {nve['seconds']:.1f} s): energy drift "
            f"{nve['drift_mev_per_atom']:+.4f} meV/atom, max |E - E0| "
            f"{nve['max_deviation_mev_per_atom']:.4f} meV/atom, final T "
            f"{nve['temperature_end_k']:.0f} K.",
        ]
    text = "\n".join(lines)
    print(text)
    if args.output is not None:
        tmp = args.output.with_name(args.output.name + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
