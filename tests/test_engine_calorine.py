"""The CPU engine against calorine's NEP_CPU (float64) on published and generated models.

Tolerances (house rules): total energy 1e-10 relative; forces, virials, per-atom energies and
per-atom virials 1e-9 absolute. NEP_CPU is driven through calorine's pybind11 module directly
(``_nepy.NEPY``) so that nep3 and nep5 models, which calorine's Python layer refuses, are
compared too. NEP_CPU treats every cell as periodic; open structures are compared in a box
large enough that no image is within the cutoff.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read
from conftest import shared_file

from nepzbl_plugin.engine import Evaluator, System
from nepzbl_plugin.model import read_model
from nepzbl_plugin.testing import random_model

_nepy = pytest.importorskip("_nepy")

E_REL, ABS = 1e-10, 1e-9
ALL = ("energy", "energies", "forces", "virial", "virials", "descriptors", "latent")


def nep_cpu(path, atoms: Atoms) -> dict:
    """Per-atom energies, forces, per-atom virials, descriptors and latent space from NEP_CPU."""
    c = atoms.get_cell(complete=True).flatten()
    cell = [c[0], c[3], c[6], c[1], c[4], c[7], c[2], c[5], c[8]]
    n = len(atoms)
    with contextlib.redirect_stdout(io.StringIO()):
        nepy = _nepy.NEPY(str(path), n, cell, atoms.get_chemical_symbols(),
                          list(atoms.positions.T.flatten()), atoms.get_masses())
    energies, forces, virials = nepy.get_potential_forces_and_virials()
    return {
        "energies": np.array(energies),
        "forces": np.array(forces).reshape(3, n).T,
        "virials": np.array(virials).reshape(9, n).T,
        "descriptors": np.array(nepy.get_descriptors()).reshape(-1, n).T,
        "latent": np.array(nepy.get_latent_space()).reshape(-1, n).T,
    }


def assert_matches(ours: dict, ref: dict):
    energy = ref["energies"].sum()
    assert abs(ours["energy"] - energy) <= E_REL * max(abs(energy), 1.0)
    np.testing.assert_allclose(ours["energies"], ref["energies"], rtol=0, atol=ABS)
    np.testing.assert_allclose(ours["forces"], ref["forces"], rtol=0, atol=ABS)
    np.testing.assert_allclose(ours["virials"].reshape(-1, 9), ref["virials"], rtol=0, atol=ABS)
    np.testing.assert_allclose(ours["virial"].reshape(9), ref["virials"].sum(axis=0), rtol=0,
                               atol=ABS)
    if "descriptors" in ours:
        np.testing.assert_allclose(ours["descriptors"], ref["descriptors"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(ours["latent"], ref["latent"], rtol=0, atol=1e-10)


def compare(path, atoms: Atoms, pbc=None, properties=ALL):
    ev = Evaluator(path, num_threads=2)
    if pbc is None:
        structure = atoms
    else:
        structure = System(ev.system(atoms).types, atoms.positions, atoms.cell.array, pbc)
    ours = ev.evaluate(structure, properties)
    assert_matches(ours, nep_cpu(path, atoms))
    return ours


def random_structure(symbols, n, cell, rng, min_distance=1.3, pbc=True):
    """n atoms placed one by one at random, each farther than min_distance from the others
    (and from their periodic images when pbc)."""
    from ase.geometry import get_distances

    cell = np.asarray(cell, dtype=float)
    positions = []
    for _ in range(200000):
        trial = rng.uniform(0.0, 1.0, 3) @ cell
        if positions:
            _, d = get_distances(trial, np.array(positions), cell=cell, pbc=pbc)
            if d.min() <= min_distance:
                continue
        positions.append(trial)
        if len(positions) == n:
            return Atoms(rng.choice(symbols, n), positions=positions, cell=cell, pbc=pbc)
    raise RuntimeError("could not place the atoms")


# ----------------------------------------------------------------------- published models
@pytest.mark.parametrize("name", ["NEP802-ZBL.txt", "NEP802.txt", "NEPstd.txt"])
def test_llzo_models(name):
    atoms = read(shared_file("llzo", "NEP25-ZBL", "train.xyz"), 0)
    compare(shared_file("llzo", name), atoms)


def test_llzo_supercell_large_box_path():
    """1536 atoms: our cell list against NEP_CPU's large-box (minimum image) path."""
    atoms = read(shared_file("llzo", "NEP25-ZBL", "train.xyz"), 4).repeat(2)
    atoms.rattle(0.02, seed=4)
    compare(shared_file("llzo", "NEP802-ZBL.txt"), atoms,
            properties=("energy", "energies", "forces", "virial", "virials"))


