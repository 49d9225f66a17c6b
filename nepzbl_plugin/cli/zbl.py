"""``nepzbl zbl suggest|fit``: choose ZBL from data."""

from __future__ import annotations

import argparse
import os

from .audit import load_oracle

__all__ = ["register"]

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
    fit.add_argument("--dimer", action="extend", nargs="+", default=[], metavar="A-B=FILE",
                     help="dimer energies of a pair from a file ('distance energy [force]' rows, "
                          "Å and eV); several pairs: --dimer A-B=F1 A-C=F2")
    fit.add_argument("--data", default=None, help="training data: radii from 'zbl suggest'")
    fit.add_argument("--radius", action="extend", nargs="+", default=[],
                     metavar="A-B=INNER,OUTER",
                     help="ZBL radii of a pair in Å (overrides --data); several pairs: "
                          "--radius A-B=0.6,1.2 A-C=0.7,1.4")
    fit.add_argument("--fit-exponents", action="store_true",
                     help="also fit the exponents B_k (default: universal B_k, fit A_k only)")
    fit.add_argument("--out", default=".",
                     help="folder for zbl.in and nep_header.txt (default .)")
    fit.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    fit.set_defaults(func=_run_fit)


# ---------------------------------------------------------------------------- audit


def _pair_option(text: str, option: str) -> tuple[str, str]:
    from ..errors import NepzblError

    name, sep, value = text.partition("=")
    if not sep or "-" not in name:
        raise NepzblError(f"{option} {text!r}: expected A-B=VALUE")
    return name.strip(), value.strip()


def _run_suggest(args) -> int:
    import json

    from ..errors import NepzblError
    from ..zbl import suggest_zbl

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

    from ..audit.dimer import read_dimer_file
    from ..errors import NepzblError
    from ..io.nep_txt import atomic_write_text
    from ..zbl import fit_flexible_zbl, oracle_dimer_energies, suggest_zbl

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
