"""``nepzbl info``: a readable (or JSON) summary of a nep.txt."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

__all__ = ["register", "model_info", "parameter_warnings"]


def register(subparsers) -> None:
    """Add ``nepzbl info``."""
    fmt = argparse.HelpFormatter

    p = subparsers.add_parser(
        "info",
        help="summarise a nep.txt model",
        description="Print a readable summary of a NEP / NEP-ZBL model: version, species, "
        "cutoffs (A), the neighbour counts of nep.txt's cutoff line, n_max, basis_size, l_max "
        "(as nep.txt's line), ZBL mode and radii per pair (A), descriptor length, parameter "
        "count.",
        formatter_class=fmt,
    )
    p.add_argument("model", metavar="MODEL", help="a nep.txt file")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead")
    p.set_defaults(func=_cmd_info)


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
        "max_neighbors": [int(model.max_neighbors_radial), int(model.max_neighbors_angular)],
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
    from ..model import read_model

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
