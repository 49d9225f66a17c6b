"""The arithmetic of a NEP header, as plain functions of plain values.

The sizes of the flat parameter vector and of the descriptor, GPUMD's pair index of the
flexible-ZBL block, the pair cutoffs and the resolved ZBL table. :mod:`nepzbl_plugin.io`
uses them to read and write files without a :class:`~nepzbl_plugin.model.Model`, and the
Model's own properties are these functions applied to its fields, so both agree by
construction (``../shared/docs/nep-reference.md`` section 1.7).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .elements import COVALENT_RADII, atomic_number
from .errors import InputError

__all__ = [
    "ZBLSettings", "UNIVERSAL_ZBL_COEFFICIENTS", "FLAG_NAMES", "pair_index", "num_angular_blocks",
    "descriptor_dim", "num_networks", "network_block_size", "num_network_parameters",
    "num_descriptor_parameters", "num_parameters", "model_token", "pair_cutoffs", "zbl_table",
    "zbl_beyond_angular", "same_values",
]

# (A_k, B_k) of the universal ZBL screening function, k = 1..4.
UNIVERSAL_ZBL_COEFFICIENTS = (
    (0.18175, 3.1998),
    (0.50986, 0.94229),
    (0.28022, 0.4029),
    (0.02817, 0.20162),
)

FLAG_NAMES = ("q222", "q1111", "q112", "q123", "q233", "q134")


def same_values(a, b, skip: tuple[str, ...] = ()) -> bool:
    """Whether two dataclass objects of one class hold equal fields (but those in ``skip``),
    arrays compared element by element: the ``==`` dataclasses generate compares tuples of
    fields, which raises "truth value of an array is ambiguous" for array fields."""
    if type(a) is not type(b):
        return False
    for f in dataclasses.fields(a):
        if f.name in skip:
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if x is None or y is None or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


@dataclass
class ZBLSettings:
    """The ZBL part of a model.

    ``mode`` is ``"universal"`` (``zbl r_inner r_outer``), ``"typewise"``
    (``zbl r_inner r_outer factor``: inner radius 0, per-pair outer radius
    ``min(factor * (R_cov,a + R_cov,b), r_outer)``) or ``"flexible"`` (``zbl 0 0`` with
    ``flexible`` holding 10 values per unordered type pair: r_inner, r_outer, A1, B1, ..., A4, B4).
    """

    mode: str
    inner: float
    outer: float
    factor: float | None = None
    flexible: np.ndarray | None = None  # (T(T+1)/2, 10)

    def __post_init__(self):
        if self.mode not in ("universal", "typewise", "flexible"):
            raise InputError(f"unknown ZBL mode {self.mode!r}")
        if self.mode == "flexible":
            if self.flexible is None:
                raise InputError("flexible ZBL needs its table of 10 values per type pair")
            self.flexible = np.array(self.flexible, dtype=np.float64, ndmin=2)
        if self.mode == "typewise" and self.factor is None:
            raise InputError("typewise ZBL needs a factor")

    def __eq__(self, other) -> bool:
        if not isinstance(other, ZBLSettings):
            return NotImplemented
        return same_values(self, other)


def pair_index(t1: int, t2: int, num_types: int) -> int:
    """Position of the unordered pair (t1, t2) in GPUMD's flexible-ZBL block."""
    a, b = min(t1, t2), max(t1, t2)
    return a * num_types - a * (a - 1) // 2 + (b - a)


def num_angular_blocks(l_max: int, l_max_flags) -> int:
    """N_L: the L three-body blocks plus every enabled invariant (nonzero flag = on)."""
    return l_max + sum(1 for f in l_max_flags if f != 0)


def descriptor_dim(n_max_radial: int, n_max_angular: int, l_max: int, l_max_flags,
                   temperature: bool = False) -> int:
    """D = (nR+1) + (nA+1) N_L (+1 for temperature models)."""
    dim = (n_max_radial + 1) + (n_max_angular + 1) * num_angular_blocks(l_max, l_max_flags)
    return dim + (1 if temperature else 0)


def num_networks(version: int, num_types: int) -> int:
    return 1 if version == 3 else num_types


def network_block_size(version: int, dim: int, n_neurons: int, n_neurons_second: int = 0) -> int:
    """Values per network block (w0, b0, w1 and, for nep5, beta)."""
    if n_neurons_second > 0:
        size = (dim + 1) * n_neurons + (n_neurons + 2) * n_neurons_second
    else:
        size = (dim + 2) * n_neurons
    return size + (1 if version == 5 else 0)


def num_network_parameters(version: int, num_types: int, dim: int, n_neurons: int,
                           n_neurons_second: int = 0) -> int:
    block = network_block_size(version, dim, n_neurons, n_neurons_second)
    return block * num_networks(version, num_types) + 1