def test_llzo_zbl_short_distances():
    """Frames with pairs pushed into the ZBL core and switching region (0.3 to 1.8 Angstrom)."""
    atoms = read(shared_file("llzo", "NEP25-ZBL", "train.xyz"), 0)
    path = shared_file("llzo", "NEP802-ZBL.txt")
    d = atoms.get_all_distances(mic=True, vector=True)
    pairs = ((0, 1), (10, 11), (20, 21), (30, 31))
    for target, (i, j) in zip((0.3, 0.95, 1.4, 1.79), pairs, strict=True):
        # move j onto the line through i at the target distance (nearest image)
        u = d[i, j] / np.linalg.norm(d[i, j])
        atoms.positions[j] = atoms.positions[i] + target * u
    compare(path, atoms)


@pytest.mark.parametrize("name", ["C_2022_NEP4.txt", "Si_2022_NEP4_3body.txt",
                                  "Si_2022_NEP4_4body.txt", "Si_2022_NEP4_5body.txt"])
def test_published_single_species(name):
    symbol = name.split("_")[0]
    a = 3.567 if symbol == "C" else 5.43
    atoms = bulk(symbol, "diamond", a, cubic=True) * (2, 2, 2)
    atoms.rattle(0.08, seed=3)
    compare(shared_file("models", name), atoms)


def test_pbte_training_frame():
    atoms = read(shared_file("pbte", "train.xyz"), 0)
    compare(shared_file("models", "PbTe_NEP4.txt"), atoms)


def test_calorine_public_api():
    """calorine's own functions and calculator, for the same numbers through its Python layer."""
    from calorine.calculators import CPUNEP
    from calorine.nep import get_descriptors, get_latent_space, get_potential_forces_and_virials

    path = str(shared_file("llzo", "NEP802-ZBL.txt"))
    atoms = read(shared_file("llzo", "NEP25-ZBL", "train.xyz"), 3)
    ours = Evaluator(path).evaluate(atoms, ALL)
    energies, forces, virials = get_potential_forces_and_virials(atoms, path)
    np.testing.assert_allclose(ours["energies"], energies, rtol=0, atol=ABS)
    np.testing.assert_allclose(ours["forces"], forces, rtol=0, atol=ABS)
    np.testing.assert_allclose(ours["virials"].reshape(-1, 9), virials, rtol=0, atol=ABS)
    np.testing.assert_allclose(ours["descriptors"], get_descriptors(atoms, path), atol=1e-10)
    np.testing.assert_allclose(ours["latent"], get_latent_space(atoms, path), atol=1e-10)
    atoms.calc = CPUNEP(path)
    assert abs(ours["energy"] - atoms.get_potential_energy()) <= E_REL * abs(ours["energy"])


# ----------------------------------------------------------------------- generated models
@pytest.fixture(scope="module")
def structures():
    rng = np.random.default_rng(2024)
    tric = np.array([[7.2, 0.0, 0.0], [1.9, 6.8, 0.0], [-1.2, 1.4, 7.5]])
    return {
        "bulk": random_structure(["Li", "O"], 40, np.eye(3) * 8.0, rng),
        "triclinic": random_structure(["Li", "O"], 40, tric, rng),
        # thinner than the cutoff in two directions: several images of each atom and of itself
        "small": random_structure(["Li", "O"], 3, [[3.1, 0, 0], [0.8, 3.4, 0], [0, 0, 9.0]],
                                  rng, min_distance=1.2),
    }


