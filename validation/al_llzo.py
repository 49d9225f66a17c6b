"""The NEP-ZBL paper's aggressive active-learning protocol on LLZO, with and without ZBL
(issue 16, target 1), reduced for the CPU.

The paper (Yan, Fan, Zhu, arXiv 2504.15925): starting from 25 configurations, three iterations of
four MD runs with temperature ramps (100-400 K, 500-800 K, 800-1200 K, 500 ps each), NEPstd as
the oracle, farthest-point sampling with minimum distance 0.008-0.01, retraining when more than
20 new frames came in. With ZBL the failure ratio stayed 0 (207 configurations); without ZBL the
same iterations failed 19.9 % and 57.9 %.

Here: the same start data (``llzo/NEP25-ZBL/train.xyz``, 192 atoms per frame), the paper's
``nep.in`` with and without its ``zbl 1.8`` line, NEPstd (``llzo/NEPstd.txt``) as the oracle,
the same three temperature ramps of four runs; but MD runs of ``--md-steps`` fs (default 1000,
i.e. 1 ps instead of 500 ps) on 192 atoms and trainings limited in wall time, because this runs
on a shared CPU. Each variant is one ``nepzbl al`` state folder under ``--out``.

Usage::

    python validation/al_llzo.py --variant zbl     # in one terminal
    python validation/al_llzo.py --variant nozbl   # in another (one engine thread each)
    python validation/al_llzo.py --variant report  # the comparison
    python validation/al_llzo.py --smoke           # a seconds-long check of the wiring (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:  # an installed nepzbl (CI), else this checkout with its built extensions
    import nepzbl_plugin._core  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared")) / "data" / "llzo"

PAPER_RAMPS = [(100.0, 400.0), (500.0, 800.0), (800.0, 1200.0)]  # K, one per iteration


def nep_in_text(with_zbl: bool) -> str:
    """``llzo/NEP25-ZBL/nep.in`` as the loop's first models train from it: without its SNES
    settings, and without its ``zbl`` line for the pure model."""
    lines = []
    for line in (DATA / "NEP25-ZBL" / "nep.in").read_text().splitlines():
        keyword = line.split()[0] if line.split() else ""
        if keyword == "zbl" and not with_zbl:
            continue
        if keyword in ("population", "generation", "batch"):
            continue  # SNES settings; the CPU run trains with the gradient optimiser
        lines.append(line)
    return "\n".join(lines) + "\n"


def _steps_per_iteration(text, iterations: int) -> list[int]:
    """``--md-steps``: one count for every iteration, or one per iteration ("2000,4000,8000")."""
    values = [int(v) for v in str(text).split(",")]
    if len(values) == 1:
        values *= iterations
    if len(values) < iterations or min(values) < 1:
        raise SystemExit(f"al_llzo: --md-steps {text}: give one positive count or {iterations}")
    return values[:iterations]


def write_config(folder: Path, *, with_zbl: bool, args) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nep.in").write_text(nep_in_text(with_zbl))
    initial_model = None
    if args.initial_models:
        # the first model of an earlier run of this script (same data, same nep.in): saves its
        # training and starts both variants from models whose audits are known
        variant = "zbl" if with_zbl else "nozbl"
        initial_model = Path(args.initial_models) / variant / "state" / "iter_000" / "nep.txt"
        if not initial_model.is_file():
            raise SystemExit(f"al_llzo: no first model at {initial_model}")
        (folder / "initial_nep.txt").write_text(initial_model.read_text())
    ramps = PAPER_RAMPS[: args.iterations]
    steps = _steps_per_iteration(args.md_steps, len(ramps))
    horizon = getattr(args, "knock_on_horizon", None)
    knock_on = "" if horizon is None else f"knock_on_horizon = {horizon:g}\n"
    iterations = "".join(
        f"\n[[iteration]]\nruns = {args.runs}\ntemperature = [{lo}, {hi}]\nsteps = {n}\n"
        for (lo, hi), n in zip(ramps, steps, strict=True))
    text = f"""\
# written by validation/al_llzo.py: the paper's aggressive protocol, reduced for the CPU
state = "state"
seed = {args.seed}
threads = {args.threads}
device = "{getattr(args, 'device', 'cpu')}"

[data]
train = "{DATA / 'NEP25-ZBL' / 'train.xyz'}"
nep_in = "nep.in"
{'model = "initial_nep.txt"' if initial_model else ''}

[oracle]
calculator = "{DATA / 'NEPstd.txt'}"

[md]
timestep = 1.0
friction = 0.01
sample_interval = {args.sample_interval}
thermostat = "{args.thermostat}"
{knock_on}{iterations}
[selection]
method = "{args.selection}"
min_distance = {args.min_distance}
max_frames = {args.max_frames}

[filter]
fraction = 0.6

[training]
min_new_frames = {args.min_new}
max_time = {args.finetune_seconds}
initial_max_time = {args.initial_seconds}
{'' if args.initial_epochs is None else f'initial_epochs = {args.initial_epochs}'}
{'' if args.epochs is None else f'epochs = {args.epochs}'}
fine_tune = true

