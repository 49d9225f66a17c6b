"""Reproduce the NEP-ZBL paper's robustness findings with ``nepzbl audit``.

1. Li-Li dimer curves of NEPstd, NEP802 and NEP802-ZBL against the paper's files
   (llzo/dimer/), and the barriers: NEPstd 2.556 eV at 1.15 Å, NEP802 2.050 eV at 1.32 Å,
   NEP802-ZBL none; the verdict on every pair.
2. The audit's hot-MD stress test on the cell of NEP25-ZBL/train.xyz (192 atoms, or repeated
   with --atoms): Langevin NVT with knock-on collisions of every pair in contact at
   E* = k_B T ln(nu N t), the collision energy a 10 ns run of 10,000 atoms reaches (2.32 eV at
   1300 K). The paper: NEP802's Li-Li g(r) peaks at about 0.13 Å (9.1 at 1300 K, 0.38 at
   1000 K, 0 at 900 K and below) and Li-La at about 0.34 Å; NEP802-ZBL has no peak below 1.5 Å
   up to 1300 K.

Usage: python validation/audit_llzo.py [--data ../shared/data] [--atoms 192 1536]
       [--runs NEP802:1300 NEP802-ZBL:1300 NEP802:1000 NEP802:900] [--seeds 1]
       [--threads 2] [--out validation/out]
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
    parser.add_argument("--atoms", type=int, nargs="+", default=[192],
                        help="cell sizes for the MD part (192 or more: repeats the cell)")
    parser.add_argument("--runs", nargs="+",
                        default=["NEP802:1300", "NEP802-ZBL:1300", "NEP802:1000", "NEP802:900"],
                        help="MODEL:TEMPERATURE pairs for the MD part")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="MD seeds")
    parser.add_argument("--threads", type=int, default=None, help="engine threads for the MD")
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
    print("\n== hot-MD stress test with knock-on collisions (audit defaults) ==")
    print(f"{'model':<11}{'T':>6}{'atoms':>7}{'seed':>5}{'E*':>9}{'collisions':>11}"
          f"{'collapse after':>15}{'onset':>9}{'shortest':>10}{'wall':>7}  g(r < 1.5 Å) peaks")
    for atoms in args.atoms:
        for run in args.runs:
            name, temperature = run.split(":")
            for seed in args.seeds:
                settings = StressTestSettings(temperature=float(temperature), min_atoms=atoms,
                                              seed=seed, num_threads=args.threads)
                t0 = time.perf_counter()
                report = audit(str(llzo / f"{name}.txt"), data=str(data), name=name,
                               hot_md=settings, progress=sys.stderr.isatty())
                md = report.stress.as_dict()
                wall = time.perf_counter() - t0
                knock = md["knock_on"]
                first = next((k for k in knock["events"] if k["collapsed_after"]), None)
                after = "-" if first is None else f"{first['pair']} {first['time_fs'] / 1e3:.1f}ps"
                onset = md["collapse_onset_ps"]
                peaks = {k: f"g={v['g']:.1f} at {v['distance']:.3f} Å"
                         for k, v in md["rdf_peaks_below_1.5"].items() if v["g"] > 0.1}
                print(f"{name:<11}{float(temperature):>5.0f}K{md['num_atoms']:>7}{seed:>5}"
                      f"{knock['energy_eV']:>7.2f}eV{knock['collisions']:>11}{after:>15}"
                      f"{'-' if onset is None else f'{onset:.2f}ps':>9}"
                      f"{md['min_distance']:>8.3f} Å{md['wall_seconds']:>6.0f}s  "
                      f"{peaks or 'none'}", flush=True)
                results[name][f"md {temperature} K {md['num_atoms']} atoms seed {seed}"] = md
                results[name][f"md {temperature} K {md['num_atoms']} atoms seed {seed} s"] = wall
    atoms = "_".join(str(n) for n in args.atoms)
    with open(os.path.join(args.out, f"audit_llzo_{atoms}_atoms.json"), "w",
              encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
