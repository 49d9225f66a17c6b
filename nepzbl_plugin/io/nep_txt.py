"""Read and write GPUMD ``nep.txt`` model files (``nep-reference.md`` section 1).

The reader is strict: every header line is checked for its keyword, its token count and the
kind and range of every value, every value line must hold exactly one finite number, and the
file must hold exactly as many values as the header asks for. Any problem raises
:class:`~nepzbl_plugin.errors.NepFormatError` naming the file, the 1-based line and what is
wrong. Valid GPUMD models that are not plain potentials (dipole, polarizability, charge, vdW)
raise :class:`~nepzbl_plugin.errors.UnsupportedModelError`.

The reader returns, and the writer takes, plain data: the fields of
:class:`~nepzbl_plugin.model.Model` as a dict (``nepzbl_plugin.model`` builds the object;
``read_model``, ``Model.write`` and ``nepzbl_plugin.model.read_nep_txt`` are the usual entry
points).

Historic header forms (section 1.4) are read and upgraded; the writer always writes the current
form. A file GPUMD wrote is reproduced byte for byte by ``write_nep_txt(read_nep_txt(f), out)``.

The 7-token ``cutoff`` line of 2024-07/08 (``rcR rcA MN_R MN_A flag_R flag_ZBL``) has the same
length as the per-type form for two species (``rcR_0 rcA_0 rcR_1 rcA_1 MN_R MN_A``). With two
species it is taken as the historic form only when its last two values are 0/1 flags with at
least one 1 and its 3rd and 4th values are integers: a real per-type model has neighbour counts
well above 1 in those last two places. With any other number of species a 7-token line is always
the historic form.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..elements import atomic_number
from ..errors import InputError, NepFormatError, UnsupportedModelError
from ..layout import (
    ZBLSettings,
    descriptor_dim,
    model_token,
    num_parameters,
    pair_cutoffs,
    pair_index,
    zbl_beyond_angular,
)
from ._lines import FileLines, short_repr
from .atomic import atomic_write_text

__all__ = [
    "read_nep_txt_fields", "parse_nep_txt_fields", "write_nep_txt_fields", "format_nep_txt_fields",
    "l_max_line",
]

# Largest cutoff accepted in nep.txt and nep.in (GPUMD's nep.in limit; trained models use <= 10 A).
MAX_CUTOFF = 100.0
# Fixed typewise factors of the 6- and 7-token historic cutoff forms (section 1.4).
_HISTORIC_RADIAL_FACTOR = 2.5
_HISTORIC_ANGULAR_FACTOR = 2.0
_HISTORIC_ZBL_FACTOR = 0.6
# GPUMD and NEP_CPU keep the flexible ZBL table in a fixed array of 550 = 55 pairs x 10.
MAX_FLEXIBLE_ZBL_TYPES = 10

_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")
_TOKEN_RE = re.compile(r"nep(\d)(_zbl)?(.*)")
_UNSUPPORTED_SUFFIXES = {
    "_dipole": "a dipole (TNEP) model",
    "_polarizability": "a polarizability (TNEP) model",
    "_vdw": "a van der Waals model",
    "_charge_vdw": "a charge + van der Waals model",
}


class _Reader:
    """Holds the path for error messages and parses single tokens."""

    def __init__(self, path):
        self.path = path

    def error(self, line: int | None, problem: str) -> NepFormatError:
        return NepFormatError(self.path, line, problem)

    def number(self, token: str, line: int, what: str) -> float:
        if not _FLOAT_RE.fullmatch(token):
            raise self.error(line, f"{what}: expected a number, found {short_repr(token)}")
        value = float(token)
        if not math.isfinite(value):
            raise self.error(line, f"{what}: {short_repr(token)} is not a finite number")
        return value

    def integer(self, token: str, line: int, what: str) -> int:
        if not _INT_RE.fullmatch(token):
            raise self.error(line, f"{what}: expected an integer, found {short_repr(token)}")
        return int(token)


def read_nep_txt_fields(path) -> dict:
    """Read a ``nep.txt`` file as plain data (:meth:`nepzbl_plugin.model.Model.from_fields`
    builds the model; :func:`nepzbl_plugin.model.read_model` does both).

    Parameters
    ----------
    path
        The model file.

    Returns
    -------
    dict
        The fields of :class:`~nepzbl_plugin.model.Model` by name; ``metadata`` holds
        ``path``, ``cutoff_form`` (``"uniform"``, ``"per_type"``,
        ``"legacy2"``, ``"legacy6"``, ``"legacy7"`` or ``"legacy8"``) and ``zbl_form``.

    Raises
    ------
    NepFormatError
        For any malformed content (file, line and problem in the message).
    UnsupportedModelError
        For dipole, polarizability, charge or vdW models.
    """
    path = Path(path)
    source = FileLines(path)
    fields = _parse_lines(iter(source), path)
    if not source.ends_with_newline:
        # A file cut while being copied or written ends inside its last value, which then
        # reads as another number; GPUMD ends every line with a newline.
        raise NepFormatError(path, source.count, "the file ends without a final newline: it was "
                             "cut (the last value may be incomplete)")
    return fields


class _Lines:
    """The lines of a nep.txt, pulled from an iterator only as far as they are needed, so that
    a huge file is refused at its first impossible line without being read whole."""

    def __init__(self, source):
        self._source = source
        self._lines: list[str] = []
        self._exhausted = False

    def has(self, index: int) -> bool:
        while len(self._lines) <= index and not self._exhausted:
            try:
                self._lines.append(next(self._source))
            except StopIteration:
                self._exhausted = True
        return index < len(self._lines)

    def __getitem__(self, index: int) -> str:
        if not self.has(index):
            raise IndexError(index)
        return self._lines[index]

    def blank_from(self, index: int) -> bool:
        """Whether every line from ``index`` to the end is blank (read on, keeping nothing
        beyond what is already held)."""
        if index > 0:
            self.has(index - 1)
        if any(line.strip() for line in self._lines[index:]):
            return False
        for line in self._source:
            if line.strip():
                self._lines.append(line)  # kept in order: the first non-blank line
                return False
        self._exhausted = True
        return True

    def window(self, start: int, count: int) -> list[str]:
        self.has(start + count - 1)
        return self._lines[start : start + count]


def parse_nep_txt_fields(text: str, path="<string>") -> dict:
    """Parse the text of a ``nep.txt`` file; ``path`` is used only in error messages."""
    return _parse_lines(iter(text.split("\n")), path)


def _parse_lines(source, path) -> dict:
    rd = _Reader(path)
    lines = _Lines(source)
    # Trailing blank lines (and the empty string after a final newline) are tolerated.
    if not lines.has(0) or (not lines[0].strip() and lines.blank_from(1)):
        raise rd.error(1, "empty file: expected the model line, e.g. 'nep4 2 Te Pb'")

    def header_line(index: int, keyword: str) -> list[str]:
        if not lines.has(index) or (not lines[index].strip() and lines.blank_from(index)):
            raise rd.error(index + 1, f"file ends before the '{keyword}' header line")
        tokens = lines[index].split()
        if not tokens or tokens[0] != keyword:
            found = tokens[0] if tokens else "an empty line"
            raise rd.error(index + 1, f"expected the '{keyword}' line, found {short_repr(found)}")
        return tokens

    # ---------------------------------------------------------------- line 1
    tokens = lines[0].split()
    if not tokens:
        raise rd.error(1, "expected the model line, e.g. 'nep4 2 Te Pb', found an empty line")
    match = _TOKEN_RE.fullmatch(tokens[0])
    if match is None:
        raise rd.error(1, f"expected a model token such as 'nep4' or 'nep4_zbl', found "
                          f"{short_repr(tokens[0])}")
    version = int(match.group(1))
    has_zbl = match.group(2) is not None
    suffix = match.group(3)
    temperature = False
    if suffix == "_temperature":
        temperature = True
    elif suffix in _UNSUPPORTED_SUFFIXES or re.fullmatch(r"_charge\d", suffix):
        kind = _UNSUPPORTED_SUFFIXES.get(suffix, "a charge (qNEP) model")
        raise UnsupportedModelError(
            path, 1, f"{tokens[0]!r} is {kind}; nepzbl evaluates plain potentials only"
        )
    elif suffix:
        raise rd.error(1, f"unknown model token {short_repr(tokens[0])}")
    if version not in (3, 4, 5):
        raise rd.error(1, f"NEP version must be 3, 4 or 5, found {version} in {tokens[0]!r}")
    if len(tokens) < 2:
        raise rd.error(1, "expected the number of types after the model token")
    num_types = rd.integer(tokens[1], 1, "number of types")
    if num_types < 1:
        raise rd.error(1, f"number of types must be at least 1, found {num_types}")
    if len(tokens) != num_types + 2:
        raise rd.error(
            1, f"expected {num_types} element symbols after '{tokens[0]} {tokens[1]}', "
               f"found {len(tokens) - 2}"
        )
    types = tokens[2:]
    for symbol in types:
        try:
            atomic_number(symbol)
        except KeyError:
            raise rd.error(1, f"unknown element {short_repr(symbol)} (symbols H..Pu, "
                              "case-sensitive)") \
                from None
    if len(set(types)) != len(types):
        raise rd.error(1, f"an element appears twice in {' '.join(types)}")

    # ---------------------------------------------------------------- zbl line
    index = 1
    zbl_values = None
    zbl_line = None
    if has_zbl:
        tokens = header_line(index, "zbl")
        zbl_line = index + 1
        if len(tokens) not in (3, 4):
            raise rd.error(zbl_line, f"the zbl line needs 2 or 3 values, found {len(tokens) - 1}")
        zbl_values = [rd.number(t, zbl_line, "zbl") for t in tokens[1:]]
        index += 1

    # ---------------------------------------------------------------- cutoff line
    tokens = header_line(index, "cutoff")
    cut_line = index + 1
    values = tokens[1:]
    nvals = len(values)
    typewise_factors = None
    zbl_factor_from_cutoff = None
    max_nb = (0, 0)
    per_type = 2 * num_types + 2

    def cutoff_numbers(count):
        return [rd.number(t, cut_line, "cutoff") for t in values[:count]]

    def neighbour_counts(first):
        return tuple(rd.integer(t, cut_line, "neighbour count") for t in values[first:first + 2])

    def looks_like_legacy7():
        if num_types != 2:
            return True
        flags_ok = all(t in ("0", "1") for t in values[4:6]) and "1" in values[4:6]
        return flags_ok and all(_INT_RE.fullmatch(t) for t in values[2:4])

    if nvals == 4:
        rc = cutoff_numbers(2)
        radial, angular = [rc[0]], [rc[1]]
        max_nb = neighbour_counts(2)
        form = "uniform"
    elif nvals == per_type and not (nvals == 6 and looks_like_legacy7()):
        rc = cutoff_numbers(2 * num_types)
        radial, angular = rc[0::2], rc[1::2]
        max_nb = neighbour_counts(nvals - 2)
        form = "per_type"
    elif nvals == 6:
        radial, angular, max_nb, typewise_factors, zbl_factor_from_cutoff = _legacy7(
            rd, values, cut_line
        )
        form = "legacy7"
    elif nvals == 2:
        rc = cutoff_numbers(2)
        radial, angular = [rc[0]], [rc[1]]
        form = "legacy2"
    elif nvals == 5:
        rc = cutoff_numbers(2)
        radial, angular = [rc[0]], [rc[1]]
        max_nb = neighbour_counts(2)
        flag = rd.integer(values[4], cut_line, "typewise cutoff flag")
        if flag not in (0, 1):
            raise rd.error(cut_line, f"typewise cutoff flag must be 0 or 1, found {flag}")
        if flag:
            typewise_factors = (_HISTORIC_RADIAL_FACTOR, _HISTORIC_ANGULAR_FACTOR)
        form = "legacy6"
    elif nvals == 7:
        rc = cutoff_numbers(2)
        radial, angular = [rc[0]], [rc[1]]
        max_nb = neighbour_counts(2)
        f_r, f_a, f_zbl = (rd.number(t, cut_line, "typewise cutoff factor") for t in values[4:7])
        if f_r > 0 or f_a > 0:
            typewise_factors = (f_r, f_a)
        if f_zbl > 0:
            zbl_factor_from_cutoff = f_zbl
        form = "legacy8"
    else:
        raise rd.error(
            cut_line,
            f"the cutoff line needs 4 values (rcR rcA MN_R MN_A) or {per_type} "
            f"(rcR rcA per type, then MN_R MN_A), found {nvals}",
        )
    for rcr, rca in zip(radial, angular, strict=True):
        if rcr <= 0 or rca <= 0:
            raise rd.error(cut_line, f"cutoffs must be positive, found {rcr:g} and {rca:g}")
        if max(rcr, rca) > MAX_CUTOFF:  # as nep.in; 1e300 reached the engine as a "thin cell"
            raise rd.error(cut_line, f"cutoff {max(rcr, rca):g} A exceeds {MAX_CUTOFF:g} A")
    if min(max_nb) < 0:
        raise rd.error(cut_line, f"neighbour counts must be >= 0, found {max_nb[0]} "
                                 f"{max_nb[1]}")
    index += 1

    # ---------------------------------------------------------------- n_max .. ANN
    def two_ints(keyword, low, what):
        nonlocal index
        tokens = header_line(index, keyword)
        line = index + 1
        if len(tokens) != 3:
            raise rd.error(line, f"the {keyword} line needs 2 values, found {len(tokens) - 1}")
        out = [rd.integer(t, line, keyword) for t in tokens[1:]]
        for v, name in zip(out, what, strict=True):
            if v < low:
                raise rd.error(line, f"{keyword}: {name} must be >= {low}, found {v}")
        index += 1
        return out

    n_max = two_ints("n_max", 0, ("nR", "nA"))
    basis = two_ints("basis_size", 0, ("bR", "bA"))

    tokens = header_line(index, "l_max")
    line = index + 1
    if not 4 <= len(tokens) <= 8:
        raise rd.error(line, f"the l_max line needs 3 to 7 values, found {len(tokens) - 1}")
    lvals = [rd.integer(t, line, "l_max") for t in tokens[1:]]
    l_max = lvals[0]
    if not 0 <= l_max <= 8:
        raise rd.error(line, f"l_max must be in 0..8, found {l_max}")
    if any(v < 0 for v in lvals[1:]):
        raise rd.error(line, f"l_max flags must be >= 0, found {' '.join(tokens[2:])}")
    flags = tuple(lvals[1:])
    index += 1

    tokens = header_line(index, "ANN")
    line = index + 1
    if len(tokens) != 3:
        raise rd.error(line, f"the ANN line needs 2 values (N1 N2), found {len(tokens) - 1}")
    n1, n2 = (rd.integer(t, line, "ANN") for t in tokens[1:])
    if n1 < 1 or n2 < 0:
        raise rd.error(line, f"ANN needs N1 >= 1 and N2 >= 0, found {n1} {n2}")
    index += 1
    header_lines = index

    # ---------------------------------------------------------------- ZBL settings
    zbl = None
    zbl_form = None
    flexible = False
    if has_zbl:
        inner, outer = zbl_values[0], zbl_values[1]
        factor = zbl_values[2] if len(zbl_values) == 3 else None
        if zbl_factor_from_cutoff is not None:
            if factor is not None and not math.isclose(factor, zbl_factor_from_cutoff):
                raise rd.error(cut_line, f"the typewise ZBL factor {zbl_factor_from_cutoff:g} "
                                         f"differs from the zbl line's {factor:g}")
            factor = zbl_factor_from_cutoff
        if inner == 0 and outer == 0:
            if factor is not None:
                raise rd.error(zbl_line, "flexible ZBL (zbl 0 0) takes no typewise factor")
            flexible = True
            if num_types > MAX_FLEXIBLE_ZBL_TYPES:
                raise rd.error(zbl_line, f"flexible ZBL supports at most "
                                         f"{MAX_FLEXIBLE_ZBL_TYPES} species, found {num_types}")
            zbl_form = "flexible"
        else:
            if inner < 0 or outer <= 0 or (factor is None and inner >= outer):
                raise rd.error(zbl_line, f"ZBL radii must satisfy 0 <= inner < outer; found "
                                         f"{inner:g} {outer:g}")
            if factor is not None and factor <= 0:
                raise rd.error(zbl_line, f"the typewise ZBL factor must be positive, found "
                                         f"{factor:g}")
            zbl_form = "typewise" if factor is not None else "universal"
            zbl = ZBLSettings(mode=zbl_form, inner=inner, outer=outer, factor=factor)

    # ---------------------------------------------------------------- values
    num_par = num_parameters(version=version, types=types, n_max_radial=n_max[0],
                             n_max_angular=n_max[1], basis_size_radial=basis[0],
                             basis_size_angular=basis[1], l_max=l_max, l_max_flags=flags,
                             n_neurons=n1, n_neurons_second=n2, temperature=temperature)
    dim = descriptor_dim(n_max[0], n_max[1], l_max, flags, temperature)
    num_pairs = num_types * (num_types + 1) // 2
    num_zbl = 10 * num_pairs if flexible else 0
    expected = num_par + dim + num_zbl

    body = lines.window(header_lines, expected)
    found = len(body)
    if lines.blank_from(header_lines + found):
        while body and not body[-1].strip():
            body.pop()
        found = len(body)
    else:
        found = expected + 1  # more lines follow: "extra values" below
    if found < expected:
        parts = f"{num_par} parameters + {dim} q_scaler values"
        if num_zbl:
            parts += f" + {num_zbl} flexible ZBL values"
        raise rd.error(
            header_lines + found + 1,
            f"file is truncated: expected {expected} values after the header ({parts}), "
            f"found {found}",
        )
    if found > expected:
        raise rd.error(
            header_lines + expected + 1,
            f"extra values: expected {expected} values after the header, found more",
        )
    numbers = np.empty(expected)
    for k, text_line in enumerate(body):
        parts = text_line.split()
        line = header_lines + k + 1
        if len(parts) != 1:
            what = "an empty line" if not parts else f"{len(parts)} tokens"
            raise rd.error(line, f"expected one number per line, found {what}")
        numbers[k] = rd.number(parts[0], line, "value")

    parameters = numbers[:num_par]
    q_scaler = numbers[num_par : num_par + dim]
    if flexible:
        table = numbers[num_par + dim :].reshape(num_pairs, 10)
        first = header_lines + num_par + dim + 1
        for p, row in enumerate(table):
            if not 0 <= row[0] < row[1]:
                raise rd.error(first + 10 * p, f"flexible ZBL pair {p}: radii must satisfy "
                                               f"0 <= r_inner < r_outer, found {row[0]:g} "
                                               f"{row[1]:g}")
        zbl = ZBLSettings(mode="flexible", inner=0.0, outer=0.0, flexible=table)

    fields = dict(
        version=version,
        types=types,
        radial_cutoffs=radial,
        angular_cutoffs=angular,
        n_max_radial=n_max[0],
        n_max_angular=n_max[1],
        basis_size_radial=basis[0],
        basis_size_angular=basis[1],
        l_max=l_max,
        l_max_flags=flags,
        n_neurons=n1,
        parameters=parameters,
        q_scaler=q_scaler,
        zbl=zbl,
        max_neighbors_radial=max_nb[0],
        max_neighbors_angular=max_nb[1],
        n_neurons_second=n2,
        temperature=temperature,
        typewise_cutoff_factors=typewise_factors,
        metadata={"path": str(path), "cutoff_form": form, "zbl_form": zbl_form},
    )
    if zbl is not None:
        flexible_line = header_lines + num_par + dim + 1
        _check_zbl_inside_angular(fields, rd, zbl_line, flexible_line if flexible else None)
    return fields


def _check_zbl_inside_angular(fields: dict, rd: _Reader, zbl_line: int, flexible_line) -> None:
    """An outer ZBL radius beyond a pair's angular cutoff (:func:`layout.zbl_beyond_angular`)
    is refused at the zbl line, or at the pair's r_outer in the flexible table."""
    T = len(fields["types"])
    radial, angular = (np.broadcast_to(np.asarray(fields[k], dtype=np.float64), (T,))
                       for k in ("radial_cutoffs", "angular_cutoffs"))
    numbers = [atomic_number(s) for s in fields["types"]]
    _, angular = pair_cutoffs(numbers, radial, angular, fields["typewise_cutoff_factors"])
    beyond = zbl_beyond_angular(fields["types"], fields["zbl"], angular)
    if beyond is not None:
        a, b, problem = beyond
        line = zbl_line
        if flexible_line is not None:
            line = flexible_line + 10 * pair_index(a, b, T) + 1  # its r_outer
        raise rd.error(line, problem)


