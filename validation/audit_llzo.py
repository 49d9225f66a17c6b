"""Reproduce the NEP-ZBL paper's robustness findings with ``nepzbl audit``.

1. Li-Li dimer curves of NEPstd, NEP802 and NEP802-ZBL against the paper's files
   (llzo/dimer/), and the barriers: NEPstd 2.556 eV at 1.15 Å, NEP802 2.050 eV at 1.32 Å,
   NEP802-ZBL none; the verdict on every pair.
2. Hot MD at 1300 K on the 192-atom cell of NEP25-ZBL/train.xyz: plain NVT (the paper's
   collapse is rare: about one collapsed Li-Li pair per 12288 atoms, so a short run on 192
   atoms sees none), then NVT from a start rattled by 0.35 Å (a thermal spike): NEP802
   collapses (paper: Li-Li g(r) peak at 0.13 Å, Li-La at 0.34 Å), NEP802-ZBL does not.

Usage: python validation/audit_llzo.py [--data ../shared/data] [--steps 10000] [--atoms 192]
       [--temperature 1300] [--out validation/out]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nepzbl_plugin.audit.report import plot_dimers, report_json  # noqa: E402
from nepzbl_plugin.audit.stress_test import StressTestSettings  # noqa: E402
from nepzbl_plugin.audit.verdict import audit  # noqa: E402

PAPER = {
    "NEPstd": ("dimer_nepstd_Li_Li.txt", 2.556, 1.15),
    "NEP802": ("dimer_802_Li_Li.txt", 2.050, 1.32),
    "NEP802-ZBL": ("dimer_802_Li_Li_zbl.txt", None, None),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=10000, help="MD steps of 1 fs")
    parser.add_argument("--atoms", type=int, default=192, help="192 or more (repeats the cell)")
    parser.add_argument("--temperature", type=float, default=1300.0)
    parser.add_argument("--models", nargs="+", default=["NEP802", "NEP802-ZBL"],
                        help="models for the MD part")
    parser.add_argument("--rattle", type=float, default=0.35,
                        help="second MD pass from a start rattled by this much, Å (0: skip)")
    parser.add_argument("--rattle-steps", type=int, default=2000)
    parser.add_argument("--out", default=str(REPO / "validation" / "out"))
    args = parser.parse_args()
    llzo = Path(args.data) / "llzo"
    os.makedirs(args.out, exist_ok=True)
    results = {}

    print("== dimer scans (paper protocol) ==")
    for name, (dimer_file, barrier, distance) in PAPER.items():
        t0 = time.perf_counter()
        report = audit(str(llzo / f"{name}.txt"), name=name, hot_md=False)
        ref = np.loadtxt(llzo / "dimer" / dimer_file, skiprows=1)
        curve = report.curves["Li-Li"]
        de = float(np.max(np.abs(curve.energy - ref[:, 1])))
        df = float(np.max(np.abs(curve.force - ref[:, 2])))
        a = report.analyses["Li-Li"]
        paper = "none" if barrier is None else f"{barrier:.3f} eV at {distance:.2f} Å"
        ours = ("none" if a.barrier is None
                else f"{a.barrier:.3f} eV at {a.breakdown_distance:.2f} Å")
        print(f"{name:<11} Li-Li barrier {ours:<22} (paper {paper}); max |ΔE| {de:.1e} eV, "
              f"max |ΔF| {df:.1e} eV/Å; verdict {'SAFE' if report.safe else 'UNSAFE'} "
              f"({time.perf_counter() - t0:.1f} s)")
        plot_dimers(report, os.path.join(args.out, f"dimers_{name}.png"))
        results[name] = {"dimer": json.loads(report_json(report)), "max_dE_eV": de,
                         "max_dF_eV_per_A": df}

    data = llzo / "NEP25-ZBL" / "train.xyz"
    passes = [("plain", args.steps, 0.0)]
    if args.rattle > 0:
        passes.append((f"rattled {args.rattle:g} Å", args.rattle_steps, args.rattle))
    for label, steps, rattle in passes:
        print(f"\n== hot MD ({label}), {args.temperature:.0f} K, {steps} steps, "
              f">= {args.atoms} atoms ==")
        for name in args.models:
            t0 = time.perf_counter()
            settings = StressTestSettings(temperature=args.temperature, steps=steps,
                                          min_atoms=args.atoms, rattle=rattle, num_threads=1)
            report = audit(str(llzo / f"{name}.txt"), data=str(data), name=name,
                           hot_md=settings, progress=sys.stderr.isatty())
            md = report.stress.as_dict()
            wall = time.perf_counter() - t0
            peaks = {k: f"g={v['g']:.2f} at {v['distance']:.3f} Å"
                     for k, v in md["rdf_peaks_below_1.5"].items() if v["g"] > 0}
            onset = md["collapse_onset_ps"]
            print(f"{name:<11} {md['num_atoms']} atoms, {md['duration_ps']:.1f} ps in "
                  f"{md['wall_seconds']:.0f} s: collapsed fraction "
                  f"{md['collapsed_fraction']:.3f}, onset "
                  f"{'-' if onset is None else f'{onset:.3f} ps'}, shortest distance "
                  f"{md['min_distance']:.3f} Å; g(r < 1.5 Å) peaks: {peaks or 'none'}")
            results[name][f"md {label}"] = md
            results[name][f"md {label} total_seconds"] = wall
    with open(os.path.join(args.out, "audit_llzo.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