VARIANTS = {
    "L2_plain": dict(l_max=2, flags=(0, 0, 0, 0, 0, 0)),
    "L3_q222_q1111": dict(l_max=3, flags=(2, 1, 0, 0, 0, 0)),
    "L4_new_flags": dict(l_max=4, flags=(0, 1, 1, 1, 1, 1)),
    "L4_q222_q112": dict(l_max=4, flags=(2, 0, 1, 0, 0, 0)),
    "L2_q134_zero_s": dict(l_max=2, flags=(0, 0, 0, 0, 0, 1)),
    "L5": dict(l_max=5, flags=(2, 0, 0, 0, 0, 0)),
    "L6_nep5_typewise": dict(l_max=6, version=5, zbl="typewise"),
    "L7_nep3_universal": dict(l_max=7, version=3, zbl="universal"),
    "L8_big_basis": dict(l_max=8, basis=(12, 12), n_max=(5, 3)),
    "nep3": dict(version=3),
    "nep5_flexible": dict(version=5, zbl="flexible"),
    "universal": dict(zbl="universal"),
    "typewise": dict(zbl="typewise"),
    "flexible": dict(zbl="flexible"),
    "per_type_cutoffs": dict(cutoffs=([5.2, 4.4], [3.9, 3.4]), zbl="universal"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("case", ["bulk", "triclinic", "small"])
def test_generated_variants(variant, case, structures, tmp_path):
    model = random_model(seed=sum(map(ord, variant)), **VARIANTS[variant])
    path = tmp_path / "nep.txt"
    model.write(path, precision="full")
    atoms = structures[case].copy()
    compare(path, atoms)
    if case == "bulk":
        # a few pairs in the ZBL switching region and core
        atoms.positions[1] = atoms.positions[0] + [0.3, 0.0, 0.0]
        atoms.positions[3] = atoms.positions[2] + [0.0, 0.0, 1.45]
        atoms.positions[5] = atoms.positions[4] + [0.6, 0.6, 0.6]
        compare(path, atoms, properties=("energy", "energies", "forces", "virial", "virials"))


def test_ten_species_flexible_zbl(tmp_path):
    types = ["H", "Li", "C", "O", "Na", "Si", "Cl", "Fe", "Cu", "Zr"]
    model = random_model(types=types, zbl="flexible", seed=11)
    path = tmp_path / "nep.txt"
    model.write(path, precision="full")
    rng = np.random.default_rng(5)
    atoms = random_structure(types, 40, np.eye(3) * 8.2, rng)
    atoms.positions[1] = atoms.positions[0] + [0.7, 0.2, 0.1]
    compare(path, atoms)


def test_slab_and_molecule_match_a_large_periodic_box(tmp_path):
    """Open directions in our engine equal NEP_CPU's periodic box with enough vacuum."""
    model = random_model(zbl="universal", seed=21)
    path = tmp_path / "nep.txt"
    model.write(path, precision="full")
    rng = np.random.default_rng(9)
    slab = random_structure(["Li", "O"], 30, [[7.0, 0, 0], [0.5, 7.3, 0], [0, 0, 6.0]], rng)
    slab.set_cell([[7.0, 0, 0], [0.5, 7.3, 0], [0, 0, 30.0]])
    slab.positions[:, 2] += 12.0
    compare(path, slab, pbc=(True, True, False))
    molecule = random_structure(["Li", "O"], 12, np.eye(3) * 6.0, rng, pbc=False)
    molecule.positions += 47.0
    molecule.set_cell(np.eye(3) * 100.0)
    compare(path, molecule, pbc=(False, False, False))


def test_pair_exactly_at_the_cutoff(tmp_path):
    """Pairs at d = rc contribute nothing (strict d < rc) in both codes."""
    model = random_model(zbl="universal", seed=31, cutoffs=(5.0, 4.0))
    path = tmp_path / "nep.txt"
    model.write(path, precision="full")
    atoms = Atoms("LiOLi", positions=[[10, 10, 10], [15.0, 10, 10], [10, 14.0, 10]],
                  cell=np.eye(3) * 30.0, pbc=True)
    ours = compare(path, atoms)
    # only the Li-Li pair at exactly 4.0 = rc^A and the Li-O pair at 5.0 = rc^R: all zero
    # except the radial Li-Li term
    assert ours["forces"][1] == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)


def test_shared_published_model_read_by_model_class():
    """Evaluator(Model) and Evaluator(path) agree exactly."""
    path = shared_file("llzo", "NEP802-ZBL.txt")
    atoms = read(shared_file("llzo", "NEP25-ZBL", "train.xyz"), 1)
    a = Evaluator(read_model(path)).evaluate(atoms)
    b = Evaluator(path).evaluate(atoms)
    assert a["energy"] == b["energy"]
    np.testing.assert_array_equal(a["forces"], b["forces"])
