"""Issue 16's contrast with long runs: the first models of the LLZO active learning (25
configurations, with and without the paper's ``zbl 1.8``) in one long NVT run each at the
hottest temperature of the paper's third aggressive iteration, with the active-learning loop's
own MD and failure rule, on the CPU or on a GPU.

Why: the loop's CPU runs (``validation/llzo/run.py``, item 6; ``validation/al_llzo.py``) are
1 to 8 ps long and never reach the collision energy at which the pure model collapses
(E* = k_B T ln(nu N t): 1.0 to 1.1 eV there, against 1.6 to 2.0 eV in the paper's 500 ps
runs). One nanosecond of 192 atoms at 1200 K reaches E* = 1.50 eV, the paper's reach on 192
atoms, at the price of holding the ramp's top temperature instead of ramping to it. E* grows
with the atom-time N t, so a GPU run on a supercell of the start frame (``--repeat 4 4 4``:
12288 atoms, the paper's cells) reaches further in minutes than the CPU in hours.

On the CPU (``--device cpu``) each variant runs in its own process (one engine thread each,
side by side); on a GPU (``--device cuda``: the CUDA evaluator, and through
:func:`nepzbl_plugin.al.sampling.run_md` the md package's device-resident loop, as the loop's
``device = "cuda"`` runs it) the variants run one after the other in this process. Each starts
from the same frame with the same seed; a frame every ``--sample-interval`` steps is checked
against the loop's limits (0.6 x the start data's shortest distance per species pair,
:func:`nepzbl_plugin.al.loop.collapse_limits`), as the loop does in every iteration.

``--wall-seconds`` gives each variant a wall-time budget: the run stops at the first sample
past it (or at the first sample after a SIGTERM, ``timeout``'s signal) and reports how far it
got. The result of each run goes to ``OUT/al_contrast_long_[TAG_]<variant>.json``, rewritten
as the run goes (so a killed run still says how far it got): device, atoms, ps done, the E*
reached (from the ps done, not the planned ps), frames failed, the first failure, the shortest
pair and atom-steps/s. ``--table-only`` prints the table of every such file in ``--out``.
``--model-zbl`` / ``--model-nozbl`` put other models in (the paper's NEP802-ZBL and NEP802,
say) and ``--tag`` keeps their results apart; ``--train-seconds`` trains a missing first model
(from ``llzo/NEP25-ZBL``, Adam, on ``--device``) instead of refusing.

With ``NEPZBL_REHEARSAL=1`` (tools/rehearse_device.py) the sizes shrink to 192 atoms, 1000
steps, a 2 s budget and 2 s of training, the command line staying as it is.

Usage::

    python validation/al_contrast_long.py [--models validation/llzo/out/cpu/item6]
        [--ps 1000] [--temperature 1200] [--sample-interval 500] [--seed 0]
    python validation/al_contrast_long.py --tag nep802 --ps 600 \\
        --model-zbl ../shared/data/llzo/NEP802-ZBL.txt --model-nozbl ../shared/data/llzo/NEP802.txt
    python validation/al_contrast_long.py --device cuda --repeat 4 4 4 --ps 5000 \\
        --wall-seconds 190 --sample-interval 2000 --out gpu-out/contrast  # device_all.sh 4
    python validation/al_contrast_long.py --table-only --out gpu-out/contrast
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:  # an installed nepzbl (CI), else this checkout with its built extensions
    import nepzbl_plugin._core  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "validation"))  # not the script's folder under PYTHONSAFEPATH
from al_llzo import nep_in_text  # noqa: E402  (the loop's first models' nep.in)
from rehearsal import REHEARSAL, rehearsed  # noqa: E402

DATA = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared")) / "data" / "llzo"
OUT = REPO / "validation" / "out"
VARIANTS = {"zbl": "with ZBL (zbl 1.8)", "nozbl": "without ZBL"}
PREFIX = "al_contrast_long_"


def _write(path: Path, record: dict) -> None:
    from nepzbl_plugin.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(record, indent=1) + "\n")


def train_first_model(variant: str, path: Path, device: str, seconds: float,
                      seed: int = 0) -> dict:
    """Train the first model of ``variant`` on the 25 configurations (Adam, ``seconds`` of
    wall time, ``seed``) and write it to ``path``; returns what the training reports."""
    from nepzbl_plugin.io.atomic import atomic_write_text
    from nepzbl_plugin.io.xyz import read_train_xyz
    from nepzbl_plugin.train import train

    path.parent.mkdir(parents=True, exist_ok=True)
    nep_in = path.with_suffix(".nep.in")
    atomic_write_text(nep_in, nep_in_text(variant == "zbl"))
    data = read_train_xyz(DATA / "NEP25-ZBL" / "train.xyz")
    t0 = time.monotonic()
    model, history = train(data, str(nep_in), seed=seed, optimizer="adam", max_time=seconds,
                           resume=False, device=device)
    model.write(path)
    last = history.records[-1] if history.records else {}
    return {"model": str(path), "device": history.device, "seconds": seconds, "seed": seed,
            "wall_s": round(time.monotonic() - t0, 1), "stop_reason": history.stop_reason,
            "rmse_force_eV_per_A": last.get("rmse_force_train"),
            "rmse_energy_eV_per_atom": last.get("rmse_energy_train")}


def start_frame(data, index: int, repeat):
    """The start frame, repeated ``repeat`` = (nx, ny, nz) times along its cell vectors."""
    return data[index].to_atoms().repeat(tuple(repeat))


def _stop_on_sigterm(flag: threading.Event):
    """Turn SIGTERM (``timeout``'s signal) into a stop at the next sample, so a run killed for
    time still writes its result; the previous handler is returned (None off the main
    thread, where signals cannot be caught). Python runs the handler only between calls into
    the engine, and the GPU's device loop runs from one sample to the next in one call: a
    caller that must bound the time sends SIGKILL a little later (``timeout -k``)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda *_: flag.set())


