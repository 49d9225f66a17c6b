"""The CPU engine on its own: finite differences, invariances, boundaries, errors, API.

(Agreement with calorine's NEP_CPU is in test_engine_calorine.py.)
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from scipy.spatial.transform import Rotation

from nepzbl_plugin import _core
from nepzbl_plugin.engine import Evaluator, System
from nepzbl_plugin.errors import EngineError, UnsupportedModelError
from nepzbl_plugin.testing import random_model

FULL = ("energy", "energies", "forces", "virial", "virials")


def lattice_structure(rng, reps=(2, 2, 2), a=3.6, rattle=0.25, symbols=("Li", "O")):
    """A rattled fcc crystal with random species (no pair closer than ~1.5 Angstrom)."""
    atoms = bulk("Cu", "fcc", a, cubic=True) * reps
    atoms.set_chemical_symbols(rng.choice(list(symbols), len(atoms)))
    atoms.positions += rng.uniform(-rattle, rattle, atoms.positions.shape)
    return atoms


@pytest.fixture(scope="module")
def rich_model():
    """Every feature at once: all six invariants, typewise ZBL, per-type cutoffs."""
    return random_model(flags=(2, 1, 1, 1, 1, 1), l_max=4, zbl="typewise",
                        cutoffs=([4.6, 4.2], [3.8, 3.4]), seed=7)


@pytest.fixture(scope="module")
def triclinic_atoms():
    rng = np.random.default_rng(1)
    atoms = lattice_structure(rng, reps=(2, 2, 1), a=3.7)
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.12, -0.05], [0.0, 1.05, 0.1],
                                                [0.0, 0.0, 0.97]]), scale_atoms=True)
    # one pair in the ZBL switching region (typewise: 0 < d < 0.7 (R_a + R_b))
    atoms.positions[1] = atoms.positions[0] + [0.55, 0.35, 0.2]
    return atoms


def energy(ev, atoms):
    return ev.evaluate(atoms, ("energy",))["energy"]


# ----------------------------------------------------------------- finite differences
@pytest.mark.parametrize("version", [3, 4, 5])
def test_forces_are_minus_the_energy_gradient(version, rich_model, triclinic_atoms):
    model = rich_model if version == 4 else random_model(
        version=version, flags=(2, 1, 0, 0, 0, 0), zbl="flexible", seed=version)
    ev = Evaluator(model, num_threads=1)
    atoms = triclinic_atoms.copy()
    forces = ev.evaluate(atoms, ("forces",))["forces"]
    h = 1e-5
    for i in (0, 1, 5, 11):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, c] += h
            minus.positions[i, c] -= h
            fd = -(energy(ev, plus) - energy(ev, minus)) / (2 * h)
            assert forces[i, c] == pytest.approx(fd, abs=2e-6 * max(1.0, abs(fd)))


def test_virial_is_minus_the_strain_derivative(rich_model, triclinic_atoms):
    ev = Evaluator(rich_model, num_threads=1)
    atoms = triclinic_atoms.copy()
    virial = ev.evaluate(atoms, ("virial",))["virial"]
    np.testing.assert_allclose(virial, virial.T, atol=1e-10)
    h = 1e-6
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * h
                s = atoms.copy()
                s.set_cell(atoms.cell.array @ strain.T, scale_atoms=False)
                s.positions = atoms.positions @ strain.T
                values.append(energy(ev, s))
            fd = -(values[0] - values[1]) / (2 * h)
            assert virial[b, a] == pytest.approx(fd, abs=1e-5 * max(1.0, abs(fd)))


def test_open_boundaries_finite_differences(rich_model):
    """A molecule (no cell at all) and a slab: forces and, for the slab, the in-plane virial."""
    rng = np.random.default_rng(3)
    molecule = lattice_structure(rng, reps=(2, 1, 1), a=3.4)
    molecule.set_cell(np.zeros((3, 3)))
    molecule.pbc = False
    ev = Evaluator(rich_model, num_threads=1)
    out = ev.evaluate(molecule, FULL)
    np.testing.assert_allclose(out["forces"].sum(axis=0), 0.0, atol=1e-10)
    h = 1e-5
    for i, c in ((0, 0), (3, 2), (7, 1)):
        plus, minus = molecule.copy(), molecule.copy()
        plus.positions[i, c] += h
        minus.positions[i, c] -= h
        fd = -(energy(ev, plus) - energy(ev, minus)) / (2 * h)
        assert out["forces"][i, c] == pytest.approx(fd, abs=2e-6 * max(1.0, abs(fd)))


# ----------------------------------------------------------------- invariances and sums
def test_invariances_and_sums(rich_model):
    rng = np.random.default_rng(4)
    atoms = lattice_structure(rng)
    ev = Evaluator(rich_model, num_threads=2)
    ref = ev.evaluate(atoms, FULL)
    assert ref["energy"] == pytest.approx(ref["energies"].sum(), abs=1e-10)
    np.testing.assert_allclose(ref["forces"].sum(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(ref["virials"].sum(axis=0), ref["virial"], atol=1e-10)

    moved = atoms.copy()
    moved.positions += [13.1, -7.3, 2.2]  # translation, also wraps across the cell
    out = ev.evaluate(moved, FULL)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"], atol=1e-10)
    np.testing.assert_allclose(out["energies"], ref["energies"], atol=1e-10)

    rotation = Rotation.from_euler("zyx", [0.3, -1.1, 2.0]).as_matrix()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rotation.T)
    rotated.positions = atoms.positions @ rotation.T
    out = ev.evaluate(rotated, FULL)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"] @ rotation.T, atol=1e-9)
    np.testing.assert_allclose(out["virial"], rotation @ ref["virial"] @ rotation.T, atol=1e-9)

    order = rng.permutation(len(atoms))
    out = ev.evaluate(atoms[order], FULL)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"][order], atol=1e-10)
    np.testing.assert_allclose(out["virials"], ref["virials"][order], atol=1e-10)


def test_supercell_is_extensive(rich_model):
    """The cell-list path (large supercell) equals the image path (small cell)."""
    rng = np.random.default_rng(5)
    atoms = lattice_structure(rng, reps=(1, 1, 1), a=3.7)
    ev = Evaluator(rich_model, num_threads=2)
    small = ev.evaluate(atoms, FULL + ("descriptors",))
    big_atoms = atoms * (4, 3, 3)
    big = ev.evaluate(big_atoms, FULL + ("descriptors",))
    n = len(big_atoms) // len(atoms)
    assert big["energy"] == pytest.approx(n * small["energy"], rel=1e-12)
    np.testing.assert_allclose(big["forces"], np.tile(small["forces"], (n, 1)), atol=1e-10)
    np.testing.assert_allclose(big["virial"], n * small["virial"], atol=1e-9)
    np.testing.assert_allclose(big["descriptors"], np.tile(small["descriptors"], (n, 1)),
                               atol=1e-12)


def test_thin_cell_matches_its_supercell():
    """A cell thinner than the cutoff in every direction (many self-images)."""
    model = random_model(zbl="universal", seed=8)
    atoms = Atoms("LiO", positions=[[0, 0, 0], [1.1, 0.9, 1.0]],
                  cell=[[2.3, 0.0, 0.0], [0.6, 2.2, 0.0], [0.3, -0.4, 2.5]], pbc=True)
    ev = Evaluator(model)
    one = ev.evaluate(atoms, FULL)
    big = ev.evaluate(atoms * (3, 3, 3), FULL)
    assert big["energy"] == pytest.approx(27 * one["energy"], rel=1e-12)
    np.testing.assert_allclose(big["forces"][:2], one["forces"], atol=1e-10)


def test_slab_open_direction_has_no_images():
    """pbc (T, T, F): equal to a periodic cell with vacuum larger than the cutoff, and the
    open direction's cell row is irrelevant (zero, or any length)."""
    model = random_model(seed=9)
    rng = np.random.default_rng(6)
    atoms = lattice_structure(rng, reps=(2, 2, 1))
    ev = Evaluator(model)
    vac = atoms.copy()
    vac.set_cell([atoms.cell[0], atoms.cell[1], [0, 0, 40.0]])
    periodic = ev.evaluate(vac, FULL)
    for c_row in ([0, 0, 0], [0, 0, 3.0], [1.0, 2.0, 0.5]):
        slab = System(ev.system(atoms).types, atoms.positions,
                      [atoms.cell[0], atoms.cell[1], c_row], (True, True, False))
        out = ev.evaluate(slab, FULL)
        assert out["energy"] == pytest.approx(periodic["energy"], rel=1e-12)
        np.testing.assert_allclose(out["forces"], periodic["forces"], atol=1e-10)
        np.testing.assert_allclose(out["virials"], periodic["virials"], atol=1e-10)


