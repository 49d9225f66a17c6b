"""The ZBL pair energy of ``nep-reference.md`` section 3, vectorised over distances.

Used by the audit to split dimer curves into NEP and ZBL parts when the calculator cannot, and by
:mod:`nepzbl_plugin.zbl` to fit flexible ZBL coefficients.
"""

from __future__ import annotations

import numpy as np

from ..elements import atomic_number
from ..model import UNIVERSAL_ZBL_COEFFICIENTS

__all__ = ["COULOMB_K", "screening_length", "zbl_energy", "universal_zbl_energy"]

COULOMB_K = 14.399645  # eV*Angstrom, GPUMD's K_C_SP
UNIVERSAL = np.array(UNIVERSAL_ZBL_COEFFICIENTS, dtype=np.float64).ravel()  # A1 B1 ... A4 B4


def _z(species) -> int:
    return atomic_number(species) if isinstance(species, str) else int(species)


def screening_length(z1, z2) -> float:
    """a = 0.46848 / (Z1^0.23 + Z2^0.23) in Angstrom (universal, also in flexible mode)."""
    return 0.46848 / (_z(z1) ** 0.23 + _z(z2) ** 0.23)


def switching(r, r_inner: float, r_outer: float) -> np.ndarray:
    """GPUMD's cosine switch: 1 below r_inner, 0 from r_outer on."""
    r = np.asarray(r, dtype=np.float64)
    out = np.where(r < r_inner, 1.0, 0.0)
    if r_outer > r_inner:
        inside = (r >= r_inner) & (r < r_outer)
        x = (r[inside] - r_inner) / (r_outer - r_inner)
        out = np.array(out)
        out[inside] = 0.5 * (1.0 + np.cos(np.pi * x))
    return out


def screening(r, z1, z2, coefficients=UNIVERSAL) -> np.ndarray:
    """sum_k A_k exp(-B_k r / a) for distances ``r`` (Angstrom)."""
    r = np.asarray(r, dtype=np.float64)
    c = np.asarray(coefficients, dtype=np.float64).reshape(4, 2)
    x = r / screening_length(z1, z2)
    return sum(c[k, 0] * np.exp(-c[k, 1] * x) for k in range(4))


def zbl_energy(r, z1, z2, r_inner: float, r_outer: float, coefficients=UNIVERSAL) -> np.ndarray:
    """Switched ZBL pair energy phi(r) in eV for one pair of species (symbols or Z)."""
    r = np.asarray(r, dtype=np.float64)
    raw = COULOMB_K * _z(z1) * _z(z2) / r * screening(r, z1, z2, coefficients)
    return raw * switching(r, r_inner, r_outer)


def zbl_energy_from_row(r, z1, z2, row) -> np.ndarray:
    """phi(r) from one row of :meth:`Model.zbl_table` (r_inner, r_outer, A1, B1, ..., A4, B4)."""
    row = np.asarray(row, dtype=np.float64)
    return zbl_energy(r, z1, z2, row[0], row[1], row[2:])


def universal_zbl_energy(r, z1, z2) -> np.ndarray:
    """The unswitched universal ZBL repulsion: the physical wall the audit compares with."""
    r = np.asarray(r, dtype=np.float64)
    return COULOMB_K * _z(z1) * _z(z2) / r * screening(r, z1, z2)
