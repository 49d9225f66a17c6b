"""Lattice parameters against temperature and the tetragonal-to-cubic transition temperature.

The cell of each frame (an NPT run with an anisotropic barostat, e.g. a heating ramp) gives the
lattice parameters a, b, c = |cell vectors| / repetitions of the conventional cell; frames are
averaged in temperature bins, and the transition temperature is where the tetragonal ratio
c/a (a the mean of the two other axes) comes within ``tolerance`` of 1 and stays there for every
hotter bin, located by linear interpolation of |c/a - 1| between the last tetragonal and the
first cubic bin.
"""

from __future__ import annotations

import numpy as np

from ._base import AnalysisError, Compute, as_float_array

__all__ = ["LatticeTemperature", "TEMPERATURE_INFO_KEYS"]

TEMPERATURE_INFO_KEYS = ("temperature_K", "target_temperature_K", "temperature", "T")


class LatticeTemperature(Compute):
    """Lattice parameters (Å) and c/a against temperature (K).

    Parameters
    ----------
    repetitions
        Conventional cells along the three cell vectors (a supercell of 2x2x2 gives (2, 2, 2)).
    c_axis
        Index (0, 1, 2) of the unique tetragonal axis.
    bin_width
        Width of the temperature bins, K (None: one bin per distinct temperature).
    tolerance
        |c/a - 1| at or below which a bin counts as cubic.
    """

    def __init__(self, repetitions=(1, 1, 1), c_axis: int = 2, bin_width: float | None = 25.0,
                 tolerance: float = 0.005):
        repetitions = np.asarray(repetitions, dtype=np.float64)
        if repetitions.shape != (3,) or np.any(repetitions <= 0):
            raise AnalysisError(f"repetitions must be three positive numbers, not {repetitions}")
        if c_axis not in (0, 1, 2):
            raise AnalysisError(f"c_axis must be 0, 1 or 2, not {c_axis}")
        if bin_width is not None and not bin_width > 0:
            raise AnalysisError(f"the bin width must be positive, not {bin_width} K")
        if not tolerance > 0:
            raise AnalysisError(f"the tolerance must be positive, not {tolerance}")
        self.repetitions = repetitions
        self.c_axis = int(c_axis)
        self.bin_width = bin_width
        self.tolerance = float(tolerance)
        self._results = None

    def compute(self, temperatures_K, cells) -> LatticeTemperature:
        """``temperatures_K`` (F,) and ``cells`` (F, 3, 3) (rows the cell vectors) or lattice
        lengths (F, 3) in Å."""
        T = as_float_array(temperatures_K, "temperatures")
        cells = np.asarray(cells, dtype=np.float64)
        if cells.ndim == 3:
            lengths = np.linalg.norm(cells, axis=2)
        else:
            lengths = as_float_array(cells, "lattice lengths", ndim=2)
        if lengths.shape != (T.size, 3):
            raise AnalysisError(f"{T.size} temperatures but lattice lengths of shape "
                                f"{lengths.shape} (expected ({T.size}, 3))")
        if T.size == 0:
            raise AnalysisError("no frames to analyse")
        bad = np.flatnonzero(~np.all(np.isfinite(lengths) & (lengths > 0), axis=1))
        if bad.size:  # a zero length made c/a NaN or infinite
            raise AnalysisError(f"frame {int(bad[0])}: the lattice lengths must be positive "
                                f"numbers of Å, not {lengths[bad[0]].tolist()}")
        lengths = lengths / self.repetitions
        if self.bin_width is None:
            keys = T
        else:
            keys = np.round(T / self.bin_width) * self.bin_width
        centres = np.unique(keys)
        binned_T = np.array([T[keys == k].mean() for k in centres])
        binned = np.array([lengths[keys == k].mean(axis=0) for k in centres])
        counts = np.array([int(np.sum(keys == k)) for k in centres])
        others = [axis for axis in range(3) if axis != self.c_axis]
        a = binned[:, others].mean(axis=1)
        ratio = binned[:, self.c_axis] / a
        self._results = {"T": binned_T, "lengths": binned, "c_over_a": ratio, "counts": counts}
        self._results["transition"] = self._transition(binned_T, ratio)
        return self

    def _transition(self, T: np.ndarray, ratio: np.ndarray) -> tuple[float | None, str]:
        deviation = np.abs(ratio - 1.0)
        cubic = deviation <= self.tolerance
        if not np.any(cubic):
            return None, "tetragonal at every temperature (no transition in range)"
        if np.all(cubic):
            return None, "cubic at every temperature (no transition in range)"
        tetragonal = np.flatnonzero(~cubic)
        k = int(tetragonal[-1])  # the hottest tetragonal bin; every hotter one is cubic
        if k == T.size - 1:
            return None, "tetragonal at the highest temperature (no transition in range)"
        # |c/a - 1| falls through the tolerance between bins k and k + 1
        d0, d1 = deviation[k], deviation[k + 1]
        fraction = (d0 - self.tolerance) / (d0 - d1) if d0 != d1 else 0.5
        return float(T[k] + fraction * (T[k + 1] - T[k])), "interpolated"

    @property
    def temperatures(self) -> np.ndarray:
        """Mean temperature of each bin, K."""
        return self._result("T")

    @property
    def lattice(self) -> np.ndarray:
        """(bins, 3) lattice parameters a, b, c in Å."""
        return self._result("lengths")

    @property
    def c_over_a(self) -> np.ndarray:
        """c / mean(a, b) per bin (c the ``c_axis``)."""
        return self._result("c_over_a")

    @property
    def transition_temperature(self) -> float | None:
        """Tetragonal-to-cubic transition temperature, K (None when none is in range)."""
        return self._result("transition")[0]

    @property
    def transition_note(self) -> str:
        return self._result("transition")[1]

    def as_dict(self) -> dict:
        return {"temperatures_K": self.temperatures.tolist(),
                "a_angstrom": self.lattice[:, 0].tolist(),
                "b_angstrom": self.lattice[:, 1].tolist(),
                "c_angstrom": self.lattice[:, 2].tolist(),
                "c_over_a": self.c_over_a.tolist(),
                "frames_per_bin": self._result("counts").tolist(),
                "transition_temperature_K": self.transition_temperature,
                "transition_note": self.transition_note, "tolerance": self.tolerance}
