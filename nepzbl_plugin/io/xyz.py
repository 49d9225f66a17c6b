"""GPUMD's training data: ``train.xyz`` / ``test.xyz`` (extended XYZ).

The reader follows GPUMD's ``nep`` executable (``../shared/docs/nep-reference.md`` section 4.2):

* line 1 of a frame is the number of atoms N (one integer >= 1), line 2 the comment line, then
  N atom lines;
* comment-line keys are case-insensitive and matched as ``key=``; spaces around ``=`` and just
  inside quotes are ignored; when a key appears twice the later one wins (as in GPUMD);
* ``Lattice`` (9 numbers, rows a, b, c) and ``Properties`` are mandatory, ``energy`` (total, eV)
  too unless ``require_energy=False``; ``Properties`` must name ``species`` (1 column), ``pos``
  (3) and ``force`` or ``forces`` (3, unless ``require_forces=False``); other columns are skipped;
* ``virial`` (9 values, total, eV) and ``stress`` (9 values, eV/A^3, tensile positive) are
  symmetrised by taking the later of each off-diagonal pair (yx, zx, zy win); stress becomes the
  virial W = -stress * V; when both are given they must agree within 1e-3 eV/atom and ``virial``
  is used;
* ``weight`` must satisfy 0 < w <= 100 (default 1); ``energy_weight`` (undocumented in GPUMD)
  defaults to 1;
* ``temperature`` (K, >= 0) is the input of temperature models (``model_type 3``), which GPUMD
  requires on every frame; other models ignore it.

Unlike GPUMD, which reads in float32 and silently stops at the first blank line, every problem
here raises :class:`~nepzbl_plugin.errors.NepFormatError` naming the file and the 1-based line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

from ..elements import SYMBOLS
from ..errors import FileError, MissingFileError, NepFormatError
from .atomic import atomic_write_text

__all__ = [
    "TrainingStructure",
    "read_train_xyz",
    "parse_train_xyz",
    "write_train_xyz",
    "format_train_xyz",
    "check_frames",
    "VIRIAL_STRESS_TOLERANCE",
]

#: Largest allowed difference (eV/atom) between ``virial=`` and ``-stress*V`` in one frame.
VIRIAL_STRESS_TOLERANCE = 1e-3

_ELEMENTS = frozenset(SYMBOLS)
# Keys with a meaning for GPUMD or for TrainingStructure; every other key goes to ``info``.
_RESERVED = frozenset(
    [
        "lattice",
        "properties",
        "energy",
        "virial",
        "stress",
        "weight",
        "energy_weight",
        "config_type",
        "pbc",
        "temperature",
    ]
)
_INT = re.compile(r"[+-]?[0-9]{1,12}")
# One comment-line token: a key, optionally ``= value`` with the value double-quoted,
# single-quoted or bare. Spaces around ``=`` are allowed, as GPUMD removes them.
_TOKEN = re.compile(
    r"""\s*(?P<key>[^\s="']+)(?:\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"']*)))?"""
)
# Later element of each off-diagonal pair wins: row-major index -> symmetric slot.
_SYM_SOURCE = np.array([[0, 3, 6], [3, 4, 7], [6, 7, 8]])


def _write_text_atomically(path, text: str) -> None:
    atomic_write_text(path, text)


# ---------------------------------------------------------------------------------------------
@dataclass(eq=False)
class TrainingStructure:
    """One frame of a GPUMD training set.

    Attributes
    ----------
    symbols
        Element symbol of every atom (case-sensitive, H..Pu).
    positions
        (N, 3) Cartesian positions in Angstrom.
    cell
        (3, 3) cell, rows are the vectors a, b, c, in Angstrom.
    pbc
        (3,) periodicity flags. GPUMD ignores them and treats every frame as periodic.
    energy
        Total energy in eV, or ``None``.
    forces
        (N, 3) forces in eV/Angstrom, or ``None``.
    virial
        (3, 3) total virial in eV with GPUMD's sign (compression positive, W = -stress * V),
        symmetric, or ``None``.
    weight
        GPUMD's structure weight ``weight=`` (0 < w <= 100).
    energy_weight
        GPUMD's ``energy_weight=`` (multiplies the frame's squared energy error).
    config_type
        The ``config_type=`` label, or ``None``.
    temperature
        GPUMD's ``temperature=`` in K (the input of temperature models), or ``None``.
    info
        Every other comment-line key, values as strings (``True`` for a bare key).
    source
        Where the frame was read, ``"train.xyz, line 197"`` (its atom-count line), or
        ``None``; errors found later (two atoms at one place) name it. Never written.
    """

    symbols: list[str]
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray = field(default_factory=lambda: np.ones(3, dtype=bool))
    energy: float | None = None
    forces: np.ndarray | None = None
    virial: np.ndarray | None = None
    weight: float = 1.0
    energy_weight: float = 1.0
    config_type: str | None = None
    info: dict = field(default_factory=dict)
    temperature: float | None = None
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        self.symbols = [str(s) for s in self.symbols]
        n = len(self.symbols)
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64)
        self.cell = np.ascontiguousarray(self.cell, dtype=np.float64)
        self.pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        if self.positions.shape != (n, 3):
            raise ValueError(f"positions: expected shape ({n}, 3), got {self.positions.shape}")
        if self.cell.shape != (3, 3):
            raise ValueError(f"cell: expected shape (3, 3), got {self.cell.shape}")
        if self.energy is not None:
            self.energy = float(self.energy)
        if self.forces is not None:
            self.forces = np.ascontiguousarray(self.forces, dtype=np.float64)
            if self.forces.shape != (n, 3):
                raise ValueError(f"forces: expected shape ({n}, 3), got {self.forces.shape}")
        if self.virial is not None:
            self.virial = np.ascontiguousarray(self.virial, dtype=np.float64)
            if self.virial.shape != (3, 3):
                raise ValueError(f"virial: expected shape (3, 3), got {self.virial.shape}")
        self.weight = float(self.weight)
        self.energy_weight = float(self.energy_weight)
        if not 0.0 < self.weight <= 100.0:
            raise ValueError(f"weight must satisfy 0 < w <= 100, got {self.weight}")
        if not 0.0 <= self.energy_weight <= 1e6:  # also refuses NaN: the loss would be NaN
            raise ValueError(f"energy_weight must satisfy 0 <= w <= 1e6, got {self.energy_weight}")
        for key in [k for k in self.info if str(k).lower() == "temperature"]:
            value = self.info.pop(key)  # GPUMD's key: the attribute, not free-form info
            if self.temperature is None:
                self.temperature = value
        if self.temperature is not None:
            self.temperature = float(self.temperature)
            if not 0.0 <= self.temperature <= 1e6:
                raise ValueError(f"temperature must be 0..1e6 K, got {self.temperature}")

    def __len__(self) -> int:
        """The number of atoms, as ``len(atoms)`` of an ``ase.Atoms``."""
        return len(self.symbols)

    # ------------------------------------------------------------------ derived values
    @property
    def num_atoms(self) -> int:
        return len(self.symbols)

    @property
    def volume(self) -> float:
        """|det(cell)| in Angstrom^3."""
        return float(abs(np.linalg.det(self.cell)))

    @property
    def energy_per_atom(self) -> float | None:
        return None if self.energy is None else self.energy / self.num_atoms

    @property
    def virial_voigt_per_atom(self) -> np.ndarray | None:
        """GPUMD's six virial components per atom (eV/atom): xx yy zz xy yz zx."""
        if self.virial is None:
            return None
        w = self.virial
        return np.array([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[1, 2], w[2, 0]]) / self.num_atoms

    # ------------------------------------------------------------------ ASE
    def to_atoms(self):
        """An :class:`ase.Atoms` with a SinglePointCalculator holding energy, forces and the
        stress (ASE sign, tensile positive: stress = -virial / V). Weight, energy_weight,
        config_type, temperature and ``info`` go to ``atoms.info``."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.stress import full_3x3_to_voigt_6_stress

        atoms = Atoms(symbols=self.symbols, positions=self.positions, cell=self.cell, pbc=self.pbc)
        results = {}
        if self.energy is not None:
            results["energy"] = self.energy
        if self.forces is not None:
            results["forces"] = self.forces.copy()
        if self.virial is not None:
            results["stress"] = full_3x3_to_voigt_6_stress(-self.virial / self.volume)
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info.update(self.info)
        if self.weight != 1.0:
            atoms.info["weight"] = self.weight
        if self.energy_weight != 1.0:
            atoms.info["energy_weight"] = self.energy_weight
        if self.config_type is not None:
            atoms.info["config_type"] = self.config_type
        if self.temperature is not None:
            atoms.info["temperature"] = self.temperature
        return atoms

    @classmethod
    def from_atoms(
        cls, atoms, *, weight: float | None = None, config_type: str | None = None
    ) -> TrainingStructure:
        """Build a frame from an :class:`ase.Atoms`.

        Energy, forces and stress come from the attached calculator's ``results`` (as left by
        ``ase.io.read`` of OUTCAR, vasprun.xml, extxyz, ...) and otherwise from ``atoms.info``
        (``energy``, ``virial`` as 9 values or 3x3 in eV, ``stress``) and ``atoms.arrays``
        (``forces`` or ``force``). ASE's stress is tensile positive, so the virial is
        W = -stress * V. ``weight`` and ``config_type`` override ``atoms.info``.

        Raises
        ------
        ValueError
            Non-finite values, unknown elements, or a stress with a singular cell.
        """
        from ase.stress import voigt_6_to_full_3x3_stress

        results = dict(atoms.calc.results) if atoms.calc is not None else {}
        info = {k: v for k, v in atoms.info.items()}
        lowered = {str(k).lower(): k for k in info}

        def take(name):
            key = lowered.get(name)
            return None if key is None else info.pop(key)

        energy = results.get("energy", results.get("free_energy"))
        info_energy = take("energy")
        if energy is None:
            energy = info_energy
        forces = results.get("forces")
        if forces is None:
            forces = atoms.arrays.get("forces", atoms.arrays.get("force"))
        cell = np.array(atoms.cell[:], dtype=np.float64)
        volume = abs(np.linalg.det(cell))
        virial = None
        info_virial, info_stress = take("virial"), take("stress")
        stress = results.get("stress")
        if stress is None and info_stress is not None:
            stress = np.asarray(info_stress, dtype=np.float64)
        if info_virial is not None:
            virial = np.asarray(info_virial, dtype=np.float64).reshape(3, 3)
        elif stress is not None:
            stress = np.asarray(stress, dtype=np.float64)
            if stress.size == 6:
                stress = voigt_6_to_full_3x3_stress(stress)
            stress = stress.reshape(3, 3)
            if not volume > 0:
                raise ValueError("a stress needs a cell with a nonzero volume")
            virial = -stress * volume
        if virial is not None:
            virial = _symmetrise(virial.ravel())
        info_weight, info_ew, info_ct = take("weight"), take("energy_weight"), take("config_type")
        info_temperature = take("temperature")
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - _ELEMENTS)
        if unknown:
            raise ValueError(f"elements outside H..Pu: {', '.join(unknown)}")
        for name, value in (("positions", atoms.positions), ("cell", cell), ("energy", energy),
                            ("forces", forces), ("virial", virial)):
            if value is not None and not np.all(np.isfinite(value)):
                raise ValueError(f"{name} is not finite")
        clean_info = {
            str(k): (v.item() if isinstance(v, np.generic) else v)
            for k, v in info.items()
            if isinstance(v, str | bool | int | float | np.generic)
        }
        return cls(
            symbols=symbols,
            positions=atoms.get_positions(),
            cell=cell,
            pbc=atoms.get_pbc(),
            energy=None if energy is None else float(energy),
            forces=forces,
            virial=virial,
            weight=float(
                weight if weight is not None else info_weight if info_weight is not None else 1
            ),
            energy_weight=float(1.0 if info_ew is None else info_ew),
            config_type=config_type
            if config_type is not None
            else (None if info_ct is None else str(info_ct)),
            info=clean_info,
            temperature=None if info_temperature is None else float(info_temperature),
        )


def _symmetrise(values: np.ndarray) -> np.ndarray:
    """3x3 from 9 row-major values (xx xy xz yx yy yz zx zy zz), keeping GPUMD's choice of the
    later element of each off-diagonal pair."""
    return np.asarray(values, dtype=np.float64).reshape(9)[_SYM_SOURCE]


# ---------------------------------------------------------------------------------------------
@dataclass
class _Layout:
    """Column layout of the atom lines, from ``Properties=``."""

    num_columns: int
    species: int
    pos: int
    force: int | None


class _Header:
    __slots__ = (
        "cell",
        "energy",
        "virial",
        "weight",
        "energy_weight",
        "config_type",
        "temperature",
        "pbc",
        "layout",
        "info",
    )


def _tokenize_comment(line: str, path, lineno: int) -> list[tuple[str, object]]:
    out = []
    pos, end = 0, len(line.rstrip())
    while pos < end:
        match = _TOKEN.match(line, pos)
        if match is None or match.end() == pos:
            raise NepFormatError(
                path,
                lineno,
                f"cannot parse the comment line at column {pos + 1}: {line[pos : pos + 20]!r} "
                "(unbalanced quote?)",
            )
        key = match.group("key")
        if match.group("dq") is not None:
            value = match.group("dq").strip()
        elif match.group("sq") is not None:
            value = match.group("sq").strip()
        elif match.group("bare") is not None:
            value = match.group("bare")
        else:
            value = True  # a bare key, extxyz's way of writing a true flag
        out.append((key, value))
        pos = match.end()
    return out


def _number(value, key: str, path, lineno: int) -> float:
    if not isinstance(value, str):
        raise NepFormatError(path, lineno, f"{key}: expected a number after '{key}=', found none")
    try:
        number = float(value)
    except ValueError:
        raise NepFormatError(path, lineno, f"{key}: expected a number, found {value!r}") from None
    if not np.isfinite(number):
        raise NepFormatError(path, lineno, f"{key}: expected a finite number, found {value!r}")
    return number


def _numbers(value, key: str, count: int, path, lineno: int) -> np.ndarray:
    parts = value.split() if isinstance(value, str) else []
    if len(parts) != count:
        raise NepFormatError(
            path, lineno, f"{key}: expected {count} numbers in quotes, found {len(parts)}"
        )
    return np.array([_number(p, key, path, lineno) for p in parts])


def _parse_properties(value, path, lineno: int, require_forces: bool) -> _Layout:
    parts = value.lower().split(":") if isinstance(value, str) else []
    if not parts or len(parts) % 3 != 0:
        raise NepFormatError(
            path,
            lineno,
            f"properties: expected name:type:columns triplets, found {value!r}",
        )
    offsets: dict[str, tuple[int, int]] = {}
    column = 0
    for k in range(0, len(parts), 3):
        name, _kind, count = parts[k : k + 3]
        if not re.fullmatch(r"[0-9]{1,4}", count) or int(count) < 1:
            raise NepFormatError(
                path,
                lineno,
                f"properties: column count of {name!r} must be a positive integer, found {count!r}",
            )
        if name == "forces":
            name = "force"
        offsets[name] = (column, int(count))  # a repeated name: the later wins, as in GPUMD
        column += int(count)
    for name, width in (("species", 1), ("pos", 3), ("force", 3)):
        if name not in offsets:
            if name == "force" and not require_forces:
                continue
            what = "'force' or 'forces'" if name == "force" else repr(name)
            raise NepFormatError(path, lineno, f"properties: {what} is missing")
        if offsets[name][1] != width:
            raise NepFormatError(
                path,
                lineno,
                f"properties: {name!r} must have {width} column(s), found {offsets[name][1]}",
            )
    force = offsets["force"][0] if "force" in offsets else None
    return _Layout(column, offsets["species"][0], offsets["pos"][0], force)


def _parse_comment(
    line: str, num_atoms: int, path, lineno: int, require_forces: bool, require_energy: bool
) -> _Header:
    tokens = _tokenize_comment(line, path, lineno)
    if not tokens:
        raise NepFormatError(path, lineno, "the comment line (2nd line of a frame) is empty")
    values: dict[str, object] = {}
    info: dict[str, object] = {}
    for key, value in tokens:
        low = key.lower()
        if low in _RESERVED:
            values[low] = value  # later occurrences win, as in GPUMD
        else:
            info[key] = value
    head = _Header()
    head.info = info
    if "lattice" not in values:
        raise NepFormatError(path, lineno, "'Lattice=\"ax ay az bx by bz cx cy cz\"' is missing")
    head.cell = _numbers(values["lattice"], "lattice", 9, path, lineno).reshape(3, 3)
    with np.errstate(all="ignore"):
        det = float(np.linalg.det(head.cell))
        scale = float(np.prod(np.linalg.norm(head.cell, axis=1)))
    if not (np.isfinite(det) and np.isfinite(scale)) or abs(det) <= 1e-10 * scale or det == 0:
        raise NepFormatError(path, lineno, f"lattice: the cell is singular (det = {det:.6g} A^3)")
    volume = abs(det)
    if "properties" not in values:
        raise NepFormatError(path, lineno, "'Properties=species:S:1:pos:R:3:...' is missing")
    head.layout = _parse_properties(values["properties"], path, lineno, require_forces)
    head.energy = None
    if "energy" in values:
        head.energy = _number(values["energy"], "energy", path, lineno)
    elif require_energy:
        raise NepFormatError(path, lineno, "'energy=' (total energy in eV) is missing")
    head.weight = 1.0
    if "weight" in values:
        head.weight = _number(values["weight"], "weight", path, lineno)
        if not 0.0 < head.weight <= 100.0:
            raise NepFormatError(
                path, lineno, f"weight: expected 0 < w <= 100, found {head.weight:g}"
            )
    head.energy_weight = 1.0
    if "energy_weight" in values:
        head.energy_weight = _number(values["energy_weight"], "energy_weight", path, lineno)
        if not 0.0 <= head.energy_weight <= 1e6:  # negative: a NaN energy RMSE after training
            raise NepFormatError(
                path, lineno, f"energy_weight: expected 0 <= w <= 1e6, found {head.energy_weight:g}"
            )
    head.config_type = None
    if "config_type" in values:
        ct = values["config_type"]
        head.config_type = "T" if ct is True else str(ct)
    head.temperature = None
    if "temperature" in values:
        head.temperature = _number(values["temperature"], "temperature", path, lineno)
        if not 0.0 <= head.temperature <= 1e6:
            raise NepFormatError(
                path, lineno, f"temperature: expected 0 <= T <= 1e6 K, found {head.temperature:g}"
            )
    head.pbc = np.ones(3, dtype=bool)
    if "pbc" in values:
        flags = values["pbc"].split() if isinstance(values["pbc"], str) else ["T"] * 3
        mapping = {"t": True, "true": True, "f": False, "false": False}
        if len(flags) != 3 or any(f.lower() not in mapping for f in flags):
            raise NepFormatError(
                path, lineno, f"pbc: expected three of T/F, found {values['pbc']!r}"
            )
        head.pbc = np.array([mapping[f.lower()] for f in flags])
    head.virial = None
    with np.errstate(all="ignore"):
        if "virial" in values:
            head.virial = _symmetrise(_numbers(values["virial"], "virial", 9, path, lineno))
        if "stress" in values:
            stress = _symmetrise(_numbers(values["stress"], "stress", 9, path, lineno))
            from_stress = -stress * volume
            if not np.all(np.isfinite(from_stress)):
                raise NepFormatError(path, lineno, "stress * volume overflows")
            if head.virial is None:
                head.virial = from_stress
            else:
                diff = float(np.max(np.abs(head.virial - from_stress))) / num_atoms
                if diff > VIRIAL_STRESS_TOLERANCE:
                    raise NepFormatError(
                        path,
                        lineno,
                        f"virial and stress disagree: max |virial - (-stress*V)| = {diff:.6g} "
                        f"eV/atom > {VIRIAL_STRESS_TOLERANCE:g} eV/atom",
                    )
    return head


def _locate_bad_number(rows, columns, first_line: int, path):
    """Raise NepFormatError at the first token in ``columns`` that is not a finite number."""
    for k, row in enumerate(rows):
        for c in columns:
            try:
                x = float(row[c])
            except ValueError:
                raise NepFormatError(
                    path, first_line + k, f"column {c + 1}: expected a number, found {row[c]!r}"
                ) from None
            if not np.isfinite(x):
                raise NepFormatError(
                    path,
                    first_line + k,
                    f"column {c + 1}: expected a finite number, found {row[c]!r}",
                )


def _parse_atoms(block: list[str], layout: _Layout, first_line: int, path, allowed):
    """Symbols, positions and forces of one frame's atom lines (bulk conversion)."""
    rows = list(map(str.split, block))
    ncols = layout.num_columns
    if set(map(len, rows)) != {ncols}:
        for k, row in enumerate(rows):
            if len(row) != ncols:
                raise NepFormatError(
                    path,
                    first_line + k,
                    f"expected {ncols} columns as declared by Properties, found {len(row)}",
                )
    flat = list(chain.from_iterable(rows))
    symbols = flat[layout.species :: ncols]
    columns = [layout.pos, layout.pos + 1, layout.pos + 2]
    if layout.force is not None:
        columns += [layout.force, layout.force + 1, layout.force + 2]
    tokens = list(chain.from_iterable(flat[c::ncols] for c in columns))
    try:
        values = np.array(tokens, dtype=np.float64)
    except (ValueError, OverflowError):
        _locate_bad_number(rows, columns, first_line, path)
        # numpy rejected something Python's float accepts (e.g. non-ASCII digits)
        values = np.array([float(t) for t in tokens], dtype=np.float64)
    values = values.reshape(len(columns), len(rows)).T
    if not np.isfinite(values).all():
        _locate_bad_number(rows, columns, first_line, path)
    bad = set(symbols) - allowed
    if bad:
        k = next(k for k, s in enumerate(symbols) if s in bad)
        if allowed is _ELEMENTS:
            problem = f"species {symbols[k]!r} is not an element symbol H..Pu"
        else:
            problem = f"species {symbols[k]!r} is not in the species list {sorted(allowed)}"
        raise NepFormatError(path, first_line + k, problem)
    positions = np.ascontiguousarray(values[:, :3])
    forces = np.ascontiguousarray(values[:, 3:6]) if layout.force is not None else None
    return symbols, positions, forces


