"""``nepzbl convert``: DFT outputs read by ASE into one GPUMD train.xyz."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import NepFormatError, NepzblError
from ._common import weight

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``nepzbl convert``."""
    fmt = argparse.HelpFormatter

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
        type=weight,
        default=None,
        help="GPUMD structure weight for every frame (0 < w <= 100)",
    )
    p.set_defaults(func=_cmd_convert)


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

    from ..io.xyz import TrainingStructure, write_train_xyz

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
