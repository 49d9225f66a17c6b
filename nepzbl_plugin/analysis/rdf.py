"""Partial radial distribution functions g_AB(r), accumulated over frames."""

from __future__ import annotations

import numpy as np

from ._base import AnalysisError, Compute
from .pairs import pair_distances, pair_names

__all__ = ["RDF"]


class RDF(Compute):
    r"""Partial RDFs of every unordered species pair.

    For frame f with volume :math:`V_f`,

    .. math:: g_{AB}(r) = \frac{1}{F} \sum_f \frac{V_f\, n^f_{AB}(r)}
              {N_A N'_B\, 4\pi r^2 \mathrm{d}r},

    where :math:`n^f_{AB}(r)` counts ordered pairs (i in A, j in B, periodic images included)
    whose distance falls in the shell, :math:`N'_B = N_B - 1` for A = B and :math:`N_B`
    otherwise, and the shell volume is the exact :math:`\frac43\pi(r_{k+1}^3 - r_k^3)`. An ideal
    gas gives g = 1; g_AB = g_BA. The volume is taken per frame, so NPT runs are normalised
    correctly.

    Parameters
    ----------
    r_max
        Largest distance, Angstrom.
    bins
        Number of equal bins in [0, r_max].
    species
        Order that names the pairs ("A-B", A first); default: order of first appearance.
    """

    # The pair list of a frame is held in memory: 2e8 pairs are about 5 GB (i, j and d) and
    # minutes of work per frame, far past any RDF a materials question needs.
    MAX_PAIRS_PER_FRAME = 200_000_000
    MAX_BINS = 1_000_000

    def __init__(self, r_max: float = 6.0, bins: int = 200, species=None):
        if not (np.isfinite(r_max) and r_max > 0) or not 1 <= int(bins) <= self.MAX_BINS:
            raise AnalysisError(f"RDF needs a finite r_max > 0 and 1 <= bins <= "
                                f"{self.MAX_BINS}, not {r_max} and {bins}")
        self.r_max = float(r_max)
        self.bins = int(bins)
        self.species = list(species) if species is not None else None
        self.edges = np.linspace(0.0, self.r_max, self.bins + 1)
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, np.ndarray] | None = None
        self._frames = 0
        self._results = None

    def accumulate(self, frames) -> RDF:
        """Add one ``ase.Atoms`` or a list of them."""
        if hasattr(frames, "get_chemical_symbols"):
            frames = [frames]
        frames = list(frames)
        if not frames and not self._frames:
            raise AnalysisError("RDF: no frames to analyse")
        for k, atoms in enumerate(frames):
            if not hasattr(atoms, "get_chemical_symbols"):
                raise AnalysisError(f"RDF: frame {k} is a {type(atoms).__name__}, not ase.Atoms")
            if atoms.cell.rank != 3:
                raise AnalysisError("RDF needs a periodic cell with nonzero volume")
            if not np.all(np.isfinite(atoms.positions)):
                raise AnalysisError(f"RDF: frame {k} has NaN or infinite positions")
            symbols = np.array(atoms.get_chemical_symbols())
            if self.species is None:
                self.species = list(dict.fromkeys(symbols.tolist()))
            else:
                self.species += [s for s in dict.fromkeys(symbols.tolist())
                                 if s not in self.species]
            if self._sums is None:
                self._sums = {}
            volume = atoms.get_volume()
            expected = len(atoms) ** 2 / volume * 4.0 / 3.0 * np.pi * self.r_max ** 3
            if expected > self.MAX_PAIRS_PER_FRAME:
                raise AnalysisError(
                    f"r_max {self.r_max:g} Å gives about {expected:.2g} pairs per frame of "
                    f"{len(atoms)} atoms (at most {self.MAX_PAIRS_PER_FRAME:.0e}); choose a "
                    f"smaller r_max")
            i, j, d = pair_distances(atoms, self.r_max)
            for p, a in enumerate(self.species):
                for b in self.species[p:]:
                    key = f"{a}-{b}"
                    na, nb = int(np.sum(symbols == a)), int(np.sum(symbols == b))
                    pairs = na * (nb - 1) if a == b else na * nb
                    sums = self._sums.setdefault(key, np.zeros(self.bins))
                    if pairs <= 0:
                        continue
                    mask = (symbols[i] == a) & (symbols[j] == b)
                    counts = np.histogram(d[mask], bins=self.edges)[0]
                    sums += counts * (volume / pairs)
            self._frames += 1
        self._finish()
        return self

    def compute(self, frames) -> RDF:
        """:meth:`reset` then :meth:`accumulate`."""
        self.reset()
        return self.accumulate(frames)

    def _finish(self) -> None:
        shell = 4.0 / 3.0 * np.pi * (self.edges[1:] ** 3 - self.edges[:-1] ** 3)
        rdf = {key: self._sums.get(key, np.zeros(self.bins)) / (shell * self._frames)
               for key in pair_names(self.species)}
        self._results = {"rdf": rdf, "frames": self._frames}

    @property
    def bin_centers(self) -> np.ndarray:
        """Bin centres, Angstrom."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    @property
    def rdf(self) -> dict[str, np.ndarray]:
        """{"A-B": g(r)} (dimensionless), one value per bin."""
        return self._result("rdf")

    @property
    def frames(self) -> int:
        """Number of frames accumulated."""
        return self._result("frames")

    def as_dict(self) -> dict:
        """Plain data for JSON: r (Å), g per pair, frames."""
        return {"r_angstrom": self.bin_centers.tolist(),
                "rdf": {k: v.tolist() for k, v in self.rdf.items()},
                "frames": self.frames, "r_max_angstrom": self.r_max, "bins": self.bins}

    def first_peaks(self) -> dict[str, float | None]:
        """Position (Å) of the highest g per pair, None for a pair never seen."""
        return {k: (float(self.bin_centers[int(np.argmax(g))]) if np.any(g > 0) else None)
                for k, g in self.rdf.items()}