def parse_train_xyz(
    text: str,
    *,
    source="<string>",
    species: Sequence[str] | None = None,
    require_forces: bool = True,
    require_energy: bool = True,
) -> list[TrainingStructure]:
    """Parse the text of a ``train.xyz``; ``source`` names it in errors.

    See :func:`read_train_xyz` for the parameters.
    """
    path = source
    allowed = _ELEMENTS if species is None else frozenset(species)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    nlines = len(lines)
    structures: list[TrainingStructure] = []
    i = 0
    while i < nlines:
        tokens = lines[i].split()
        if not tokens:
            rest = next((k for k in range(i + 1, nlines) if lines[k].strip()), None)
            if rest is not None:
                raise NepFormatError(
                    path,
                    i + 1,
                    f"blank line before more data (line {rest + 1}); GPUMD stops reading at a "
                    "blank line",
                )
            break
        if len(tokens) != 1 or not _INT.fullmatch(tokens[0]):
            raise NepFormatError(
                path,
                i + 1,
                f"expected the number of atoms (one integer) on the first line of a frame, "
                f"found {lines[i].strip()[:60]!r}",
            )
        num_atoms = int(tokens[0])
        if num_atoms < 1:
            raise NepFormatError(path, i + 1, f"number of atoms must be >= 1, found {num_atoms}")
        if i + 1 >= nlines:
            raise NepFormatError(
                path, i + 2, f"file ends before the comment line of the frame at line {i + 1}"
            )
        head = _parse_comment(lines[i + 1], num_atoms, path, i + 2, require_forces, require_energy)
        if i + 2 + num_atoms > nlines:
            raise NepFormatError(
                path,
                nlines + 1,
                f"file ends after {nlines - i - 2} of the {num_atoms} atom lines of the frame "
                f"at line {i + 1}",
            )
        symbols, positions, forces = _parse_atoms(
            lines[i + 2 : i + 2 + num_atoms], head.layout, i + 3, path, allowed
        )
        structures.append(
            TrainingStructure(
                symbols=symbols,
                positions=positions,
                cell=head.cell,
                pbc=head.pbc,
                energy=head.energy,
                forces=forces,
                virial=head.virial,
                weight=head.weight,
                energy_weight=head.energy_weight,
                config_type=head.config_type,
                info=head.info,
                temperature=head.temperature,
                source=f"{path}, line {i + 1}",
            )
        )
        i += 2 + num_atoms
    return structures


