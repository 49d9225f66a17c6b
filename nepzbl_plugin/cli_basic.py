"""Basic ``nepzbl`` commands: ``info``, ``convert``, ``model`` and ``write-example-model``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from .errors import NepFormatError, NepzblError

__all__ = ["register"]

# GPUMD's nep accepts 1 <= r_outer <= 4 Angstrom for `zbl` and a typewise factor >= 0.5.
_ZBL_OUTER_RANGE = (1.0, 4.0)
_TYPEWISE_FACTOR_MIN = 0.5
# GPUMD MD refuses MN_R > 819; 0.15 atoms/A^3 is denser than nearly every solid.
_GPUMD_MAX_NEIGHBORS = 819
_DENSE_NUMBER_DENSITY = 0.15


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _weight(text: str) -> float:
    value = _positive_float(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"GPUMD needs 0 < weight <= 100, got {text}")
    return value


def register(subparsers) -> None:
    """Add the basic commands to the ``nepzbl`` parser."""
    fmt = argparse.HelpFormatter

    p = subparsers.add_parser(
        "info",
        help="summarise a nep.txt model",
        description="Print a readable summary of a NEP / NEP-ZBL model: version, species, "
        "cutoffs (A), ZBL mode and radii per pair (A), descriptor length, parameter count.",
        formatter_class=fmt,
    )
    p.add_argument("model", metavar="MODEL", help="a nep.txt file")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead")
    p.set_defaults(func=_cmd_info)

    p = subparsers.add_parser(
        "convert",
        help="convert DFT outputs (OUTCAR, vasprun.xml, extxyz, ...) to a GPUMD train.xyz",
        description="Read every structure of the inputs with ASE (any format ASE reads, with "
        "energies, forces and optionally stresses) and write one GPUMD train.xyz. ASE's "
        "stress (tensile positive, eV/A^3) becomes GPUMD's virial W = -stress * V (eV).",
        formatter_class=fmt,
    )
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="structure files")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="train.xyz to write")
    p.add_argument(
        "--format",
        metavar="FMT",
        default=None,
        help="ASE format name (default: guessed from each file name)",
    )
    p.add_argument(
        "--index",
        default=":",
        metavar="INDEX",
        help="ASE frame selection for each input, e.g. ':' (all, default), '-1' (last), '::10'",
    )
    p.add_argument("--config-type", default=None, help="config_type label for every frame")
    p.add_argument(
        "--weight",
        type=_weight,
        default=None,
        help="GPUMD structure weight for every frame (0 < w <= 100)",
    )
    p.set_defaults(func=_cmd_convert)

    p = subparsers.add_parser(
        "model",
        help="rewrite a model: add or strip ZBL, upgrade an old header, full precision",
        description="Read MODEL and write it to OUT in the current GPUMD format (old header "
        "forms are upgraded). --add-zbl adds universal ZBL with the given outer radius (inner = "
        "outer/2, as GPUMD writes it); with --typewise FACTOR the per-pair outer radius is "
        "min(FACTOR (R_cov,a + R_cov,b), R_OUTER) with inner 0. Adding ZBL changes the "
        "physics: the network must be retrained or fine-tuned afterwards.",
        formatter_class=fmt,
    )
    p.add_argument("model", metavar="MODEL", help="input nep.txt")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="nep.txt to write")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--add-zbl",
        type=_positive_float,
        metavar="R_OUTER",
        default=None,
        help="add universal ZBL with this outer radius in A (GPUMD: 1 to 4 A)",
    )
    group.add_argument("--strip-zbl", action="store_true", help="remove the ZBL part")
    p.add_argument(
        "--typewise",
        type=_positive_float,
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
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_cmd_write_example_model)


# ------------------------------------------------------------------------------ info
def _zbl_pairs(model) -> list[dict]:
    table = model.zbl_table()
    pairs = []
    for a in range(model.num_types):
        for b in range(a, model.num_types):
            pairs.append(
                {
                    "pair": f"{model.types[a]}-{model.types[b]}",
                    "inner_A": float(table[a, b, 0]),
                    "outer_A": float(table[a, b, 1]),
                }
            )
    return pairs


def model_info(model) -> dict:
    """The model's facts as a JSON-ready dict (what ``nepzbl info --json`` prints)."""
    zbl = None
    if model.zbl is not None:
        zbl = {
            "mode": model.zbl.mode,
            "inner_A": float(model.zbl.inner),
            "outer_A": float(model.zbl.outer),
            "factor": None if model.zbl.factor is None else float(model.zbl.factor),
            "pairs": _zbl_pairs(model),
        }
    return {
        "token": model.model_token,
        "version": int(model.version),
        "species": list(model.types),
        "radial_cutoffs_A": [float(x) for x in model.radial_cutoffs],
        "angular_cutoffs_A": [float(x) for x in model.angular_cutoffs],
        "n_max": [int(model.n_max_radial), int(model.n_max_angular)],
        "basis_size": [int(model.basis_size_radial), int(model.basis_size_angular)],
        "l_max": int(model.l_max),
        "l_max_flags": [int(f) for f in model.l_max_flags],
        "descriptor_dim": int(model.descriptor_dim),
        "neurons": [int(model.n_neurons), int(model.n_neurons_second)],
        "num_parameters": int(model.num_parameters),
        "zbl": zbl,
    }


