"""GPUMD's training output files: ``loss.out``, ``energy_*.out``, ``force_*.out``,
``virial_*.out`` and ``stress_*.out`` (``../shared/docs/nep-reference.md`` section 4.8), and
its MD outputs ``thermo.out``, ``msd.out``, ``rdf.out`` (layouts at the end of this file).

Conventions (all as written by GPUMD's ``nep``):

* ``loss.out`` (potential models): ``gen Total L1 L2 E_train F_train V_train E_test F_test
  V_test`` written with ``%-8d``, three ``%-11.5f`` and six ``%-13.5f`` fields, nothing between
  the fields but their padding (a value that fills its field touches the next one). Energy and
  virial RMSEs in eV/atom, force RMSE in eV/Angstrom; test columns are 0 without a test set.
* ``energy_*.out``: per frame, predicted then reference energy in eV/atom.
* ``force_*.out``: per atom, predicted fx fy fz then reference fx fy fz in eV/Angstrom.
* ``virial_*.out``: per frame, 6 predicted then 6 reference components of the virial per atom
  (eV/atom), order xx yy zz xy yz zx; a reference of -1e6 means "no virial".
* ``stress_*.out``: the same 12 columns as W/V * 160.2177 in GPa, **compression positive** (the
  opposite sign of the ``stress=`` input of train.xyz), reference -1e6 when absent.

Numbers are ``%g`` separated by single spaces. The readers turn the -1e6 sentinel into NaN and the
writers turn NaN back into -1e6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ..errors import FileError, NepFormatError
from .xyz import _write_text_atomically

__all__ = [
    "PRESSURE_UNIT_CONVERSION",
    "MISSING_REFERENCE",
    "LOSS_COLUMNS",
    "LossTable",
    "PredictionTable",
    "read_loss_out",
    "write_loss_out",
    "format_loss_row",
    "read_energy_out",
    "write_energy_out",
    "read_force_out",
    "write_force_out",
    "read_virial_out",
    "write_virial_out",
    "read_stress_out",
    "write_stress_out",
    "virial_to_stress_gpa",
    "ThermoOut",
    "MsdOut",
    "RdfOut",
    "read_thermo_out",
    "read_msd_out",
    "read_rdf_out",
]

#: eV/Angstrom^3 -> GPa, the factor GPUMD uses for stress_*.out.
PRESSURE_UNIT_CONVERSION = 160.2177
#: GPUMD's reference value for frames without a virial.
MISSING_REFERENCE = -1e6
#: Column names of a potential model's loss.out.
LOSS_COLUMNS = (
    "generation",
    "total",
    "l1",
    "l2",
    "energy_train",
    "force_train",
    "virial_train",
    "energy_test",
    "force_test",
    "virial_test",
)
# A GPUMD %-N.5f field: the decimals make consecutive fields separable even when they touch.
_FIXED_FIELD = re.compile(r"-?(?:[0-9]+\.[0-9]{5}|nan|inf)")


@dataclass
class LossTable:
    """The rows of a ``loss.out`` (potential model), one array per column.

    ``generation`` is the 1-based generation count (int64); the RMSE columns are in eV/atom
    (energy, virial) and eV/Angstrom (force).
    """

    generation: np.ndarray
    total: np.ndarray
    l1: np.ndarray
    l2: np.ndarray
    energy_train: np.ndarray
    force_train: np.ndarray
    virial_train: np.ndarray
    energy_test: np.ndarray
    force_test: np.ndarray
    virial_test: np.ndarray

    def __len__(self) -> int:
        return int(self.generation.size)

    def as_array(self) -> np.ndarray:
        """(rows, 10) float64 array in file column order."""
        return np.column_stack([getattr(self, f.name) for f in fields(self)]).astype(np.float64)


@dataclass
class PredictionTable:
    """Predicted and reference values from one ``*_train.out`` / ``*_test.out`` file.

    ``predicted`` and ``reference`` have the same shape: (frames,) for energies, (atoms, 3) for
    forces, (frames, 6) for virials and stresses. A missing reference (GPUMD's -1e6) is NaN.
    """

    predicted: np.ndarray
    reference: np.ndarray


# ---------------------------------------------------------------------------------------------
def _read_lines(path) -> list[str]:
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise FileError(path, "is a folder, not a file") from None
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise NepFormatError(path, line, "not UTF-8 text") from None


def _read_table(path, num_columns: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Whitespace-separated numeric table; returns the values and the 1-based line numbers.

    Blank lines and ``#`` comment lines are skipped; everything else must have exactly
    ``num_columns`` finite numbers.
    """
    lines = _read_lines(path)
    numbers = [k for k, line in enumerate(lines) if line.strip() and not line.lstrip()[0] == "#"]
    rows = [lines[k].split() for k in numbers]
    if set(map(len, rows)) - {num_columns}:
        for k, row in zip(numbers, rows, strict=True):
            if len(row) != num_columns:
                raise NepFormatError(
                    path, k + 1, f"{what}: expected {num_columns} columns, found {len(row)}"
                )
    flat = [tok for row in rows for tok in row]
    try:
        values = np.array(flat, dtype=np.float64).reshape(len(rows), num_columns)
        ok = bool(np.isfinite(values).all())
    except ValueError:
        ok = False
    if not ok:
        for k, row in zip(numbers, rows, strict=True):
            for c, tok in enumerate(row):
                try:
                    x = float(tok)
                except ValueError:
                    x = None
                if x is None or not np.isfinite(x):
                    raise NepFormatError(
                        path,
                        k + 1,
                        f"{what}: column {c + 1}: expected a finite number, found {tok!r}",
                    )
        values = np.array([float(t) for t in flat]).reshape(len(rows), num_columns)
    return values, np.array(numbers, dtype=np.int64) + 1


def _g(x: float) -> str:
    return f"{x:g}"  # the same text as C's %g


def _sentinel_to_nan(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    out[out <= -1e5] = np.nan  # GPUMD's own test for "has a reference" is ref > -1e5
    return out


def _check_pair(predicted, reference, shape_tail: tuple, what: str):
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if predicted.ndim != 1 + len(shape_tail) or predicted.shape[1:] != shape_tail:
        raise ValueError(
            f"{what}: predicted must have shape (n, {shape_tail}), got {predicted.shape}"
        )
    if reference.shape != predicted.shape:
        raise ValueError(
            f"{what}: reference shape {reference.shape} != predicted shape {predicted.shape}"
        )
    if not np.isfinite(predicted).all():
        raise ValueError(f"{what}: predicted values must be finite")
    return predicted, reference


# ---------------------------------------------------------------------------------------------
def format_loss_row(generation: int, values) -> str:
    """One ``loss.out`` line (with its newline) in GPUMD's padding: ``%-8d``, 3 x ``%-11.5f``,
    6 x ``%-13.5f``, no separators beyond the padding. ``values`` are the 9 columns after
    ``gen``."""
    values = [float(v) for v in values]
    if len(values) != 9:
        raise ValueError(f"a loss.out row has 9 values after the generation, got {len(values)}")
    head = f"{int(generation):<8d}"  # %-8d
    return (
        head
        + "".join(f"{v:<11.5f}" for v in values[:3])
        + "".join(f"{v:<13.5f}" for v in values[3:])
        + "\n"
    )


def write_loss_out(path, table: LossTable | np.ndarray, *, append: bool = False) -> None:
    """Write (or with ``append=True`` add to, as GPUMD does on resume) a ``loss.out``.

    ``table`` is a :class:`LossTable` or an array (rows, 10) in column order.
    """
    array = table.as_array() if isinstance(table, LossTable) else np.asarray(table, float)
    if array.ndim != 2 or array.shape[1] != 10:
        raise ValueError(f"loss.out needs (rows, 10) values, got shape {array.shape}")
    text = "".join(format_loss_row(int(row[0]), row[1:]) for row in array)
    path = Path(path)
    if append and path.exists():
        text = path.read_text() + text
    _write_text_atomically(path, text)


def _split_loss_line(line: str) -> list[str] | None:
    """Split a loss.out line whose fields may touch (a value that filled its field)."""
    stripped = line.strip()
    match = re.match(r"-?[0-9]+", stripped)
    if match is None:
        return None
    gen = match.group(0)
    # gen is %-8d: when it touches the first value, its 8 characters end where that value
    # starts; the value's own integer part is then whatever follows.
    rest = stripped[match.end() :]
    if rest[:1] == ".":  # gen filled its field and the integer part of Total was swallowed
        if len(gen) <= 8:
            return None
        gen, rest = gen[:8], gen[8:] + rest
    fields_ = _FIXED_FIELD.findall(rest.replace(" ", ""))
    if "".join(fields_) != rest.replace(" ", ""):
        return None
    return [gen, *fields_]


def read_loss_out(path) -> LossTable:
    """Read a potential model's ``loss.out`` (10 columns).

    Both GPUMD's touching-field layout and plain whitespace-separated files are accepted;
    ``#`` lines and blank lines are skipped.

    Raises
    ------
    NepFormatError
        A line without exactly 10 numbers, a non-integer generation or a non-finite value.
    """
    lines = _read_lines(path)
    gens, rows = [], []
    for k, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = line.split()
        if len(tokens) != 10:
            tokens = _split_loss_line(line) or tokens
        if len(tokens) != 10:
            raise NepFormatError(
                path,
                k + 1,
                f"loss.out: expected 10 columns (gen Total L1 L2 E_train F_train V_train "
                f"E_test F_test V_test), found {len(tokens)}",
            )
        if not re.fullmatch(r"[0-9]{1,12}", tokens[0]):
            raise NepFormatError(
                path,
                k + 1,
                f"loss.out: generation must be a positive integer, found {tokens[0]!r}",
            )
        try:
            values = [float(t) for t in tokens[1:]]
        except ValueError:
            raise NepFormatError(
                path, k + 1, f"loss.out: non-numeric value in {line.strip()!r}"
            ) from None
        if not np.isfinite(values).all():
            raise NepFormatError(path, k + 1, "loss.out: non-finite value")
        gens.append(int(tokens[0]))
        rows.append(values)
    array = np.array(rows, dtype=np.float64).reshape(len(rows), 9)
    return LossTable(np.array(gens, dtype=np.int64), *(array[:, c].copy() for c in range(9)))


# ---------------------------------------------------------------------------------------------
def write_energy_out(path, predicted, reference) -> None:
    """``energy_*.out``: per frame ``predicted reference`` in eV/atom (``%g``)."""
    predicted, reference = _check_pair(predicted, reference, (), "energy")
    text = "".join(
        f"{_g(p)} {_g(r)}\n" for p, r in zip(predicted.tolist(), reference.tolist(), strict=True)
    )
    _write_text_atomically(path, text)


def read_energy_out(path) -> PredictionTable:
    """Read ``energy_*.out``: (frames,) predicted and reference energies in eV/atom."""
    values, _ = _read_table(path, 2, "energy file")
    return PredictionTable(values[:, 0].copy(), values[:, 1].copy())


def write_force_out(path, predicted, reference) -> None:
    """``force_*.out``: per atom predicted then reference fx fy fz in eV/Angstrom."""
    predicted, reference = _check_pair(predicted, reference, (3,), "force")
    data = np.hstack([predicted, reference]).tolist()
    text = "".join(" ".join(map(_g, row)) + "\n" for row in data)
    _write_text_atomically(path, text)


def read_force_out(path) -> PredictionTable:
    """Read ``force_*.out``: (atoms, 3) predicted and reference forces in eV/Angstrom."""
    values, _ = _read_table(path, 6, "force file")
    return PredictionTable(values[:, :3].copy(), values[:, 3:].copy())


def _write_twelve(path, predicted, reference, what: str) -> None:
    predicted, reference = _check_pair(predicted, reference, (6,), what)
    reference = np.where(np.isnan(reference), MISSING_REFERENCE, reference)
    if not np.isfinite(reference).all():
        raise ValueError(f"{what}: reference values must be finite or NaN (missing)")
    # GPUMD: "%g " after each predicted value, then the references separated by spaces
    text = "".join(
        "".join(_g(v) + " " for v in p) + " ".join(map(_g, r)) + "\n"
        for p, r in zip(predicted.tolist(), reference.tolist(), strict=True)
    )
    _write_text_atomically(path, text)


def write_virial_out(path, predicted, reference) -> None:
    """``virial_*.out``: per frame 6 predicted and 6 reference virial components per atom
    (eV/atom) in the order xx yy zz xy yz zx. NaN in ``reference`` (no virial) is written as
    GPUMD's -1e6."""
    _write_twelve(path, predicted, reference, "virial")


def read_virial_out(path) -> PredictionTable:
    """Read ``virial_*.out``: (frames, 6) in eV/atom, missing references as NaN."""
    values, _ = _read_table(path, 12, "virial file")
    return PredictionTable(values[:, :6].copy(), _sentinel_to_nan(values[:, 6:]))


def write_stress_out(path, predicted, reference) -> None:
    """``stress_*.out``: per frame 6 predicted and 6 reference stresses in GPa,
    compression positive (W/V), order xx yy zz xy yz zx; NaN references become -1e6.
    Use :func:`virial_to_stress_gpa` to convert virials."""
    _write_twelve(path, predicted, reference, "stress")


def read_stress_out(path) -> PredictionTable:
    """Read ``stress_*.out``: (frames, 6) in GPa (compression positive), missing as NaN."""
    values, _ = _read_table(path, 12, "stress file")
    return PredictionTable(values[:, :6].copy(), _sentinel_to_nan(values[:, 6:]))


def virial_to_stress_gpa(virial_per_atom, num_atoms, volume) -> np.ndarray:
    """GPUMD's stress_*.out value: W_total / V * 160.2177 GPa (compression positive).

    Parameters
    ----------
    virial_per_atom
        (frames, 6) virial per atom in eV/atom (NaN rows stay NaN).
    num_atoms, volume
        (frames,) atom counts and cell volumes in Angstrom^3.
    """
    virial_per_atom = np.asarray(virial_per_atom, dtype=np.float64)
    scale = np.asarray(num_atoms, dtype=np.float64) / np.asarray(volume, dtype=np.float64)
    return virial_per_atom * scale[:, None] * PRESSURE_UNIT_CONVERSION


# ---------------------------------------------------------------------------------------------
# GPUMD's MD outputs (``gpumd``): thermo.out, msd.out, rdf.out.
#
# Column layouts as GPUMD documents them (doc/gpumd/output_files/*.rst) and writes them:
#
# * ``thermo.out`` (``dump_thermo N``), one row per sample, no header: ``T K U Px Py Pz Pyz Pxz
#   Pxy`` then the box: ``Lx Ly Lz`` (12 columns, orthogonal box) or ``ax ay az bx by bz cx cy
#   cz`` (18 columns, triclinic). T in K, K and U (kinetic, potential energy of the whole system)
#   in eV, pressures in GPa, box in Angstrom. GPUMD before 3.x wrote no shear pressures (9 or
#   15 columns); those are read too, with shear pressures NaN.
# * ``msd.out`` (``compute_msd``): ``t MSDx MSDy MSDz SDCx SDCy SDCz`` with the correlation time
#   t in ps, MSD in Angstrom^2 and the running self-diffusion coefficient SDC = d(MSD)/dt / 2 in
#   Angstrom^2/ps; wider rows (1 + 6 G columns) are read as G groups of those six columns.
#   Each ``run`` appends its own block, whose time starts again at 0.
# * ``rdf.out`` (``compute_rdf``): a ``#radius total type_A_B ...`` header (GPUMD >= 4.9 names
#   every pair of type indices; older files have no header and optional pair columns), then
#   rows ``r g_total g_AB ...`` with r the bin centre in Angstrom. Each ``run`` appends a
#   header and its block.
@dataclass
class ThermoOut:
    """``thermo.out`` rows: ``temperature_K`` (n,), ``kinetic_eV`` (n,), ``potential_eV`` (n,),
    ``pressure_GPa`` (n, 6) in GPUMD's order xx yy zz yz xz xy, ``cell`` (n, 3, 3) Angstrom
    (rows a, b, c)."""

    temperature_K: np.ndarray
    kinetic_eV: np.ndarray
    potential_eV: np.ndarray
    pressure_GPa: np.ndarray
    cell: np.ndarray

    def __len__(self) -> int:
        return int(self.temperature_K.size)


@dataclass
class MsdOut:
    """One run's ``msd.out`` block: ``time_ps`` (n,), ``msd_A2`` (groups, n, 3) and
    ``sdc_A2_per_ps`` (groups, n, 3), axes x y z."""

    time_ps: np.ndarray
    msd_A2: np.ndarray
    sdc_A2_per_ps: np.ndarray

    def diffusion_cm2_per_s(self, group: int = 0, fit_fraction: float = 0.5):
        """(D, (Dx, Dy, Dz)) in cm^2/s from a straight line (with intercept) through the MSD over
        the first ``fit_fraction`` of the correlation window: D_axis = slope / 2, D = sum of
        the slopes / 6 (the NEP-ZBL paper's convention: 25 ps of a 50 ps window)."""
        count = max(2, int(round(fit_fraction * self.time_ps.size)))
        if self.time_ps.size < 2:
            raise NepFormatError("msd.out", None, "needs at least two correlation times")
        t = self.time_ps[:count]
        slopes = np.array([np.polyfit(t, self.msd_A2[group, :count, axis], 1)[0]
                           for axis in range(3)])
        to_cm2_per_s = 1e-4  # Angstrom^2/ps -> cm^2/s
        return float(slopes.sum() / 6.0 * to_cm2_per_s), tuple(slopes / 2.0 * to_cm2_per_s)


@dataclass
class RdfOut:
    """One run's ``rdf.out`` block: ``r_A`` (bins,), ``total`` (bins,) and ``partial`` {name:
    (bins,)}, names as in the header (``type_0_1``) or, given the species, ``"Li-O"``."""

    r_A: np.ndarray
    total: np.ndarray
    partial: dict


def _numeric_rows(path, lines, header_prefix: str | None = None):
    """[(line number, values)] of the non-empty lines; header lines ('#...') returned as
    (line number, text) with values None."""
    rows = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            rows.append((number, text))
            continue
        try:
            values = [float(x) for x in text.split()]
        except ValueError:
            raise NepFormatError(path, number, f"expected numbers, found {text[:60]!r}") from None
        rows.append((number, values))
    if not rows:
        raise NepFormatError(path, None, "no data rows")
    return rows


def read_thermo_out(path) -> ThermoOut:
    """Read GPUMD's ``thermo.out`` (see the layout above)."""
    rows = [(n, v) for n, v in _numeric_rows(path, _read_lines(path)) if not isinstance(v, str)]
    width = len(rows[0][1])
    if width not in (9, 12, 15, 18):
        raise NepFormatError(path, rows[0][0], f"expected 12 or 18 columns (T K U Px Py Pz Pyz "
                             f"Pxz Pxy and the box), found {width}")
    for number, values in rows:
        if len(values) != width:
            raise NepFormatError(path, number, f"expected {width} columns like line "
                                 f"{rows[0][0]}, found {len(values)}")
    data = np.array([v for _, v in rows], dtype=float)
    shear = width in (12, 18)
    pressure = np.full((len(data), 6), np.nan)
    pressure[:, :3] = data[:, 3:6]
    if shear:
        pressure[:, 3:] = data[:, 6:9]
    box = data[:, 9:] if shear else data[:, 6:]
    if box.shape[1] == 3:
        cell = np.zeros((len(data), 3, 3))
        cell[:, [0, 1, 2], [0, 1, 2]] = box
    else:
        cell = box.reshape(-1, 3, 3)
    return ThermoOut(temperature_K=data[:, 0], kinetic_eV=data[:, 1], potential_eV=data[:, 2],
                     pressure_GPa=pressure, cell=cell)


def read_msd_out(path) -> list[MsdOut]:
    """Read GPUMD's ``msd.out``: one :class:`MsdOut` per run block (time restarting at 0)."""
    rows = [(n, v) for n, v in _numeric_rows(path, _read_lines(path)) if not isinstance(v, str)]
    width = len(rows[0][1])
    if width < 7 or (width - 1) % 6:
        raise NepFormatError(path, rows[0][0], f"expected 7 columns (t MSDx MSDy MSDz SDCx SDCy "
                             f"SDCz) or 1 + 6 per group, found {width}")
    blocks, current = [], []
    for number, values in rows:
        if len(values) != width:
            raise NepFormatError(path, number, f"expected {width} columns, found {len(values)}")
        if current and values[0] <= current[-1][0]:
            blocks.append(current)
            current = []
        current.append(values)
    blocks.append(current)
    out = []
    for block in blocks:
        data = np.array(block, dtype=float)
        groups = data[:, 1:].reshape(len(data), -1, 6).transpose(1, 0, 2)
        out.append(MsdOut(time_ps=data[:, 0], msd_A2=groups[:, :, :3].copy(),
                          sdc_A2_per_ps=groups[:, :, 3:].copy()))
    return out


def read_rdf_out(path, species=None) -> list[RdfOut]:
    """Read GPUMD's ``rdf.out``: one :class:`RdfOut` per run block. With ``species`` (the
    model's types in order), pair columns ``type_i_j`` are named ``"A-B"``."""
    blocks, names, current = [], None, []

    def close():
        if current:
            data = np.array(current, dtype=float)
            columns = names or ["radius", "total"] + [f"column_{k}" for k in
                                                      range(3, data.shape[1] + 1)]
            partial = {}
            for k, name in enumerate(columns[2:], start=2):
                match = re.fullmatch(r"type_(\d+)_(\d+)", name)
                if match and species is not None:
                    i, j = int(match.group(1)), int(match.group(2))
                    if max(i, j) >= len(species):
                        raise NepFormatError(path, None, f"{name}: type index beyond the "
                                             f"{len(species)} species {list(species)}")
                    name = f"{species[i]}-{species[j]}"
                partial[name] = data[:, k]
            blocks.append(RdfOut(r_A=data[:, 0], total=data[:, 1], partial=partial))

    width = None
    for number, values in _numeric_rows(path, _read_lines(path)):
        if isinstance(values, str):
            close()
            current = []
            names = values.lstrip("#").split()
            width = len(names)
            continue
        if width is None:
            width = len(values)
        if len(values) != width or width < 2:
            raise NepFormatError(path, number, f"expected {width} columns (radius, total, "
                                 f"pairs), found {len(values)}")
        current.append(values)
    close()
    if not blocks:
        raise NepFormatError(path, None, "no data rows")
    return blocks