def test_one_periodic_direction_and_sparse_molecule():
    """A wire (pbc along a only) and a molecule with atoms far apart (bin grid stays small)."""
    model = random_model(seed=10)
    ev = Evaluator(model)
    wire = Atoms("LiOLi", positions=[[0, 0, 0], [1.2, 0.9, 0.4], [2.0, -0.8, 0.3]],
                 cell=[[3.1, 0.2, 0.1], [0, 0, 0], [0, 0, 0]], pbc=(True, False, False))
    ref = wire.copy()
    ref.set_cell([[3.1, 0.2, 0.1], [0, 50, 0], [0, 0, 50]])
    ref.pbc = True
    a, b = ev.evaluate(wire, FULL), ev.evaluate(ref, FULL)
    assert a["energy"] == pytest.approx(b["energy"], rel=1e-12)
    np.testing.assert_allclose(a["forces"], b["forces"], atol=1e-10)
    far = Atoms("LiOLiO", positions=[[0, 0, 0], [1.5, 0, 0], [1e4, 0, 0], [1e4, 1.6, 0]])
    out = ev.evaluate(far, FULL)
    near = ev.evaluate(far[:2], FULL)
    assert out["energies"][:2] == pytest.approx(near["energies"], abs=1e-12)


# ----------------------------------------------------------------- outputs and API
def test_zbl_parts_and_descriptor_outputs(rich_model, triclinic_atoms):
    ev = Evaluator(rich_model)
    out = ev.evaluate(triclinic_atoms, FULL + ("zbl", "descriptors", "latent"))
    assert out["energy_zbl"] > 0.0
    assert out["energy_zbl"] == pytest.approx(out["energies_zbl"].sum(), abs=1e-12)
    np.testing.assert_allclose(out["forces_zbl"].sum(axis=0), 0.0, atol=1e-10)
    # the two atoms of the short pair carry half of the pair energy each
    assert out["energies_zbl"][0] > 0.0 and out["energies_zbl"][1] > 0.0
    # the network part is the network applied to the descriptors
    model = ev.model
    D = model.descriptor_dim
    assert out["descriptors"].shape == (len(triclinic_atoms), D)
    types = ev.system(triclinic_atoms).types
    for i in (0, 4):
        net = model.network(types[i])
        h = np.tanh(net["w0"] @ out["descriptors"][i] - net["b0"])
        np.testing.assert_allclose(out["latent"][i], net["w1"] * h, atol=1e-12)
        e_nn = (net["w1"] * h).sum() - model.shared_bias
        assert out["energies"][i] - out["energies_zbl"][i] == pytest.approx(e_nn, abs=1e-12)
    # without ZBL the zbl outputs are zero
    plain = Evaluator(random_model(seed=2)).evaluate(triclinic_atoms, ("zbl",))
    assert plain["energy_zbl"] == 0.0 and not plain["forces_zbl"].any()


