"""The NEP / NEP-ZBL model object.

One :class:`Model` holds everything a ``nep.txt`` holds. The trainable parameters live in one
flat vector in GPUMD's file order (:attr:`Model.parameters`); the per-species network weights
and the descriptor coefficients are *views* into it, so nothing is stored twice and an
optimiser can update the vector in place.

Layout of the flat vector (``../shared/docs/nep-reference.md`` section 1.7), for every network
block b (one per species for nep4/nep5, one shared block for nep3)::

    w0[b]   (N1, D)   hidden weights, neuron-major: weight from input d to neuron h at h*D + d
    b0[b]   (N1,)     hidden biases (subtracted)
    w1[b]   (N1,)     output weights
    beta[b]           nep5 only: per-species output bias (subtracted)

then the shared output bias b1, then ``c_radial`` (nR+1, bR+1, T, T) and ``c_angular``
(nA+1, bA+1, T, T), both with the centre type before the neighbour type.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import numpy as np

from . import layout
from .checks import whole_number
from .elements import _Z as _ELEMENTS
from .elements import atomic_number
from .errors import IndexInputError, InputError, InputTypeError
from .io.nep_in import NepIn, nep_in_of
from .io.nep_txt import (
    format_nep_txt_fields,
    l_max_line,
    parse_nep_txt_fields,
    read_nep_txt_fields,
    write_nep_txt_fields,
)
from .layout import FLAG_NAMES, UNIVERSAL_ZBL_COEFFICIENTS, ZBLSettings, pair_index, same_values

__all__ = [
    "Model", "ZBLSettings", "read_model", "parse_nep_txt", "read_nep_txt", "format_nep_txt",
    "write_nep_txt", "UNIVERSAL_ZBL_COEFFICIENTS", "FLAG_NAMES", "pair_index",
]


def _number(value, name: str) -> float:
    """``value`` as a float, or one InputError naming the argument."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None


def checked_temperature(temperature) -> float:
    """``temperature`` as a float of kelvin, or one InputError: the engines' temperature input
    and :meth:`Model.at_temperature` accept only finite values >= 0 K."""
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        t = float("nan")
    if not (np.isfinite(t) and t >= 0.0):
        raise InputError(f"temperature must be a finite number of kelvin >= 0, got {temperature!r}")
    return t