def _legacy7(rd: _Reader, values: list[str], line: int):
    """The 2024-07/08 form ``rcR rcA MN_R MN_A flag_R flag_ZBL`` (fixed factors)."""
    rc = [rd.number(t, line, "cutoff") for t in values[:2]]
    max_nb = tuple(rd.integer(t, line, "neighbour count") for t in values[2:4])
    flag_r, flag_zbl = (rd.integer(t, line, "typewise cutoff flag") for t in values[4:6])
    if flag_r not in (0, 1) or flag_zbl not in (0, 1):
        raise rd.error(line, f"typewise cutoff flags must be 0 or 1, found {flag_r} {flag_zbl}")
    factors = (_HISTORIC_RADIAL_FACTOR, _HISTORIC_ANGULAR_FACTOR) if flag_r else None
    zbl_factor = _HISTORIC_ZBL_FACTOR if flag_zbl else None
    return [rc[0]], [rc[1]], max_nb, factors, zbl_factor


# ==================================================================== writer
def _fmt_header(value: float, precision: str) -> str:
    value = float(value)
    text = format(value, "g")
    if precision == "full" and float(text) != value:
        text = repr(value)
    return text


def l_max_line(l_max: int, l_max_flags) -> list[int]:
    """The values of nep.txt's ``l_max`` line as GPUMD writes them: the 3-body l_max, then 2
    for q222 and 1 for each other optional invariant that is on, trailing zeros dropped after
    the first flag (``4 2 0``)."""
    flags = list(l_max_flags) + [0] * 6
    written = [2 if flags[0] else 0] + [1 if f else 0 for f in flags[1:6]]
    while len(written) > 2 and written[-1] == 0:
        written.pop()
    return [int(l_max), *written]


