"""analysis/pairs.py is the one home of pair minimum distances: MD, the audit and active
learning give the numbers a brute-force minimum-image search gives."""

import numpy as np
import pytest
from ase.build import bulk

from nepzbl_plugin import md
from nepzbl_plugin.al.sampling import pair_min_distances as al_pair_min_distances
from nepzbl_plugin.analysis.pairs import pair_min_distances
from nepzbl_plugin.audit.distances import min_pair_distances


def _brute_force(atoms, species):
    """Minimum distance per pair over all atoms and the 27 nearest images (small cells only)."""
    symbols = atoms.get_chemical_symbols()
    shifts = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)])
    images = shifts @ atoms.cell.array
    best = {}
    for i, si in enumerate(symbols):
        for j, sj in enumerate(symbols):
            d = np.linalg.norm(atoms.positions[j] + images - atoms.positions[i], axis=1)
            if i == j:
                d = d[np.any(shifts != 0, axis=1)]
            a, b = sorted((si, sj), key=species.index)
            best[f"{a}-{b}"] = min(best.get(f"{a}-{b}", np.inf), float(d.min()))
    return best


@pytest.mark.parametrize("seed", [0, 1])
def test_every_user_of_pair_distances_agrees_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.symbols[rng.permutation(len(atoms))[:12]] = "Ni"
    atoms.rattle(0.2, seed=seed)
    species = ["Ni", "Cu"]
    expected = _brute_force(atoms, species)
    cutoff = 4.0
    ours = pair_min_distances(atoms, species, cutoff)
    assert ours.keys() == expected.keys()
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-12)
    assert md.pair_min_distances(atoms, species, cutoff) == ours
    assert min_pair_distances([atoms], species, cutoff) == ours
    sorted_pairs = al_pair_min_distances(atoms, cutoff)
    assert len(sorted_pairs) == 3
    for (a, b), value in sorted_pairs.items():
        assert value == pytest.approx(expected[f"{a}-{b}" if f"{a}-{b}" in expected
                                               else f"{b}-{a}"], abs=1e-12)
    assert md._pair_key("Cu", "Ni", species) == "Ni-Cu"