[audit]
enabled = {str(not args.no_audit).lower()}
hot_md = false
"""
    path = folder / "al.toml"
    path.write_text(text)
    return path


def run_variant(name: str, args) -> dict:
    from nepzbl_plugin.al import format_table, load_config, run_active_learning

    folder = Path(args.out) / name
    path = write_config(folder, with_zbl=name == "zbl", args=args)
    config = load_config(path)
    def progress(event, info):
        if event in ("iteration_start", "md_run_done", "selected", "labelled", "training",
                     "audited", "iteration_done"):
            shown = {k: v for k, v in info.items() if k != "failure_ratio_per_run"}
            print(f"[{name}] {event} {shown}", flush=True)

    result = run_active_learning(config, callback=progress)
    print(f"\n{name}:\n{format_table(result.records)}", flush=True)
    summary = {"variant": name, "records": result.records,
               "settings": {k: getattr(args, k) for k in vars(args)}}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def report(args) -> None:
    rows = []
    for name in ("zbl", "nozbl"):
        path = Path(args.out) / name / "summary.json"
        if not path.is_file():
            print(f"{name}: no summary yet ({path})")
            continue
        for r in json.loads(path.read_text())["records"]:
            rows.append((name, r))
    print(f"{'variant':<8} {'iter':>4} {'T (K)':>10} {'MD (ps)':>8} {'failure (%)':>11} "
          f"{'per run (%)':>24} {'new':>4} {'size':>5} {'updated':>7}")
    for name, r in rows:
        per_run = " ".join(f"{100 * f:.0f}" for f in r["failure_ratio_per_run"])
        t_low, t_high = r["temperature_K"]
        print(f"{name:<8} {r['iteration']:>4} {t_low:>4.0f}-{t_high:<5.0f} "
              f"{r['md_length_ps']:>8.2f} {100 * r['failure_ratio']:>11.1f} {per_run:>24} "
              f"{r['new_frames']:>4} {r['training_size']:>5} "
              f"{'yes' if r['updated'] else 'no':>7}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=("zbl", "nozbl", "both", "report"), default="both")
    parser.add_argument("--out", default="al_llzo", help="output folder (default al_llzo)")
    parser.add_argument("--iterations", type=int, default=3, help="1 to 3 (default 3)")
    parser.add_argument("--runs", type=int, default=4, help="MD runs per iteration (default 4)")
    parser.add_argument("--md-steps", default="1000",
                        help="steps of 1 fs per run, one count or one per iteration "
                             "(e.g. 2000,4000,8000; default 1000; the paper: 500000)")
    parser.add_argument("--sample-interval", type=int, default=20,
                        help="steps between candidate frames (default 20)")
    parser.add_argument("--thermostat", choices=("langevin", "bussi"), default="langevin",
                        help="NVT thermostat of the MD runs (default langevin)")
    parser.add_argument("--initial-models", default=None, metavar="FOLDER",
                        help="start from the first models of an earlier run's --out FOLDER "
                             "(FOLDER/<variant>/state/iter_000/nep.txt) instead of training them")
    parser.add_argument("--selection", choices=("fps", "maxvol"), default="fps")
    parser.add_argument("--min-distance", type=float, default=0.01,
                        help="FPS minimum distance (default 0.01, the paper's 0.008 to 0.01)")
    parser.add_argument("--max-frames", type=int, default=60,
                        help="frames per iteration at most (default 60)")
    parser.add_argument("--min-new", type=int, default=20,
                        help="retrain when at least this many new frames (default 20)")
    parser.add_argument("--initial-seconds", type=float, default=300.0,
                        help="training budget of the first model, s (default 300)")
    parser.add_argument("--initial-epochs", type=int, default=None)
    parser.add_argument("--finetune-seconds", type=float, default=90.0,
                        help="budget of each fine-tuning, s (default 90)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per fine-tuning instead of a time budget")
    parser.add_argument("--knock-on-horizon", type=float, default=None, metavar="ATOM_NS",
                        help="end every MD run with knock-on collisions at the energy E* a "
                             "production run of this many atom ns meets at the top of the "
                             "iteration's ramp (the paper's 4 x 500 ps of 12288 atoms: 24576); "
                             "runs need 1000 + 5400 steps (9 species pairs x 3 rounds x 200)")
    parser.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-audit", action="store_true", help="skip the audit of each model")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long wiring check: 1 iteration, 1 run of 20 steps, "
                             "2-epoch trainings, no audit")
    args = parser.parse_args(argv)
    if not (DATA / "NEPstd.txt").is_file():
        print(f"al_llzo: the public LLZO data are not at {DATA}", file=sys.stderr)
        return 2
    if args.smoke:
        args.iterations, args.runs, args.md_steps, args.sample_interval = 1, 1, 20, 5
        args.initial_epochs, args.epochs, args.no_audit, args.min_new = 2, 2, True, 1
        args.max_frames = 2
        if args.out == "al_llzo":
            args.out = "al_llzo_smoke"
    if args.variant == "report":
        report(args)
        return 0
    for name in (("zbl", "nozbl") if args.variant == "both" else (args.variant,)):
        run_variant(name, args)
    report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