@dataclass(eq=False)
class Model:
    """A NEP potential (nep3, nep4 or nep5, optionally with ZBL).

    Read one with :func:`read_model` and write it with :meth:`write`.
    """

    version: int
    types: list[str]
    radial_cutoffs: np.ndarray  # (T,) per-type radial cutoffs in Angstrom
    angular_cutoffs: np.ndarray  # (T,)
    n_max_radial: int
    n_max_angular: int
    basis_size_radial: int
    basis_size_angular: int
    l_max: int
    l_max_flags: tuple[int, ...]  # (q222, q1111, q112, q123, q233, q134), as written (q222 as 2)
    n_neurons: int
    parameters: np.ndarray  # flat trainable parameters, GPUMD order
    q_scaler: np.ndarray  # (D,)
    zbl: ZBLSettings | None = None
    max_neighbors_radial: int = 0  # the cutoff line's neighbour counts (list sizing only)
    max_neighbors_angular: int = 0
    n_neurons_second: int = 0  # ANN N1 N2: N2 > 0 is a second hidden layer
    temperature: bool = False  # nep4_temperature: one extra descriptor input
    # Historic (2024) typewise NEP cutoffs: pair cutoff = min(f*(R_cov,a + R_cov,b), rc).
    typewise_cutoff_factors: tuple[float, float] | None = None
    metadata: dict = field(default_factory=dict)  # where it came from (path, header form)

    def __post_init__(self):
        self.types = list(self.types)
        self.radial_cutoffs = np.array(self.radial_cutoffs, dtype=np.float64).reshape(-1)
        self.angular_cutoffs = np.array(self.angular_cutoffs, dtype=np.float64).reshape(-1)
        if self.radial_cutoffs.size == 1 and self.num_types > 1:
            self.radial_cutoffs = np.full(self.num_types, self.radial_cutoffs[0])
        if self.angular_cutoffs.size == 1 and self.num_types > 1:
            self.angular_cutoffs = np.full(self.num_types, self.angular_cutoffs[0])
        flags = tuple(int(f) for f in self.l_max_flags)
        self.l_max_flags = flags + (0,) * (6 - len(flags))
        self.parameters = np.ascontiguousarray(self.parameters, dtype=np.float64)
        self.q_scaler = np.ascontiguousarray(self.q_scaler, dtype=np.float64)
        if self.version not in (3, 4, 5):
            raise InputError(f"NEP version must be 3, 4 or 5, not {self.version}")
        if self.parameters.shape != (self.num_parameters,):
            raise InputError(
                f"expected {self.num_parameters} parameters for this header, "
                f"got {self.parameters.size}"
            )
        if self.q_scaler.shape != (self.descriptor_dim,):
            raise InputError(
                f"expected {self.descriptor_dim} q_scaler values, got {self.q_scaler.size}"
            )
        if self.zbl is not None and self.zbl.mode == "flexible":
            pairs = self.num_types * (self.num_types + 1) // 2
            if self.zbl.flexible.shape != (pairs, 10):
                raise InputError(
                    f"flexible ZBL needs a ({pairs}, 10) table for {self.num_types} types, "
                    f"got shape {self.zbl.flexible.shape}"
                )

    def __eq__(self, other) -> bool:
        """The same potential: every header field, parameter and q_scaler value equal (exact
        comparison; ``metadata``, where the model was read from, is not compared)."""
        if not isinstance(other, Model):
            return NotImplemented
        return same_values(self, other, skip=("metadata",))

    __hash__ = None  # compared by value and mutable (the parameters change in place)

    @classmethod
    def empty(cls, **header) -> Model:
        """A model with every parameter and q_scaler value 0, sized from the header fields.

        ``header`` takes every field of :class:`Model` except ``parameters`` and ``q_scaler``
        (for example from :meth:`nepzbl_plugin.io.nep_in.NepIn.model_header_kwargs`).
        """
        dim = layout.descriptor_dim(header["n_max_radial"], header["n_max_angular"],
                                    header["l_max"], header["l_max_flags"],
                                    header.get("temperature", False))
        return cls(
            parameters=np.zeros(layout.num_parameters(**header)),
            q_scaler=np.zeros(dim),
            **header,
        )

    @classmethod
    def from_nep_in(cls, nep: NepIn) -> Model:
        """The model a ``nep.in`` (a :class:`NepIn` or its path) trains, with every parameter
        and q_scaler value 0."""
        nep = nep_in_of(nep, "Model.from_nep_in takes")
        return cls.empty(**nep.model_header_kwargs())

    @classmethod
    def from_fields(cls, fields: dict) -> Model:
        """A model from the plain field dict :mod:`nepzbl_plugin.io.nep_txt` reads."""
        return cls(**fields)

    def fields(self) -> dict:
        """The fields of this model as a plain dict (arrays shared, not copied), as
        :mod:`nepzbl_plugin.io.nep_txt` writes them."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # ------------------------------------------------------------------ derived sizes
    @property
    def num_types(self) -> int:
        return len(self.types)

    @property
    def atomic_numbers(self) -> list[int]:
        try:
            return [atomic_number(s) for s in self.types]
        except (KeyError, TypeError):
            bad = next(s for s in self.types if not isinstance(s, str) or s not in _ELEMENTS)
            raise InputError(f"model species {bad!r} is not an element symbol H..Pu (species: "
                             f"{', '.join(map(str, self.types))})") from None

    @property
    def flags_on(self) -> tuple[bool, ...]:
        """Each optional angular invariant, read as GPUMD MD does: nonzero means on."""
        return tuple(f != 0 for f in self.l_max_flags)

    @property
    def num_angular_blocks(self) -> int:
        """N_L: the L three-body blocks plus every enabled invariant."""
        return layout.num_angular_blocks(self.l_max, self.l_max_flags)

    @property
    def descriptor_dim(self) -> int:
        """D = (nR+1) + (nA+1) N_L (+1 for temperature models)."""
        return layout.descriptor_dim(self.n_max_radial, self.n_max_angular, self.l_max,
                                     self.l_max_flags, self.temperature)

    @property
    def num_networks(self) -> int:
        return layout.num_networks(self.version, self.num_types)

    @property
    def network_block_size(self) -> int:
        """Values per network block (w0, b0, w1 and, for nep5, beta)."""
        return layout.network_block_size(self.version, self.descriptor_dim, self.n_neurons,
                                         self.n_neurons_second)

    @property
    def num_network_parameters(self) -> int:
        return layout.num_network_parameters(self.version, self.num_types, self.descriptor_dim,
                                             self.n_neurons, self.n_neurons_second)

    @property
    def num_descriptor_parameters(self) -> int:
        return layout.num_descriptor_parameters(self.num_types, self.n_max_radial,
                                                self.n_max_angular, self.basis_size_radial,
                                                self.basis_size_angular)

    @property
    def num_parameters(self) -> int:
        return self.num_network_parameters + self.num_descriptor_parameters

    # ------------------------------------------------------------------ views
    def network(self, block: int) -> dict[str, np.ndarray]:
        """Views of network block ``block`` (a species index 0..T-1; 0 for nep3). A negative
        or larger index raises :class:`~nepzbl_plugin.errors.IndexInputError`.

        Keys: ``w0`` (N1, D), ``b0`` (N1,), ``w1`` (N1,) for one hidden layer; with a second
        one (``ANN N1 N2``) ``w1`` (N2, N1), ``b1`` (N2,) and ``w2`` (N2,) instead; ``beta``
        (shape (1,)) for nep5. Writing into them changes :attr:`parameters`.
        """
        if whole_number(block, floats=False) is None:
            raise InputError(f"network(block): block must be a whole number 0.."
                             f"{self.num_networks - 1} (a species index), not {block!r}")
        if not 0 <= block < self.num_networks:
            # Negative indices are refused, not counted from the end: a block is a species
            # index, and type indices are 0..T-1 everywhere in nepzbl (System refuses -1 too).
            species = ("nep3: one network shared by every species" if self.version == 3 else
                       f"species {', '.join(f'{t}={s}' for t, s in enumerate(self.types))}")
            raise IndexInputError(f"network({block}): block must be 0..{self.num_networks - 1} "
                                  f"({species})")
        D, N1, N2 = self.descriptor_dim, self.n_neurons, self.n_neurons_second
        start = block * self.network_block_size
        end = start + self.network_block_size
        p = self.parameters
        out = {
            "w0": p[start : start + N1 * D].reshape(N1, D),
            "b0": p[start + N1 * D : start + N1 * D + N1],
        }
        rest = start + N1 * D + N1
        if N2 > 0:
            out["w1"] = p[rest : rest + N2 * N1].reshape(N2, N1)
            out["b1"] = p[rest + N2 * N1 : rest + N2 * N1 + N2]
            out["w2"] = p[rest + N2 * N1 + N2 : rest + N2 * N1 + 2 * N2]
        else:
            out["w1"] = p[rest : rest + N1]
        if self.version == 5:
            out["beta"] = p[end - 1 : end]
        return out

    @property
    def shared_bias(self) -> float:
        """b1, the output bias shared by all species (subtracted from every site energy)."""
        return float(self.parameters[self.num_network_parameters - 1])

    @shared_bias.setter
    def shared_bias(self, value: float) -> None:
        self.parameters[self.num_network_parameters - 1] = value

    @property
    def radial_coefficients(self) -> np.ndarray:
        """c^R as a view of shape (nR+1, bR+1, T, T): [n, k, centre type, neighbour type]."""
        T = self.num_types
        start = self.num_network_parameters
        n = (self.n_max_radial + 1) * (self.basis_size_radial + 1) * T * T
        return self.parameters[start : start + n].reshape(
            self.n_max_radial + 1, self.basis_size_radial + 1, T, T
        )

    @property
    def angular_coefficients(self) -> np.ndarray:
        """c^A as a view of shape (nA+1, bA+1, T, T)."""
        T = self.num_types
        start = self.num_network_parameters + (self.n_max_radial + 1) * (
            self.basis_size_radial + 1
        ) * T * T
        return self.parameters[start:].reshape(
            self.n_max_angular + 1, self.basis_size_angular + 1, T, T
        )

    def parameter_groups(self) -> dict[str, slice]:
        """Slices of :attr:`parameters` by group: one ``network_<species>`` per block (or
        ``network`` for nep3), ``shared_bias``, ``radial_coefficients``,
        ``angular_coefficients``."""
        groups = {}
        size = self.network_block_size
        for b in range(self.num_networks):
            name = "network" if self.version == 3 else f"network_{self.types[b]}"
            groups[name] = slice(b * size, (b + 1) * size)
        nn = self.num_network_parameters
        groups["shared_bias"] = slice(nn - 1, nn)
        nrad = self.radial_coefficients.size
        groups["radial_coefficients"] = slice(nn, nn + nrad)
        groups["angular_coefficients"] = slice(nn + nrad, self.num_parameters)
        return groups

    def parameter_types(self) -> np.ndarray:
        """GPUMD's "type" of every parameter (section 4.4): the species for network block
        values and for c[n, k, centre, neighbour] the centre species; T for the shared bias.
        nep3's single block is given type 0..T-1 by nothing: its values get type T."""
        T = self.num_types
        out = np.empty(self.num_parameters, dtype=np.int64)
        size = self.network_block_size
        for b in range(self.num_networks):
            out[b * size : (b + 1) * size] = b if self.version != 3 else T
        nn = self.num_network_parameters
        out[nn - 1] = T
        nrad = self.radial_coefficients.size
        centre_r = np.broadcast_to(np.arange(T)[:, None], (T, T))
        out[nn : nn + nrad] = np.broadcast_to(centre_r, self.radial_coefficients.shape).ravel()
        out[nn + nrad :] = np.broadcast_to(centre_r, self.angular_coefficients.shape).ravel()
        return out

    # ------------------------------------------------------------------ pair tables
    def pair_cutoffs(self) -> tuple[np.ndarray, np.ndarray]:
        """(radial, angular) pair cutoffs, each (T, T): the mean of the two per-type values,
        or for historic typewise models min(f (R_cov,a + R_cov,b), rc)."""
        return layout.pair_cutoffs(self.atomic_numbers, self.radial_cutoffs,
                                   self.angular_cutoffs, self.typewise_cutoff_factors)

    def zbl_table(self) -> np.ndarray | None:
        """The ZBL set-up resolved per ordered type pair: (T, T, 10) with r_inner, r_outer,
        A1, B1, ..., A4, B4; ``None`` without ZBL."""
        return layout.zbl_table(self.atomic_numbers, self.zbl)

    @property
    def max_cutoff(self) -> float:
        rr, ra = self.pair_cutoffs()
        return float(max(rr.max(), ra.max()))

    # ------------------------------------------------------------------ conveniences
    @property
    def model_token(self) -> str:
        return layout.model_token(self.version, self.zbl is not None, self.temperature)

    def copy(self) -> Model:
        """A deep copy (parameters, q_scaler and the ZBL table are copied)."""
        zbl = None
        if self.zbl is not None:
            zbl = dataclasses.replace(
                self.zbl, flexible=None if self.zbl.flexible is None else self.zbl.flexible.copy()
            )
        return dataclasses.replace(
            self,
            parameters=self.parameters.copy(),
            q_scaler=self.q_scaler.copy(),
            radial_cutoffs=self.radial_cutoffs.copy(),
            angular_cutoffs=self.angular_cutoffs.copy(),
            zbl=zbl,
            metadata=dict(self.metadata),
        )

    def with_zbl(self, outer: float, *, inner: float | None = None,
                 factor: float | None = None) -> Model:
        """A copy with universal ZBL (``factor=None``) or typewise ZBL (``factor`` given).

        Parameters
        ----------
        outer
            Outer radius r_outer in Angstrom (GPUMD's ``zbl`` value).
        inner
            Inner radius in Angstrom; default ``outer / 2`` as GPUMD's ``nep`` writes it. The
            typewise mode writes it but evaluates with inner 0.
        factor
            Typewise factor f: per pair outer = min(f (R_cov,a + R_cov,b), outer).
        """
        outer = _number(outer, "with_zbl: outer")
        inner = outer / 2 if inner is None else _number(inner, "with_zbl: inner")
        if not (np.isfinite(outer) and outer > 0 and np.isfinite(inner) and 0 <= inner < outer):
            raise InputError(f"ZBL radii must satisfy 0 <= inner < outer, got {inner} {outer}")
        if factor is not None:
            factor = _number(factor, "with_zbl: factor")
            if not (np.isfinite(factor) and factor > 0):
                raise InputError(f"the typewise ZBL factor must be positive, got {factor}")
        out = self.copy()
        mode = "universal" if factor is None else "typewise"
        out.zbl = ZBLSettings(mode, inner=inner, outer=outer, factor=factor)
        # refused as read_model refuses it (ZBL pairs come from the angular neighbour list)
        beyond = layout.zbl_beyond_angular(out.types, out.zbl, out.pair_cutoffs()[1])
        if beyond is not None:
            raise InputError(f"with_zbl: {beyond[2]}")
        return out

    def to_nep4(self) -> Model:
        """The same potential as a nep4 model (a copy for a nep4 model).

        nep3 evaluates every species with one shared network block; nep4 has one block per
        species and the same shared output bias b1 (section 1.7), so copying the shared block
        to every species gives identical energies and forces. Current GPUMD runs only nep4.
        """
        if self.version == 4:
            return self.copy()
        if self.version != 3:
            raise InputError(f"only nep3 models can be upgraded to nep4, not nep{self.version}")
        block = self.parameters[: self.network_block_size]
        out = self.copy()
        out.version = 4
        out.parameters = np.concatenate([
            np.tile(block, self.num_types),  # w0, b0, w1 of the shared block, once per species
            [self.shared_bias],
            self.parameters[self.num_network_parameters:],  # descriptor coefficients
        ])
        out.metadata["upgraded_from"] = "nep3"
        out.__post_init__()  # size checks with the nep4 header
        return out

    def at_temperature(self, temperature: float) -> Model:
        """The plain model this temperature model (``nep4_temperature``) is at one fixed
        temperature, in K.

        The temperature enters every hidden neuron k as the constant
        w0[k, D-1] q_scaler[D-1] T; folding it into the bias b0[k] leaves a model without the
        temperature input that gives the same energies, forces and virials at that
        temperature, and that NEP_CPU, LAMMPS and calorine can run (they do not read
        temperature models).
        """
        if not self.temperature:
            raise InputError("at_temperature needs a temperature model (nep4_temperature)")
        t = checked_temperature(temperature)
        D = self.descriptor_dim
        input_value = self.q_scaler[D - 1] * t  # the network's temperature input
        blocks = []
        for b in range(self.num_networks):
            net = self.network(b)
            start = b * self.network_block_size
            after_b0 = start + (D + 1) * self.n_neurons  # w1 (and b1, w2 with two layers), beta
            blocks += [net["w0"][:, : D - 1].ravel(), net["b0"] - net["w0"][:, D - 1] * input_value,
                       self.parameters[after_b0 : start + self.network_block_size]]
        out = self.copy()
        out.temperature = False
        out.parameters = np.concatenate(
            blocks + [[self.shared_bias], self.parameters[self.num_network_parameters:]])
        out.q_scaler = self.q_scaler[: D - 1].copy()
        out.metadata["folded_temperature_K"] = t
        out.__post_init__()  # size checks with the plain header
        return out

    def without_zbl(self) -> Model:
        """A copy without ZBL (the network parameters are unchanged)."""
        out = self.copy()
        out.zbl = None
        return out

    def summary(self) -> str:
        """A readable multi-line description (for ``nepzbl info``)."""
        T = self.num_types
        kinds = {3: "NEP3 (one shared network)", 4: "NEP4", 5: "NEP5 (per-species bias)"}
        lines = [
            f"model          : {self.model_token} ({kinds[self.version]}"
            + (", temperature input" if self.temperature else "") + ")",
            f"species ({T})    : {' '.join(self.types)}",
        ]
        uniform = bool(np.all(self.radial_cutoffs == self.radial_cutoffs[0])
                       and np.all(self.angular_cutoffs == self.angular_cutoffs[0]))
        if uniform:
            lines.append(f"cutoffs        : radial {self.radial_cutoffs[0]:g} A, "
                         f"angular {self.angular_cutoffs[0]:g} A")
        else:
            lines.append("cutoffs        : per type (pair cutoff = mean of the two types)")
            for s, rr, ra in zip(self.types, self.radial_cutoffs, self.angular_cutoffs,
                                 strict=True):
                lines.append(f"  {s:<3} radial {rr:g} A, angular {ra:g} A")
        if self.typewise_cutoff_factors is not None:
            f_r, f_a = self.typewise_cutoff_factors
            lines.append(f"typewise NEP cutoffs (historic): radial factor {f_r:g}, "
                         f"angular factor {f_a:g}")
        lines.append(f"max neighbours : radial {int(self.max_neighbors_radial)}, angular "
                     f"{int(self.max_neighbors_angular)} (the cutoff line's MN_R MN_A)")
        on = [n for n, f in zip(FLAG_NAMES, self.flags_on, strict=True) if f]
        lines += [
            f"n_max          : radial {self.n_max_radial}, angular {self.n_max_angular}",
            f"basis_size     : radial {self.basis_size_radial}, angular "
            f"{self.basis_size_angular}",
            f"l_max          : {' '.join(map(str, l_max_line(self.l_max, self.l_max_flags)))} "
            f"(3-body l_max {self.l_max}" + (f" + {', '.join(on)})" if on else ")"),
            f"descriptor     : {self.descriptor_dim} components",
            f"neurons        : {self.n_neurons}"
            + (f" + {self.n_neurons_second} (second layer)" if self.n_neurons_second else ""),
            f"parameters     : {self.num_parameters} ({self.num_network_parameters} network, "
            f"{self.num_descriptor_parameters} descriptor)",
        ]
        if self.zbl is None:
            lines.append("ZBL            : none")
        else:
            z = self.zbl
            head = {"universal": f"universal, inner {z.inner:g} A, outer {z.outer:g} A",
                    "typewise": f"typewise, factor {z.factor if z.factor else 0:g}, "
                                f"outer at most {z.outer:g} A",
                    "flexible": "flexible (per-pair radii and screening coefficients)"}
            lines.append(f"ZBL            : {head[z.mode]}")
            table = self.zbl_table()
            for a in range(T):
                for b in range(a, T):
                    lines.append(f"  {self.types[a]}-{self.types[b]}: inner "
                                 f"{table[a, b, 0]:.4g} A, outer {table[a, b, 1]:.4g} A")
        return "\n".join(lines)

    def write(self, path, *, precision: str = "gpumd") -> None:
        """Write a ``nep.txt`` atomically. ``precision="gpumd"`` writes values with ``%15.7e``
        as GPUMD's ``nep`` does; ``"full"`` writes 17 significant digits (round-trip exact)."""
        write_nep_txt(self, path, precision=precision)


