"""``nepzbl residual``: the labels minus ZBL, and how much spread ZBL adds and removes."""

from __future__ import annotations

from pathlib import Path

from .train import TrainingInputError, _read_inputs

__all__ = ["register"]


def register(subparsers) -> None:
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
    r.add_argument("--input", default="train.xyz",
                   help="structures file in DIR (default: train.xyz)")
    r.add_argument("--output", default="train_minus_zbl.xyz",
                   help="output file in DIR (default: train_minus_zbl.xyz)")
    r.set_defaults(func=_run_residual)


def _run_residual(args) -> int:
    from ..io.xyz import write_train_xyz
    from ..model import Model
    from ..train.residual import zbl_residual

    directory = Path(args.directory)
    nep_in, structures, _ = _read_inputs(directory, args.input)
    model = Model.from_nep_in(nep_in)
    if model.zbl is None:
        raise TrainingInputError(f"{directory / 'nep.in'} has no `zbl` line: nothing to subtract")
    residual, report = zbl_residual(model, structures)
    write_train_xyz(directory / args.output, residual)
    print(report.table())
    print(f"wrote {directory / args.output} ({len(residual)} structures, labels minus ZBL)")
    return 0
