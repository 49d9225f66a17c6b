"""``nepzbl analyze {rdf,msd,arrhenius,lattice,locality,descriptors}``.

Every analysis prints a summary with units (or, with ``--json``, one JSON object) and writes a
PNG (``--png PATH``; default next to the input, ``none`` for no plot).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from ..analysis._base import AnalysisError
from ._common import check_species, positive_float, positive_int, seed

__all__ = ["register"]

_HELP = """\
Analyses of structures and MD trajectories (extended XYZ, e.g. the trajectory.xyz of
'nepzbl md'): partial RDFs, MSD and diffusion coefficients, Arrhenius fits, lattice parameters
against temperature, the locality test of a model, and descriptor maps. Every analysis prints
numbers with units, writes a PNG and has --json."""


def _charge(text: str) -> tuple[str, float]:
    species, sep, value = text.partition("=")
    try:
        if not sep or not species:
            raise ValueError
        return species, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SPECIES=CHARGE such as Li=1, got {text!r}"
                                         ) from None


def _common(parser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    name = what.split()[0]
    alone = f", {name}.png here with --point only" if name == "arrhenius" else ""
    parser.add_argument("--png", default=None,
                        help=f"PNG of the {what} (default: next to the input, "
                             f"<input>_{name}.png{alone}; 'none': no plot)")


def _trajectory_options(parser) -> None:
    parser.add_argument("--skip", type=int, default=0,
                        help="leave out this many frames at the start (equilibration; default 0)")
    parser.add_argument("--every", type=positive_int, default=1,
                        help="use every N-th frame after --skip (default 1)")


def register(subparsers) -> None:
    analyze = subparsers.add_parser(
        "analyze", help="analyse trajectories: RDF, MSD/diffusion, Arrhenius, lattice, "
                        "locality, descriptor maps",
        description=_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = analyze.add_subparsers(dest="analysis", metavar="ANALYSIS", title="analyses")
    analyze.set_defaults(func=lambda args: (analyze.print_help(sys.stderr), 2)[1])

    p = sub.add_parser("rdf", help="partial radial distribution functions",
                       description="Partial RDFs g_AB(r) of every species pair, averaged over "
                                   "the frames; normalised so that an ideal gas gives 1.")
    p.add_argument("trajectory", help="extended XYZ file (one or more frames)")
    p.add_argument("--r-max", type=positive_float, default=6.0,
                   help="largest distance, Å (default 6)")
    p.add_argument("--bins", type=positive_int, default=200, help="number of bins (default 200)")
    p.add_argument("--species", nargs="+", default=None,
                   help="order that names the pairs (A-B, A first; default: order in the file)")
    _trajectory_options(p)
    _common(p, "rdf plot")
    p.set_defaults(func=_cmd_rdf)

    p = sub.add_parser(
        "msd", help="mean squared displacement and diffusion coefficients",
        description="Per-species, per-axis MSD averaged over all time origins up to a window; "
                    "D = slope / 6 of a straight line over the first half of the window (the "
                    "NEP-ZBL paper's convention: 25 ps of a 50 ps window); uncertainty: "
                    "standard error over contiguous blocks. Positions are used as unwrapped "
                    "when every frame has info unwrapped=True (nepzbl md), else unwrapped by "
                    "the minimum image between consecutive frames.")
    p.add_argument("trajectory", help="extended XYZ trajectory, the same atoms in every frame")
    p.add_argument("--species", nargs="+", default=None,
                   help="species to analyse (default: all; the first is reported at the top "
                        "level of --json)")
    p.add_argument("--dt-frame", type=positive_float, default=None, metavar="FS",
                   help="time between frames in fs (default: from the frames' info time_fs)")
    p.add_argument("--window", type=positive_float, default=None, metavar="FS",
                   help="longest lag in fs (default: trajectory length / blocks)")
    p.add_argument("--blocks", type=int, default=5,
                   help="blocks for the uncertainty (default 5; at least 2 must hold a window)")
    p.add_argument("--remove-drift", action="store_true",
                   help="subtract the drift of the centre of all atoms")
    p.add_argument("--temperature", type=positive_float, default=None, metavar="K",
                   help="temperature of the run, K (recorded, and needed for --charge)")
    p.add_argument("--charge", type=_charge, nargs="+", default=None, metavar="SPECIES=Q",
                   help="formal charges (e) for the Nernst-Einstein conductivity, e.g. Li=1")
    _trajectory_options(p)
    _common(p, "msd plot")
    p.set_defaults(func=_cmd_msd)

    p = sub.add_parser(
        "arrhenius", help="activation energy from D at several temperatures",
        description="Fit D(T) = D0 exp(-Ea / k_B T) (weighted by the uncertainties when given) "
                    "and extrapolate to room temperature. Inputs: text tables with columns "
                    "T/K D [D_error] ('#' comments), JSON outputs of 'nepzbl analyze msd "
                    "--temperature K --json', or --point.")
    p.add_argument("inputs", nargs="*", help="tables or msd JSON files")
    p.add_argument("--point", nargs="+", default=[], metavar="T,D[,ERR]",
                   help="points given directly (T in K, D and its error in cm²/s)")
    p.add_argument("--room-temperature", type=positive_float, default=300.0, metavar="K",
                   help="extrapolate to this temperature, K (default 300)")
    _common(p, "arrhenius plot")
    p.set_defaults(func=_cmd_arrhenius)

    p = sub.add_parser(
        "lattice", help="lattice parameters against temperature, transition temperature",
        description="Lattice parameters (cell lengths / --repeat) averaged in temperature bins, "
                    "and the tetragonal-to-cubic transition temperature where |c/a - 1| falls "
                    "below --tolerance for good. Input: an extended XYZ trajectory of an NPT run "
                    "(temperature from an info key, --ramp, or the kinetic temperature of the "
                    "momenta) or a text table with columns T/K a b c (Å).")
    p.add_argument("trajectory", help="extended XYZ trajectory or a T a b c table")
    p.add_argument("--repeat", type=positive_int, nargs=3, default=(1, 1, 1),
                   metavar=("N1", "N2", "N3"),
                   help="conventional cells along the cell vectors (default 1 1 1)")
    p.add_argument("--c-axis", type=int, choices=(0, 1, 2), default=2,
                   help="index of the tetragonal c axis (default 2)")
    p.add_argument("--bin-width", type=positive_float, default=25.0, metavar="K",
                   help="temperature bin width, K (default 25)")
    p.add_argument("--tolerance", type=positive_float, default=0.005,
                   help="|c/a - 1| at or below which a bin counts as cubic (default 0.005)")
    p.add_argument("--temperature-key", default=None,
                   help="info key holding the temperature in K (default: the first of "
                        "temperature_K, target_temperature_K, temperature, T found)")
    p.add_argument("--ramp", type=float, nargs=2, default=None, metavar=("T_START", "T_END"),
                   help="the frames follow a linear ramp between these temperatures, K")
    _trajectory_options(p)
    _common(p, "lattice plot")
    p.set_defaults(func=_cmd_lattice)

    p = sub.add_parser(
        "locality", help="locality test of a model: force spread against frozen radius",
        description="Freeze every atom within R of a central atom, displace all others randomly "
                    "(uniform in a ball of --amplitude), and report the spread of the central "
                    "atom's force against R. For NEP the force depends on atoms within "
                    "2 x the largest cutoff, so the spread is zero from 2 rc + amplitude on.")
    p.add_argument("model", help="nep.txt")
    p.add_argument("structure", help="any file ASE reads (the first frame is used)")
    p.add_argument("--center", type=int, default=0, help="index of the central atom (default 0)")
    p.add_argument("--radii", type=float, nargs="+", default=None, metavar="R",
                   help="radii in Å (default: 0.5 to 2 x cutoff + 1 in steps of 0.5)")
    p.add_argument("--amplitude", type=positive_float, default=0.1,
                   help="largest displacement, Å (default 0.1)")
    p.add_argument("--samples", type=positive_int, default=8,
                   help="configurations per radius (default 8)")
    p.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    p.add_argument("--repeat", type=positive_int, nargs=3, default=(1, 1, 1),
                   metavar=("N1", "N2", "N3"),
                   help="repeat the structure (the cell must hold the largest sphere)")
    p.add_argument("--threads", type=positive_int, default=None, help="engine threads")
    _common(p, "locality plot")
    p.set_defaults(func=_cmd_locality)

    p = sub.add_parser(
        "descriptors", help="2D maps of per-atom descriptors by species (PCA, UMAP)",
        description="Per-atom NEP descriptors of a model (or dscribe's SOAP with --soap) on "
                    "the frames of a file, projected to 2D by PCA (or UMAP when umap-learn is "
                    "installed), coloured by species.")
    p.add_argument("data", help="extended XYZ file (training data or a trajectory)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="nep.txt whose descriptors to map")
    source.add_argument("--soap", action="store_true", help="use dscribe's SOAP descriptors")
    p.add_argument("--method", choices=("pca", "umap"), default="pca",
                   help="projection (default pca)")
    p.add_argument("--species", nargs="+", default=None, help="map only these species")
    p.add_argument("--soap-r-cut", type=positive_float, default=5.0,
                   help="SOAP cutoff, Å (default 5)")
    p.add_argument("--soap-n-max", type=positive_int, default=6, help="SOAP n_max (default 6)")
    p.add_argument("--soap-l-max", type=int, default=4, help="SOAP l_max (default 4)")
    _trajectory_options(p)
    _common(p, "descriptors map")
    p.set_defaults(func=_cmd_descriptors)


# ---------------------------------------------------------------------------- helpers
def _finite(value):
    """JSON-safe: NaN and infinities become null, arrays lists."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _print_json(out: dict) -> None:
    print(json.dumps(_finite(out), indent=1))