def read_model(path) -> Model:
    """Read a ``nep.txt`` (any nep3/nep4/nep5 potential, with or without ZBL)."""
    return read_nep_txt(path)


def read_nep_txt(path) -> Model:
    """Read a ``nep.txt``; see :func:`nepzbl_plugin.io.nep_txt.read_nep_txt_fields`."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"read_model takes the path of a nep.txt, not "
                             f"{type(path).__name__}")
    return Model.from_fields(read_nep_txt_fields(path))


def parse_nep_txt(text: str, path="<string>") -> Model:
    """Parse the text of a ``nep.txt`` (``path`` names it in errors)."""
    return Model.from_fields(parse_nep_txt_fields(text, path))


def format_nep_txt(model: Model, *, precision: str = "gpumd", allow_legacy: bool = False,
                   **kwargs) -> str:
    """The ``nep.txt`` text of ``model``; see
    :func:`nepzbl_plugin.io.nep_txt.format_nep_txt_fields`."""
    return format_nep_txt_fields(model.fields(), precision=precision, allow_legacy=allow_legacy,
                                 **kwargs)


def write_nep_txt(model: Model, path, precision: str = "gpumd", **kwargs) -> None:
    """Write ``model`` as a ``nep.txt`` atomically."""
    write_nep_txt_fields(model.fields(), path, precision=precision, **kwargs)