def test_threads_batch_and_update_parameters(rich_model):
    rng = np.random.default_rng(11)
    structures = [lattice_structure(rng, reps=(1, 1, 2)) for _ in range(5)]
    one = Evaluator(rich_model, num_threads=1)
    two = Evaluator(rich_model, num_threads=2)
    batch = two.evaluate_many(structures, FULL)
    for atoms, b in zip(structures, batch, strict=True):
        a = one.evaluate(atoms, FULL)
        c = two.evaluate(atoms, FULL)
        for key in FULL:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-13, atol=1e-12)
            np.testing.assert_allclose(c[key], a[key], rtol=1e-13, atol=1e-12)
    new = rich_model.parameters * 1.01
    two.update_parameters(new)
    np.testing.assert_array_equal(two.model.parameters, new)
    changed = rich_model.copy()
    changed.parameters[:] = new
    e_new = Evaluator(changed).evaluate(structures[0])["energy"]
    assert two.evaluate(structures[0])["energy"] == pytest.approx(e_new, rel=1e-13)
    with pytest.raises(ValueError, match="expected"):
        two.update_parameters(new[:-1])
    assert two.evaluate_many([], FULL) == []


def test_repeated_calls_are_bitwise_identical(rich_model):
    """With a fixed thread count the engine returns the same bits on every call (the thread
    that scatters an atom's pair forces must not depend on timing), so MD with a fixed seed
    repeats exactly. A 400-atom cell with a dense corner gives the threads unequal work."""
    rng = np.random.default_rng(5)
    atoms = lattice_structure(rng, reps=(4, 5, 5))
    assert len(atoms) == 400
    atoms.positions[:40] *= 0.97
    ev = Evaluator(rich_model, num_threads=2)
    first = ev.evaluate(atoms, FULL)
    for _ in range(15):
        again = ev.evaluate(atoms, FULL)
        for key in FULL:
            np.testing.assert_array_equal(again[key], first[key])


