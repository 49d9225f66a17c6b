"""Li diffusivity of LLZO at 1000 K with NEPstd against the NEP-ZBL paper (issue 15, target 2).

The paper (Yan, Fan and Zhu, arXiv 2504.15925) reports D_Li = 9.1 to 9.7e-6 cm^2/s for NEPstd at
1000 K (12288 atoms on a GPU, MSD over a 50 ps window, straight line over its first 25 ps,
D = slope / 6). The target: within 20 % of that range, i.e. 7.28e-6 to 11.64e-6 cm^2/s.

What this script runs, with nepzbl's own commands only (printed before each run):

1. start: the first 192-atom frame of ``NEP25-ZBL/train.xyz`` with an orthogonal, nearly cubic
   cell (LLZO is cubic at 1000 K);
2. ``nepzbl md ... --ensemble npt-aniso --temperature 1000 --pressure 0`` to relax the cell;
3. the last NPT frame scaled to the mean a, b, c of the second half of the NPT run;
4. ``nepzbl md ... --ensemble nvt --temperature 1000`` (Bussi) for the production run, unwrapped
   trajectory every ``--every`` steps;
5. ``nepzbl analyze msd ... --species Li --window 50000 --blocks 2 --json``: the paper's window
   and fit; the uncertainty is the standard error over the (at least two) 50 ps blocks.

Usage::

    python validation/llzo_diffusivity.py [--npt-steps 5000] [--nvt-steps 100000] [--every 50]
        [--threads 2] [--out out/llzo_diffusivity] [--smoke]

``--smoke`` runs the same chain on 100 + 200 steps with a 50 fs window (seconds; for CI: it checks
the plumbing, not the number). ``--analyze-only`` re-runs step 5 on an existing output folder
(on the complete frames of the production run so far when it has not finished; ``--nvt-steps``
should then say how many steps those frames hold, for the summary).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared")) / "data" / "llzo"
PAPER_RANGE_CM2_PER_S = (9.1e-6, 9.7e-6)
TOLERANCE = 0.20


def _nepzbl(*args: str) -> str:
    """Run one ``nepzbl`` command in this process (the package as imported: installed, or the
    tree on PYTHONPATH) and return what it printed."""
    try:
        from nepzbl_plugin.cli import main
    except ImportError:  # run from a checkout without PYTHONPATH
        sys.path.insert(0, str(REPO))
        from nepzbl_plugin.cli import main

    print("$ nepzbl " + " ".join(args), flush=True)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(list(args))
    sys.stdout.write(printed.getvalue())
    if status:
        raise SystemExit(f"nepzbl {args[0]} failed with status {status}")
    return printed.getvalue()


def start_structure(path: Path):
    """The first 192-atom frame with an orthogonal cell whose lengths differ by under 1 %."""
    from ase.io import iread

    for atoms in iread(str(path)):
        lengths_angles = atoms.cell.cellpar()
        lengths = lengths_angles[:3]
        if (len(atoms) == 192 and np.all(np.abs(lengths_angles[3:] - 90.0) < 1e-6)
                and lengths.max() / lengths.min() < 1.01):
            return atoms
    raise SystemExit(f"{path}: no 192-atom frame with a nearly cubic orthogonal cell")


def mean_cell_start(npt_dir: Path, target: Path) -> np.ndarray:
    """Scale the last NPT frame to the mean cell lengths of the second half of the NPT run."""
    from ase.io import read, write

    thermo = np.loadtxt(npt_dir / "thermo.txt", ndmin=2)
    header = (npt_dir / "thermo.txt").read_text().splitlines()[0].lstrip("#").split()
    columns = [header.index(name) for name in ("a_A", "b_A", "c_A")]
    lengths = thermo[len(thermo) // 2:, columns].mean(axis=0)
    atoms = read(str(npt_dir / "trajectory.xyz"), index=-1)
    atoms.wrap()
    atoms.set_cell(np.diag(lengths), scale_atoms=True)
    atoms.set_velocities(np.zeros((len(atoms), 3)))
    write(str(target), atoms, format="extxyz")
    return lengths


def complete_frames_of_partial(nvt_dir: Path) -> Path:
    """The complete frames of a production run still going (or stopped): nepzbl md streams its
    frames into a hidden ``.trajectory.xyz.*.partial``; copy its whole frames to
    ``trajectory_partial.xyz``."""
    partials = sorted(nvt_dir.glob(".trajectory.xyz.*.partial"), key=lambda p: p.stat().st_mtime)
    if not partials:
        raise SystemExit(f"{nvt_dir}: neither trajectory.xyz nor a partial trajectory")
    lines = partials[-1].read_text().splitlines(keepends=True)
    atoms = int(lines[0])
    whole = len(lines) // (atoms + 2) * (atoms + 2)
    target = nvt_dir / "trajectory_partial.xyz"
    target.write_text("".join(lines[:whole]))
    print(f"{partials[-1].name}: {whole // (atoms + 2)} complete frames -> {target}")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--npt-steps", type=int, default=5000, help="NPT steps of 1 fs")
    parser.add_argument("--nvt-steps", type=int, default=100000, help="NVT steps of 1 fs")
    parser.add_argument("--every", type=int, default=50, help="steps between frames")
    parser.add_argument("--window", type=float, default=50000.0, help="MSD window in fs")
    parser.add_argument("--blocks", type=int, default=2, help="blocks for the uncertainty")
    parser.add_argument("--temperature", type=float, default=1000.0, help="K")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "validation" / "out" / "llzo_diffusivity"))
    parser.add_argument("--smoke", action="store_true", help="seconds-long plumbing check")
    parser.add_argument("--reuse-npt", action="store_true",
                        help="keep the NPT run already in --out (only NVT and the analysis)")
    parser.add_argument("--analyze-only", action="store_true",
                        help="only the MSD analysis of an existing --out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.npt_steps, args.nvt_steps, args.every, args.window = 100, 200, 10, 50.0

    model = DATA / "NEPstd.txt"
    if not model.is_file():
        raise SystemExit(f"{model}: not found (set NEPZBL_SHARED to the shared folder)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ["--temperature", str(args.temperature), "--dt", "1", "--every", str(args.every),
              "--threads", str(args.threads), "--seed", str(args.seed), "--overwrite",
              "--no-progress"]
    wall = {}
    if not args.analyze_only:
        from ase.io import write

        if not (args.reuse_npt and (out / "npt" / "thermo.txt").is_file()):
            start = out / "start.xyz"
            write(str(start), start_structure(DATA / "NEP25-ZBL" / "train.xyz"),
                  format="extxyz")
            began = time.perf_counter()
            _nepzbl("md", str(model), str(start), "--ensemble", "npt-aniso", "--pressure", "0",
                    "--steps", str(args.npt_steps), "--out", str(out / "npt"), *common)
            wall["npt_s"] = time.perf_counter() - began
        lengths = mean_cell_start(out / "npt", out / "nvt_start.xyz")
        print(f"mean NPT cell: a {lengths[0]:.4f} Å, b {lengths[1]:.4f} Å, c {lengths[2]:.4f} Å")
        began = time.perf_counter()
        _nepzbl("md", str(model), str(out / "nvt_start.xyz"), "--ensemble", "nvt",
                "--steps", str(args.nvt_steps), "--out", str(out / "nvt"), *common)
        wall["nvt_s"] = time.perf_counter() - began

    trajectory = out / "nvt" / "trajectory.xyz"
    if args.analyze_only and not trajectory.is_file():
        trajectory = complete_frames_of_partial(out / "nvt")
    text = _nepzbl("analyze", "msd", str(trajectory), "--species", "Li",
                   "--dt-frame", str(float(args.every)), "--window", str(args.window),
                   "--blocks", str(args.blocks), "--temperature", str(args.temperature),
                   "--png", str(out / "msd_Li.png"), "--json")
    result = json.loads(text)
    d, error = result["D_cm2_per_s"], result["D_error_cm2_per_s"]
    low, high = PAPER_RANGE_CM2_PER_S
    within = low * (1 - TOLERANCE) <= d <= high * (1 + TOLERANCE)
    production_ps = (result["frames"] - 1) * args.every / 1000.0
    summary = {"D_cm2_per_s": d, "D_error_cm2_per_s": error, "atoms": 192,
               "npt_steps": args.npt_steps, "nvt_steps": args.nvt_steps,
               "production_ps_analysed": production_ps, "dt_fs": 1.0,
               "window_fs": args.window, "blocks": args.blocks, "wall_s": wall,
               "paper_range_cm2_per_s": [low, high],
               "target_range_cm2_per_s": [low * (1 - TOLERANCE), high * (1 + TOLERANCE)],
               "within_target": bool(within), "smoke": bool(args.smoke)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"D_Li = {d:.3e} ± {error:.1e} cm^2/s at {args.temperature:g} K (192 atoms, "
          f"{production_ps:g} ps NVT analysed, {args.window / 1000:g} ps window, after "
          f"{args.npt_steps / 1000:g} ps NPT); paper "
          f"{low:.1e} to {high:.1e} cm^2/s; within 20 %: {'yes' if within else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
