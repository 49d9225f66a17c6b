"""``nepzbl audit`` and ``nepzbl zbl suggest|fit``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

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

_SUGGEST_HELP = """\
Propose per-pair ZBL outer radii below the shortest distances of the data (typewise when one
factor fits, else flexible) and write the nep.in lines (nep.in.zbl) and, for flexible ZBL,
zbl.in. Each pair's wanted outer radius is --margin (0.9) x its shortest distance in all the
files given: held-out frames and MD frames of the same material can come closer than the
training frames, so give them too.

Flexible ZBL: the printed 'zbl R' line is only safe together with the zbl.in written beside
it. nep.in and zbl.in must sit in the same folder; a nep.in with that line and no zbl.in means
universal ZBL switching from R/2 to R for every pair, inside the data's distances ('nepzbl
train' warns about that at start). See docs/audit.md."""


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
    audit.add_argument("--steps", type=int, default=1000,
                       help="plain NVT steps before the first knock-on collision (default 1000)")
    audit.add_argument("--kicks-per-pair", type=int, default=3,
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
    audit.add_argument("--seed", type=int, default=42, help="random seed of the MD")
    audit.add_argument("--rattle", type=float, default=0.0,
                       help="displace the MD start structure by Gaussian noise of this size, Å "
                            "(a thermal spike that shows rare collapse in a short run; "
                            "default 0: off)")
    audit.add_argument("--threads", type=int, default=None,
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

    zbl = subparsers.add_parser("zbl", help="choose ZBL from data: suggest radii, fit coefficients",
                                description="Choose GPUMD ZBL settings from training data.")
    sub = zbl.add_subparsers(dest="zbl_command", metavar="SUBCOMMAND", title="subcommands")
    zbl.set_defaults(func=lambda args: (zbl.print_help(), 2)[1])

    suggest = sub.add_parser(
        "suggest", help="ZBL radii below the distances the data contain",
        description=_SUGGEST_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    suggest.add_argument("data", nargs="+", metavar="XYZ",
                         help="training data (train.xyz), then any further structure files whose "
                              "distances the radii must also stay below (test.xyz, MD frames)")
    suggest.add_argument("--types", nargs="+", default=None,
                         help="species in nep.in 'type' order (default: order in the data)")
    suggest.add_argument("--form", choices=("auto", "typewise", "flexible", "universal"),
                         default="auto", help="ZBL form (default auto)")
    suggest.add_argument("--margin", type=float, default=0.9,
                         help="outer radius = margin x the shortest distance of the pair in all "
                              "the files (default 0.9: 10 %% below the closest contact seen)")
    suggest.add_argument("--angular-cutoff", type=float, default=4.0,
                         help="angular cutoff of the model, Å (ZBL acts only inside; default 4)")
    suggest.add_argument("--out", default=".", help="folder for nep.in.zbl and zbl.in (default .)")
    suggest.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    suggest.set_defaults(func=_run_suggest)

    fit = sub.add_parser(
        "fit", help="fit flexible ZBL coefficients to an oracle's dimer energies",
        description="Fit GPUMD's flexible ZBL (A_k, B_k per pair) to dimer energies from an oracle "
                    "(any ASE calculator, or files of dimer energies) and write zbl.in and the "
                    "model header. Radii come from 'zbl suggest' on --data, or --radius.")
    fit.add_argument("--types", nargs="+", required=True, help="species in nep.in 'type' order")
    fit.add_argument("--oracle", default=None,
                     help="a nep.txt, 'emt' (ASE EMT), or 'module:callable' returning an ASE "
                          "calculator")
    fit.add_argument("--dimer", action="append", default=[], metavar="A-B=FILE",
                     help="dimer energies of one pair from a file ('distance energy [force]' rows)")
    fit.add_argument("--data", default=None, help="training data: radii from 'zbl suggest'")
    fit.add_argument("--radius", action="append", default=[], metavar="A-B=INNER,OUTER",
                     help="ZBL radii of one pair in Å (overrides --data)")
    fit.add_argument("--fit-exponents", action="store_true",
                     help="also fit the exponents B_k (default: universal B_k, fit A_k only)")
    fit.add_argument("--out", default=".", help="folder for zbl.in and nep_header.txt")
    fit.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    fit.set_defaults(func=_run_fit)


# ---------------------------------------------------------------------------- audit
def _run_audit(args) -> int:
    from ..model import read_model
    from .report import format_report, plot_dimers, report_json
    from .stress_test import StressTestSettings, _canonical_pair
    from .verdict import audit

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
                   progress=not args.json and sys.stderr.isatty(), **kwargs)
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
        from .verdict import make_calculator

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


def _pair_option(text: str, option: str) -> tuple[str, str]:
    from ..errors import NepzblError

    name, sep, value = text.partition("=")
    if not sep or "-" not in name:
        raise NepzblError(f"{option} {text!r}: expected A-B=VALUE")
    return name.strip(), value.strip()


def _run_suggest(args) -> int:
    import json

    from ..errors import NepzblError
    from ..zbl_from_data import suggest_zbl

    try:
        suggestion = suggest_zbl(args.data[0], args.types, form=args.form, margin=args.margin,
                                 angular_cutoff=args.angular_cutoff, extra=args.data[1:])
    except ValueError as error:  # no ZBL form fits the data: one line, no traceback
        if isinstance(error, NepzblError):
            raise
        raise NepzblError(str(error)) from None
    written = suggestion.write(args.out)
    if args.json:
        out = suggestion.as_dict()
        out["written"] = written
        print(json.dumps(out, indent=1))
        return 0
    print(f"ZBL suggested from {', '.join(args.data)}: {suggestion.form} form "
          f"(wanted outer radius = {args.margin:g} x the shortest distance)")
    several = len(args.data) > 1
    header = (f"{'pair':<8}{'data min':>10}{'wanted':>10}{'inner':>9}{'outer':>9}"
              + ("  shortest in" if several else ""))
    print(header)
    print("-" * len(header))
    for name in suggestion.wanted:
        d = suggestion.data_min_distances.get(name)
        print(f"{name:<8}{'-' if d is None else f'{d:.3f} Å':>10}{suggestion.wanted[name]:>8.3f} Å"
              f"{suggestion.inner[name]:>7.3f} Å{suggestion.outer[name]:>7.3f} Å"
              + (f"  {suggestion.distance_sources.get(name, '-')}" if several else ""))
    for note in suggestion.notes:
        print(f"note: {note}")
    needs = suggestion.needs_zbl_in()
    print("nep.in lines" + (" (only together with zbl.in, see below):" if needs else ":"))
    for line in suggestion.nep_in_lines():
        print(f"  {line}")
    if needs:
        print(f"IMPORTANT: {needs}; copy {os.path.join(args.out, 'zbl.in')} next to nep.in")
    print("model header: " + " / ".join(suggestion.header_lines()))
    print("written: " + ", ".join(written))
    return 0


def _run_fit(args) -> int:
    import json

    from ..errors import NepzblError
    from ..io.nep_txt import atomic_write_text
    from ..zbl_from_data import fit_flexible_zbl, oracle_dimer_energies, suggest_zbl
    from .dimer import read_dimer_file

    species = list(args.types)
    dimers = {}
    for text in args.dimer:
        name, path = _pair_option(text, "--dimer")
        curve = read_dimer_file(path, tuple(name.split("-")))
        dimers[name] = (curve.distances, curve.energy)
    missing = [f"{a}-{b}" for i, a in enumerate(species) for b in species[i:]
               if f"{a}-{b}" not in dimers and f"{b}-{a}" not in dimers]
    if missing:
        if args.oracle is None:
            raise NepzblError(f"no dimer energies for {', '.join(missing)}: give --oracle or "
                              "--dimer A-B=FILE")
        calc = load_oracle(args.oracle)
        dimers.update(oracle_dimer_energies(calc, species))
    radii = {}
    if args.data:
        suggestion = suggest_zbl(args.data, species, form="flexible")
        radii = {p: (suggestion.inner[p], suggestion.outer[p]) for p in suggestion.outer}
    for text in args.radius:
        name, value = _pair_option(text, "--radius")
        try:
            inner, outer = (float(v) for v in value.split(","))
        except ValueError:
            raise NepzblError(f"--radius {text!r}: expected A-B=INNER,OUTER") from None
        if not 0 <= inner < outer < float("inf"):  # else a zbl.in that no reader accepts
            raise NepzblError(f"--radius {text!r}: need 0 <= INNER < OUTER, in Å")
        unknown = [s for s in name.split("-") if s not in species]
        if unknown or name.count("-") != 1:
            raise NepzblError(f"--radius {text!r}: {name!r} is not a pair of --types "
                              f"{' '.join(species)}")
        radii[name] = (inner, outer)
    if not radii:
        raise NepzblError("give --data (radii from 'zbl suggest') or --radius A-B=INNER,OUTER")
    try:
        fit = fit_flexible_zbl(dimers, species, radii, fit_exponents=args.fit_exponents)
    except ValueError as error:  # missing pairs, too few points: one line, no traceback
        if isinstance(error, NepzblError):
            raise
        raise NepzblError(str(error)) from None
    os.makedirs(args.out, exist_ok=True)
    zbl_in = os.path.join(args.out, "zbl.in")
    header = os.path.join(args.out, "nep_header.txt")
    fit.write_zbl_in(zbl_in)
    atomic_write_text(header, "\n".join(fit.header_lines()) + "\n")
    if args.json:
        print(json.dumps({"species": species, "zbl_in": fit.table.tolist(), "rms_eV": fit.rms,
                          "relative_rms": fit.relative_rms, "header": fit.header_lines(),
                          "written": [zbl_in, header]}, indent=1))
        return 0
    print(f"flexible ZBL fitted for {' '.join(species)}")
    for k, name in enumerate(fit.rms):
        row = fit.table[k]
        print(f"  {name:<8} r {row[0]:.3f}-{row[1]:.3f} Å  A " +
              " ".join(f"{v:.4f}" for v in row[2::2]) + "  B " +
              " ".join(f"{v:.4f}" for v in row[3::2]) +
              f"  rms {fit.rms[name]:.3g} eV ({100 * fit.relative_rms[name]:.2g} %)")
    print(f"written: {zbl_in}, {header}")
    return 0