def format_nep_txt_fields(fields: dict, *, precision: str = "gpumd",
                          allow_legacy: bool = False, path="<string>") -> str:
    """The text of a model, given as plain data, in the current GPUMD ``nep.txt`` format.

    Parameters
    ----------
    fields
        The fields of :class:`~nepzbl_plugin.model.Model` by name (its ``fields()``).
    precision
        ``"gpumd"``: values as ``%15.7e`` (8 significant digits), as GPUMD writes them;
        ``"full"``: the shortest text that reads back to the identical float64 (lossless).
    allow_legacy
        Historic typewise NEP cutoffs (the ``typewise_cutoff_factors`` field) cannot be
        expressed in the current format; with ``allow_legacy=True`` they are written in the
        2024-08..2025-12 8-token cutoff form (which current GPUMD and NEP_CPU reject).
    path
        Used only in error messages.
    """
    if precision not in ("gpumd", "full"):
        raise InputError(f"precision must be 'gpumd' or 'full', not {precision!r}")
    for name, arr in (("parameters", fields["parameters"]), ("q_scaler", fields["q_scaler"])):
        if not np.all(np.isfinite(arr)):
            bad = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise NepFormatError(path, None, f"cannot write a model with non-finite "
                                             f"{name} (index {bad})")
    legacy = fields["typewise_cutoff_factors"] is not None
    if legacy and not allow_legacy:
        raise NepFormatError(
            path, None,
            "this model uses historic typewise NEP cutoffs (factors "
            f"{fields['typewise_cutoff_factors']}), which the current nep.txt format cannot "
            "express; pass allow_legacy=True to write the old 8-token cutoff line",
        )
    h = lambda v: _fmt_header(v, precision)  # noqa: E731
    types = fields["types"]
    token = model_token(fields["version"], fields["zbl"] is not None, fields["temperature"])
    out = [f"{token} {len(types)} " + "".join(f"{s} " for s in types)]
    zbl = fields["zbl"]
    if zbl is not None:
        if zbl.mode == "flexible":
            if len(fields["types"]) > MAX_FLEXIBLE_ZBL_TYPES:
                raise NepFormatError(path, None, f"flexible ZBL supports at most "
                                                 f"{MAX_FLEXIBLE_ZBL_TYPES} species")
            out.append("zbl 0 0")
        elif zbl.mode == "typewise" and not legacy:
            out.append(f"zbl {h(zbl.inner)} {h(zbl.outer)} {h(zbl.factor)}")
        else:
            out.append(f"zbl {h(zbl.inner)} {h(zbl.outer)}")
    rc_r, rc_a = fields["radial_cutoffs"], fields["angular_cutoffs"]
    uniform = bool(np.all(rc_r == rc_r[0]) and np.all(rc_a == rc_a[0]))
    counts = f"{int(fields['max_neighbors_radial'])} {int(fields['max_neighbors_angular'])}"
    if legacy:
        if not uniform:
            raise NepFormatError(path, None, "the historic typewise cutoff form needs uniform "
                                             "cutoffs")
        f_r, f_a = fields["typewise_cutoff_factors"]
        f_zbl = zbl.factor if zbl is not None and zbl.mode == "typewise" else -1
        out.append(f"cutoff {h(rc_r[0])} {h(rc_a[0])} {counts} {h(f_r)} {h(f_a)} {h(f_zbl)}")
    elif uniform:
        out.append(f"cutoff {h(rc_r[0])} {h(rc_a[0])} {counts}")
    else:
        pairs = " ".join(f"{h(a)} {h(b)}" for a, b in zip(rc_r, rc_a, strict=True))
        out.append(f"cutoff {pairs} {counts}")
    out.append(f"n_max {fields['n_max_radial']} {fields['n_max_angular']}")
    out.append(f"basis_size {fields['basis_size_radial']} {fields['basis_size_angular']}")
    out.append("l_max " + " ".join(map(str, l_max_line(fields["l_max"], fields["l_max_flags"]))))
    out.append(f"ANN {fields['n_neurons']} {fields['n_neurons_second']}")
    values = [fields["parameters"], fields["q_scaler"]]
    if zbl is not None and zbl.mode == "flexible":
        values.append(np.asarray(zbl.flexible, dtype=np.float64).ravel())
    allv = np.concatenate(values)
    if not np.all(np.isfinite(allv)):
        raise NepFormatError(path, None, "cannot write non-finite flexible ZBL values")
    if precision == "gpumd":
        # one %-format of all values: the same text as format(v, "15.7e") each, in half the
        # time (a GPU run writes nep.txt at every report, ten a second)
        body = (("%15.7e\n" * allv.size) % tuple(allv.tolist()))[:-1]
    else:
        body = "\n".join(repr(v) for v in allv.tolist())
    return "\n".join(out) + "\n" + body + "\n"


def write_nep_txt_fields(fields: dict, path, precision: str = "gpumd", *,
                         allow_legacy: bool = False) -> None:
    """Write a model given as plain data to ``path`` atomically (temporary file in the same
    folder, then ``os.replace``). See :func:`format_nep_txt_fields` for ``precision`` and
    ``allow_legacy``."""
    path = Path(path)
    text = format_nep_txt_fields(fields, precision=precision, allow_legacy=allow_legacy, path=path)
    atomic_write_text(path, text)


