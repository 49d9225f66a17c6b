"""``nepzbl train`` and ``nepzbl residual``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import NepzblError

__all__ = ["register"]

_TRAIN_HELP = """\
Train a NEP(-ZBL) model from DIR/nep.in and DIR/train.xyz (DIR/test.xyz is optional), as
GPUMD's `nep` does: the same nep.in, the same loss, the same output files (nep.txt, loss.out,
energy/force/virial/stress_train.out and _test.out), plus parity_*.png and a restart checkpoint
(nepzbl_restart.npz/.json) from which an interrupted run resumes.

Without an `optimizer` line, nep.in trains with Adam on analytic gradients, then full-batch
L-BFGS, and stops when the loss stops improving (or at max_time / epochs; both are nep.in
keywords too, max_time in minutes); `optimizer snes` runs GPUMD's SNES with
population/batch/generation; `optimizer lbfgs` runs full-batch L-BFGS. `prediction 1` evaluates
DIR/nep.txt on train.xyz instead of training."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model from nep.in + train.xyz (GPUMD-compatible)",
        description=_TRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", nargs="?", default=".", metavar="DIR",
                   help="folder with nep.in and train.xyz; outputs go here (default: .)")
    p.add_argument("--optimizer", choices=("adam", "adamw", "lbfgs", "snes"),
                   help="override nep.in's optimizer")
    p.add_argument("--max-time", type=float, metavar="MINUTES",
                   help="stop after this many minutes of training (all resumed runs together)")
    p.add_argument("--epochs", type=int, help="maximum epochs (SNES: generations)")
    p.add_argument("--learning-rate", type=float, help="Adam learning rate")
    p.add_argument("--batch-size", type=int, help="structures per mini-batch")
    p.add_argument("--seed", type=int, help="random seed (same seed, same run)")
    p.add_argument("--target-force-rmse", type=float, metavar="EV_PER_A",
                   help="stop once the train force RMSE is below this (eV/Å)")
    p.add_argument("--adam-only", action="store_true",
                   help="Adam until its own stopping rule, without the L-BFGS phase")
    p.add_argument("--fresh", action="store_true",
                   help="ignore an existing restart checkpoint and start again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)

    r = subparsers.add_parser(
        "residual", help="write labels minus ZBL and how much spread ZBL adds and removes",
        description="Subtract the ZBL part of the model described by DIR/nep.in from the "
        "labels of DIR/train.xyz, write the result as an extended XYZ and print the spread "
        "(standard deviation) of energy (eV/atom), forces (eV/Å) and virials (eV/atom): of the "
        "labels, what ZBL adds (its own spread) and removes (the part along the labels), and "
        "what is left; then the same for the forces per species pair, with the pairs whose ZBL "
        "acts inside the data's distances flagged.",
    )
    r.add_argument("directory", nargs="?", default=".", metavar="DIR",
                   help="folder with nep.in (with a zbl line) and train.xyz (default: .)")
    r.add_argument("--input", default="train.xyz", help="structures file in DIR")
    r.add_argument("--output", default="train_minus_zbl.xyz",
                   help="output file in DIR (default: train_minus_zbl.xyz)")
    r.set_defaults(func=_run_residual)


class TrainingInputError(NepzblError, ValueError):
    """Bad training input (reported as one line by the CLI)."""


def _read_inputs(directory: Path, input_name="train.xyz"):
    from ..io.nep_in import read_nep_in
    from ..io.xyz import read_train_xyz

    nep_in = read_nep_in(directory / "nep.in")
    train = read_train_xyz(directory / input_name, species=nep_in.types)
    test_path = directory / "test.xyz"
    test = read_train_xyz(test_path, species=nep_in.types) if test_path.exists() else None
    return nep_in, train, test


def _run_train(args) -> int:
    from ..model import read_model
    from .trainer import check_header, predict, train

    directory = Path(args.directory)
    nep_in, train_structures, test_structures = _read_inputs(directory)
    if nep_in.prediction:
        model_path = directory / "nep.txt"
        model = read_model(model_path)
        try:
            check_header(model, nep_in.empty_model(), str(model_path))
        except ValueError as err:
            raise TrainingInputError(str(err)) from None
        _, rmse = predict(model, train_structures, directory, which="train")
        print(f"prediction with {model_path} on {len(train_structures)} structures: RMSE "
              f"energy {rmse['energy'] * 1e3:.3f} meV/atom, force {rmse['force'] * 1e3:.2f} "
              f"meV/Å, virial {rmse['virial'] * 1e3:.3f} meV/atom (no shift)")
        return 0
    _print_zbl_setup(nep_in, train_structures)
    if args.fresh:
        for old in directory.glob("nepzbl_restart.*"):
            old.unlink()
    try:
        train(
            train_structures, nep_in, test_structures, output_dir=directory,
            optimizer=args.optimizer,
            max_time=None if args.max_time is None else 60.0 * args.max_time,
            epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
            seed=args.seed, target_force_rmse=args.target_force_rmse,
            polish_after=0 if args.adam_only else None,
            progress=not args.no_progress,
        )
    except NepzblError:
        raise
    except ValueError as err:
        raise TrainingInputError(str(err)) from None
    print(f"wrote {directory / 'nep.txt'}, loss.out, *_train.out"
          + (", *_test.out" if test_structures else "") + ", parity_*.png")
    return 0


def _print_zbl_setup(nep_in, structures) -> None:
    """State which ZBL the run trains with, per pair and from where, and warn loudly when it
    switches inside distances the training data contain (issue: a flexible 'zbl' line copied
    without its zbl.in silently means universal ZBL)."""
    from .residual import zbl_setup

    setup = zbl_setup(nep_in, structures)
    if setup is None:
        return
    print(f"ZBL: {setup.form}, from {setup.source}")
    for name, (inner, outer, data_min) in setup.pairs.items():
        seen = f"beyond {outer:.3f} Å" if data_min is None else f"{data_min:.3f} Å"
        flag = "  INSIDE THE DATA" if name in setup.inside else ""
        print(f"  {name:<8} switch {inner:.3f} to {outer:.3f} Å, data from {seen}{flag}")
    if setup.inside:
        print(f"WARNING: ZBL switches inside distances the training data contain for "
              f"{', '.join(setup.inside)}: ZBL forces carry "
              f"{100 * setup.force_variance_fraction:.3g} % of the label force variance, "
              "and the network has to learn to cancel them. 'nepzbl zbl suggest train.xyz' "
              "proposes radii below the data; a flexible 'zbl' line needs its zbl.in beside "
              "nep.in. 'nepzbl residual' shows the effect per pair.")


def _run_residual(args) -> int:
    from ..io.xyz import write_train_xyz
    from .residual import zbl_residual

    directory = Path(args.directory)
    nep_in, structures, _ = _read_inputs(directory, args.input)
    model = nep_in.empty_model()
    if model.zbl is None:
        raise TrainingInputError(f"{directory / 'nep.in'} has no `zbl` line: nothing to subtract")
    residual, report = zbl_residual(model, structures)
    write_train_xyz(directory / args.output, residual)
    print(report.table())
    print(f"wrote {directory / args.output} ({len(residual)} structures, labels minus ZBL)")
    return 0
