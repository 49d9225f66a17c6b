r"""The locality test of a potential (the perspective arXiv:2603.07425).

Fix every atom within R of a central atom, move every atom farther away (random displacements),
and measure how much the force on the central atom changes. A model whose force on an atom
depends only on atoms within some radius :math:`R_\mathrm{loc}` gives exactly zero spread once
:math:`R \ge R_\mathrm{loc} + \delta` (:math:`\delta` the largest displacement: a moved atom
must not come within :math:`R_\mathrm{loc}`); message-passing or long-range models do not.

What :math:`R_\mathrm{loc}` is for the usual forms (:func:`locality_radius`):

* a pair potential (Lennard-Jones, ZBL) with cutoff :math:`r_c`:
  :math:`F_i = \sum_j f(r_{ij})\hat r_{ij}`, so :math:`R_\mathrm{loc} = r_c`;
* a many-body site-energy model such as NEP (or EAM, ACE, SOAP-GAP), :math:`E = \sum_j U_j`
  with :math:`U_j` depending on the neighbours of j within :math:`r_c`:
  :math:`F_i = -\sum_j \partial U_j / \partial \mathbf r_i` has terms for every j within
  :math:`r_c` of i, each depending on the neighbours k of j, so
  :math:`R_\mathrm{loc} = 2 r_c` with :math:`r_c` NEP's largest (radial) cutoff. NEP's ZBL part
  is a pair term inside the angular cutoff and adds nothing beyond that.
"""

from __future__ import annotations

import numpy as np

from ._base import AnalysisError, Compute, as_float_array

__all__ = ["Locality", "locality_radius", "random_ball_displacements"]


def locality_radius(model) -> float:
    """2 x the largest cutoff of a NEP :class:`~nepzbl_plugin.model.Model` (Å): beyond it the
    force on an atom does not depend on any other atom (see the module docstring)."""
    if not hasattr(model, "max_cutoff"):
        raise AnalysisError(f"locality_radius needs a NEP Model (read_model), "
                            f"not {type(model).__name__}")
    return 2.0 * float(model.max_cutoff)


def random_ball_displacements(count: int, amplitude: float, rng) -> np.ndarray:
    """(count, 3) displacements uniform in a ball of radius ``amplitude`` Å: bounded, so the
    test has an exact zero beyond the locality radius plus ``amplitude``."""
    direction = rng.normal(size=(count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = amplitude * rng.random(count) ** (1.0 / 3.0)
    return direction * radius[:, None]


class Locality(Compute):
    """Spread of the central atom's force against the radius of the frozen sphere.

    Parameters
    ----------
    radii
        Radii R of the frozen sphere, Å.
    amplitude
        Largest displacement of a moved atom, Å (uniform in a ball).
    samples
        Random configurations per radius.
    seed
        Seed of the displacements (the same seed gives the same configurations).
    center
        Index of the central atom.
    """

    def __init__(self, radii, amplitude: float = 0.1, samples: int = 8, seed: int = 0,
                 center: int = 0):
        radii = as_float_array(radii, "radii")
        if radii.size == 0 or np.any(radii < 0):
            raise AnalysisError("give at least one radius, none negative")
        if not amplitude > 0 or int(samples) < 2:
            raise AnalysisError(f"the test needs amplitude > 0 and samples >= 2, not "
                                f"{amplitude} Å and {samples}")
        self.radii = np.sort(radii)
        self.amplitude = float(amplitude)
        self.samples = int(samples)
        self.seed = int(seed)
        self.center = int(center)
        self._results = None

    def compute(self, atoms, calculator, progress=None) -> Locality:
        """Run the test on ``atoms`` with any ASE ``calculator``. ``progress(done, total)`` is
        called after each evaluation when given."""
        if not 0 <= self.center < len(atoms):
            raise AnalysisError(f"central atom {self.center} is not among the {len(atoms)} atoms")
        base = atoms.copy()
        base.calc = calculator
        reference = base.get_forces()[self.center].copy()
        distances = base.get_distances(self.center, np.arange(len(base)), mic=True)
        rng = np.random.default_rng(self.seed)
        total = self.radii.size * self.samples
        std, worst, moved = [], [], []
        done = 0
        for radius in self.radii:
            outer = np.flatnonzero(distances > radius)
            moved.append(int(outer.size))
            forces = np.empty((self.samples, 3))
            for s in range(self.samples):
                trial = base.copy()
                trial.calc = calculator
                trial.positions[outer] += random_ball_displacements(outer.size, self.amplitude,
                                                                    rng)
                forces[s] = trial.get_forces()[self.center]
                done += 1
                if progress is not None:
                    progress(done, total)
            deviation = forces - forces.mean(axis=0)
            std.append(float(np.sqrt(np.mean(np.sum(deviation**2, axis=1)))))
            worst.append(float(np.max(np.linalg.norm(forces - reference, axis=1))))
        self._results = {"std": np.array(std), "max": np.array(worst),
                         "moved": np.array(moved), "reference": reference}
        return self

    @property
    def force_std(self) -> np.ndarray:
        """Per radius: RMS deviation of the central force from its mean over samples, eV/Å."""
        return self._result("std")

    @property
    def force_max(self) -> np.ndarray:
        """Per radius: largest change of the central force from the undisplaced one, eV/Å."""
        return self._result("max")

    @property
    def moved_atoms(self) -> np.ndarray:
        """Per radius: how many atoms were displaced (0: the radius encloses the whole cell, the
        zero there says nothing)."""
        return self._result("moved")

    def apparent_radius(self, threshold: float = 1e-10) -> float | None:
        """The smallest tested R from which every larger radius that moved atoms gives a
        spread at most ``threshold`` eV/Å (None if the last radius is still above)."""
        spread, moved = self.force_max, self.moved_atoms
        above = np.flatnonzero((spread > threshold) & (moved > 0))
        if above.size == 0:
            return float(self.radii[0])
        k = int(above[-1]) + 1
        return float(self.radii[k]) if k < self.radii.size else None

    def as_dict(self) -> dict:
        return {"radii_angstrom": self.radii.tolist(),
                "force_std_eV_per_angstrom": self.force_std.tolist(),
                "force_max_eV_per_angstrom": self.force_max.tolist(),
                "moved_atoms": self.moved_atoms.tolist(), "amplitude_angstrom": self.amplitude,
                "samples": self.samples, "seed": self.seed, "center": self.center,
                "apparent_radius_angstrom": self.apparent_radius()}
