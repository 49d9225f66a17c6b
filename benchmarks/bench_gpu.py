"""GPU benchmark: the CUDA engine on LLZO with NEP802-ZBL, against the CPU engine and calorine.

For each size (LLZO garnet supercells of a 192-atom training frame: 192, 1536, 12288, 98304
and 786432 atoms) it measures the throughput of energy + forces + virial in atom-steps per
second:

* ``gpu_f32`` / ``gpu_f64``: :class:`nepzbl_plugin.engine.cuda.CudaEvaluator` (one MD-like step
  per call: positions uploaded, Verlet list reused, E/F/W downloaded);
* ``cpu``: the C engine (:class:`nepzbl_plugin.engine.Evaluator`, OpenMP threads);
* ``calorine``: calorine's ``CPUNEP`` (NEP_CPU), only up to ``--calorine-max-atoms``;
* ``torchnep``: a TorchNEP ASE calculator when one is importable (else the column is absent).

Every engine gets a time cap per size: when one call takes longer than the cap, that single
call is the measurement. GPU device memory per atom (bytes) is reported from the engine's own
buffers. Prints a table with speed-up ratios and writes it as markdown.

Usage::

    PYTHONPATH=. python benchmarks/bench_gpu.py --output benchmarks/gpu.md
    PYTHONPATH=. python benchmarks/bench_gpu.py --sizes 192 1536 --min-time 1 --help
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("nepzbl_plugin") is None:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, str(REPO))

from nepzbl_plugin.engine import Evaluator  # noqa: E402
from nepzbl_plugin.engine.cuda import CudaEvaluator, cuda_available  # noqa: E402

SHARED = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared")) / "data" / "llzo"
REPEATS = {192: 1, 1536: 2, 12288: 4, 98304: 8, 786432: 16}
PROPS = ("energy", "forces", "virial")


def llzo_supercell(n_atoms: int):
    """A cubic LLZO supercell with n_atoms = 192 k^3 atoms, from the first training frame."""
    from ase.io import read

    reps = {v * v * v * 192: v for v in REPEATS.values()}
    if n_atoms not in reps:
        raise SystemExit(f"size {n_atoms} is not 192 k^3 for k in {sorted(REPEATS.values())}")
    base = read(SHARED / "NEP25-ZBL" / "train.xyz", 0)
    atoms = base.repeat(reps[n_atoms])
    atoms.calc = None
    return atoms


def time_steps(step, n_atoms: int, min_time: float, cap: float, max_steps: int = 1000):
    """Atom-steps per second of ``step(k)``: one untimed warm-up call, then calls until
    min_time has passed. A warm-up slower than cap is itself the (single) measurement."""
    t0 = time.perf_counter()
    step(0)
    first = time.perf_counter() - t0
    if first > cap:
        return n_atoms / first, 1
    steps, t0 = 0, time.perf_counter()
    while True:
        step(steps + 1)
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time or steps >= max_steps or elapsed + elapsed / steps > cap:
            return n_atoms * steps / elapsed, steps


def jiggled(positions: np.ndarray, k: int) -> np.ndarray:
    """MD-like moving positions that never drift: +-1e-3 Angstrom per step."""
    return positions + (1e-3 if k % 2 else -1e-3)


def bench_gpu(model_path, atoms, precision, args):
    ev = CudaEvaluator(model_path, precision=precision)
    pos0 = atoms.positions.copy()
    work = atoms.copy()

    def step(k):
        work.positions = jiggled(pos0, k)
        ev.evaluate(work, PROPS)

    rate, steps = time_steps(step, len(atoms), args.min_time, args.cap)
    return rate, ev.device_bytes / len(atoms)


def bench_cpu(model_path, atoms, args):
    ev = Evaluator(model_path, device="cpu", num_threads=args.threads)
    pos0 = atoms.positions.copy()
    work = atoms.copy()

    def step(k):
        work.positions = jiggled(pos0, k)
        ev.evaluate(work, PROPS)

    return time_steps(step, len(atoms), args.min_time, args.cap)[0]


def bench_ase_calculator(calc, atoms, args):
    pos0 = atoms.positions.copy()
    work = atoms.copy()
    work.calc = calc

    def step(k):
        work.positions = jiggled(pos0, k)
        work.get_potential_energy()
        work.get_forces()
        work.get_stress()

    return time_steps(step, len(atoms), args.min_time, args.cap)[0]


def torchnep_class():
    """A TorchNEP ASE calculator class if one is importable, else None."""
    for module, name in (("calorine.calculators", "TorchNEP"), ("torchnep", "TorchNEP")):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


def fmt_rate(x):
    return "-" if x is None or not np.isfinite(x) else f"{x:.3g}"


def fmt_ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.1f}x"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(SHARED / "NEP802-ZBL.txt"),
                        help="nep.txt to benchmark (default: LLZO NEP802-ZBL)")
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(REPEATS),
                        help="atom counts, each 192 k^3 (default: %(default)s)")
    parser.add_argument("--min-time", type=float, default=3.0,
                        help="seconds of timed steps per engine and size (default: 3)")
    parser.add_argument("--cap", type=float, default=60.0,
                        help="seconds an engine may spend per size (default: 60)")
    parser.add_argument("--calorine-max-atoms", type=int, default=12288,
                        help="largest size given to calorine's CPUNEP (default: 12288)")
    parser.add_argument("--cpu-max-atoms", type=int, default=98304,
                        help="largest size given to the CPU engine (default: 98304)")
    parser.add_argument("--threads", type=int, default=None,
                        help="OpenMP threads of the CPU engine (default: OpenMP's default)")
    parser.add_argument("--output", default="benchmarks/bench_gpu.md",
                        help="markdown table to write (default: %(default)s)")
    args = parser.parse_args(argv)

    if not cuda_available():
        raise SystemExit("bench_gpu: no CUDA device (or the CUDA engine is not built)")
    from calorine.calculators import CPUNEP

    torch_cls = torchnep_class()
    rows = []
    for n in tqdm(args.sizes, desc="sizes", unit="size"):
        atoms = llzo_supercell(n)
        row = {"atoms": n}
        row["gpu_f32"], row["bytes_f32"] = bench_gpu(args.model, atoms, "float32", args)
        row["gpu_f64"], row["bytes_f64"] = bench_gpu(args.model, atoms, "float64", args)
        row["cpu"] = bench_cpu(args.model, atoms, args) if n <= args.cpu_max_atoms else None
        row["calorine"] = (bench_ase_calculator(CPUNEP(args.model), atoms, args)
                           if n <= args.calorine_max_atoms else None)
        if torch_cls is not None:
            row["torchnep"] = bench_ase_calculator(torch_cls(args.model), atoms, args)
        rows.append(row)
        tqdm.write(f"{n} atoms: gpu f32 {fmt_rate(row['gpu_f32'])}, gpu f64 "
                   f"{fmt_rate(row['gpu_f64'])}, cpu {fmt_rate(row['cpu'])}, calorine "
                   f"{fmt_rate(row['calorine'])} atom-steps/s")

    header = ["atoms", "GPU f32 (atom-steps/s)", "GPU f64 (atom-steps/s)",
              "CPU engine (atom-steps/s)", "calorine CPUNEP (atom-steps/s)"]
    if torch_cls is not None:
        header.append("TorchNEP (atom-steps/s)")
    header += ["f32/CPU", "f64/CPU", "f32/calorine", "GPU mem f32 (B/atom)",
               "GPU mem f64 (B/atom)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [str(r["atoms"]), fmt_rate(r["gpu_f32"]), fmt_rate(r["gpu_f64"]),
                 fmt_rate(r["cpu"]), fmt_rate(r["calorine"])]
        if torch_cls is not None:
            cells.append(fmt_rate(r.get("torchnep")))
        cells += [fmt_ratio(r["gpu_f32"], r["cpu"]), fmt_ratio(r["gpu_f64"], r["cpu"]),
                  fmt_ratio(r["gpu_f32"], r["calorine"]), f"{r['bytes_f32']:.0f}",
                  f"{r['bytes_f64']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    from nepzbl_plugin import _cuda

    note = (f"\nModel {Path(args.model).name}; energy + forces + virial per step; "
            f"{_cuda.device_count()} CUDA device(s); host {platform.node()} "
            f"({os.cpu_count()} CPU cores); min {args.min_time} s per measurement, cap "
            f"{args.cap} s.\n")
    table = "\n".join(lines) + "\n" + note
    print(table)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(table)
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