def _png_path(args, source: str, what: str) -> Path | None:
    if args.png is not None:
        return None if args.png.lower() == "none" else Path(args.png)
    source = Path(source)
    return source.with_name(f"{source.stem}_{what}.png")


def _frames(args):
    from ..analysis._base import read_frames

    if args.skip < 0:
        raise AnalysisError(f"--skip must be >= 0, not {args.skip}")
    return read_frames(getattr(args, "trajectory", None) or args.data, args.skip, args.every)


def _error(value: float | None, digits: str = ".2g") -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, digits)


# ---------------------------------------------------------------------------- commands
def _cmd_rdf(args) -> int:
    from ..analysis.plots import plot_rdf
    from ..analysis.rdf import RDF

    frames = _frames(args)
    rdf = RDF(args.r_max, args.bins, args.species).compute(frames)
    png = _png_path(args, args.trajectory, "rdf")
    if png is not None:
        plot_rdf(rdf, png)
    out = rdf.as_dict()
    out["first_peak_angstrom"] = rdf.first_peaks()
    out["png"] = str(png) if png else None
    if args.json:
        _print_json(out)
        return 0
    print(f"partial RDFs of {rdf.frames} frames, 0 to {rdf.r_max:g} Å in {rdf.bins} bins")
    for key, g in rdf.rdf.items():
        peak = out["first_peak_angstrom"][key]
        where = "never within range" if peak is None else (
            f"highest g = {g.max():.3g} at {peak:.3f} Å")
        print(f"  {key:8s} {where}")
    if png:
        print(f"plot: {png}")
    return 0