def num_descriptor_parameters(num_types: int, n_max_radial: int, n_max_angular: int,
                              basis_size_radial: int, basis_size_angular: int) -> int:
    return num_types * num_types * (
        (n_max_radial + 1) * (basis_size_radial + 1)
        + (n_max_angular + 1) * (basis_size_angular + 1)
    )


def num_parameters(*, version: int, types, n_max_radial: int, n_max_angular: int,
                   basis_size_radial: int, basis_size_angular: int, l_max: int, l_max_flags,
                   n_neurons: int, n_neurons_second: int = 0, temperature: bool = False,
                   **_other_fields) -> int:
    """N_par of a header given as :class:`~nepzbl_plugin.model.Model` field names (other
    fields are ignored, so a whole field dict can be passed)."""
    T = len(types)
    dim = descriptor_dim(n_max_radial, n_max_angular, l_max, l_max_flags, temperature)
    return (num_network_parameters(version, T, dim, n_neurons, n_neurons_second)
            + num_descriptor_parameters(T, n_max_radial, n_max_angular, basis_size_radial,
                                        basis_size_angular))


def model_token(version: int, has_zbl: bool, temperature: bool = False) -> str:
    """The first word of a nep.txt: ``nep4``, ``nep4_zbl``, ``nep4_zbl_temperature``, ..."""
    token = f"nep{version}" + ("_zbl" if has_zbl else "")
    return token + ("_temperature" if temperature else "")


def pair_cutoffs(atomic_numbers, radial_cutoffs, angular_cutoffs,
                 typewise_cutoff_factors=None) -> tuple[np.ndarray, np.ndarray]:
    """(radial, angular) pair cutoffs, each (T, T): the mean of the two per-type values,
    or for historic typewise models min(f (R_cov,a + R_cov,b), rc)."""
    radial = np.asarray(radial_cutoffs, dtype=np.float64)
    angular = np.asarray(angular_cutoffs, dtype=np.float64)
    rr = 0.5 * (radial[:, None] + radial[None, :])
    ra = 0.5 * (angular[:, None] + angular[None, :])
    if typewise_cutoff_factors is not None:
        rcov = np.array([COVALENT_RADII[z - 1] for z in atomic_numbers])
        rsum = rcov[:, None] + rcov[None, :]
        f_r, f_a = typewise_cutoff_factors
        if f_r > 0:
            rr = np.minimum(f_r * rsum, rr)
        if f_a > 0:
            ra = np.minimum(f_a * rsum, ra)
    return np.ascontiguousarray(rr), np.ascontiguousarray(ra)


def zbl_table(atomic_numbers, zbl: ZBLSettings | None) -> np.ndarray | None:
    """The ZBL set-up resolved per ordered type pair: (T, T, 10) with r_inner, r_outer,
    A1, B1, ..., A4, B4; ``None`` without ZBL."""
    if zbl is None:
        return None
    z = list(atomic_numbers)
    T = len(z)
    table = np.zeros((T, T, 10))
    universal = np.array(UNIVERSAL_ZBL_COEFFICIENTS).ravel()
    for a in range(T):
        for b in range(T):
            if zbl.mode == "flexible":
                table[a, b] = zbl.flexible[pair_index(a, b, T)]
            elif zbl.mode == "typewise":
                rsum = COVALENT_RADII[z[a] - 1] + COVALENT_RADII[z[b] - 1]
                table[a, b, 0] = 0.0
                table[a, b, 1] = min(zbl.factor * rsum, zbl.outer)
                table[a, b, 2:] = universal
            else:
                table[a, b, 0] = zbl.inner
                table[a, b, 1] = zbl.outer
                table[a, b, 2:] = universal
    return table


def zbl_beyond_angular(types, zbl: ZBLSettings,
                       angular_pair_cutoffs) -> tuple[int, int, str] | None:
    """The first type pair (a <= b, GPUMD's pair order) of the species ``types`` whose ZBL
    outer radius lies beyond its angular pair cutoff, as (a, b, the problem in words), or None.

    ZBL pairs come from the angular neighbour list (as GPUMD's): an outer radius beyond the
    pair's angular cutoff would cut the ZBL energy off abruptly there (a jump, not a switch).
    The nep.txt and nep.in readers and :meth:`Model.with_zbl` refuse it alike.
    """
    table = zbl_table([atomic_number(s) for s in types], zbl)
    T = len(types)
    for a in range(T):
        for b in range(a, T):
            outer, cutoff = table[a, b, 1], angular_pair_cutoffs[a, b]
            if outer > cutoff + 1e-9:
                return a, b, (f"ZBL outer radius {outer:g} A of {types[a]}-{types[b]} exceeds "
                              f"its angular cutoff {cutoff:g} A: ZBL would stop abruptly there "
                              "(GPUMD uses outer radii of 1 to 3 A)")
    return None