def read_train_xyz(
    path,
    *,
    species: Sequence[str] | None = None,
    require_forces: bool = True,
    require_energy: bool = True,
) -> list[TrainingStructure]:
    """Read a GPUMD ``train.xyz`` / ``test.xyz``.

    Parameters
    ----------
    path
        The file.
    species
        Allowed element symbols (the ``type`` list of nep.in / the model); any other species
        is an error. ``None`` allows every element H..Pu.
    require_forces, require_energy
        Whether ``force``/``forces`` columns and ``energy=`` are mandatory (they are for
        potential training).

    Returns
    -------
    list of TrainingStructure
        In file order. ``virial`` is ``None`` for frames with neither ``virial=`` nor
        ``stress=``.

    Raises
    ------
    NepFormatError
        Any malformed or inconsistent input, with the 1-based line.
    MissingFileError
        When the file does not exist (a :class:`FileNotFoundError` too).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingFileError(path) from None
    except IsADirectoryError:
        raise FileError(path, "is a folder, not a train.xyz file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise NepFormatError(path, line, f"not UTF-8 text (byte {data[err.start]:#04x})") from None
    return parse_train_xyz(
        text,
        source=str(path),
        species=species,
        require_forces=require_forces,
        require_energy=require_energy,
    )


# ---------------------------------------------------------------------------------------------
def _format_info_value(key: str, value) -> str:
    if isinstance(value, bool | np.bool_):
        return "T" if value else "F"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            raise ValueError(f"info[{key!r}] is not finite")
        return repr(float(value))
    if isinstance(value, str):
        if '"' in value or "\n" in value or "\r" in value:
            raise ValueError(f"info[{key!r}] contains a quote or a line break: {value!r}")
        if value == "" or any(c.isspace() for c in value) or "=" in value or "'" in value:
            return f'"{value}"'
        return value
    raise ValueError(f"info[{key!r}]: cannot write a {type(value).__name__} to extxyz")


def _header_line(s: TrainingStructure) -> str:
    r = repr
    parts = ['Lattice="' + " ".join(map(r, s.cell.ravel().tolist())) + '"']
    props = "species:S:1:pos:R:3" + (":forces:R:3" if s.forces is not None else "")
    parts.append("Properties=" + props)
    if s.energy is not None:
        parts.append(f"energy={s.energy!r}")
    if s.virial is not None:
        parts.append('virial="' + " ".join(map(r, s.virial.ravel().tolist())) + '"')
    if s.weight != 1.0:
        parts.append(f"weight={s.weight!r}")
    if s.energy_weight != 1.0:
        parts.append(f"energy_weight={s.energy_weight!r}")
    if s.config_type is not None:
        parts.append("config_type=" + _format_info_value("config_type", s.config_type))
    if s.temperature is not None:
        parts.append(f"temperature={s.temperature!r}")
    parts.append('pbc="' + " ".join("T" if p else "F" for p in s.pbc) + '"')
    for key, value in s.info.items():
        key = str(key)
        if key.lower() in _RESERVED or not re.fullmatch(r"[^\s=\"']+", key):
            raise ValueError(f"info key {key!r} cannot be written (reserved or malformed)")
        if value is True:
            parts.append(key)
        else:
            parts.append(f"{key}={_format_info_value(key, value)}")
    return " ".join(parts)


def _frame_text(s: TrainingStructure) -> str:
    for name, value in (
        ("energy", s.energy),
        ("positions", s.positions),
        ("forces", s.forces),
        ("virial", s.virial),
        ("cell", s.cell),
    ):
        if value is not None and not np.all(np.isfinite(value)):
            raise ValueError(f"{name} is not finite")
    lines = [str(s.num_atoms), _header_line(s)]
    if s.forces is not None:
        data = np.hstack([s.positions, s.forces]).tolist()
        lines += [
            f"{sym} {x!r} {y!r} {z!r} {fx!r} {fy!r} {fz!r}"
            for sym, (x, y, z, fx, fy, fz) in zip(s.symbols, data, strict=True)
        ]
    else:
        lines += [
            f"{sym} {x!r} {y!r} {z!r}"
            for sym, (x, y, z) in zip(s.symbols, s.positions.tolist(), strict=True)
        ]
    return "\n".join(lines) + "\n"


def format_train_xyz(structures: Iterable[TrainingStructure]) -> str:
    """The extxyz text :func:`write_train_xyz` writes."""
    return "".join(_frame_text(s) for s in structures)


def write_train_xyz(path, structures: Iterable[TrainingStructure]) -> None:
    """Write frames as a GPUMD-readable extxyz, atomically.

    Every frame gets ``Lattice=``, ``Properties=species:S:1:pos:R:3[:forces:R:3]``,
    ``energy=`` (total, eV) and ``virial=`` (9 values, total, eV) when known, ``weight=`` and
    ``energy_weight=`` when not 1, ``config_type=`` and ``temperature=`` when set, ``pbc=`` and
    the ``info`` keys.
    Floats are written with ``repr`` (shortest round-trip form), so reading the file back gives
    exactly the same numbers.
    """
    _write_text_atomically(path, format_train_xyz(structures))


def check_frames(path, frames, *, labels=None) -> None:
    """Refuse structures read by ASE (``ase.io.read``) that no analysis can use: NaN or
    infinite positions or cell, or a periodic cell without volume.

    ASE reads ``nan`` as a number and a zero ``Lattice`` as a cell, so without this check such
    a frame gave a numpy traceback ("Singular matrix") or quietly wrong distances. The error
    names the file, the frame (0-based, or ``labels[k]``) and, for every frame of an XYZ file
    (no ``labels``), the line.
    """
    xyz = labels is None and Path(path).suffix.lower() in (".xyz", ".extxyz")
    first_line = 1
    for k, atoms in enumerate(frames):
        line = first_line if xyz else None
        frame = f"frame {k}" if labels is None else labels[k]
        positions = np.asarray(atoms.positions, dtype=np.float64)
        bad = ~np.all(np.isfinite(positions), axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise NepFormatError(path, None if line is None else line + 2 + i,
                                 f"{frame}, atom {i}: the position is not finite "
                                 f"({' '.join(f'{x:g}' for x in positions[i])})")
        cell = np.asarray(atoms.cell.array, dtype=np.float64)
        if not np.all(np.isfinite(cell)):
            raise NepFormatError(path, None if line is None else line + 1,
                                 f"{frame}: the cell is not finite")
        if any(atoms.pbc):
            periodic = cell[np.asarray(atoms.pbc, dtype=bool)]
            gram = periodic @ periodic.T
            if abs(np.linalg.det(gram)) <= 1e-12 * max(1.0, float(np.max(np.abs(gram)))) ** len(
                    periodic):
                raise NepFormatError(path, None if line is None else line + 1,
                                     f"{frame}: the periodic cell is singular "
                                     "(zero volume, or a zero or repeated cell vector)")
        first_line += len(atoms) + 2