def run_variant(variant: str, model_path: str, args: dict) -> dict:
    """One long run of one model; returns (and writes) its record."""
    if args["device"] == "cpu":
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np

    from nepzbl_plugin.al.config import MDRunSpec
    from nepzbl_plugin.al.loop import collapse_limits
    from nepzbl_plugin.al.sampling import run_md
    from nepzbl_plugin.audit.stress_test import knock_on_energy
    from nepzbl_plugin.engine import Evaluator
    from nepzbl_plugin.io.xyz import read_train_xyz

    t0 = time.monotonic()
    data = read_train_xyz(DATA / "NEP25-ZBL" / "train.xyz")
    species = sorted({s for st in data for s in st.symbols})
    limits = collapse_limits(species, data, 0.6)
    steps = int(round(args["ps"] * 1000 / args["timestep"]))
    spec = MDRunSpec(t_start=args["temperature"], t_end=args["temperature"], steps=steps,
                     timestep=args["timestep"], friction=0.01,
                     sample_interval=args["sample_interval"], thermostat="langevin")
    if args["device"] == "cuda":
        evaluator = Evaluator(model_path, device="cuda", precision=args["precision"])
    else:
        evaluator = Evaluator(model_path, num_threads=1)
    path = Path(args["out"]) / f"{PREFIX}{args['tag']}{variant}.json"
    start = start_frame(data, args["start_frame"], args["repeat"])
    atoms = len(start)

    def reached(ps):  # E* of the atom-time done, eV (None before the first sample)
        return round(knock_on_energy(args["temperature"], atoms * ps * 1e-3), 3) if ps else None

    record = {"variant": VARIANTS[variant], "tag": args["tag"].rstrip("_"),
              "model": str(model_path), "device": evaluator.device,
              "precision": args["precision"] if evaluator.device == "cuda" else "float64",
              "atoms": atoms, "repeat": list(args["repeat"]),
              "temperature_K": args["temperature"], "planned_ps": args["ps"],
              "wall_budget_s": args["wall_seconds"],
              "timestep_fs": args["timestep"], "sample_interval": args["sample_interval"],
              "seed": args["seed"], "start_frame": args["start_frame"],
              "limits_A": {"-".join(k): round(v, 4) for k, v in sorted(limits.items())},
              "collision_energy_planned_eV": reached(args["ps"]),
              "collision_energy_eV": None, "ps_done": 0.0, "status": "running"}
    if args.get("training"):
        record["training"] = args["training"]
    _write(path, record)
    terminate = threading.Event()
    previous = _stop_on_sigterm(terminate)
    last_write = [time.monotonic()]

    def progress(done, total):
        now = time.monotonic()
        ps = done * args["sample_interval"] * args["timestep"] / 1000
        if done % 20 == 0 or done == total or now - last_write[0] > 10:
            record.update({"samples_done": done, "samples_planned": total, "ps_done": ps,
                           "collision_energy_eV": reached(ps),
                           "wall_s": round(now - t0, 1)})
            _write(path, record)
            last_write[0] = now
        if terminate.is_set():
            return "stopped by SIGTERM"
        if args["wall_seconds"] and now - t0 >= args["wall_seconds"]:
            return f"wall budget of {args['wall_seconds']:g} s reached"
        return None

    try:
        result = run_md(start, evaluator, spec, limits, seed=args["seed"], callback=progress)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    failed_at = next((k for k, bad in enumerate(result.failed) if bad), None)
    ps_done = result.steps_done * args["timestep"] / 1000
    status = ("aborted: " + result.aborted if result.aborted
              else "stopped: " + result.stopped if result.stopped else "done")
    record.update({
        "status": status,
        "steps_done": result.steps_done,
        "ps_done": ps_done,
        "collision_energy_eV": reached(ps_done),
        "samples_planned": result.planned,
        "samples_done": len(result.frames),
        "failed_frames": int(sum(result.failed)),
        "failure_ratio": (sum(result.failed) / len(result.frames)) if result.frames else None,
        "aborted": result.aborted,
        "first_failure_ps": None if failed_at is None
        else (failed_at + 1) * args["sample_interval"] * args["timestep"] / 1000,
        "shortest_distance_A": float(np.min(result.min_distances)) if result.min_distances
        else None,
        "wall_s": round(time.monotonic() - t0, 1),
        "md_wall_s": round(result.wall_seconds, 1),
        "atom_steps_per_s": round(atoms * result.steps_done / max(result.wall_seconds, 1e-9)),
    })
    _write(path, record)
    return record


