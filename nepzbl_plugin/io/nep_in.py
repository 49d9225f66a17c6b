"""Read and write GPUMD ``nep.in`` training inputs (``nep-reference.md`` section 4.1).

Every GPUMD keyword is accepted with GPUMD's defaults and range checks, plus nepzbl's own
trainer keywords (``optimizer``, ``max_time``, ``learning_rate``, ``epochs``, ``batch_size``,
``seed``, ``target_force_rmse``, ``device``). Any problem raises
:class:`~nepzbl_plugin.errors.NepFormatError` naming the file, the line, the keyword and why.

Differences from GPUMD, on purpose:

* a keyword given twice is an error (GPUMD silently keeps the last one);
* ``save_potential`` with N = 0 is rejected (GPUMD accepts it and then divides by zero);
* ``version`` accepts 3, 4 and 5 (GPUMD's trainer only 4), since nepzbl evaluates all three.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..elements import atomic_number
from ..errors import InputError, MissingFileError, NepFormatError, UnsupportedModelError
from ..layout import ZBLSettings, pair_cutoffs, pair_index, zbl_beyond_angular
from ..layout import num_parameters as layout_num_parameters
from ._lines import FileLines, short_repr
from .nep_txt import MAX_CUTOFF, MAX_FLEXIBLE_ZBL_TYPES, atomic_write_text

__all__ = ["NepIn", "read_nep_in", "nep_in_of", "parse_nep_in", "write_nep_in", "read_zbl_in",
           "OPTIMIZERS", "check_option"]

OPTIMIZERS = ("adam", "lbfgs", "snes")
# where `nepzbl train` runs: the GPU when one is present (auto), or forced
DEVICES = ("auto", "cpu", "cuda")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")


@dataclass
class NepIn:
    """The content of a ``nep.in`` file; every field has GPUMD's default.

    Cutoffs are lists with one value (all types) or one value per type. ``l_max_flags`` are
    (q222, q1111, q112, q123, q233, q134) as written in nep.in (truthy integers).
    ``lambda_1`` / ``lambda_2`` of ``None`` mean GPUMD's default sqrt(N_par * 1e-6 / T);
    :meth:`resolved_lambdas` gives the numbers. ``flexible_zbl`` holds the ``zbl.in`` table
    found next to the file (only read when ``zbl`` is set). ``explicit`` lists the keywords the
    file gave, ``lines`` their line numbers.
    """

    types: list[str] = field(default_factory=list)
    version: int = 4
    model_type: int = 0
    prediction: int = 0
    zbl: float | None = None
    use_typewise_cutoff_zbl: bool = False
    typewise_cutoff_zbl_factor: float = 0.7
    radial_cutoffs: list[float] = field(default_factory=lambda: [8.0])
    angular_cutoffs: list[float] = field(default_factory=lambda: [4.0])
    n_max: tuple[int, int] = (6, 6)
    basis_size: tuple[int, int] = (6, 6)
    l_max: int = 4
    l_max_flags: tuple[int, ...] = (1, 0, 0, 0, 0, 0)
    neuron: int = 30
    neuron_second: int = 0
    lambda_1: float | None = None
    lambda_2: float | None = None
    lambda_e: float = 1.0
    lambda_f: float = 1.0
    lambda_v: float = 0.1
    lambda_shear: float = 1.0
    lambda_q: float = 0.1
    lambda_z: float = 0.5
    atomic_v: int = 0
    force_delta: float = 0.0
    type_weight: list[float] | None = None
    batch: int = 1000
    use_full_batch: int = 0
    population: int = 50
    generation: int = 100000
    save_potential: tuple[int, int, int] = (100000, 1, 0)
    output_interval: int = 100
    output_descriptor: int = 0
    fine_tune: tuple[str, str, int] | None = None
    import_q_scaler: int = 0
    charge_mode: int = 0
    charge_flip: int = 0
    vdw: int = 0
    charge_vdw: int = 0
    initial_para: float = 1.0
    sigma0: float = 0.1
    # nepzbl trainer keywords (None: the trainer's own default)
    optimizer: str | None = None
    max_time: float | None = None  # minutes
    learning_rate: float | None = None
    epochs: int | None = None
    batch_size: int | None = None  # structures per Adam step
    seed: int | None = None
    target_force_rmse: float | None = None  # eV/Angstrom
    device: str | None = None  # auto, cpu or cuda
    flexible_zbl: np.ndarray | None = None  # (T(T+1)/2, 10) from zbl.in
    explicit: set[str] = field(default_factory=set)
    lines: dict[str, int] = field(default_factory=dict)
    path: str = "<string>"

    @property
    def num_types(self) -> int:
        return len(self.types)

    def per_type_cutoffs(self) -> tuple[np.ndarray, np.ndarray]:
        """(radial, angular) cutoffs in Angstrom, one per type."""
        T = max(self.num_types, 1)
        rr = np.broadcast_to(np.asarray(self.radial_cutoffs, dtype=np.float64), (T,))
        ra = np.broadcast_to(np.asarray(self.angular_cutoffs, dtype=np.float64), (T,))
        return rr.copy(), ra.copy()

    def zbl_settings(self) -> ZBLSettings | None:
        """The ZBL set-up this input trains with: flexible when ``zbl.in`` was found, typewise
        with ``use_typewise_cutoff_zbl``, else universal with inner = outer / 2."""
        if self.zbl is None or self.model_type in (1, 2):
            return None
        if self.flexible_zbl is not None:
            return ZBLSettings("flexible", 0.0, 0.0, flexible=self.flexible_zbl.copy())
        if self.use_typewise_cutoff_zbl:
            return ZBLSettings("typewise", self.zbl / 2, self.zbl,
                               factor=self.typewise_cutoff_zbl_factor)
        return ZBLSettings("universal", self.zbl / 2, self.zbl)

    def model_header_kwargs(self) -> dict:
        """Keyword arguments for :meth:`nepzbl_plugin.model.Model.empty` (what
        :meth:`~nepzbl_plugin.model.Model.from_nep_in` uses): everything needed to
        build the (untrained) model this input describes."""
        if self.model_type in (1, 2):
            kind = "dipole" if self.model_type == 1 else "polarizability"
            raise UnsupportedModelError(self.path, self.lines.get("model_type"),
                                        f"model_type {self.model_type} ({kind}) is not a "
                                        "plain potential")
        for key in ("charge_mode", "vdw", "charge_vdw"):
            if getattr(self, key):
                raise UnsupportedModelError(self.path, self.lines.get(key),
                                            f"{key} {getattr(self, key)}: nepzbl trains plain "
                                            "potentials only")
        rr, ra = self.per_type_cutoffs()
        flags = tuple(int(f) for f in self.l_max_flags) + (0,) * 6
        written = (2 if flags[0] else 0,) + tuple(1 if f else 0 for f in flags[1:6])
        return dict(
            version=self.version,
            types=list(self.types),
            radial_cutoffs=rr,
            angular_cutoffs=ra,
            n_max_radial=self.n_max[0],
            n_max_angular=self.n_max[1],
            basis_size_radial=self.basis_size[0],
            basis_size_angular=self.basis_size[1],
            l_max=self.l_max,
            l_max_flags=written,
            n_neurons=self.neuron,
            n_neurons_second=self.neuron_second,
            zbl=self.zbl_settings(),
            temperature=self.model_type == 3,
        )

    def num_parameters(self) -> int:
        """N_par of the model this input trains."""
        return layout_num_parameters(**self.model_header_kwargs())

    def resolved_lambdas(self, num_parameters: int | None = None) -> tuple[float, float]:
        """(lambda_1, lambda_2) with GPUMD's default sqrt(N_par * 1e-6 / T) for unset ones."""
        n_par = self.num_parameters() if num_parameters is None else num_parameters
        default = math.sqrt(n_par * 1e-6 / self.num_types)
        return (
            default if self.lambda_1 is None else self.lambda_1,
            default if self.lambda_2 is None else self.lambda_2,
        )

    def type_weights(self) -> np.ndarray:
        """Per-type force-loss weights (1 when ``type_weight`` is not given)."""
        if self.type_weight is None:
            return np.ones(self.num_types)
        return np.asarray(self.type_weight, dtype=np.float64)