def _cmd_msd(args) -> int:
    from ..analysis.msd import MSD
    from ..analysis.plots import plot_msd

    frames = _frames(args)
    dt = args.dt_frame * args.every if args.dt_frame is not None else None
    msd = MSD(dt_frame_fs=dt, window_fs=args.window, blocks=args.blocks,
              species=args.species, remove_drift=args.remove_drift).compute(frames)
    png = _png_path(args, args.trajectory, "msd")
    if png is not None:
        plot_msd(msd, png)
    out = msd.as_dict()
    first = next(iter(out["species"]))
    out = {"species_reported": first, **{k: v for k, v in out["species"][first].items()},
           **out, "temperature_K": args.temperature}
    if args.charge:
        if args.temperature is None:
            raise AnalysisError("the Nernst-Einstein conductivity (--charge) needs "
                                "--temperature K")
        sigma = msd.conductivity(dict(args.charge), args.temperature)
        out["conductivity_S_per_cm"] = sigma
    out["png"] = str(png) if png else None
    if args.json:
        _print_json(out)
        return 0
    print(f"MSD of {out['frames']} frames, {out['dt_frame_fs']:g} fs apart; window "
          f"{out['window_fs']:g} fs, fit over 0 to {out['fit_range_fs'][1]:g} fs, "
          f"{out['blocks']} blocks")
    for s, row in out["species"].items():
        axes = ", ".join(f"{name} {value:.3g}"
                         for name, value in zip("xyz", row["D_axis_cm2_per_s"], strict=True))
        print(f"  {s:3s} D = {row['D_cm2_per_s']:.4g} ± {_error(row['D_error_cm2_per_s'])} "
              f"cm²/s ({axes} cm²/s; {row['atoms']} atoms)")
    for s, value in out.get("conductivity_S_per_cm", {}).items():
        print(f"  {s:3s} Nernst-Einstein conductivity {value:.4g} S/cm at "
              f"{args.temperature:g} K")
    if png:
        print(f"plot: {png}")
    return 0