def _number(value, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def format_table(records) -> str:
    """One line per run: what the docs copy."""
    lines = [f"{'run':<22} {'device':<6} {'atoms':>6} {'ps done':>8} {'E* (eV)':>8} "
             f"{'frames failed':>14} {'first failure (ps)':>19} {'shortest (Å)':>13} "
             f"{'atom-steps/s':>13} {'ended':<10}"]
    for r in records:
        name = (f"{r['tag']}: " if r.get("tag") else "") + r["variant"]
        done = r.get("samples_done")
        failed = ("-" if r.get("failed_frames") is None
                  else f"{r['failed_frames']} of {done}")
        status = r.get("status", "?")
        ended = ("running?" if status == "running" else status.split(":")[0]
                 if not status.startswith("stopped") else
                 "SIGTERM" if "SIGTERM" in status else "budget")
        lines.append(
            f"{name:<22} {r.get('device', 'cpu'):<6} {r['atoms']:>6} "
            f"{_number(r.get('ps_done'), '8.1f'):>8} "
            f"{_number(r.get('collision_energy_eV'), '8.2f'):>8} {failed:>14} "
            f"{_number(r.get('first_failure_ps'), '.1f'):>19} "
            f"{_number(r.get('shortest_distance_A'), '.3f'):>13} "
            f"{_number(r.get('atom_steps_per_s'), '.3g'):>13} {ended:<10}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=str(REPO / "validation/llzo/out/cpu/item6"),
                        help="folder with zbl/ and nozbl/ active-learning states (item 6)")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS),
                        default=list(VARIANTS), help="which to run (default: both)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: one process and engine thread per variant, side by side; "
                             "cuda: the GPU, the variants one after the other (default cpu)")
    parser.add_argument("--precision", choices=("float64", "float32"), default="float64",
                        help="the CUDA engine's arithmetic (default float64, the loop's)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--repeat", type=int, nargs=3, metavar=("NX", "NY", "NZ"),
                      default=None, help="supercell of the start frame (default 1 1 1: 192 "
                                         "atoms; 2 2 2: 1536; 4 4 4: 12288)")
    size.add_argument("--atoms", type=int, default=None,
                      help="a cubic supercell of the start frame of this many atoms (192 k^3)")
    parser.add_argument("--ps", type=float, default=1000.0, help="planned run length, ps")
    parser.add_argument("--wall-seconds", type=float, default=None,
                        help="wall-time budget of each variant, s (setup included): the run "
                             "stops at the first sample past it (default: none)")
    parser.add_argument("--temperature", type=float, default=1200.0, help="K")
    parser.add_argument("--timestep", type=float, default=1.0, help="fs")
    parser.add_argument("--sample-interval", type=int, default=500, help="steps per frame")
    parser.add_argument("--start-frame", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-zbl", default=None,
                        help="a nep.txt with ZBL instead of the first model under --models")
    parser.add_argument("--model-nozbl", default=None,
                        help="a nep.txt without ZBL instead of the first model under --models")
    parser.add_argument("--train-seconds", type=float, default=None,
                        help="train a missing model (the first model: NEP25-ZBL, Adam, seed "
                             "0, on --device) for this many seconds and write it where it "
                             "was looked for (default: refuse)")
    parser.add_argument("--tag", default="",
                        help="added to the result files' names (al_contrast_long_TAG_zbl.json)")
    parser.add_argument("--out", default=str(OUT),
                        help="folder of the result files (default validation/out)")
    parser.add_argument("--table-only", action="store_true",
                        help="print the table of the result files in --out, run nothing")
    return parser