def _fallback_summary(model) -> str:
    info = model_info(model)
    lines = [
        f"model          : {info['token']}",
        f"species ({len(info['species'])})    : {' '.join(info['species'])}",
    ]
    for s, rr, ra in zip(
        info["species"], info["radial_cutoffs_A"], info["angular_cutoffs_A"], strict=True
    ):
        lines.append(f"  cutoff {s:<3}   : radial {rr:g} A, angular {ra:g} A")
    lines += [
        f"descriptor     : {info['descriptor_dim']} components",
        f"neurons        : {info['neurons'][0]}",
        f"parameters     : {info['num_parameters']}",
    ]
    if info["zbl"] is None:
        lines.append("ZBL            : none")
    else:
        lines.append(f"ZBL            : {info['zbl']['mode']}")
        for pair in info["zbl"]["pairs"]:
            lines.append(
                f"  {pair['pair']}: inner {pair['inner_A']:.4g} A, outer {pair['outer_A']:.4g} A"
            )
    return "\n".join(lines)


# Trained NEP models keep |parameter| below ~20 and q_scaler below ~30 (the public C, Si and
# PbTe models: 19.1 and 24.2); values far beyond are a corrupted or hand-edited file, and near
# 1e308 they overflow to inf or NaN inside the network.
PARAMETER_WARNING = 1e4
Q_SCALER_WARNING = 1e6


def parameter_warnings(model) -> list[str]:
    """Warnings about parameters far outside any trained model's range (empty when none)."""
    warnings = []
    largest = float(np.max(np.abs(model.parameters))) if model.num_parameters else 0.0
    if largest > PARAMETER_WARNING:
        where = int(np.argmax(np.abs(model.parameters)))
        warnings.append(f"parameter {where} is {model.parameters[where]:.3g}: trained models stay "
                        f"below {PARAMETER_WARNING:g} in magnitude; energies and forces may "
                        "overflow to inf or NaN")
    largest_q = float(np.max(np.abs(model.q_scaler))) if len(model.q_scaler) else 0.0
    if largest_q > Q_SCALER_WARNING:
        warnings.append(f"q_scaler reaches {largest_q:.3g}: trained models stay below "
                        f"{Q_SCALER_WARNING:g}")
    return warnings


def _cmd_info(args) -> int:
    from .model import read_model

    model = read_model(args.model)
    for warning in parameter_warnings(model):
        print(f"nepzbl: warning: {args.model}: {warning}", file=sys.stderr)
    if args.json:
        info = model_info(model)
        info["file"] = str(args.model)
        print(json.dumps(info, indent=2))
        return 0
    print(f"file           : {args.model}")
    summary = getattr(model, "summary", None)
    print(summary() if callable(summary) else _fallback_summary(model))
    return 0


# ------------------------------------------------------------------------------ convert
def _read_frames(path: Path, fmt, index):
    import ase.io

    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    try:
        frames = ase.io.read(str(path), index=index, format=fmt)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as error:  # ASE raises many kinds; all mean "cannot read this file"
        raise NepFormatError(path, None, f"ASE could not read it: {error}") from None
    return frames if isinstance(frames, list) else [frames]


def _cmd_convert(args) -> int:
    from tqdm import tqdm

    from .io.xyz import TrainingStructure, write_train_xyz

    structures = []
    inputs = [Path(p) for p in args.inputs]
    for path in tqdm(inputs, desc="reading", unit="file", disable=len(inputs) < 3, file=sys.stderr):
        for k, atoms in enumerate(_read_frames(path, args.format, args.index)):
            try:
                s = TrainingStructure.from_atoms(
                    atoms, weight=args.weight, config_type=args.config_type
                )
            except ValueError as error:
                raise NepFormatError(path, None, f"frame {k}: {error}") from None
            if s.energy is None:
                raise NepFormatError(path, None, f"frame {k} has no energy")
            if s.forces is None:
                raise NepFormatError(path, None, f"frame {k} has no forces")
            structures.append(s)
    if not structures:
        raise NepzblError("no structures were read")
    write_train_xyz(args.output, structures)
    num_atoms = sum(s.num_atoms for s in structures)
    with_virial = sum(s.virial is not None for s in structures)
    print(
        f"wrote {len(structures)} structures ({num_atoms} atoms, {with_virial} with virial) "
        f"to {args.output}"
    )
    return 0


# ------------------------------------------------------------------------------ model
def _cmd_model(args) -> int:
    from .model import read_model

    if args.typewise is not None and args.add_zbl is None:
        raise NepzblError("--typewise needs --add-zbl R_OUTER")
    model = read_model(args.model)
    old_token = model.model_token
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
    print(f"wrote {args.output}: {old_token} -> {model.model_token}{upgraded}")
    return 0


def estimate_neighbour_counts(model) -> tuple[int, int]:
    """Generous radial and angular neighbour counts for a model whose file has none: the atoms
    within the largest pair cutoffs at a number density of 0.15 per A^3 (denser than almost
    every solid), the radial count capped at GPUMD's limit of 819."""
    radial, angular = (float(np.max(c)) for c in model.pair_cutoffs())
    count = [
        math.ceil(4.0 / 3.0 * math.pi * rc**3 * _DENSE_NUMBER_DENSITY) for rc in (radial, angular)
    ]
    return min(count[0], _GPUMD_MAX_NEIGHBORS), min(count[1], _GPUMD_MAX_NEIGHBORS)


def _set_neighbour_counts(model, requested) -> None:
    if requested is not None:
        if min(requested) < 1 or requested[0] > _GPUMD_MAX_NEIGHBORS:
            raise NepzblError(
                f"--max-neighbors must be >= 1 (GPUMD: MN_R <= "
                f"{_GPUMD_MAX_NEIGHBORS}), got {requested[0]} {requested[1]}"
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


# ------------------------------------------------------------------------------ example model
def _cmd_write_example_model(args) -> int:
    from .elements import SYMBOLS

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
    from .testing import random_model

    return random_model(version=4, types=tuple(types), zbl=zbl, seed=seed)
