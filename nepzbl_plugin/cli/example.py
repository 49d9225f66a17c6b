"""``nepzbl write-example-model``: a small random (untrained) NEP-ZBL model."""

from __future__ import annotations

import argparse

from ..errors import NepzblError
from ._common import seed

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``nepzbl write-example-model``."""
    fmt = argparse.HelpFormatter

    p = subparsers.add_parser(
        "write-example-model",
        help="write a small valid NEP-ZBL model built by nepzbl itself",
        description="Write a small random but physically sensible NEP4 model with ZBL "
        "(readable by GPUMD, NEP_CPU and calorine). It is not trained: use it to try the "
        "tools, not for physics.",
        formatter_class=fmt,
    )
    p.add_argument("path", metavar="PATH", help="nep.txt to write")
    p.add_argument(
        "--types",
        nargs="+",
        default=["Li", "La", "Zr", "O"],
        metavar="EL",
        help="element symbols (default: Li La Zr O)",
    )
    p.add_argument(
        "--zbl",
        choices=["universal", "typewise", "flexible", "none"],
        default="universal",
        help="ZBL mode (default: universal)",
    )
    p.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    p.set_defaults(func=_cmd_write_example_model)


# ------------------------------------------------------------------------------ example model
def _cmd_write_example_model(args) -> int:
    from ..elements import SYMBOLS

    unknown = [s for s in args.types if s not in SYMBOLS]
    if unknown:
        raise NepzblError(f"unknown element symbol(s): {' '.join(unknown)} (H..Pu)")
    if len(set(args.types)) != len(args.types):
        raise NepzblError("each element may appear only once in --types")
    zbl = None if args.zbl == "none" else args.zbl
    model = _example_model(args.types, zbl, args.seed)
    model.write(args.path)
    print(
        f"wrote {args.path}: {model.model_token}, species {' '.join(model.types)}, "
        f"{model.num_parameters} parameters (random, untrained)"
    )
    return 0


def _example_model(types, zbl, seed):
    from ..testing import random_model

    return random_model(version=4, types=tuple(types), zbl=zbl, seed=seed)