def test_concurrent_calls_share_one_model(rich_model):
    """Python threads evaluating one Evaluator at once (the GIL is released in the engine):
    one call uses the model's cached scratch arrays, the others their own."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(12)
    structures = [lattice_structure(rng, reps=(2, 2, 1 + k % 2)) for k in range(8)]
    ev = Evaluator(rich_model, num_threads=1)
    expected = [ev.evaluate(s, FULL) for s in structures]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda s: ev.evaluate(s, FULL), structures * 3))
    for k, out in enumerate(results):
        ref = expected[k % len(structures)]
        for key in FULL:
            np.testing.assert_array_equal(out[key], ref[key])


def test_empty_structure_and_single_atom():
    model = random_model(seed=12)
    ev = Evaluator(model)
    empty = ev.evaluate(Atoms(cell=np.eye(3) * 5, pbc=True), FULL)
    assert empty["energy"] == 0.0 and empty["forces"].shape == (0, 3)
    lone = ev.evaluate(Atoms("Li", cell=np.eye(3) * 20, pbc=True), FULL)
    np.testing.assert_allclose(lone["forces"], 0.0)
    net = model.network(0)
    e0 = (net["w1"] * np.tanh(-net["b0"])).sum() - model.shared_bias
    assert lone["energy"] == pytest.approx(e0, abs=1e-12)


# ----------------------------------------------------------------- errors
def test_engine_refuses_bad_input():
    model = random_model(seed=13)
    ev = Evaluator(model)
    atoms = Atoms("LiO", positions=[[0, 0, 0], [1.5, 0, 0]], cell=np.eye(3) * 6, pbc=True)
    with pytest.raises(EngineError, match="same position"):
        ev.evaluate(Atoms("LiO", positions=[[1, 1, 1], [1, 1, 1]], cell=np.eye(3) * 6, pbc=True))
    with pytest.raises(EngineError, match="same position"):
        # an atom on the image of another
        ev.evaluate(Atoms("LiO", positions=[[0, 0, 0], [6, 0, 0]], cell=np.eye(3) * 6, pbc=True))
    bad = atoms.copy()
    bad.positions[1, 2] = np.nan
    with pytest.raises(EngineError, match="NaN"):
        ev.evaluate(bad)
    with pytest.raises(EngineError, match="cell"):
        ev.evaluate(Atoms("LiO", positions=[[0, 0, 0], [1.5, 0, 0]],
                          cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]], pbc=True))
    with pytest.raises(EngineError, match="cell"):
        ev.evaluate(Atoms("Li", cell=[[1e-4, 0, 0], [0, 5, 0], [0, 0, 5]], pbc=True))
    with pytest.raises(ValueError, match="'Zr' is not in the model"):
        ev.evaluate(Atoms("LiZr", positions=[[0, 0, 0], [2, 0, 0]]))
    with pytest.raises(ValueError, match="unknown property"):
        ev.evaluate(atoms, ("stress",))
    with pytest.raises(ValueError):
        ev.evaluate(System([0, 5], [[0, 0, 0], [2, 0, 0]], np.eye(3) * 6))
    structures = [atoms, Atoms("LiO", positions=[[1, 1, 1], [1, 1, 1]], cell=np.eye(3) * 6,
                               pbc=True)]
    with pytest.raises(EngineError, match="structure 1"):
        ev.evaluate_many(structures)


def test_unsupported_models_and_devices():
    with pytest.raises(UnsupportedModelError, match="at most 256 per layer"):
        Evaluator(random_model(neurons=300, neurons_second=4, seed=1))
    with pytest.raises(ValueError, match="device"):
        Evaluator(random_model(seed=1), device="tpu")
    assert Evaluator(random_model(seed=1), device="auto").device in ("cpu", "cuda")
    assert _core.strerror(5).startswith("two atoms")
    assert isinstance(_core.openmp_enabled(), bool)
