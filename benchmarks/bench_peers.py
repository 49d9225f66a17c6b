"""CPU evaluation against the PyTorch NEP codes: nepzbl, neppo, TorchNEP and calorine.

Every engine evaluates energy, forces and virial (or stress) of the same structure with the
same nep.txt, one measurement per subprocess so that thread settings and memory do not leak
between engines. The table gives atom-steps per second, how many times faster nepzbl is on the
same number of threads, and the largest force difference from nepzbl's float64 result (the
peers must compute the same model for the speed to mean anything).

Peers that are not installed are skipped (``pip install neppo torchnep``; both need torch).
A model a peer cannot read is reported as such, not silently dropped.

Usage::

    PYTHONPATH=. python benchmarks/bench_peers.py                  # LLZO 1536 and PbTe 2000
    PYTHONPATH=. python benchmarks/bench_peers.py --quick          # smoke run
    PYTHONPATH=. python benchmarks/bench_peers.py --output docs/bench_peers_table.md
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if importlib.util.find_spec("nepzbl_plugin") is None:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench_cpu import build_case  # noqa: E402

ENGINES = ("nepzbl", "neppo", "torchnep", "calorine")
PEER_MODULES = {"neppo": "neppo", "torchnep": "torchnep", "calorine": "calorine"}


def _calculator_run(calc):
    """``run(atoms) -> (energy, forces)`` through an ASE calculator, the stress computed too
    (as the other engines give the virial in the same pass)."""

    def run(atoms):
        atoms.calc = calc
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        atoms.get_stress()
        return energy, forces

    return run


def _evaluator(engine: str, model: str, threads: int, precision: str):
    """A function atoms -> (energy eV, forces eV/Å) that computes the virial too."""
    if engine == "nepzbl":
        from nepzbl_plugin.engine import Evaluator
        from nepzbl_plugin.model import read_model

        ev = Evaluator(read_model(model), num_threads=threads)

        def run(atoms):
            out = ev.evaluate(atoms, ("energy", "forces", "virial"))
            return out["energy"], out["forces"]

        return run
    if engine == "calorine":
        from calorine.calculators import CPUNEP

        return _calculator_run(CPUNEP(model))
    import torch

    torch.set_num_threads(threads)
    dtype = torch.float64 if precision == "float64" else torch.float32
    if engine == "neppo":
        from neppo import predict, read_model

        nep = read_model(model, dtype=dtype)

        def run(atoms):
            result = predict(nep, [atoms])[0]  # energy, forces and virial in one pass
            return (float(result.info["energy_predicted"][0]) * len(atoms),
                    result.arrays["force_predicted"])

        return run
    if engine == "torchnep":
        from torchnep.ase_calculator import NEP

        return _calculator_run(NEP(model, dtype=precision, device="cpu"))
    raise ValueError(engine)


def worker(spec: dict) -> dict:
    """One (case, engine, threads, precision) measurement in this process."""
    model, atoms = build_case(spec["case"], spec["n_atoms"])
    try:
        run = _evaluator(spec["engine"], model, spec["threads"], spec["precision"])
        rng = np.random.default_rng(0)
        energy, forces = run(atoms)  # warm-up: model set-up, first allocation
        steps, t0 = 0, time.perf_counter()
        while True:
            atoms.positions += rng.normal(0.0, 1e-4, atoms.positions.shape)
            atoms.calc = None
            energy, forces = run(atoms)
            steps += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= spec["min_time"] and steps >= spec["min_steps"]:
                break
    except Exception as error:  # a peer that cannot run this model is a finding, not a crash
        return {"error": f"{type(error).__name__}: {str(error)[:120]}"}
    reference = _evaluator("nepzbl", model, 1, "float64")(atoms)
    return {
        "n_atoms": len(atoms),
        "steps": steps,
        "atom_steps_per_s": len(atoms) * steps / elapsed,
        "max_force_difference": float(np.max(np.abs(np.asarray(forces) - reference[1]))),
        "energy_difference_per_atom": abs(float(energy) - reference[0]) / len(atoms),
    }


def run_worker(spec: dict, timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]),
               MKL_NUM_THREADS=str(spec["threads"]))
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1][:120] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small case, short timings")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="thread counts (default 1 2; calorine always runs on one)")
    parser.add_argument("--precisions", nargs="+", default=["float64", "float32"],
                        choices=("float64", "float32"),
                        help="precisions of the torch peers (nepzbl's CPU engine is float64)")
    parser.add_argument("--min-time", type=float, default=3.0,
                        help="seconds of timed evaluations per row (default 3)")
    parser.add_argument("--output", type=Path, default=None, help="also write the table here")
    parser.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    cases = [("llzo", 192)] if args.quick else [("llzo", 1536), ("pbte", 2000)]
    min_time = 0.5 if args.quick else args.min_time
    installed = {e: importlib.util.find_spec(m) is not None for e, m in PEER_MODULES.items()}
    installed["nepzbl"] = True
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| model, structure | atoms | engine | precision | threads | atom-steps/s "
        "| nepzbl (same threads) is | max \\|ΔF\\| vs nepzbl (eV/Å) |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for case, n_atoms in cases:
        model_name = "NEP802-ZBL, LLZO" if case == "llzo" else "PbTe_NEP4, PbTe"
        rows = []
        for engine in ENGINES:
            if not installed[engine]:
                print(f"{engine} is not installed: skipped", file=sys.stderr)
                continue
            precisions = args.precisions if engine in ("neppo", "torchnep") else ["float64"]
            threads = [1] if engine == "calorine" else args.threads
            for precision in precisions:
                for nt in threads:
                    spec = {"case": case, "n_atoms": n_atoms, "engine": engine, "threads": nt,
                            "precision": precision, "min_time": min_time, "min_steps": 2}
                    result = run_worker(spec, timeout=600)
                    rows.append((engine, precision, nt, result))
                    print(f"{case} {engine} {precision} {nt} thread(s): {result}",
                          file=sys.stderr)
        ours = {nt: r["atom_steps_per_s"] for e, _, nt, r in rows
                if e == "nepzbl" and "atom_steps_per_s" in r}
        for engine, precision, nt, result in rows:
            if "error" in result:
                lines.append(f"| {model_name} | {n_atoms} | {engine} | {precision} | {nt} | "
                             f"fails: {result['error']} | | |")
                continue
            speed = result["atom_steps_per_s"]
            ratio = "" if engine == "nepzbl" or nt not in ours else f"{ours[nt] / speed:.1f}x"
            lines.append(f"| {model_name} | {result['n_atoms']} | {engine} | {precision} | {nt} "
                         f"| {speed:.3g} | {ratio} | {result['max_force_difference']:.1e} |")
    table = "\n".join(lines)
    print(table)
    if args.output:
        args.output.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
