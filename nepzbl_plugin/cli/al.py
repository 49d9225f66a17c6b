"""``nepzbl al``: the active-learning loop from a TOML config (see ``docs/al.md``)."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register"]

_DESCRIPTION = """\
Active learning as in the NEP-ZBL paper: per iteration, Langevin MD runs (temperature ramps)
from the training structures with the current model; frames with too-short distances (below a
fraction of the data's shortest distance per species pair) are filtered and counted as the
failure ratio; new frames are chosen by farthest-point sampling on structure-averaged NEP
descriptors (or a MaxVol extrapolation grade), labelled by an oracle (any ASE calculator, a
nep.txt, or external DFT through --export/--import), and the model is fine-tuned and audited
when enough new frames came in. The run lives in the config's state folder; run the same
command again to resume after an interruption.

examples:
  nepzbl al --example emt toy && nepzbl al toy/al.toml
  nepzbl al al.toml --export to_label.xyz    # oracle.calculator = "external"
  nepzbl al al.toml --import labelled.xyz    # then continues the loop"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "al", help="active learning: MD, selection, oracle labels, fine-tuning, audit",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="the TOML config (see --example)")
    parser.add_argument("--example", nargs=2, metavar=("NAME", "DIR"),
                        help="write a ready config DIR/al.toml (NAME: emt) and exit")
    parser.add_argument("--export", metavar="FILE",
                        help="run up to the labelling step and write the selected frames to "
                             "FILE (extended XYZ) for an external oracle")
    parser.add_argument("--import", dest="import_file", metavar="FILE",
                        help="labelled frames (extended XYZ, energy and forces) of the exported "
                             "ones; then continue the loop")
    parser.add_argument("--json", action="store_true",
                        help="print iterations.json's list instead of the table")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=_run)


def _progress(quiet: bool):
    def callback(event: str, info: dict) -> None:
        if quiet:
            return
        k = info.get("iteration")
        if event == "iteration_start":
            print(f"iteration {k}: MD", file=sys.stderr, flush=True)
        elif event == "md_run_done":
            print(f"  run {info['run']}: {info['frames']} frames, failure ratio "
                  f"{100 * info['failure_ratio']:.1f} %", file=sys.stderr, flush=True)
        elif event == "selected":
            print(f"  selected {info['selected']} of {info['candidates']} candidate frames",
                  file=sys.stderr, flush=True)
        elif event == "labelled":
            print(f"  labelled {info['frames']} frames", file=sys.stderr, flush=True)
        elif event == "training":
            print(f"  training on {info['structures']} structures", file=sys.stderr,
                  flush=True)
        elif event == "audited":
            print(f"  audit: {'safe' if info['safe'] else 'UNSAFE'}", file=sys.stderr,
                  flush=True)
        elif event == "iteration_done":
            print(f"iteration {k} done in {info['wall_s']:.1f} s: {info['new_frames']} new "
                  f"frames, failure ratio {100 * info['failure_ratio']:.1f} %, "
                  f"{'retrained' if info['updated'] else 'model kept'}", file=sys.stderr,
                  flush=True)
    return callback


def _run(args) -> int:
    from ..al.config import load_config
    from ..al.loop import export_selected, format_table, import_labels, run_active_learning
    from ..errors import NepzblError

    if args.example:
        from ..al.example import write_example

        path = write_example(*args.example)
        print(f"wrote {path} (with nep.in and train.xyz); run: nepzbl al {path}")
        return 0
    if not args.config:
        raise NepzblError("nepzbl al needs a CONFIG file (or --example NAME DIR)")
    if args.export and args.import_file:
        raise NepzblError("give --export or --import, not both")
    config = load_config(args.config)
    callback = _progress(args.quiet)
    if args.export:
        path = export_selected(config, args.export, callback=callback)
        print(f"selected frames written to {path}; label them (energy, forces, stress) and run "
              f"nepzbl al {args.config} --import FILE")
        return 0
    if args.import_file:
        count = import_labels(config, args.import_file)
        print(f"imported {count} labelled frames", file=sys.stderr)
    result = run_active_learning(config, callback=callback)
    if args.json:
        print(json.dumps(result.records, indent=1))
    else:
        print(format_table(result.records))
        print("(wall time per iteration in s, temperature range of the MD ramps in K, MD length "
              "per run in ps, failure ratio: MD frames with a too-short distance in %)")
        print(f"state: {result.state}; iterations.json, iterations.png; model {result.model}")
    if result.status == "awaiting_labels":
        print(f"waiting for labels: label {result.to_label} and run nepzbl al {args.config} "
              "--import FILE")
    return 0
