"""GPU benchmark: the CUDA engine on LLZO with NEP802-ZBL, against the CPU engine and calorine.

For each size (LLZO garnet supercells of a 192-atom training frame: 192, 1536, 12288, 98304
and 786432 atoms) it measures the throughput of energy + forces + virial in atom-steps per
second:

* ``gpu_f32`` / ``gpu_f64``: :class:`nepzbl_plugin.engine.cuda.CudaEvaluator` (one MD-like step
  per call: positions uploaded, Verlet list reused, E/F/W downloaded);
* ``cpu``: the C engine (:class:`nepzbl_plugin.engine.Evaluator`, OpenMP threads);
* ``calorine``: calorine's ``CPUNEP`` (NEP_CPU), only up to ``--calorine-max-atoms``;
* ``torchnep``: a TorchNEP ASE calculator when one is importable (else the column is absent);
* ``md_f32`` / ``md_f64``: the device-resident MD loop (``run_md`` with a CUDA evaluator:
  positions, velocities and forces stay on the GPU), Berendsen NVT at 1000 K, 1 fs, counted
  from the wall time of the whole run (no warm-up inside the timing but a 10-step run before);
* ``gpumd``: GPUMD's own MD on the same model, structure and steps (``run.in`` with
  ``velocity 1000``, ``ensemble nvt_ber 1000 1000 100``, ``time_step 1``), its printed "Speed of
  this run", when a ``gpumd`` executable is on PATH (or given with ``--gpumd``).

Every engine gets a time cap per size: when one call takes longer than the cap, that single
call is the measurement. GPU device memory per atom (bytes) is reported from the engine's own
buffers. Prints a table with speed-up ratios and writes it as markdown.

Usage::

    PYTHONPATH=. python benchmarks/bench_gpu.py --output benchmarks/gpu.md
    PYTHONPATH=. python benchmarks/bench_gpu.py --sizes 192 1536 --min-time 1 --help
    PYTHONPATH=. python benchmarks/bench_gpu.py --sizes 1536 12288 98304 786432 --no-cpu \
        --md-steps 2000 --gpumd .device/bin/gpumd     # the H200 run of docs/gpu-notes.md
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("nepzbl_plugin") is None:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, str(REPO))

from nepzbl_plugin.engine import Evaluator  # noqa: E402
from nepzbl_plugin.engine.cuda import CudaEvaluator, cuda_available  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_cpu import REPEATS, llzo_repeats, llzo_supercell  # noqa: E402,F401 (bench_gpu_md: here)
from rehearsal import REHEARSAL  # noqa: E402

SHARED = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared")) / "data" / "llzo"
PROPS = ("energy", "forces", "virial")


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


def md_steps_for(n_atoms: int, args) -> int:
    """Steps of the MD columns: --md-steps, fewer for big systems so that one run stays near
    --md-atom-steps atom-steps (at least 100 steps)."""
    return int(max(100, min(args.md_steps, args.md_atom_steps // n_atoms)))


def bench_md(model_path, atoms, precision, args):
    """Atom-steps per second of the device-resident MD loop (Berendsen NVT, 1000 K, 1 fs)."""
    from nepzbl_plugin.md import EngineForces, run_md

    ev = Evaluator(model_path, device="cuda", precision=precision)
    forces = EngineForces(ev, atoms)
    run = dict(ensemble="nvt-berendsen", temperature=1000.0, tau_temperature=100.0,
               timestep=1.0, seed=1)
    run_md(atoms, forces, 10, **run)  # warm-up: allocations, first list build
    result = run_md(atoms, forces, md_steps_for(len(atoms), args), **run)
    if result.stopped:
        tqdm.write(f"device MD stopped: {result.stopped}")
    return result.atom_steps_per_second


def gpumd_run_in(steps: int) -> str:
    """The run of the runbook: Berendsen NVT at 1000 K, 1 fs, thermo once at the end."""
    return ("potential nep.txt\nvelocity 1000\n\ntime_step 1\n"
            f"ensemble nvt_ber 1000 1000 100\ndump_thermo {steps}\nrun {steps}\n")


def bench_gpumd(gpumd: str, model_path, atoms, args):
    """GPUMD's "Speed of this run" (atom*step/second) for the same model, structure and steps,
    or None when it fails (its output's tail is printed)."""
    from nepzbl_plugin.md.gpumd import gpumd_model_xyz

    steps = md_steps_for(len(atoms), args)
    with tempfile.TemporaryDirectory(prefix="bench_gpumd_") as folder:
        folder = Path(folder)
        work = atoms.copy()
        work.wrap()
        (folder / "model.xyz").write_text(gpumd_model_xyz(work))
        (folder / "run.in").write_text(gpumd_run_in(steps))
        shutil.copyfile(model_path, folder / "nep.txt")
        done = subprocess.run([gpumd], cwd=folder, capture_output=True, text=True)
    speeds = re.findall(r"Speed of this run\s*=\s*([0-9.eE+-]+)", done.stdout)
    if done.returncode != 0 or not speeds:
        tqdm.write(f"gpumd failed (status {done.returncode}):\n{done.stdout[-1500:]}"
                   f"{done.stderr[-1500:]}")
        return None
    return float(speeds[-1])


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
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_device_scripts.py parses the device scripts' calls)."""
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
    parser.add_argument("--md-steps", type=int, default=1000,
                        help="steps of the device MD loop and GPUMD runs (default: 1000)")
    parser.add_argument("--md-atom-steps", type=int, default=2_000_000_000,
                        help="fewer MD steps for big systems: at most this many atom-steps "
                             "per run (default: 2e9)")
    parser.add_argument("--no-md", action="store_true", help="skip the device MD loop columns")
    parser.add_argument("--no-cpu", action="store_true",
                        help="skip the CPU engine and calorine columns")
    parser.add_argument("--gpumd", default=shutil.which("gpumd"),
                        help="GPUMD executable for the GPUMD column (default: gpumd on PATH; "
                             "the column is absent without one)")
    parser.add_argument("--output", default="benchmarks/bench_gpu.md",
                        help="markdown table to write (default: %(default)s)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if REHEARSAL:  # tools/rehearse_device.py: the sizes checked, then 192 atoms and few steps
        for n in args.sizes:
            llzo_repeats(n)  # the device's sizes must exist
        args.sizes, args.min_time, args.cap, args.md_steps = [192], 0.2, 2.0, 100
        print("rehearsal (NEPZBL_REHEARSAL=1): 192 atoms, 100 MD steps", flush=True)

    if not cuda_available():
        raise SystemExit("bench_gpu: no CUDA device (or the CUDA engine is not built)")
    try:
        from calorine.calculators import CPUNEP
    except ImportError:  # the column is then absent ("-")
        CPUNEP = None

    torch_cls = torchnep_class()
    rows = []
    for n in tqdm(args.sizes, desc="sizes", unit="size"):
        atoms = llzo_supercell(n)
        row = {"atoms": n}
        row["gpu_f32"], row["bytes_f32"] = bench_gpu(args.model, atoms, "float32", args)
        row["gpu_f64"], row["bytes_f64"] = bench_gpu(args.model, atoms, "float64", args)
        use_cpu = not args.no_cpu
        row["cpu"] = (bench_cpu(args.model, atoms, args)
                      if use_cpu and n <= args.cpu_max_atoms else None)
        row["calorine"] = (bench_ase_calculator(CPUNEP(args.model), atoms, args)
                           if use_cpu and CPUNEP is not None and n <= args.calorine_max_atoms
                           else None)
        row["md_f32"] = None if args.no_md else bench_md(args.model, atoms, "float32", args)
        row["md_f64"] = None if args.no_md else bench_md(args.model, atoms, "float64", args)
        row["gpumd"] = bench_gpumd(args.gpumd, args.model, atoms, args) if args.gpumd else None
        if torch_cls is not None:
            row["torchnep"] = bench_ase_calculator(torch_cls(args.model), atoms, args)
        rows.append(row)
        tqdm.write(f"{n} atoms: gpu f32 {fmt_rate(row['gpu_f32'])}, gpu f64 "
                   f"{fmt_rate(row['gpu_f64'])}, cpu {fmt_rate(row['cpu'])}, calorine "
                   f"{fmt_rate(row['calorine'])}, MD f32 {fmt_rate(row['md_f32'])}, MD f64 "
                   f"{fmt_rate(row['md_f64'])}, GPUMD {fmt_rate(row['gpumd'])} atom-steps/s")

    header = ["atoms", "GPU f32 (atom-steps/s)", "GPU f64 (atom-steps/s)",
              "CPU engine (atom-steps/s)", "calorine CPUNEP (atom-steps/s)"]
    if torch_cls is not None:
        header.append("TorchNEP (atom-steps/s)")
    header += ["MD loop f32 (atom-steps/s)", "MD loop f64 (atom-steps/s)",
               "GPUMD MD (atom-steps/s)", "MD f32/GPUMD", "MD f64/GPUMD", "MD f32/evaluate f32",
               "f32/CPU", "f64/CPU", "f32/calorine", "GPU mem f32 (B/atom)",
               "GPU mem f64 (B/atom)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [str(r["atoms"]), fmt_rate(r["gpu_f32"]), fmt_rate(r["gpu_f64"]),
                 fmt_rate(r["cpu"]), fmt_rate(r["calorine"])]
        if torch_cls is not None:
            cells.append(fmt_rate(r.get("torchnep")))
        cells += [fmt_rate(r["md_f32"]), fmt_rate(r["md_f64"]), fmt_rate(r["gpumd"]),
                  fmt_ratio(r["md_f32"], r["gpumd"]), fmt_ratio(r["md_f64"], r["gpumd"]),
                  fmt_ratio(r["md_f32"], r["gpu_f32"])]
        cells += [fmt_ratio(r["gpu_f32"], r["cpu"]), fmt_ratio(r["gpu_f64"], r["cpu"]),
                  fmt_ratio(r["gpu_f32"], r["calorine"]), f"{r['bytes_f32']:.0f}",
                  f"{r['bytes_f64']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    from nepzbl_plugin import _cuda

    note = (f"\nModel {Path(args.model).name}; energy + forces + virial per step; "
            f"{_cuda.device_count()} CUDA device(s); host {platform.node()} "
            f"({os.cpu_count()} CPU cores); min {args.min_time} s per measurement, cap "
            f"{args.cap} s; MD columns: Berendsen NVT at 1000 K, 1 fs, "
            f"{args.md_steps} steps (fewer above {args.md_atom_steps:.0e} atom-steps); "
            f"GPUMD: {args.gpumd or 'not on PATH'}.\n")
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