def _read_text(path) -> str:
    """The file as text (lines joined by newlines); not UTF-8 is one error naming the file and
    the line, as for every text format. Lines of any length: msd's JSON may be on one line."""
    from ..io._lines import FileLines

    return "\n".join(FileLines(path, max_chars=None))


def _usable_point(t: float, d: float, e: float | None) -> bool:
    """T (K) and D finite and > 0, D's error (when given) finite and >= 0."""
    return 0 < t < math.inf and 0 < d < math.inf and (e is None or 0 <= e < math.inf)


def _read_arrhenius_points(args) -> tuple[list, list, list]:
    from ..errors import NepFormatError

    T, D, E = [], [], []
    for path in args.inputs:
        text = _read_text(path)
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
                t, d = float(data["temperature_K"]), float(data["D_cm2_per_s"])
                e = data.get("D_error_cm2_per_s")
                e = None if e is None else float(e)
                if not _usable_point(t, d, e):
                    raise ValueError(f"T {t:g} K, D {d:g}, error {e} must be finite and > 0")
            except (ValueError, KeyError, TypeError) as error:
                raise NepFormatError(path, None, "expected the JSON of 'nepzbl analyze msd "
                                     f"--temperature K --json' ({error})") from None
            T.append(t)
            D.append(d)
            E.append(e)
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            try:
                values = [float(v) for v in fields]
                if len(values) not in (2, 3):
                    raise ValueError
            except ValueError:
                raise NepFormatError(path, number, f"expected 'T D [D_error]', found {line!r}"
                                     ) from None
            if not _usable_point(*values[:2], values[2] if len(values) == 3 else None):
                raise NepFormatError(path, number, "T (K) and D must be finite and > 0, D_error "
                                     f"finite and >= 0, found {line!r}")
            T.append(values[0])
            D.append(values[1])
            E.append(values[2] if len(values) == 3 else None)
    for point in args.point:
        try:
            values = [float(v) for v in point.split(",")]
            if len(values) not in (2, 3):
                raise ValueError
        except ValueError:
            raise AnalysisError(f"--point expects T,D[,ERR], got {point!r}") from None
        T.append(values[0])
        D.append(values[1])
        E.append(values[2] if len(values) == 3 else None)
    return T, D, E


