"""``nepzbl audit``: dimer scans, data distances and a hot-MD stress test of a model."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ._common import ProgressBars, non_negative_float, non_negative_int, positive_int, seed

__all__ = ["register", "load_oracle"]

_AUDIT_HELP = """\
Audit a NEP / NEP-ZBL model for collapse: dimer scans of every species pair (0.10-6.00 Å,
energy barrier and breakdown distance, collapse-path criterion), the data's shortest
distances against the ZBL switching region, and a hot-MD stress test: Langevin NVT at 1.2 x the
data's hottest temperature (the highest info temperature or 'NNN K' label, or the kinetic
temperature of the hottest frame's momenta; 1200 K when the data say nothing) with knock-on
collisions of every pair in contact at the energy a long production run reaches
(k_B T ln(nu N t), 2.32 eV at 1300 K for 10 ns of 10,000 atoms). The report names the rule
that chose the temperature, gives the highest maximum on each collapse path beside the paper's
barrier, and the MD check's power: collisions per pair, their energy and the chance they all
missed a collapse path of the measured barrier (--kicks-per-pair for more). The PNG goes beside
the model, or into --out. See docs/audit.md."""

def register(subparsers) -> None:
    audit = subparsers.add_parser(
        "audit", help="robustness audit of a model (dimers, data, hot MD)",
        description=_AUDIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    audit.add_argument("model", help="nep.txt of the model to audit")
    audit.add_argument("--data", help="training data (train.xyz): distance check and hot MD")
    audit.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    audit.add_argument("--png", default=None,
                       help="PNG of the dimer curves (default: <model>_dimers.png in --out, or "
                            "beside the model; 'none': off)")
    audit.add_argument("--out", default=None, metavar="DIR",
                       help="folder for the PNG (default: the model's folder)")
    audit.add_argument("--dimer-dir", default=None,
                       help="also write every dimer curve as a text file into this folder")
    audit.add_argument("--no-md", action="store_true", help="skip the hot-MD stress test")
    audit.add_argument("--temperature", type=float, default=None,
                       help="stress-test temperature in K (default 1.2 x the data's hottest: "
                            "see above; the report says which rule chose it)")
    audit.add_argument("--steps", type=non_negative_int, default=1000,
                       help="plain NVT steps before the first knock-on collision (default 1000)")
    audit.add_argument("--kicks-per-pair", type=non_negative_int, default=3,
                       help="knock-on collisions per species pair in contact (default 3; 0: plain "
                            "NVT only)")
    audit.add_argument("--kick-energy", type=float, default=None,
                       help="collision energy in eV (default k_B T ln(nu N t) from --horizon)")
    audit.add_argument("--horizon", type=float, default=1e5,
                       help="production run the collisions stand for, in atom ns (N atoms x t ns; "
                            "default 1e5: 10 ns of 10,000 atoms)")
    audit.add_argument("--kick-pairs", nargs="+", default=None, metavar="A-B",
                       help="collide only these pairs (default: every pair the data bring within "
                            "4 Å)")
    audit.add_argument("--timestep", type=float, default=1.0, help="MD time step in fs (default 1)")
    audit.add_argument("--min-atoms", type=int, default=0,
                       help="repeat the start structure to at least this many atoms")
    audit.add_argument("--seed", type=seed, default=42, help="random seed of the MD")
    audit.add_argument("--rattle", type=non_negative_float, default=0.0,
                       help="displace the MD start structure by Gaussian noise of this size, Å "
                            "(a thermal spike that shows rare collapse in a short run; "
                            "default 0: off)")
    audit.add_argument("--threads", type=positive_int, default=None,
                       help="threads of nepzbl's engine for the MD (default: its own)")
    audit.add_argument("--tolerance", type=float, default=None,
                       help="smallest maximum that counts as a barrier, eV (default 0.05)")
    audit.add_argument("--relative-tolerance", type=float, default=None,
                       help="a maximum must also reach this fraction of the curve's depth "
                            "(highest maximum minus lowest point; default 0.05)")
    audit.add_argument("--deep-distance", type=float, default=None,
                       help="collapse criterion: distances below this, Å (default 0.5)")
    audit.add_argument("--wall-fraction", type=float, default=None,
                       help="collapse criterion: fraction of the ZBL repulsion a wall must reach "
                            "(default 0.5)")
    audit.set_defaults(func=_run_audit)


def _run_audit(args) -> int:
    from ..audit.report import format_report, plot_dimers, report_json
    from ..audit.stress_test import StressTestSettings, _canonical_pair
    from ..audit.verdict import audit
    from ..model import read_model

    model = read_model(args.model)  # a bad file fails here, before any work
    kwargs = {}
    for key in ("tolerance", "relative_tolerance", "deep_distance", "wall_fraction"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    try:  # bad stress-test options fail here too, not after the dimer scans
        for pair in args.kick_pairs or ():
            try:
                _canonical_pair(pair, model.types)
            except ValueError as error:
                raise ValueError(f"--kick-pairs: {error}") from None
        hot_md = None if args.no_md else StressTestSettings(
            temperature=args.temperature, steps=args.steps, timestep=args.timestep,
            min_atoms=args.min_atoms, seed=args.seed, rattle=args.rattle,
            num_threads=args.threads, kicks_per_pair=args.kicks_per_pair,
            kick_energy=args.kick_energy, horizon=args.horizon, kick_pairs=args.kick_pairs)
    except ValueError as error:
        from ..errors import NepzblError

        raise NepzblError(str(error)) from None
    report = audit(args.model, data=args.data, name=os.path.basename(args.model), hot_md=hot_md,
                   progress=ProgressBars() if not args.json and sys.stderr.isatty() else None,
                   **kwargs)
    png = args.png
    if png is None:
        stem = os.path.splitext(os.path.basename(args.model))[0]
        folder = args.out if args.out is not None else os.path.dirname(args.model)
        if args.out is not None:
            os.makedirs(args.out, exist_ok=True)
        png = os.path.join(folder, stem + "_dimers.png")
    if png.lower() != "none":
        plot_dimers(report, png)
    if args.dimer_dir:
        os.makedirs(args.dimer_dir, exist_ok=True)
        for name, curve in report.curves.items():
            curve.write(os.path.join(args.dimer_dir, f"dimer_{name.replace('-', '_')}.txt"))
    if args.json:
        print(report_json(report))
    else:
        print(format_report(report))
        if png.lower() != "none":
            print(f"dimer curves: {png}")
    return 0 if report.safe else 1


# ---------------------------------------------------------------------------- zbl
def load_oracle(spec: str):
    """An ASE calculator from a command-line spec: a nep.txt path, 'emt', or 'module:callable'."""
    from ..errors import NepzblError

    if spec.lower() == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    if os.path.exists(spec):
        from ..audit.verdict import make_calculator

        return make_calculator(spec)
    if ":" in spec:
        module, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except ImportError as error:
            raise NepzblError(f"--oracle {spec!r}: cannot import {module!r} ({error})") from None
        except AttributeError:
            raise NepzblError(f"--oracle {spec!r}: module {module!r} has no {attr!r}") from None
        try:
            return factory() if callable(factory) else factory
        except Exception as error:  # a user's factory: any failure is one line, not a traceback
            raise NepzblError(f"--oracle {spec!r}: {type(error).__name__}: {error}") from None
    raise NepzblError(f"--oracle {spec!r}: not a file, 'emt' or 'module:callable'")
