"""``nepzbl demo``: a pure NEP and a NEP-ZBL trained on EMT Cu-Ni data and audited."""

from __future__ import annotations

import argparse
import sys

from ..demo import DEMO_EPOCHS, run_demo
from ._common import ProgressBars, non_negative_float, non_negative_int, positive_int, seed
from .train import TrainingProgressBar

__all__ = ["register"]

_DESCRIPTION = """\
Why ZBL matters, in a few minutes on a laptop:

1. build a small Cu-Ni alloy data set labelled by ASE's EMT calculator: hot MD frames (600 to
   1500 K) of 32-atom fcc cells, with no close contacts (every distance above 2.0 Å);
2. choose ZBL from these data (as `nepzbl zbl suggest` does);
3. train a pure NEP and a NEP-ZBL model on the same data for the same number of epochs;
4. audit both (dimer scans, the data's distances, a short hot-MD stress test) and show the
   difference on the terminal and in demo_dimers.png.

Everything is written to the --out folder (nep.txt files, audit JSON, summary.json)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="train a pure NEP and a NEP-ZBL on EMT Cu-Ni data and audit both",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="nepzbl-demo", help="output folder (default nepzbl-demo)")
    parser.add_argument("--structures", type=positive_int, default=60,
                        help="number of EMT frames (default 60)")
    parser.add_argument("--epochs", type=positive_int, default=DEMO_EPOCHS,
                        help=f"training epochs per model (default {DEMO_EPOCHS}; a step "
                        "budget, so the same seed gives the same models everywhere)")
    parser.add_argument("--md-steps", type=non_negative_int, default=1000,
                        help="hot-MD stress-test steps of 1 fs (default 1000)")
    parser.add_argument("--rattle", type=non_negative_float, default=0.4,
                        help="stress-test start rattled by this much, Å (default 0.4; 0: off)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    bars = sys.stderr.isatty()
    run_demo(args.out, num_structures=args.structures, train_epochs=args.epochs,
             md_steps=args.md_steps, rattle=args.rattle, seed=args.seed,
             progress=ProgressBars() if bars else None,
             train_progress=TrainingProgressBar() if bars else None, log=print)
    return 0