def _cmd_arrhenius(args) -> int:
    from ..analysis.arrhenius import Arrhenius
    from ..analysis.plots import plot_arrhenius

    T, D, E = _read_arrhenius_points(args)
    errors = E if E and all(e is not None and e > 0 for e in E) else None
    fit = Arrhenius().compute(T, D, errors)
    if args.inputs or args.png is not None:
        png = _png_path(args, args.inputs[0] if args.inputs else "", "arrhenius")
    else:  # --point only: no input to sit beside
        png = Path("arrhenius.png")
    if png is not None:
        plot_arrhenius(fit, png)
    out = fit.as_dict(args.room_temperature)
    out["weighted"] = errors is not None
    out["png"] = str(png) if png else None
    if args.json:
        _print_json(out)
        return 0
    print(f"Arrhenius fit of {len(T)} points ({'weighted' if errors else 'unweighted'})")
    print(f"  Ea = {out['Ea_eV']:.4f} ± {_error(out['Ea_error_eV'])} eV")
    print(f"  D0 = {out['D0']:.4g} ± {_error(out['D0_error'])} cm²/s")
    print(f"  D({args.room_temperature:g} K) = {out['D_room']:.4g} ± "
          f"{_error(out['D_room_error'])} cm²/s (extrapolated)")
    if png:
        print(f"plot: {png}")
    return 0


def _lattice_input(args):
    """(temperatures (F,), cells (F, 3, 3) or lengths (F, 3), where T came from)."""
    from ..analysis.lattice import TEMPERATURE_INFO_KEYS
    from ..errors import NepFormatError

    path = Path(args.trajectory)
    text = _read_text(path)
    first = text.split("\n", 1)[0].strip()
    try:
        int(first)
        is_xyz = True
    except ValueError:
        is_xyz = False
    if not is_xyz:  # a T a b c table
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                values = [float(v) for v in line.split()]
                if len(values) != 4:
                    raise ValueError
            except ValueError:
                raise NepFormatError(path, number, f"expected 'T a b c', found {line!r}"
                                     ) from None
            if not all(0 < v < math.inf for v in values):
                raise NepFormatError(path, number, "T (K) and a b c (Å) must be finite and > 0, "
                                     f"found {line!r}")
            rows.append(values)
        rows = np.array(rows)[args.skip::args.every]
        if rows.size == 0:
            raise AnalysisError(f"{path}: no rows")
        return rows[:, 0], rows[:, 1:], "table"
    frames = _frames(args)
    cells = np.array([a.cell.array for a in frames])
    if args.ramp is not None:
        return np.linspace(args.ramp[0], args.ramp[1], len(frames)), cells, "ramp"
    keys = [args.temperature_key] if args.temperature_key else list(TEMPERATURE_INFO_KEYS)
    for key in keys:
        if all(key in a.info for a in frames):
            return np.array([float(a.info[key]) for a in frames]), cells, f"info {key!r}"
    if args.temperature_key:
        raise AnalysisError(f"{path}: not every frame has info {args.temperature_key!r}")
    if all("momenta" in a.arrays for a in frames):
        return np.array([a.get_temperature() for a in frames]), cells, "kinetic temperature"
    raise AnalysisError(f"{path}: the frames carry no temperature: give --ramp T_START T_END "
                        "or --temperature-key")


def _cmd_lattice(args) -> int:
    from ..analysis.lattice import LatticeTemperature
    from ..analysis.plots import plot_lattice

    T, cells, source = _lattice_input(args)
    lattice = LatticeTemperature(args.repeat, args.c_axis, args.bin_width,
                                 args.tolerance).compute(T, cells)
    png = _png_path(args, args.trajectory, "lattice")
    if png is not None:
        plot_lattice(lattice, png)
    out = lattice.as_dict()
    out.update(temperature_source=source, png=str(png) if png else None)
    if args.json:
        _print_json(out)
        return 0
    print(f"lattice parameters in {len(lattice.temperatures)} bins of {args.bin_width:g} K "
          f"(temperature from {source})")
    print("     T/K      a/Å      b/Å      c/Å      c/a")
    for t, (a, b, c), r in zip(lattice.temperatures, lattice.lattice, lattice.c_over_a,
                               strict=True):
        print(f"  {t:7.1f} {a:8.4f} {b:8.4f} {c:8.4f} {r:8.5f}")
    if lattice.transition_temperature is not None:
        print(f"transition temperature: {lattice.transition_temperature:.1f} K "
              f"(|c/a - 1| <= {lattice.tolerance:g} from there on)")
    else:
        print(f"transition temperature: none ({lattice.transition_note})")
    if png:
        print(f"plot: {png}")
    return 0


