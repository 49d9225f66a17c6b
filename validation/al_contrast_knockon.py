"""Issue 16's contrast at the paper's collision energy, without the paper's atom-time: the
audit's knock-on stress test on the first models of the LLZO active learning, with and
without the paper's ``zbl 1.8``, against the paper's own NEP802 as the positive control.

Why: a pure model fails in long hot MD when some pair, pushed together by a rare hard
collision, crosses the model's barrier and falls into the hole below it. N atoms over a time t
deliver, about once, a head-on collision of E* = k_B T ln(nu N t) (nu = 10 THz); the
paper's third aggressive iteration (4 runs x 500 ps of 12288 atoms, up to 1200 K) reaches
E* = 2.0 eV. Plain MD needs that atom-time (minutes of a GPU, weeks of a CPU core on 192
atoms); the stress test (:func:`nepzbl_plugin.audit.stress_test.stress_test`) delivers such
collisions on purpose: Langevin NVT at the temperature, then head-on knock-ons of E* between
neighbours of every species pair the data bring into contact, one every 200 fs. A frame fails by
the active-learning loop's own rule (a pair closer than 0.6 x the data's shortest such pair).

Each model is tested with several kick seeds (different start velocities and collision
partners). First models are trained here with several training seeds (Adam, ``--train-seconds``
of wall time each, as the loop's first models; ``llzo/NEP25-ZBL`` with and without its ``zbl``
line), so the answer is about the training, not one network. ``--model NAME=PATH`` adds
models (nepzbl's loop models, say); NEP802 and NEP802-ZBL are in by default.

Results: ``OUT/al_contrast_knockon.json`` (one record per model and kick seed, rewritten as
the runs finish; a rerun reuses the records and models it finds) and the table on stdout.
Jobs run in ``--jobs`` processes of one engine thread each.

Usage::

    python validation/al_contrast_knockon.py [--train-seeds 0 1 2 3] [--kick-seeds 1 2 3]
        [--train-seconds 90] [--temperature 1200] [--horizon 24576] [--out DIR]
    python validation/al_contrast_knockon.py --smoke --out /tmp/knockon   # seconds (CI)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "validation"))  # not the script's folder under PYTHONSAFEPATH
# importing it puts an installed nepzbl first, else this checkout, as every script here does
from al_contrast_long import DATA, train_first_model  # noqa: E402

OUT = REPO / "validation" / "out"
RESULT = "al_contrast_knockon.json"
# the paper's third aggressive iteration: 4 runs x 500 ps of 12288 atoms (atom ns)
PAPER_HORIZON = 4 * 500e-3 * 12288
BOLTZMANN = 8.617333262e-5  # eV/K
NU = 1e13  # Hz, the attempt frequency of E* = k_B T ln(nu N t)
# a pair this close has fallen through (NEP802 reaches 0.06-0.3 Å); the loop's rule fails a
# frame from 0.6 x the data's shortest distance on, 0.9-1.5 Å here
FELL_THROUGH = 0.5  # Å
DEFAULT_MODELS = {"NEP802": "NEP802.txt", "NEP802-ZBL": "NEP802-ZBL.txt"}


def paper_energy(temperature: float, horizon_atom_ns: float) -> float:
    """E* = k_B T ln(nu N t) in eV for ``horizon_atom_ns`` = N x t (ns)."""
    return BOLTZMANN * temperature * math.log(NU * horizon_atom_ns * 1e-9)


def _write(path: Path, record) -> None:
    from nepzbl_plugin.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(record, indent=1) + "\n")


def _train_job(job: dict) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return train_first_model(job["variant"], Path(job["path"]), "cpu", job["seconds"],
                             seed=job["seed"])


def knock_on_test(job: dict) -> dict:
    """One stress test of one model with one kick seed; returns its record. ``job``: name,
    path (nep.txt), zbl, kick_seed, temperature (K), horizon (atom ns), steps, kicks_per_pair
    and optionally train_seed. Runs on one engine thread (a worker process's share)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from nepzbl_plugin.audit import make_calculator
    from nepzbl_plugin.audit.stress_test import StressTestSettings, stress_test

    settings = StressTestSettings(temperature=job["temperature"], horizon=job["horizon"],
                                  seed=job["kick_seed"], kicks_per_pair=job["kicks_per_pair"],
                                  steps=job["steps"], num_threads=1)
    t0 = time.monotonic()
    result = stress_test(make_calculator(job["path"], num_threads=1),
                         str(DATA / "NEP25-ZBL" / "train.xyz"), settings).as_dict()
    knock = result["knock_on"] or {}
    first = knock.get("first_collapse_after")
    shortest = knock.get("closest_approach")
    return {
        "model": job["name"], "path": job["path"], "zbl": job["zbl"],
        "train_seed": job.get("train_seed"), "kick_seed": job["kick_seed"],
        "temperature_K": result["temperature_K"], "atoms": result["num_atoms"],
        "E_star_eV": knock.get("energy_eV"), "collisions": knock.get("collisions", 0),
        "ps": result["duration_ps"], "frames_failed_fraction": result["collapsed_fraction"],
        "first_failure_ps": result["collapse_onset_ps"],
        "first_failure_after": None if first is None else f"{first['pair']} kick at "
                                                          f"{first['time_fs'] / 1e3:g} ps",
        "shortest_A": shortest, "fell_through": shortest is not None
                                                 and shortest < FELL_THROUGH,
        "aborted": result["aborted"], "wall_s": round(time.monotonic() - t0, 1)}


def _model_zbl(path: str) -> bool:
    from nepzbl_plugin import read_model

    return read_model(path).zbl is not None


def knock_on_jobs(models, seeds, *, temperature: float, horizon: float, steps: int,
                  kicks_per_pair: int) -> list[dict]:
    """The :func:`knock_on_test` jobs: each model of ``models`` ((name, nep.txt path, has ZBL,
    training seed or None)) with each kick seed of ``seeds``."""
    return [{"name": name, "path": path, "zbl": zbl, "train_seed": train_seed,
             "kick_seed": seed, "temperature": temperature, "horizon": horizon,
             "steps": steps, "kicks_per_pair": kicks_per_pair}
            for name, path, zbl, train_seed in models for seed in seeds]


def summarize(records: list[dict]) -> dict:
    """{model name: its runs (by kick seed), seeds (their number), failing (seeds with a frame
    failing the loop's rule, or a blow-up), fell_through (a pair below ``FELL_THROUGH``, or a
    blow-up), frames_failed (mean fraction over the seeds), shortest_A, first_failure and
    first_failure_seed (the lowest kick seed that failed)}, in the records' order of models."""
    grouped = {}
    for r in records:
        grouped.setdefault(r["model"], []).append(r)
    summary = {}
    for name, runs in grouped.items():
        runs = sorted(runs, key=lambda r: r["kick_seed"])
        first = next((r for r in runs if r["first_failure_after"]), None)
        summary[name] = {
            "runs": runs, "seeds": len(runs),
            "failing": sum(r["frames_failed_fraction"] > 0 or bool(r["aborted"]) for r in runs),
            "fell_through": sum(bool(r["fell_through"] or r["aborted"]) for r in runs),
            "frames_failed": sum(r["frames_failed_fraction"] for r in runs) / len(runs),
            "shortest_A": min((r["shortest_A"] for r in runs if r["shortest_A"] is not None),
                              default=None),
            "first_failure": None if first is None else first["first_failure_after"],
            "first_failure_seed": None if first is None else first["kick_seed"]}
    return summary


def format_table(records: list[dict]) -> str:
    """One row per model: kick seeds with failing frames and with a pair fallen through."""
    head = (f"{'model':<16} {'ZBL':>3} {'RMSE F':>8} {'E* (eV)':>7} {'T (K)':>6} "
            f"{'seeds failing':>13} {'fell through':>12} {'frames failed':>13} "
            f"{'first failure':>22} {'shortest (Å)':>12}")
    lines = [head, "-" * len(head)]
    for name, s in summarize(records).items():
        one = s["runs"][0]
        first = ("-" if s["first_failure"] is None
                 else f"{s['first_failure']} (s{s['first_failure_seed']})")
        shortest = float("nan") if s["shortest_A"] is None else s["shortest_A"]
        rmse = one.get("rmse_force_meV_per_A")
        failing = f"{s['failing']} of {s['seeds']}"
        fell = f"{s['fell_through']} of {s['seeds']}"
        lines.append(
            f"{name:<16} {'yes' if one['zbl'] else 'no':>3} "
            f"{'-' if rmse is None else f'{rmse:.0f}':>8} {one['E_star_eV']:>7.2f} "
            f"{one['temperature_K']:>6.0f} {failing:>13} {fell:>12} "
            f"{s['frames_failed']:>12.1%} {first:>22} {shortest:>12.3f}")
    lines.append("RMSE F: train force RMSE (meV/Å) of the models trained here; seeds failing: "
                 "kick seeds with a frame failing the loop's rule; fell through: a pair below "
                 f"{FELL_THROUGH} Å; frames failed: mean over the seeds, samples right after "
                 "a collision left out")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-seeds", type=int, nargs="*", default=[0, 1, 2, 3],
                        help="training seeds of the first models, with and without ZBL")
    parser.add_argument("--train-seconds", type=float, default=90.0,
                        help="wall time of each first model's training (Adam), s; as the "
                             "loop's first models of validation/llzo/run.py --size cpu")
    parser.add_argument("--kick-seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--kicks-per-pair", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000,
                        help="plain NVT steps before the first collision")
    parser.add_argument("--temperature", type=float, default=1200.0,
                        help="K (the top of the paper's third iteration)")
    parser.add_argument("--horizon", type=float, default=PAPER_HORIZON,
                        help="atom ns the collision energy stands for (default: the paper's "
                             "third iteration, 4 x 500 ps x 12288 atoms)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="another model to test (repeatable)")
    parser.add_argument("--no-paper-models", action="store_true",
                        help="leave out NEP802 and NEP802-ZBL")
    parser.add_argument("--jobs", type=int, default=2, help="processes, one thread each")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: one training seed of 2 s, one kick seed, 100 steps")
    return parser


def _jobs(args, out: Path):
    """(the trainings to run, the models: {name: (path, train seed, zbl)})."""
    models, trainings = {}, []
    for seed in args.train_seeds:
        for variant in ("nozbl", "zbl"):
            path = out / "knockon_models" / f"{variant}_seed{seed}.txt"
            name = f"nepzbl {variant} s{seed}"
            models[name] = (str(path), seed, variant == "zbl")
            if not path.is_file():
                trainings.append({"variant": variant, "path": str(path), "seed": seed,
                                  "seconds": args.train_seconds})
    extra = {} if args.no_paper_models else {k: str(DATA / v) for k, v in DEFAULT_MODELS.items()}
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep or not name or not Path(path).is_file():
            raise SystemExit(f"al_contrast_knockon: --model {item}: give NAME=PATH of a nep.txt")
        extra[name] = path
    for name, path in extra.items():
        models[name] = (path, None, None)
    return trainings, models


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.train_seeds, args.train_seconds, args.kick_seeds = [0], 2.0, [1]
        args.steps, args.kicks_per_pair = 100, 1
    if not (DATA / "NEP25-ZBL" / "train.xyz").is_file():
        print(f"al_contrast_knockon: no LLZO data at {DATA}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result_path = out / RESULT
    trainings, models = _jobs(args, out)
    energy = paper_energy(args.temperature, args.horizon)
    old = json.loads(result_path.read_text()) if result_path.is_file() else {}
    settings = {"temperature_K": args.temperature, "horizon_atom_ns": args.horizon,
                "kicks_per_pair": args.kicks_per_pair, "steps": args.steps,
                "train_seconds": args.train_seconds}
    records = old.get("records", []) if old.get("settings") == settings else []
    trained = old.get("trained", {}) if old.get("settings") == settings else {}
    done = {(r["model"], r["kick_seed"]) for r in records}

    def save():
        _write(result_path, {"settings": settings, "E_star_eV": energy, "trained": trained,
                             "records": records})

    kicks = [job for job in knock_on_jobs(
        [(name, path, _model_zbl(path) if zbl is None else zbl, seed)
         for name, (path, seed, zbl) in models.items()], args.kick_seeds,
        temperature=args.temperature, horizon=args.horizon, steps=args.steps,
        kicks_per_pair=args.kicks_per_pair) if (job["name"], job["kick_seed"]) not in done]
    print(f"knock-on collisions of {energy:.2f} eV at {args.temperature:g} K "
          f"(E* of {args.horizon:g} atom ns): {len(trainings)} models to train, "
          f"{len(kicks)} stress tests to run ({len(models)} models x {len(args.kick_seeds)} "
          f"kick seeds, {len(models) * len(args.kick_seeds) - len(kicks)} saved)", flush=True)
    with get_context("spawn").Pool(max(1, args.jobs)) as pool:
        for report in pool.imap_unordered(_train_job, trainings):
            trained[report["model"]] = report
            print(f"trained {report['model']}: force RMSE "
                  f"{1e3 * report['rmse_force_eV_per_A']:.1f} meV/Å in {report['wall_s']} s",
                  flush=True)
            save()
        for record in pool.imap_unordered(knock_on_test, kicks):
            rmse = (trained.get(record["path"]) or {}).get("rmse_force_eV_per_A")
            record["rmse_force_meV_per_A"] = None if rmse is None else 1e3 * rmse
            records.append(record)
            print(f"{record['model']} kick seed {record['kick_seed']}: shortest "
                  f"{record['shortest_A']:.3f} Å, frames failed "
                  f"{record['frames_failed_fraction']:.1%} ({record['wall_s']} s)", flush=True)
            save()
    order = list(models)
    records.sort(key=lambda r: (order.index(r["model"]) if r["model"] in order else 99,
                                r["kick_seed"]))
    save()
    print(format_table([r for r in records if r["model"] in models]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
