"""``nepzbl learning-curve``: held-out RMSE (and optionally a diffusivity) against the number of
training frames, from a nep.in and a data set."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ._common import ProgressBars, check_species, positive_float, positive_int, seed

__all__ = ["register"]

_HELP = """\
Train on growing, seeded random subsets of a data set (REPEATS models per size, the subsets of
one repeat nested) with the same nep.in, and score every model on a held-out set (GPUMD's
prediction mode, no shift): energy RMSE in meV/atom, force RMSE in meV/Å, virial RMSE in
meV/atom, as mean ± standard deviation over the repeats.

The held-out set is --held-out FILE, else a seeded random --held-out-fraction of the data.
With --diffusivity STRUCTURE each model also runs a short Bussi NVT (--md-* options) and reports
the MSD diffusivity of --md-species in cm²/s (D = slope/6 over the first half of the window):
"force RMSE does not reliably predict transport".

Outputs in --out: learning_curve.txt (a table, units in the header), learning_curve.json (every
model and the per-size summary) and learning_curve.png (RMSE against size, log-log, error bars =
spread over repeats); with --keep-models, each model's nep.txt and loss.out in n<SIZE>_r<REPEAT>/.

Example: nepzbl learning-curve nep.in train.xyz --sizes 5 10 20 --repeats 3 --epochs 200
         --held-out test.xyz --out lc"""

# command-line option -> nep.in keyword whose range check it goes through
_TRAIN_OPTIONS = {"optimizer": "optimizer", "max_time": "max_time", "epochs": "epochs",
                  "learning_rate": "learning_rate", "batch_size": "batch_size"}


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "learning-curve", help="held-out RMSE (and diffusivity) against training-set size",
        description=_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("nep_in", metavar="NEP_IN", help="nep.in every model is trained with")
    p.add_argument("data", metavar="DATA", help="training frames (GPUMD's train.xyz format)")
    p.add_argument("--sizes", type=positive_int, nargs="+", required=True, metavar="N",
                   help="subset sizes in frames")
    p.add_argument("--repeats", type=positive_int, default=3,
                   help="models per size, each from its own seeded subset (default 3)")
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the split, the subsets and the training (default 0)")
    held = p.add_mutually_exclusive_group()
    held.add_argument("--held-out", metavar="FILE", default=None,
                      help="held-out frames (train.xyz format); default: a random split")
    held.add_argument("--held-out-fraction", type=_fraction, default=0.2,
                      help="fraction of DATA held out when no --held-out (default 0.2)")
    p.add_argument("--optimizer", metavar="{adam,lbfgs,snes}", help="override nep.in's optimizer")
    p.add_argument("--epochs", metavar="N", help="maximum epochs (SNES: generations) per model")
    p.add_argument("--max-time", metavar="MINUTES", help="training minutes per model")
    p.add_argument("--learning-rate", metavar="RATE", help="Adam learning rate (> 0)")
    p.add_argument("--batch-size", metavar="N", help="structures per mini-batch (>= 1)")
    p.add_argument("--diffusivity", metavar="STRUCTURE", default=None,
                   help="start structure (any ase.io.read format) of a short MD per model")
    p.add_argument("--md-temperature", type=positive_float, default=1000.0, metavar="K",
                   help="MD temperature in K (default 1000)")
    p.add_argument("--md-steps", type=positive_int, default=2000,
                   help="MD steps per model (default 2000)")
    p.add_argument("--md-dt", type=positive_float, default=1.0, metavar="FS",
                   help="MD time step in fs (default 1)")
    p.add_argument("--md-every", type=positive_int, default=10,
                   help="steps between MSD frames (default 10)")
    p.add_argument("--md-species", default="Li", help="diffusing species (default Li)")
    p.add_argument("--md-window", type=positive_float, default=None, metavar="FS",
                   help="MSD window in fs (default: run length / blocks)")
    p.add_argument("--md-blocks", type=int, default=2,
                   help="blocks for the diffusivity error (default 2)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="engine threads of the MD (default: OpenMP's)")
    p.add_argument("--out", default="learning_curve",
                   help="output folder (default ./learning_curve)")
    p.add_argument("--keep-models", action="store_true",
                   help="write every model's training files into --out/n<SIZE>_r<REPEAT>/")
    p.add_argument("--json", action="store_true",
                   help="print the result as one JSON object instead of the table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _train_options(args) -> dict:
    from ..io.nep_in import check_option

    options = {}
    for name, keyword in _TRAIN_OPTIONS.items():
        text = getattr(args, name)
        if text is not None:
            options[name] = check_option("--" + name.replace("_", "-"), keyword, text)
    if "max_time" in options:
        options["max_time"] = 60.0 * options["max_time"]  # minutes -> seconds
    return options


def _fmt(mean, std, scale: float, digits: int) -> str:
    if mean is None:
        return "n/a"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


_COLUMNS = (  # (summary key, scale, header, digits)
    ("rmse_energy_eV_per_atom", 1e3, "E_rmse_meV/atom", 3),
    ("rmse_force_eV_per_A", 1e3, "F_rmse_meV/A", 2),
    ("rmse_virial_eV_per_atom", 1e3, "V_rmse_meV/atom", 3),
    ("diffusivity_cm2_per_s", 1.0, "D_cm2/s", None),
)


def table_text(curve) -> str:
    """The per-size table: size, repeats, then mean and std of each metric (RMSE in meV,
    D in cm²/s; 'nan' where absent); numpy.loadtxt reads it."""
    header = ["size", "repeats"]
    for _, _, name, _ in _COLUMNS:
        header += [name, name + "_std"]
    lines = ["# " + " ".join(header)]
    for row in curve.summary():
        values = [str(row["size"]), str(row["repeats"])]
        for key, scale, _, _ in _COLUMNS:
            for part in ("mean", "std"):
                value = row[f"{key}_{part}"]
                values.append("nan" if value is None else f"{value * scale:.6g}")
        lines.append(" ".join(values))
    return "\n".join(lines) + "\n"


def _run(args) -> int:
    from ..io.atomic import atomic_write_text
    from ..io.nep_in import read_nep_in
    from ..io.xyz import read_train_xyz
    from ..train.learning_curve import DiffusivityProbe, learning_curve, plot_learning_curve

    options = _train_options(args)  # bad values fail before any file is read
    nep_in = read_nep_in(args.nep_in)
    structures = read_train_xyz(args.data, species=nep_in.types)
    held_out = (None if args.held_out is None
                else read_train_xyz(args.held_out, species=nep_in.types))
    probe = None
    if args.diffusivity is not None:
        from ase.io import read

        from ..errors import NepFormatError

        try:
            start = read(args.diffusivity, index=-1)
        except Exception as err:  # ASE raises many types for unreadable files
            raise NepFormatError(args.diffusivity, None,
                                 f"cannot read a structure: {err}") from None
        check_species(args.diffusivity, [start], nep_in.types,
                      f"{args.nep_in}'s type list ({' '.join(nep_in.types)})")
        probe = DiffusivityProbe(start, args.md_temperature, steps=args.md_steps,
                                 timestep_fs=args.md_dt, every=args.md_every,
                                 species=args.md_species, window_fs=args.md_window,
                                 blocks=args.md_blocks, threads=args.threads, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = (None if args.no_progress or not sys.stderr.isatty()
                else ProgressBars(unit="model"))
    curve = learning_curve(structures, nep_in, args.sizes, repeats=args.repeats, seed=args.seed,
                           held_out=held_out, held_out_fraction=args.held_out_fraction,
                           output_dir=out if args.keep_models else None, diffusivity=probe,
                           progress=progress, **options)
    if progress is not None:
        progress.close()
    result = curve.as_dict()
    result["nep_in"], result["data"] = str(args.nep_in), str(args.data)
    atomic_write_text(out / "learning_curve.txt", table_text(curve))
    atomic_write_text(out / "learning_curve.json", json.dumps(_jsonable(result), indent=1) + "\n")
    png = plot_learning_curve(curve, out / "learning_curve.png")
    if args.json:
        print(json.dumps(_jsonable(result)))
        return 0
    print(f"learning curve: {len(curve.points)} models, {curve.pool_frames} frames to draw "
          f"from, {curve.held_out_frames} held out; held-out RMSE mean ± std over repeats")
    has_d = probe is not None
    head = f"{'frames':>7} {'repeats':>7}  {'energy (meV/atom)':>18}  {'force (meV/Å)':>16}  " \
           f"{'virial (meV/atom)':>18}" + ("  D (cm²/s)" if has_d else "")
    print(head)
    for row in curve.summary():
        energy = _fmt(row["rmse_energy_eV_per_atom_mean"], row["rmse_energy_eV_per_atom_std"],
                      1e3, 3)
        force = _fmt(row["rmse_force_eV_per_A_mean"], row["rmse_force_eV_per_A_std"], 1e3, 2)
        virial = _fmt(row["rmse_virial_eV_per_atom_mean"], row["rmse_virial_eV_per_atom_std"],
                      1e3, 3)
        line = f"{row['size']:>7} {row['repeats']:>7}  {energy:>18}  {force:>16}  {virial:>18}"
        if has_d:
            mean, std = row["diffusivity_cm2_per_s_mean"], row["diffusivity_cm2_per_s_std"]
            line += "  n/a" if mean is None else f"  {mean:.3e} ± {std:.1e}"
        print(line)
    print(f"wrote {out / 'learning_curve.txt'}, {out / 'learning_curve.json'}, {png}")
    return 0


def _jsonable(value):
    """NaN and infinities -> null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