def _cmd_locality(args) -> int:
    from ase.io import read

    from ..analysis.locality import Locality, locality_radius
    from ..analysis.plots import plot_locality
    from ..calculators import NEP

    calculator = NEP(args.model, num_threads=args.threads)
    atoms = read(args.structure, index=0)
    types = calculator.model.types
    check_species(args.structure, [atoms], types,
                  f"the model {args.model} (species: {', '.join(types)})")
    atoms = atoms.repeat(tuple(args.repeat))
    rc = float(calculator.model.max_cutoff)
    reach = locality_radius(calculator.model)
    radii = args.radii if args.radii else np.arange(0.5, reach + 1.0 + 1e-9, 0.5)
    test = Locality(radii, args.amplitude, args.samples, args.seed, args.center)
    test.compute(atoms, calculator)
    png = _png_path(args, args.structure, "locality")
    if png is not None:
        plot_locality(test, png, {"cutoff": rc, "2 x cutoff": reach})
    out = test.as_dict()
    out.update(cutoff_angstrom=rc, expected_radius_angstrom=reach, atoms=len(atoms),
               png=str(png) if png else None)
    if args.json:
        _print_json(out)
        return 0
    print(f"locality test: atom {args.center} of {len(atoms)}, {args.samples} samples per "
          f"radius, displacements up to {args.amplitude:g} Å; model cutoff {rc:g} Å, "
          f"expected locality radius 2 x {rc:g} = {reach:g} Å")
    print("     R/Å   moved  RMS spread/(eV/Å)  largest change/(eV/Å)")
    for r, n, s, m in zip(test.radii, test.moved_atoms, test.force_std, test.force_max,
                          strict=True):
        print(f"  {r:6.2f} {n:7d} {s:18.3e} {m:22.3e}")
    apparent = test.apparent_radius()
    print("force independent of the moved atoms from R = "
          + (f"{apparent:g} Å" if apparent is not None else "(not reached in the radii tested)"))
    if png:
        print(f"plot: {png}")
    return 0


def _cmd_descriptors(args) -> int:
    from ..analysis.descriptors import DescriptorMap, nep_descriptors, soap_descriptors
    from ..analysis.plots import plot_descriptor_map

    mapper = DescriptorMap(args.method)  # refuses umap without umap-learn before any work
    frames = _frames(args)
    if args.soap:
        X, symbols = soap_descriptors(frames, r_cut=args.soap_r_cut, n_max=args.soap_n_max,
                                      l_max=args.soap_l_max)
        name = "SOAP"
    else:
        from ..model import read_model

        types = read_model(args.model).types
        check_species(args.data, frames, types,
                      f"the model {args.model} (species: {', '.join(types)})")
        X, symbols = nep_descriptors(frames, args.model)
        name = "NEP"
    if args.species:
        keep = np.isin(symbols, args.species)
        if not np.any(keep):
            raise AnalysisError(f"none of {', '.join(args.species)} in {args.data}")
        X, symbols = X[keep], symbols[keep]
    mapper.compute(X, symbols)
    png = _png_path(args, args.data, "descriptors")
    if png is not None:
        plot_descriptor_map(mapper, png, title=f"{name} descriptors, {args.method.upper()}")
    out = mapper.as_dict()
    out.update(descriptor=name, descriptor_dim=int(X.shape[1]), frames=len(frames),
               png=str(png) if png else None)
    if args.json:
        _print_json(out)
        return 0
    print(f"{name} descriptors ({X.shape[1]} components) of {X.shape[0]} atoms in "
          f"{len(frames)} frames, {args.method.upper()} map")
    ratio = mapper.explained_variance_ratio
    if ratio is not None:
        print("  explained variance: " + ", ".join(f"{100 * r:.1f} %" for r in ratio))
    for s, row in out["species"].items():
        centre = ", ".join(f"{c:.3g}" for c in row["centroid"])
        print(f"  {s:3s} {row['atoms']} atoms, centroid ({centre}) (dimensionless)")
    if png:
        print(f"plot: {png}")
    return 0
