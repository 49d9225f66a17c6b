"""Active-learning MD benchmark: the loop's MD run (`nepzbl_plugin.al.run_md`, the array MD
engine on the model's engine evaluator) against the path it replaced (ASE's Langevin through
nepzbl's ASE calculator), same model, structure, ramp, sampling and too-short check.

Both report CPU seconds per MD step (process time, so a loaded machine shifts both alike) and
the ratio. Structures: 32 atoms of a random Cu-Ni model (the size of the EMT example) and, when
../shared/data is present, the first 192-atom LLZO frame of ``NEP25-ZBL/train.xyz`` with
``NEP802.txt`` (a model without ZBL).

Usage::

    PYTHONPATH=. python benchmarks/bench_al_md.py --steps 300
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("nepzbl_plugin") is None:
    sys.path.insert(0, str(REPO))

DATA = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared")) / "data"


def cases():
    """(description, model, atoms)."""
    from ase.build import bulk
    from ase.io import read

    from nepzbl_plugin.testing import random_model

    small = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    small.set_chemical_symbols(["Cu", "Ni"] * 16)
    out = [("random Cu-Ni model, 32 atoms", random_model(types=("Cu", "Ni"),
                                                         cutoffs=(4.0, 3.5), seed=2,
                                                         scale=0.3, neurons=8), small)]
    model = DATA / "llzo" / "NEP802.txt"
    if model.is_file():
        out.append(("LLZO NEP802 (no ZBL), 192 atoms", str(model),
                    read(DATA / "llzo" / "NEP25-ZBL" / "train.xyz", 0)))
    return out


def ase_langevin(atoms, calc, spec, limits, seed):
    """The replaced path: ASE Langevin on the calculator, the ramp's value per stretch."""
    from ase import units
    from ase.md import velocitydistribution
    from ase.md.langevin import Langevin

    from nepzbl_plugin.al.sampling import too_short

    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    if hasattr(velocitydistribution, "thermalize_momenta"):
        velocitydistribution.thermalize_momenta(atoms, spec.t_start, rng=rng)
    else:
        velocitydistribution.MaxwellBoltzmannDistribution(atoms, temperature_K=spec.t_start,
                                                          rng=rng)
    velocitydistribution.Stationary(atoms)
    dyn = Langevin(atoms, spec.timestep * units.fs, temperature_K=spec.t_start,
                   friction=spec.friction / units.fs, fixcm=False, rng=rng)
    planned = spec.steps // spec.sample_interval
    for sample in range(planned):
        fraction = (sample + 0.5) / planned
        dyn.set_temperature(temperature_K=spec.t_start + fraction * (spec.t_end - spec.t_start))
        dyn.run(spec.sample_interval)
        frame = atoms.copy()
        frame.wrap()
        too_short(frame, limits)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="MD steps per case (default 300)")
    parser.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    args = parser.parse_args(argv)

    from nepzbl_plugin.al.config import MDRunSpec
    from nepzbl_plugin.al.sampling import run_md
    from nepzbl_plugin.calculators import NEP
    from nepzbl_plugin.engine import Evaluator

    spec = MDRunSpec(800.0, 1200.0, steps=args.steps, sample_interval=50, friction=0.01)
    for name, model, atoms in cases():
        species = sorted(set(atoms.get_chemical_symbols()))
        limits = {(a, b): 0.5 for i, a in enumerate(species) for b in species[i:]}
        start = time.process_time()
        run_md(atoms, Evaluator(model, num_threads=args.threads), spec, limits, seed=1)
        engine = (time.process_time() - start) / args.steps
        start = time.process_time()
        ase_langevin(atoms, NEP(model, num_threads=args.threads), spec, limits, seed=1)
        calculator = (time.process_time() - start) / args.steps
        print(f"{name}: al.run_md (engine MD) {1e3 * engine:.3f} ms/step, ASE Langevin + "
              f"calculator {1e3 * calculator:.3f} ms/step (CPU time), "
              f"speed-up {calculator / engine:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