# ==================================================================== parsing
class _Line:
    def __init__(self, path, number: int, keyword: str, args: list[str]):
        self.path, self.number, self.keyword, self.args = path, number, keyword, args

    def error(self, why: str) -> NepFormatError:
        return NepFormatError(self.path, self.number, f"{self.keyword}: {why}")

    def count(self, *allowed: int) -> None:
        if len(self.args) not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise self.error(f"expected {want} value(s), found {len(self.args)}")

    def float(self, i: int, low=None, high=None) -> float:
        token = self.args[i]
        if not _FLOAT_RE.fullmatch(token):
            raise self.error(f"expected a number, found {short_repr(token)}")
        value = float(token)
        if not math.isfinite(value):
            raise self.error(f"{short_repr(token)} is not a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(f"{value:g} is out of range {_range(low, high)}")
        return value

    def int(self, i: int, low=None, high=None) -> int:
        token = self.args[i]
        if not _INT_RE.fullmatch(token):
            raise self.error(f"expected an integer, found {short_repr(token)}")
        value = int(token)
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(f"{value} is out of range {_range(low, high)}")
        return value


def _range(low, high) -> str:
    def fmt(v):
        return str(v) if isinstance(v, int) and abs(v) < 10**6 else f"{v:g}"

    if low is not None and high is not None:
        return f"{fmt(low)}..{fmt(high)}"
    return f">= {fmt(low)}" if low is not None else f"<= {fmt(high)}"


def _k_type(nep, ln):
    if not ln.args:
        raise ln.error("expected the number of types and the element symbols")
    T = ln.int(0, 1, None)
    if len(ln.args) != T + 1:
        raise ln.error(f"expected {T} element symbols, found {len(ln.args) - 1}")
    types = ln.args[1:]
    for s in types:
        try:
            atomic_number(s)
        except KeyError:
            raise ln.error(f"unknown element {short_repr(s)} (symbols H..Pu, case-sensitive)") \
                from None
    if len(set(types)) != T:
        raise ln.error("an element appears twice")
    nep.types = list(types)


def _k_cutoff(nep, ln):
    T = nep.num_types
    if len(ln.args) == 4 and T != 2:
        raise ln.error("expected 2 values (rc_radial rc_angular) or 2 per type; the neighbour "
                       "counts MN_R MN_A of nep.txt's cutoff line are not part of nep.in (the "
                       "trainer counts them from the data)")
    ln.count(*sorted({2, 2 * T}))
    values = [ln.float(i) for i in range(len(ln.args))]
    radial, angular = values[0::2], values[1::2]
    for rr, ra in zip(radial, angular, strict=True):
        if ra < 3:
            raise ln.error(f"angular cutoff {ra:g} A is below 3 A")
        if ra > rr:
            raise ln.error(f"angular cutoff {ra:g} A exceeds radial cutoff {rr:g} A")
        if rr > MAX_CUTOFF:
            raise ln.error(f"radial cutoff {rr:g} A exceeds {MAX_CUTOFF:g} A")
    nep.radial_cutoffs, nep.angular_cutoffs = radial, angular


def _k_l_max(nep, ln):
    ln.count(1, 2, 3, 4, 5, 6, 7)
    nep.l_max = ln.int(0, 2, 8)
    flags = [ln.int(i, 0, None) for i in range(1, len(ln.args))]
    nep.l_max_flags = tuple(flags) + (0,) * (6 - len(flags))


def _k_neuron(nep, ln):
    ln.count(1, 2)
    nep.neuron = ln.int(0, 1, 120)
    nep.neuron_second = ln.int(1, 0, 120) if len(ln.args) == 2 else 0


def _k_zbl(nep, ln):
    if len(ln.args) in (2, 3):
        raise ln.error("takes one value, the outer radius (the inner radius is half of it); "
                       "the `zbl r_inner r_outer [factor]` form belongs to nep.txt: typewise ZBL "
                       "is now `use_typewise_cutoff_zbl [factor]`, per-pair radii go in zbl.in")
    ln.count(1)
    nep.zbl = ln.float(0, 1.0, 4.0)


def _k_typewise_zbl(nep, ln):
    ln.count(0, 1)
    nep.use_typewise_cutoff_zbl = True
    if ln.args:
        nep.typewise_cutoff_zbl_factor = ln.float(0, 0.5, None)


def _k_type_weight(nep, ln):
    ln.count(nep.num_types)
    nep.type_weight = [ln.float(i) for i in range(len(ln.args))]


def _k_batch(nep, ln):
    ln.count(1, 2)
    nep.batch = ln.int(0, 1, None)
    nep.use_full_batch = ln.int(1, 0, 1) if len(ln.args) == 2 else 0


def _k_save_potential(nep, ln):
    ln.count(3)
    every = ln.int(0, 0, None)
    if every == 0:
        raise ln.error("N = 0 would make GPUMD divide by zero; use N >= 1")
    nep.save_potential = (every, ln.int(1, 0, 1), ln.int(2, 0, 1))


def _k_fine_tune(nep, ln):
    ln.count(2, 3)
    descriptor = ln.int(2, 0, 1) if len(ln.args) == 3 else 1
    nep.fine_tune = (ln.args[0], ln.args[1], descriptor)


def _k_charge_mode(nep, ln):
    ln.count(1, 2)
    nep.charge_mode = ln.int(0, 0, 2)
    nep.charge_flip = ln.int(1, 0, 1) if len(ln.args) == 2 else 0


def _k_optimizer(nep, ln):
    ln.count(1)
    if ln.args[0] not in OPTIMIZERS:
        raise ln.error(f"expected one of {', '.join(OPTIMIZERS)}, found {short_repr(ln.args[0])}")
    nep.optimizer = ln.args[0]


def _k_device(nep, ln):
    ln.count(1)
    if ln.args[0] not in DEVICES:
        raise ln.error(f"expected one of {', '.join(DEVICES)}, found {short_repr(ln.args[0])}")
    nep.device = ln.args[0]


def _int_key(name, low=None, high=None):
    def handler(nep, ln):
        ln.count(1)
        setattr(nep, name, ln.int(0, low, high))

    return handler


def _float_key(name, low=None, high=None, positive=False):
    def handler(nep, ln):
        ln.count(1)
        value = ln.float(0, low, high)
        if positive and value <= 0:
            raise ln.error(f"must be positive, found {value:g}")
        setattr(nep, name, value)

    return handler


def _pair_key(name, high_r, high_a, low=0):
    def handler(nep, ln):
        ln.count(2)
        setattr(nep, name, (ln.int(0, low, high_r), ln.int(1, low, high_a)))

    return handler


def _version(nep, ln):
    ln.count(1)
    v = ln.int(0)
    if v not in (3, 4, 5):
        raise ln.error(f"NEP version must be 3, 4 or 5, found {v}")
    nep.version = v


_HANDLERS = {
    "type": _k_type,
    "version": _version,
    "model_type": _int_key("model_type", 0, 3),
    "prediction": _int_key("prediction", 0, 1),
    "zbl": _k_zbl,
    "use_typewise_cutoff_zbl": _k_typewise_zbl,
    "cutoff": _k_cutoff,
    "n_max": _pair_key("n_max", 12, 8),
    "basis_size": _pair_key("basis_size", 16, 12),
    "l_max": _k_l_max,
    "neuron": _k_neuron,
    "lambda_1": _float_key("lambda_1", 0),
    "lambda_2": _float_key("lambda_2", 0),
    "lambda_e": _float_key("lambda_e", 0),
    "lambda_f": _float_key("lambda_f", 0),
    "lambda_v": _float_key("lambda_v", 0),
    "lambda_shear": _float_key("lambda_shear", 0),
    "lambda_q": _float_key("lambda_q", 0),
    "lambda_z": _float_key("lambda_z", 0),
    "atomic_v": _int_key("atomic_v", 0, 1),
    "force_delta": _float_key("force_delta"),
    "type_weight": _k_type_weight,
    "batch": _k_batch,
    "population": _int_key("population", 10, 200),
    "generation": _int_key("generation", 0, 10_000_000),
    "save_potential": _k_save_potential,
    "output_interval": _int_key("output_interval", 1, None),
    "output_descriptor": _int_key("output_descriptor", 0, 2),
    "fine_tune": _k_fine_tune,
    "import_q_scaler": _int_key("import_q_scaler", 0, 1),
    "charge_mode": _k_charge_mode,
    "vdw": _int_key("vdw", 0, 1),
    "charge_vdw": _int_key("charge_vdw", 0, 1),
    "initial_para": _float_key("initial_para", 0.1, 1.0),
    "sigma0": _float_key("sigma0", 0.01, 0.1),
    # nepzbl trainer keywords
    "optimizer": _k_optimizer,
    "max_time": _float_key("max_time", positive=True),
    "learning_rate": _float_key("learning_rate", positive=True),
    "epochs": _int_key("epochs", 1, None),
    "batch_size": _int_key("batch_size", 1, None),
    "seed": _int_key("seed", 0, None),
    "target_force_rmse": _float_key("target_force_rmse", positive=True),
    "device": _k_device,
}
_ALIASES = {"mode": "model_type"}
# Keywords GPUMD's nep no longer accepts, and what replaced them.
_REMOVED = {
    "use_typewise_cutoff": "typewise NEP cutoffs were removed from GPUMD (2025-12-11); give "
                           "per-type cutoffs instead: `cutoff rcR_0 rcA_0 rcR_1 rcA_1 ...`, one "
                           "pair per type (the pair cutoff is the mean of the two types')",
}
_NEEDS_TYPE = ("type_weight", "cutoff")


def parse_nep_in(text: str, path="<string>") -> NepIn:
    """Parse the text of a ``nep.in``; ``path`` is used in error messages. ``zbl.in`` is not
    read here (see :func:`read_nep_in`)."""
    return _parse_nep_in_lines(text.split("\n"), path)


def _parse_nep_in_lines(lines, path) -> NepIn:
    """Parse ``lines`` (any iterable of strings: a file is streamed, never read whole)."""
    nep = NepIn(path=str(path))
    for number, raw in enumerate(lines, start=1):
        tokens = []
        for token in raw.split():
            if token.startswith("#"):
                break
            tokens.append(token)
        if not tokens:
            continue
        keyword = _ALIASES.get(tokens[0], tokens[0])
        ln = _Line(path, number, tokens[0], tokens[1:])
        handler = _HANDLERS.get(keyword)
        if keyword in _REMOVED:
            raise NepFormatError(path, number, f"{tokens[0]}: {_REMOVED[keyword]}")
        if handler is None:
            raise NepFormatError(path, number, f"unknown keyword {short_repr(tokens[0])}")
        if keyword in nep.lines:
            raise ln.error(f"given twice (first on line {nep.lines[keyword]})")
        if keyword in _NEEDS_TYPE and "type" not in nep.lines:
            raise ln.error("'type' must come before this keyword")
        handler(nep, ln)
        nep.lines[keyword] = number
        nep.explicit.add(keyword)
    if "type" not in nep.lines:
        raise NepFormatError(path, None, "the mandatory 'type' keyword is missing")
    if nep.charge_mode and len(nep.radial_cutoffs) > 1:
        raise NepFormatError(path, nep.lines["cutoff"],
                             "cutoff: per-type cutoffs cannot be used with charge_mode")
    exclusive = sorted((k for k in ("charge_mode", "vdw", "charge_vdw") if getattr(nep, k)),
                       key=lambda k: nep.lines[k])
    if len(exclusive) > 1:
        raise NepFormatError(path, nep.lines[exclusive[1]],
                             f"{exclusive[1]}: cannot be combined with {exclusive[0]}")
    _check_zbl_inside_angular(nep, path)
    return nep


def _check_zbl_inside_angular(nep: NepIn, path, zbl_in=None) -> None:
    """An outer ZBL radius beyond a pair's angular cutoff (:func:`layout.zbl_beyond_angular`),
    for the ZBL form the input trains with; errors name nep.in's zbl line, or the zbl.in row."""
    settings = nep.zbl_settings()
    if settings is None or not nep.types:
        return
    radial, angular = nep.per_type_cutoffs()
    _, angular = pair_cutoffs([atomic_number(s) for s in nep.types], radial, angular)
    beyond = zbl_beyond_angular(nep.types, settings, angular)
    if beyond is not None:
        a, b, problem = beyond
        where, line = ((zbl_in, pair_index(a, b, nep.num_types) + 1) if zbl_in is not None
                       else (path, nep.lines["zbl"]))
        raise NepFormatError(where, line, problem)


def read_zbl_in(path, num_types: int) -> np.ndarray:
    """Read a flexible-ZBL ``zbl.in``: T(T+1)/2 lines of 10 numbers (r_inner r_outer A1 B1 ...
    A4 B4) in GPUMD's pair order (section 1.8)."""
    path = Path(path)
    if num_types > MAX_FLEXIBLE_ZBL_TYPES:
        raise NepFormatError(path, None, f"flexible ZBL supports at most "
                                         f"{MAX_FLEXIBLE_ZBL_TYPES} species, found {num_types}")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise MissingFileError(path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NepFormatError(path, None, f"cannot read the file: {exc}") from None
    num_pairs = num_types * (num_types + 1) // 2
    rows = []
    for number, raw in enumerate(text.split("\n"), start=1):
        tokens = raw.split()
        if not tokens:
            continue
        if len(rows) == num_pairs:
            raise NepFormatError(path, number, f"extra line: expected {num_pairs} lines of 10 "
                                               f"numbers for {num_types} types")
        if len(tokens) != 10:
            raise NepFormatError(path, number, f"expected 10 numbers (r_inner r_outer A1 B1 .. "
                                               f"A4 B4), found {len(tokens)}")
        row = []
        for token in tokens:
            if not _FLOAT_RE.fullmatch(token) or not math.isfinite(float(token)):
                raise NepFormatError(path, number,
                                     f"expected a finite number, found {short_repr(token)}")
            row.append(float(token))
        if not 0 <= row[0] < row[1]:
            raise NepFormatError(path, number, f"radii must satisfy 0 <= r_inner < r_outer, "
                                               f"found {row[0]:g} {row[1]:g}")
        rows.append(row)
    if len(rows) != num_pairs:
        raise NepFormatError(path, None, f"expected {num_pairs} lines of 10 numbers for "
                                         f"{num_types} types, found {len(rows)}")
    return np.array(rows)


def read_nep_in(path) -> NepIn:
    """Read a ``nep.in``; with ``zbl`` set, a ``zbl.in`` in the same folder makes it flexible
    ZBL (its table is in :attr:`NepIn.flexible_zbl`)."""
    path = Path(path)
    nep = _parse_nep_in_lines(FileLines(path), path)
    zbl_in = path.parent / "zbl.in"
    if nep.zbl is not None and zbl_in.is_file():
        nep.flexible_zbl = read_zbl_in(zbl_in, nep.num_types)
        _check_zbl_inside_angular(nep, path, zbl_in)
    return nep


def nep_in_of(nep, refusal: str) -> NepIn:
    """``nep`` itself when it is a :class:`NepIn`, the ``nep.in`` read from it when it is a
    path, else one InputError: ``refusal`` (who refuses, e.g. "train: nep_in must be") followed
    by what is accepted and what was given."""
    if isinstance(nep, (str, Path)):
        nep = read_nep_in(nep)
    if not isinstance(nep, NepIn):
        raise InputError(f"{refusal} a NepIn (nepzbl_plugin.io.nep_in.read_nep_in) or the path "
                         f"of a nep.in, not {type(nep).__name__}")
    return nep


# ==================================================================== writing
def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        text = format(value, "g")
        return text if float(text) == value else repr(value)
    return str(value)


def format_nep_in(nep: NepIn) -> str:
    """The text of ``nep`` as a ``nep.in``: ``type``, then every value that differs from the
    default or was given explicitly, with ``neuron`` always written (GPUMD quirk)."""
    default = NepIn()
    out = [f"type {nep.num_types} {' '.join(nep.types)}"]

    def changed(*names):
        return any(n in nep.explicit for n in names) or any(
            not _same(getattr(nep, n), getattr(default, n)) for n in names if hasattr(default, n)
        )

    simple = [
        "version", "model_type", "prediction", "zbl", "lambda_1", "lambda_2", "lambda_e",
        "lambda_f", "lambda_v", "lambda_shear", "lambda_q", "lambda_z", "atomic_v",
        "force_delta", "population", "generation", "output_interval", "output_descriptor",
        "import_q_scaler", "vdw", "charge_vdw", "initial_para", "sigma0", "optimizer",
        "max_time", "learning_rate", "epochs", "batch_size", "seed", "target_force_rmse",
        "device",
    ]
    for name in simple:
        value = getattr(nep, name)
        if value is not None and changed(name):
            out.append(f"{name} {_fmt(value)}")
    if nep.use_typewise_cutoff_zbl:
        out.append(f"use_typewise_cutoff_zbl {_fmt(nep.typewise_cutoff_zbl_factor)}")
    if changed("radial_cutoffs", "angular_cutoffs", "cutoff"):
        pairs = zip(nep.radial_cutoffs, nep.angular_cutoffs, strict=True)
        out.append("cutoff " + " ".join(f"{_fmt(float(a))} {_fmt(float(b))}" for a, b in pairs))
    if changed("n_max"):
        out.append(f"n_max {nep.n_max[0]} {nep.n_max[1]}")
    if changed("basis_size"):
        out.append(f"basis_size {nep.basis_size[0]} {nep.basis_size[1]}")
    if changed("l_max", "l_max_flags"):
        flags = list(nep.l_max_flags)
        while len(flags) > 2 and flags[-1] == 0:
            flags.pop()
        out.append("l_max " + " ".join(str(int(v)) for v in [nep.l_max, *flags]))
    out.append(f"neuron {nep.neuron}" + (f" {nep.neuron_second}" if nep.neuron_second else ""))
    if nep.type_weight is not None:
        out.append("type_weight " + " ".join(_fmt(float(w)) for w in nep.type_weight))
    if changed("batch", "use_full_batch"):
        out.append(f"batch {nep.batch}" + (" 1" if nep.use_full_batch else ""))
    if changed("save_potential"):
        out.append("save_potential " + " ".join(str(v) for v in nep.save_potential))
    if nep.fine_tune is not None:
        out.append("fine_tune " + " ".join(str(v) for v in nep.fine_tune))
    if changed("charge_mode", "charge_flip"):
        out.append(f"charge_mode {nep.charge_mode}" + (" 1" if nep.charge_flip else ""))
    return "\n".join(out) + "\n"


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return list(a) == list(b) if a is not None and b is not None else a is b
    return a == b


def write_nep_in(nep: NepIn, path) -> None:
    """Write ``nep`` as a ``nep.in`` atomically; with flexible ZBL also a ``zbl.in`` next to
    it (10 values per pair, lossless)."""
    path = Path(path)
    atomic_write_text(path, format_nep_in(nep))
    if nep.flexible_zbl is not None:
        rows = np.asarray(nep.flexible_zbl, dtype=np.float64)
        text = "\n".join(" ".join(repr(float(v)) for v in row) for row in rows) + "\n"
        atomic_write_text(path.parent / "zbl.in", text)


def replace(nep: NepIn, **changes) -> NepIn:
    """A copy of ``nep`` with some fields changed (they count as explicit)."""
    out = dataclasses.replace(nep, **changes)
    out.explicit = set(nep.explicit) | set(changes)
    out.lines = dict(nep.lines)
    return out


def check_option(option: str, keyword: str, value) -> object:
    """Check a command-line ``option`` with the parser and range checks of the nep.in
    ``keyword`` it overrides; returns the parsed value. A bad value raises
    :class:`~nepzbl_plugin.errors.NepzblError` naming the option, e.g.
    ``--learning-rate -1: must be positive, found -1``."""
    from ..errors import NepzblError

    text = str(value)
    scratch = NepIn(types=["H"])
    line = _Line(option, None, keyword, text.split())
    try:
        _HANDLERS[keyword](scratch, line)
    except NepFormatError as error:
        why = error.problem.split(": ", 1)[-1]
        raise NepzblError(f"{option} {text}: {why}") from None
    return getattr(scratch, keyword)
