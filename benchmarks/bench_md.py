"""CPU MD benchmark: nepzbl's array MD loop against the engine's raw evaluation, same structure.

Raw: ``Evaluator.evaluate(system, ("energy", "forces", "virial"))`` in a loop with a tiny move
per call (nothing cached). MD: :func:`nepzbl_plugin.md.run_md` (velocity Verlet, Bussi NVT at
300 K, a thermo row, a trajectory frame and a minimum-distance check every 100 steps). Both in
atom-steps per second; the ratio MD / raw is what the Python loop costs (target: >= 70 %).

Structure: 1536-atom LLZO (the first ``NEP25-ZBL/train.xyz`` frame repeated 2x2x2) with
NEP802-ZBL.txt from ../shared/data when present, else 1536 atoms of a random Li-O model on a
bcc lattice.

Usage::

    PYTHONPATH=. python benchmarks/bench_md.py --threads 2 --steps 50
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("nepzbl_plugin") is None:
    sys.path.insert(0, str(REPO))

DATA = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared")) / "data"


def build():
    """(model, atoms, description)."""
    from ase.build import bulk
    from ase.io import read

    model = DATA / "llzo" / "NEP802-ZBL.txt"
    frames = DATA / "llzo" / "NEP25-ZBL" / "train.xyz"
    if model.exists() and frames.exists():
        atoms = read(frames, 0).repeat(2)
        atoms.calc = None
        return str(model), atoms, f"LLZO {len(atoms)} atoms, NEP802-ZBL"
    from nepzbl_plugin.testing import random_model

    atoms = bulk("Li", "bcc", a=3.5, cubic=True).repeat((8, 8, 12))
    atoms.symbols[::4] = "O"
    return random_model(types=("Li", "O"), zbl="universal", seed=1, scale=0.3), atoms, \
        f"Li-O bcc {len(atoms)} atoms, random NEP-ZBL model (LLZO data not found)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="engine threads (default 2)")
    parser.add_argument("--steps", type=int, default=50, help="steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements (best kept)")
    args = parser.parse_args(argv)

    from nepzbl_plugin.engine import Evaluator, System
    from nepzbl_plugin.md import DistanceMonitor, EngineForces, ThermoLog, TrajectoryWriter, run_md

    model, atoms, description = build()
    evaluator = Evaluator(model, num_threads=args.threads)
    n = len(atoms)
    base = evaluator.system(atoms)
    rng = np.random.default_rng(0)

    def raw() -> float:
        positions = base.positions.copy()
        evaluator.evaluate(System(base.types, positions, base.cell, base.pbc))  # warm-up
        start = time.perf_counter()
        for _ in range(args.steps):
            positions += rng.normal(0.0, 1e-4, positions.shape)
            evaluator.evaluate(System(base.types, positions, base.cell, base.pbc),
                               ("energy", "forces", "virial"))
        return n * args.steps / (time.perf_counter() - start)

    def md() -> float:
        with tempfile.TemporaryDirectory() as folder:
            observers = [ThermoLog(Path(folder) / "thermo.txt", every=100),
                         TrajectoryWriter(Path(folder) / "trajectory.xyz", every=100),
                         DistanceMonitor(0.5, every=100)]
            result = run_md(atoms, EngineForces(evaluator, atoms), args.steps, 1.0,
                            ensemble="nvt", temperature=300, seed=1, observers=observers)
        if result.stopped:
            raise SystemExit(f"MD stopped: {result.stopped}")
        return result.atom_steps_per_second

    raw_rates, md_rates = [], []
    for _ in range(args.repeats):  # interleaved, so a busy machine hits both alike
        raw_rates.append(raw())
        md_rates.append(md())
    best_raw, best_md = max(raw_rates), max(md_rates)
    import datetime
    import platform

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python "
          f"{platform.python_version()}, {datetime.datetime.now():%Y-%m-%d %H:%M}, "
          f"load average {load:.1f} at the end")
    print(f"# {description}; {args.threads} threads; {args.steps} steps x {args.repeats}, best")
    print("| loop | atom-steps/s | ms/step |")
    print("|---|---:|---:|")
    print(f"| engine evaluate (raw) | {best_raw:.4g} | {1000 * n / best_raw:.2f} |")
    print(f"| nepzbl md (Bussi NVT + observers) | {best_md:.4g} | {1000 * n / best_md:.2f} |")
    print(f"| ratio MD / raw | {100 * best_md / best_raw:.1f} % | target >= 70 % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