def _repeat(args, atoms_in_frame: int) -> tuple[int, int, int]:
    if args.atoms is not None:
        side = round((args.atoms / atoms_in_frame) ** (1 / 3))
        if side < 1 or atoms_in_frame * side ** 3 != args.atoms:
            raise SystemExit(f"al_contrast_long: --atoms {args.atoms} is not {atoms_in_frame} "
                             f"k^3 (the start frame repeated k times along each axis)")
        return (side, side, side)
    repeat = tuple(args.repeat or (1, 1, 1))
    if min(repeat) < 1:
        raise SystemExit(f"al_contrast_long: --repeat {repeat}: counts of 1 or more")
    return repeat


def _frame_atoms(args) -> int:
    from nepzbl_plugin.io.xyz import read_train_xyz

    return len(read_train_xyz(DATA / "NEP25-ZBL" / "train.xyz")[args.start_frame].symbols)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.table_only:
        files = sorted(Path(args.out).glob(f"{PREFIX}*.json"))
        if not files:
            print(f"al_contrast_long: no {PREFIX}*.json in {args.out}", file=sys.stderr)
            return 1
        print(format_table([json.loads(f.read_text()) for f in files]))
        return 0
    repeat = (1, 1, 1) if REHEARSAL else _repeat(args, _frame_atoms(args))
    models = {v: Path(args.models) / v / "state" / "iter_000" / "nep.txt" for v in VARIANTS}
    if args.model_zbl:
        models["zbl"] = Path(args.model_zbl)
    if args.model_nozbl:
        models["nozbl"] = Path(args.model_nozbl)
    models = {v: models[v] for v in VARIANTS if v in args.variants}
    training = {}
    for variant, path in models.items():
        if not path.is_file() and args.train_seconds:
            seconds = rehearsed(args.train_seconds, min(args.train_seconds, 2.0))
            training[variant] = train_first_model(variant, path, args.device, seconds)
            print(f"trained the first model {variant} on {training[variant]['device']} in "
                  f"{training[variant]['wall_s']:.0f} s: force RMSE "
                  f"{1000 * (training[variant]['rmse_force_eV_per_A'] or math.nan):.0f} meV/Å "
                  f"-> {path}", flush=True)
    missing = [str(p) for p in models.values() if not p.is_file()]
    if missing:
        print(f"al_contrast_long: no first model at {', '.join(missing)}; run "
              "validation/llzo/run.py --size cpu --only 6 first, or give --train-seconds",
              file=sys.stderr)
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    # a rehearsal: 192 atoms, frames every 20 steps, and a budget of 2 s that stops a run of
    # 1000 steps (about 8 s in the host emulation) early, so that the budget's path runs too
    wall = args.wall_seconds
    settings = {"ps": rehearsed(args.ps, min(args.ps, 1.0)), "temperature": args.temperature,
                "timestep": args.timestep,
                "sample_interval": rehearsed(args.sample_interval, min(args.sample_interval, 20)),
                "start_frame": args.start_frame, "seed": args.seed,
                "tag": f"{args.tag}_" if args.tag else "", "out": args.out,
                "device": args.device, "precision": args.precision,
                "repeat": repeat,
                "wall_seconds": rehearsed(wall, wall and min(wall, 2.0))}
    if args.device == "cuda":  # one GPU: one variant after the other, in this process
        records = [run_variant(v, str(p), {**settings, "training": training.get(v)})
                   for v, p in models.items()]
    else:
        with get_context("spawn").Pool(len(models)) as pool:
            # SIGTERM here stops the workers at their next sample (they write their results)
            # instead of leaving them to write into a closed pipe
            signal.signal(signal.SIGTERM, lambda *_: [
                os.kill(worker.pid, signal.SIGTERM) for worker in pool._pool])
            jobs = [pool.apply_async(run_variant, (v, str(p), {**settings,
                                                               "training": training.get(v)}))
                    for v, p in models.items()]
            records = [job.get() for job in jobs]
    print(format_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
