"""ASE calculators (NEP, CPUNEP) and the calorine-compatible functions in nepzbl_plugin.nep."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_stress
from ase.io import read
from conftest import shared_file

import nepzbl_plugin.engine.base as engine_module
from nepzbl_plugin import CPUNEP, NEP, read_model
from nepzbl_plugin import nep as nepfun
from nepzbl_plugin.testing import random_model

ABS = 1e-9


@pytest.fixture(scope="module")
def llzo():
    return read(shared_file("llzo", "NEP25-ZBL", "train.xyz"), 2)


@pytest.fixture(scope="module")
def llzo_model():
    return str(shared_file("llzo", "NEP802-ZBL.txt"))


def test_nep_properties_are_consistent(llzo, llzo_model):
    atoms = llzo.copy()
    atoms.calc = NEP(llzo_model, num_threads=2)
    e = atoms.get_potential_energy()
    assert atoms.get_potential_energy(force_consistent=True) == e
    assert atoms.get_potential_energies().sum() == pytest.approx(e, abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces().sum(axis=0), 0.0, atol=1e-10)
    stress = atoms.get_stress()
    np.testing.assert_allclose(atoms.get_stresses().sum(axis=0), stress, atol=1e-12)
    numerical = calculate_numerical_stress(atoms, eps=1e-6)
    np.testing.assert_allclose(stress, numerical, atol=1e-7)
    assert set(atoms.calc.implemented_properties) == {
        "energy", "free_energy", "forces", "stress", "energies", "stresses"}
    assert NEP(llzo_model).implemented_properties is not atoms.calc.implemented_properties


def test_get_components_parts_sum(llzo, llzo_model):
    atoms = llzo.copy()
    atoms.positions[1] = atoms.positions[0] + [1.1, 0.3, 0.0]  # inside the ZBL range
    calc = NEP(llzo_model)
    atoms.calc = calc
    with pytest.raises(ValueError, match=r"get_components\(atoms\)"):
        calc.get_components()  # attached, but ASE has not handed it the atoms yet
    parts = calc.get_components(atoms)
    atoms.get_potential_energy()
    assert calc.get_components()["zbl"]["energy"] == parts["zbl"]["energy"]
    assert parts["zbl"]["energy"] > 0.0
    assert parts["nep"]["energy"] + parts["zbl"]["energy"] == pytest.approx(
        atoms.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(parts["nep"]["forces"] + parts["zbl"]["forces"],
                               atoms.get_forces(), atol=1e-10)
    np.testing.assert_allclose(parts["nep"]["stress"] + parts["zbl"]["stress"],
                               atoms.get_stress(), atol=1e-12)
    np.testing.assert_allclose(parts["nep"]["energies"] + parts["zbl"]["energies"],
                               atoms.get_potential_energies(), atol=1e-10)


def test_model_is_read_once(llzo, llzo_model, monkeypatch):
    calls = []
    real = engine_module.read_model

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(engine_module, "read_model", counting)
    atoms = llzo.copy()
    atoms.calc = NEP(llzo_model)
    for _step in range(3):
        atoms.positions[0, 0] += 0.01
        atoms.get_forces()
        atoms.get_stress()
    assert len(calls) == 1


def test_open_structure_has_no_stress():
    model = random_model(seed=3)
    atoms = Atoms("LiOLi", positions=[[0, 0, 0], [1.6, 0, 0], [0, 1.7, 0.2]])
    atoms.calc = NEP(model)
    assert np.isfinite(atoms.get_potential_energy())
    np.testing.assert_allclose(atoms.get_forces().sum(axis=0), 0.0, atol=1e-12)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_nve_conserves_energy():
    from ase import units
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    model = random_model(zbl="universal", seed=4, scale=0.3)
    atoms = bulk("Cu", "fcc", 3.8, cubic=True) * (2, 2, 2)
    atoms.set_chemical_symbols(["Li", "O"] * 16)
    atoms.calc = NEP(model)
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(1))
    e0 = atoms.get_total_energy()
    VelocityVerlet(atoms, timestep=0.5 * units.fs).run(100)
    assert abs(atoms.get_total_energy() - e0) / len(atoms) < 2e-4


# ----------------------------------------------------------------- calorine drop-in
def test_cpunep_matches_calorine(llzo, llzo_model):
    from calorine.calculators import CPUNEP as CalorineCPUNEP

    ours, ref = llzo.copy(), llzo.copy()
    ours.calc = CPUNEP(llzo_model)
    ref.calc = CalorineCPUNEP(llzo_model)
    for _step in range(2):
        assert ours.get_potential_energy() == pytest.approx(ref.get_potential_energy(),
                                                            rel=1e-10)
        np.testing.assert_allclose(ours.get_forces(), ref.get_forces(), atol=ABS)
        np.testing.assert_allclose(ours.get_stress(), ref.get_stress(), atol=1e-11)
        np.testing.assert_allclose(ours.get_stresses(), ref.get_stresses(), atol=1e-11)
        np.testing.assert_allclose(ours.get_potential_energies(),
                                   ref.get_potential_energies(), atol=ABS)
        for atoms in (ours, ref):
            atoms.positions[5] += [0.05, -0.02, 0.01]
            atoms.set_cell(atoms.cell.array * 1.001, scale_atoms=True)


def test_cpunep_constructor_contract(llzo_model, tmp_path):
    with pytest.raises(NotImplementedError):
        CPUNEP(llzo_model, dftd3={"functional": "pbe"})
    with pytest.raises(FileNotFoundError):
        CPUNEP(str(tmp_path / "missing.txt"))
    atoms = bulk("Li", "bcc", 3.5, cubic=True)
    calc = CPUNEP(llzo_model, atoms=atoms, label="x", debug=True)
    assert calc.atoms is not None and calc.parameters["model_filename"] == llzo_model
    molecule = Atoms("LiO", positions=[[0, 0, 0], [1.6, 0, 0]])
    molecule.calc = CPUNEP(llzo_model)
    with pytest.raises(ValueError, match="cell"):
        molecule.get_potential_energy()


def test_nep_functions_match_calorine(llzo, llzo_model):
    import calorine.nep as cnep

    structures = [llzo, read(shared_file("llzo", "NEP25-ZBL", "train.xyz"), 7)]
    for atoms in structures:
        ours = nepfun.get_potential_forces_and_virials(atoms, llzo_model)
        ref = cnep.get_potential_forces_and_virials(atoms, llzo_model)
        for a, b in zip(ours, ref, strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=ABS)
        d = nepfun.get_descriptors(atoms, llzo_model)
        np.testing.assert_allclose(d, cnep.get_descriptors(atoms, llzo_model), atol=1e-10)
        lat = nepfun.get_latent_space(atoms, llzo_model)
        np.testing.assert_allclose(lat, cnep.get_latent_space(atoms, llzo_model), atol=1e-10)
    batch = nepfun.get_potential_forces_and_virials_batch(structures, llzo_model)
    for atoms, (_e, f, w) in zip(structures, batch, strict=True):
        e1, f1, w1 = nepfun.get_potential_forces_and_virials(atoms, llzo_model)
        np.testing.assert_allclose(f, f1, atol=1e-12)
        np.testing.assert_allclose(w, w1, atol=1e-12)
    descriptors = nepfun.get_descriptors_batch(structures, model=read_model(llzo_model))
    np.testing.assert_allclose(descriptors[1], nepfun.get_descriptors(structures[1], llzo_model),
                               atol=1e-13)
    assert descriptors[0].shape == (len(structures[0]), 30)
    latent = nepfun.get_latent_space_batch(structures, llzo_model)
    assert latent[1].shape == (len(structures[1]), 30)
    with pytest.raises(ValueError, match="Model is undefined"):
        nepfun.get_latent_space(llzo)


def test_nep_functions_molecule_without_cell(llzo_model):
    """No cell: open boundaries here, calorine's 100 Angstrom box there: same numbers."""
    import calorine.nep as cnep

    molecule = Atoms("LiOLaZr", positions=[[0, 0, 0], [1.7, 0, 0], [0, 2.3, 0], [2, 2, 1.5]])
    ours = nepfun.get_potential_forces_and_virials(molecule, llzo_model)
    with pytest.warns(UserWarning):
        ref = cnep.get_potential_forces_and_virials(molecule, llzo_model)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, atol=ABS)


def test_set_refuses_unknown_keys_and_bad_temperatures(tmp_path):
    # Before: set(foo=1), NEP(model, foo=3) and set(model_filename=...) were stored and
    # ignored, and temperature='hot' or -5 was accepted (and ignored for a plain model).
    from nepzbl_plugin.errors import InputError

    model = random_model(types=("Li", "O"), seed=3)
    calc = NEP(model)
    with pytest.raises(InputError, match="NEP: unknown or fixed parameter foo; only "
                                         "temperature can be set"):
        calc.set(foo=1)
    with pytest.raises(InputError, match="unknown or fixed parameter foo"):
        NEP(model, foo=3)
    for bad in ("hot", -5.0, float("nan")):
        with pytest.raises(InputError, match="temperature must be a finite number of kelvin"):
            calc.set(temperature=bad)
        with pytest.raises(InputError, match="temperature must be a finite number of kelvin"):
            NEP(model, temperature=bad)
    assert calc.set(temperature=300) == {"temperature": 300.0}
    model.write(tmp_path / "nep.txt")
    with pytest.raises(InputError, match="CPUNEP: unknown or fixed parameter model_filename"):
        CPUNEP(str(tmp_path / "nep.txt")).set(model_filename="other.txt")
