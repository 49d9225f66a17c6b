"""What every analysis shares: the errors, the "computed yet?" guard of freud-style objects,
trajectory reading and unit constants."""

from __future__ import annotations

import numpy as np

from ..errors import NepzblError

__all__ = ["AnalysisError", "NotComputedError", "Compute", "read_frames", "species_order",
           "KB_EV_PER_K"]

KB_EV_PER_K = 8.617333262e-5  # Boltzmann constant, eV/K
ANGSTROM2_PER_FS_TO_CM2_PER_S = 1e-16 / 1e-15  # Å²/fs -> cm²/s (= 0.1)


class AnalysisError(NepzblError, ValueError):
    """Input an analysis cannot use (too few frames, unknown species, mismatched lengths)."""


class NotComputedError(NepzblError, RuntimeError):
    """A result was read before :meth:`compute` (or :meth:`accumulate`) produced it."""


class Compute:
    """Base of the analysis objects, in freud's style: ``compute(...)`` resets and fills the
    object, results are properties that raise :class:`NotComputedError` until then."""

    _results: dict | None = None

    def _result(self, name: str):
        if self._results is None or name not in self._results:
            raise NotComputedError(
                f"{type(self).__name__}.{name} is not available: call compute() first")
        return self._results[name]

    @property
    def computed(self) -> bool:
        return self._results is not None

    def __repr__(self) -> str:
        state = "computed" if self.computed else "not computed"
        return f"<{type(self).__name__} ({state})>"


def species_order(frames_or_symbols, species=None) -> list[str]:
    """``species`` (those present first, in the given order) followed by any other species of
    the frames in order of first appearance."""
    present: list[str] = []
    for item in frames_or_symbols:
        symbols = item.get_chemical_symbols() if hasattr(item, "get_chemical_symbols") else [item]
        for s in symbols:
            if s not in present:
                present.append(s)
    if species is None:
        return present
    species = list(species)
    return species + [s for s in present if s not in species]


def read_frames(path, skip: int = 0, every: int = 1) -> list:
    """Frames of an extended-XYZ trajectory (``ase.io.read(path, index=":")``), dropping the
    first ``skip`` and keeping every ``every``-th of the rest."""
    from ase.io import read

    if skip < 0 or every < 1:
        raise AnalysisError(f"{path}: skip must be >= 0 and every >= 1, not {skip} and {every}")
    try:
        frames = read(path, index=":")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as error:  # ASE raises many kinds for a malformed file
        from ..errors import NepFormatError

        raise NepFormatError(path, None, "cannot read as a trajectory (extended XYZ or another "
                             f"format ASE reads): {type(error).__name__}: {error}") from None
    if not frames:
        raise AnalysisError(f"{path}: no frames in the file")
    from ..io.xyz import check_frames

    check_frames(path, frames)
    frames = frames[skip::every]
    if not frames:
        raise AnalysisError(f"{path}: no frames left after skipping {skip}")
    return frames


def as_float_array(values, name: str, ndim: int = 1) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim:
        raise AnalysisError(f"{name}: expected a {ndim}-dimensional array, got shape "
                            f"{array.shape}")
    if not np.all(np.isfinite(array)):
        raise AnalysisError(f"{name}: contains NaN or infinite values")
    return array
