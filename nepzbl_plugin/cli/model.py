"""``nepzbl model``: rewrite a model (add or strip ZBL, upgrade, fix a temperature model's
temperature, full precision)."""

from __future__ import annotations

import argparse
import sys

from ..errors import NepzblError
from ..neighbours import GPUMD_MAX_NEIGHBORS, estimate_neighbour_counts
from ._common import positive_float

__all__ = ["register", "estimate_neighbour_counts"]

# GPUMD's nep accepts 1 <= r_outer <= 4 Angstrom for `zbl` and a typewise factor >= 0.5.
_ZBL_OUTER_RANGE = (1.0, 4.0)
_TYPEWISE_FACTOR_MIN = 0.5
# GPUMD MD refuses MN_R > 819; 0.15 atoms/A^3 is denser than nearly every solid.


def register(subparsers) -> None:
    """Add ``nepzbl model``."""
    fmt = argparse.HelpFormatter

    p = subparsers.add_parser(
        "model",
        help="rewrite a model: add or strip ZBL, upgrade an old header, fix a temperature "
        "model's temperature, full precision",
        description="Read MODEL and write it to OUT in the current GPUMD format (old header "
        "forms are upgraded). --add-zbl adds universal ZBL with the given outer radius (inner = "
        "outer/2, as GPUMD writes it); with --typewise FACTOR the per-pair outer radius is "
        "min(FACTOR (R_cov,a + R_cov,b), R_OUTER) with inner 0. Adding ZBL changes the "
        "physics: the network must be retrained or fine-tuned afterwards. --at-temperature T "
        "turns a temperature model (nep4_temperature) into the plain model it is at T K, which "
        "NEP_CPU, LAMMPS and calorine can run.",
        formatter_class=fmt,
    )
    p.add_argument("model", metavar="MODEL", help="input nep.txt")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="nep.txt to write")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--add-zbl",
        type=positive_float,
        metavar="R_OUTER",
        default=None,
        help="add universal ZBL with this outer radius in A (GPUMD: 1 to 4 A)",
    )
    group.add_argument("--strip-zbl", action="store_true", help="remove the ZBL part")
    p.add_argument(
        "--typewise",
        type=positive_float,
        metavar="FACTOR",
        default=None,
        help="with --add-zbl: typewise ZBL with this factor (GPUMD: >= 0.5, default in GPUMD 0.7)",
    )
    p.add_argument(
        "--to-nep4",
        action="store_true",
        help="upgrade a nep3 model to nep4 (the shared network copied to every species: the "
        "same energies and forces; current GPUMD runs only nep4)",
    )
    p.add_argument(
        "--at-temperature",
        type=float,
        metavar="T",
        default=None,
        help="a temperature model at this fixed temperature in K, written as a plain model "
        "(the same energies and forces at T)",
    )
    p.add_argument(
        "--full-precision",
        action="store_true",
        help="write 17 significant digits instead of GPUMD's %%15.7e",
    )
    p.add_argument(
        "--max-neighbors",
        type=int,
        nargs=2,
        metavar=("MN_R", "MN_A"),
        default=None,
        help="neighbour counts for the cutoff line (GPUMD sizes its lists with them); "
        "default: keep the model's, or estimate them when an old header has none",
    )
    p.set_defaults(func=_cmd_model)


# ------------------------------------------------------------------------------ model
def _cmd_model(args) -> int:
    from ..model import read_model

    if args.typewise is not None and args.add_zbl is None:
        raise NepzblError("--typewise needs --add-zbl R_OUTER")
    model = read_model(args.model)
    old_token = model.model_token
    if args.at_temperature is not None:
        if not model.temperature:
            raise NepzblError(f"--at-temperature: {args.model} is a {old_token} model, not a "
                              "temperature model")
        try:
            model = model.at_temperature(args.at_temperature)
        except ValueError as error:
            raise NepzblError(f"--at-temperature: {error}") from None
    if args.add_zbl is not None:
        low, high = _ZBL_OUTER_RANGE
        if not low <= args.add_zbl <= high:
            print(
                f"nepzbl: warning: ZBL outer radius {args.add_zbl:g} A is outside GPUMD's "
                f"training range {low:g} to {high:g} A",
                file=sys.stderr,
            )
        if args.typewise is not None and args.typewise < _TYPEWISE_FACTOR_MIN:
            raise NepzblError(
                f"GPUMD needs a typewise ZBL factor >= {_TYPEWISE_FACTOR_MIN}, "
                f"got {args.typewise:g}"
            )
        if model.zbl is not None:
            print(f"nepzbl: note: replacing the model's {model.zbl.mode} ZBL", file=sys.stderr)
        try:
            model = model.with_zbl(args.add_zbl, factor=args.typewise)
        except ValueError as error:
            raise NepzblError(str(error)) from None
        print(
            "nepzbl: warning: ZBL was added to a network trained without it. The physics "
            "changed: retrain or fine-tune the network before using this model.",
            file=sys.stderr,
        )
    elif args.strip_zbl:
        if model.zbl is None:
            print("nepzbl: note: the model has no ZBL; nothing to strip", file=sys.stderr)
        else:
            print(
                "nepzbl: warning: ZBL removed; the network was fitted with ZBL underneath, "
                "so energies and forces at short range change.",
                file=sys.stderr,
            )
        model = model.without_zbl()
    if args.to_nep4:
        if model.version == 3:
            model = model.to_nep4()
        elif model.version != 4:
            raise NepzblError(f"--to-nep4: {args.model} is a nep{model.version} model; only "
                              "nep3 models can be upgraded")
    elif model.version == 3:
        print("nepzbl: note: current GPUMD no longer runs nep3 models; add --to-nep4 for an "
              "exact nep4 copy", file=sys.stderr)
    _set_neighbour_counts(model, args.max_neighbors)
    model.write(args.output, precision="full" if args.full_precision else "gpumd")
    form = model.metadata.get("cutoff_form", "")
    upgraded = " (old header form upgraded)" if str(form).startswith("legacy") else ""
    fixed = (f" at {args.at_temperature:g} K" if args.at_temperature is not None else "")
    print(f"wrote {args.output}: {old_token} -> {model.model_token}{fixed}{upgraded}")
    return 0


def _set_neighbour_counts(model, requested) -> None:
    if requested is not None:
        if min(requested) < 1 or requested[0] > GPUMD_MAX_NEIGHBORS:
            raise NepzblError(
                f"--max-neighbors must be >= 1 (GPUMD: MN_R <= "
                f"{GPUMD_MAX_NEIGHBORS}), got {requested[0]} {requested[1]}"
            )
        model.max_neighbors_radial, model.max_neighbors_angular = requested
    elif model.max_neighbors_radial <= 0 or model.max_neighbors_angular <= 0:
        mn_r, mn_a = estimate_neighbour_counts(model)
        model.max_neighbors_radial, model.max_neighbors_angular = mn_r, mn_a
        print(
            f"nepzbl: note: the model has no neighbour counts; wrote estimates {mn_r} {mn_a} "
            "(GPUMD sizes its neighbour lists with them; set --max-neighbors to choose)",
            file=sys.stderr,
        )
