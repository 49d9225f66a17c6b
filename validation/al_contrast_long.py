"""Issue 16's contrast on the CPU with long runs: the first models of the LLZO active learning
(25 configurations, with and without the paper's ``zbl 1.8``) in one long NVT run each at the
hottest temperature of the paper's third aggressive iteration, with the active-learning loop's
own MD and failure rule.

Why: the loop's CPU runs (``validation/llzo/run.py``, item 6; ``validation/al_llzo.py``) are
1 to 8 ps long and never reach the collision energy at which the pure model collapses
(E* = k_B T ln(nu N t): 1.0 to 1.1 eV there, against 1.6 to 2.0 eV in the paper's 500 ps
runs). One nanosecond of 192 atoms at 1200 K reaches E* = 1.50 eV, the paper's reach on 192
atoms, at the price of holding the ramp's top temperature instead of ramping to it.

Each variant runs in its own process (one engine thread each, side by side), from the same
start frame with the same seed; a frame every ``--sample-interval`` steps is checked against
the loop's limits (0.6 x the start data's shortest distance per species pair,
:func:`nepzbl_plugin.al.loop.collapse_limits`), as :func:`nepzbl_plugin.al.sampling.run_md`
does in every iteration. The result of each run goes to
``validation/out/al_contrast_long_<variant>.json`` (rewritten as the run goes, so a stopped
run still says how far it got). ``--model-zbl`` / ``--model-nozbl`` put other models in
(the paper's NEP802-ZBL and NEP802, say) and ``--tag`` keeps their results apart.

Usage::

    python validation/al_contrast_long.py [--models validation/llzo/out/cpu/item6]
        [--ps 1000] [--temperature 1200] [--sample-interval 500] [--seed 0]
    python validation/al_contrast_long.py --tag nep802 --ps 600 \
        --model-zbl ../shared/data/llzo/NEP802-ZBL.txt --model-nozbl ../shared/data/llzo/NEP802.txt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:  # an installed nepzbl (CI), else this checkout with its built extensions
    import nepzbl_plugin._core  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared")) / "data" / "llzo"
OUT = REPO / "validation" / "out"
VARIANTS = {"zbl": "with ZBL (zbl 1.8)", "nozbl": "without ZBL"}


def _write(path: Path, record: dict) -> None:
    from nepzbl_plugin.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(record, indent=1) + "\n")


def run_variant(variant: str, model_path: str, args: dict) -> dict:
    """One long run of one model; returns (and writes) its record."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np

    from nepzbl_plugin.al.config import MDRunSpec
    from nepzbl_plugin.al.loop import collapse_limits
    from nepzbl_plugin.al.sampling import run_md
    from nepzbl_plugin.audit.stress_test import knock_on_energy
    from nepzbl_plugin.engine import Evaluator
    from nepzbl_plugin.io.xyz import read_train_xyz

    data = read_train_xyz(DATA / "NEP25-ZBL" / "train.xyz")
    species = sorted({s for st in data for s in st.symbols})
    limits = collapse_limits(species, data, 0.6)
    steps = int(round(args["ps"] * 1000 / args["timestep"]))
    spec = MDRunSpec(t_start=args["temperature"], t_end=args["temperature"], steps=steps,
                     timestep=args["timestep"], friction=0.01,
                     sample_interval=args["sample_interval"], thermostat="langevin")
    evaluator = Evaluator(model_path, num_threads=1)
    path = Path(args["out"]) / f"al_contrast_long_{args['tag']}{variant}.json"
    start = data[args["start_frame"]].to_atoms()
    record = {"variant": VARIANTS[variant], "model": str(model_path), "atoms": len(start),
              "temperature_K": args["temperature"], "planned_ps": args["ps"],
              "timestep_fs": args["timestep"], "sample_interval": args["sample_interval"],
              "seed": args["seed"], "start_frame": args["start_frame"],
              "limits_A": {"-".join(k): round(v, 4) for k, v in sorted(limits.items())},
              "collision_energy_eV": round(knock_on_energy(
                  args["temperature"], len(start) * args["ps"] * 1e-3), 3),
              "status": "running"}
    t0 = time.monotonic()

    def progress(done, total):
        if done % 20 and done != total:
            return
        record.update({"samples_done": done, "samples_planned": total,
                       "ps_done": done * args["sample_interval"] * args["timestep"] / 1000,
                       "wall_s": round(time.monotonic() - t0, 1)})
        _write(path, record)

    result = run_md(start, evaluator, spec, limits, seed=args["seed"], callback=progress)
    failed_at = next((k for k, bad in enumerate(result.failed) if bad), None)
    record.update({
        "status": "done",
        "samples_planned": result.planned,
        "samples_done": len(result.frames),
        "failed_frames": result.num_failed,
        "failure_ratio": result.failure_ratio,
        "aborted": result.aborted,
        "first_failure_ps": None if failed_at is None
        else (failed_at + 1) * args["sample_interval"] * args["timestep"] / 1000,
        "shortest_distance_A": float(np.min(result.min_distances)) if result.min_distances
        else None,
        "wall_s": round(time.monotonic() - t0, 1),
        "atom_steps_per_s": round(len(start) * steps / max(result.wall_seconds, 1e-9)),
    })
    _write(path, record)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=str(REPO / "validation/llzo/out/cpu/item6"),
                        help="folder with zbl/ and nozbl/ active-learning states (item 6)")
    parser.add_argument("--ps", type=float, default=1000.0, help="run length, ps")
    parser.add_argument("--temperature", type=float, default=1200.0, help="K")
    parser.add_argument("--timestep", type=float, default=1.0, help="fs")
    parser.add_argument("--sample-interval", type=int, default=500, help="steps per frame")
    parser.add_argument("--start-frame", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-zbl", default=None,
                        help="a nep.txt with ZBL instead of the first model under --models")
    parser.add_argument("--model-nozbl", default=None,
                        help="a nep.txt without ZBL instead of the first model under --models")
    parser.add_argument("--tag", default="",
                        help="added to the result files' names (al_contrast_long_TAG_zbl.json)")
    parser.add_argument("--out", default=str(OUT),
                        help="folder of the result files (default validation/out)")
    args = parser.parse_args(argv)
    models = {v: Path(args.models) / v / "state" / "iter_000" / "nep.txt" for v in VARIANTS}
    if args.model_zbl:
        models["zbl"] = Path(args.model_zbl)
    if args.model_nozbl:
        models["nozbl"] = Path(args.model_nozbl)
    missing = [str(p) for p in models.values() if not p.is_file()]
    if missing:
        print(f"al_contrast_long: no first model at {', '.join(missing)}; run "
              "validation/llzo/run.py --size cpu --only 6 first", file=sys.stderr)
        return 2
    settings = {"ps": args.ps, "temperature": args.temperature, "timestep": args.timestep,
                "sample_interval": args.sample_interval, "start_frame": args.start_frame,
                "seed": args.seed, "tag": f"{args.tag}_" if args.tag else "", "out": args.out}
    with get_context("spawn").Pool(len(models)) as pool:
        jobs = [pool.apply_async(run_variant, (v, str(p), settings)) for v, p in models.items()]
        records = [job.get() for job in jobs]
    print(f"{'variant':<22} {'ps':>7} {'failure ratio':>14} {'first failure (ps)':>19} "
          f"{'shortest (Å)':>13} {'E* (eV)':>8} {'wall (s)':>9}")
    for r in records:
        first = "-" if r["first_failure_ps"] is None else f"{r['first_failure_ps']:.1f}"
        print(f"{r['variant']:<22} {r['planned_ps']:7.0f} {100 * r['failure_ratio']:13.1f}% "
              f"{first:>19} {r['shortest_distance_A']:13.3f} {r['collision_energy_eV']:8.2f} "
              f"{r['wall_s']:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
