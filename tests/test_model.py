"""The Model object: conversions to and from calorine, ZBL copies, summary, random models."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import shared_file

from nepzbl_plugin.errors import UnsupportedModelError
from nepzbl_plugin.interop.calorine import from_calorine, to_calorine
from nepzbl_plugin.model import Model, ZBLSettings, read_model
from nepzbl_plugin.testing import random_model


def _structure(types, seed=1):
    from ase.build import bulk

    atoms = bulk("Li", "bcc", a=3.4, cubic=True).repeat(2)
    atoms.symbols = [types[i % len(types)] for i in range(len(atoms))]
    atoms.rattle(0.15, seed=seed)
    return atoms


def _nepy_energy_forces(path, atoms):
    """Evaluate with calorine's NEP_CPU extension directly (it reads nep3/nep5 too, which
    calorine's Python layer refuses)."""
    import _nepy

    c = atoms.get_cell(complete=True).flatten()
    cell = [c[0], c[3], c[6], c[1], c[4], c[7], c[2], c[5], c[8]]
    nepy = _nepy.NEPY(str(path), len(atoms), cell, atoms.get_chemical_symbols(),
                      list(atoms.positions.T.flatten()), atoms.get_masses())
    energy, forces, _ = nepy.get_potential_forces_and_virials()
    return float(np.sum(energy)), np.array(forces).reshape(3, -1).T


@pytest.mark.parametrize("version", [3, 4, 5])
@pytest.mark.parametrize("zbl", [None, "universal", "typewise", "flexible"])
def test_random_models_evaluate_to_sensible_values(version, zbl, tmp_path):
    model = random_model(version=version, zbl=zbl, seed=11)
    model.write(tmp_path / "nep.txt")
    atoms = _structure(model.types)
    energy, forces = _nepy_energy_forces(tmp_path / "nep.txt", atoms)
    assert np.isfinite(energy) and 0 < abs(energy) / len(atoms) < 5.0
    assert np.all(np.isfinite(forces)) and 0.01 < np.abs(forces).max() < 10.0


def test_random_model_variants_and_determinism():
    a = random_model(seed=5, zbl="flexible", types=("Li", "La", "Zr", "O"))
    b = random_model(seed=5, zbl="flexible", types=("Li", "La", "Zr", "O"))
    np.testing.assert_array_equal(a.parameters, b.parameters)
    # the flexible table has its own random stream: same network as without ZBL
    np.testing.assert_array_equal(a.parameters, random_model(seed=5, types=a.types).parameters)
    table = a.zbl.flexible
    assert table.shape == (10, 10)
    assert np.all(table[:, 0] > 0) and np.all(table[:, 0] < table[:, 1])
    assert np.all(table[:, 1] <= a.angular_cutoffs.min())
    np.testing.assert_allclose(table[:, 2::2].sum(axis=1), 1.0, atol=0.021)
    assert np.all(table[:, 3::2] > 0)
    assert np.all((a.q_scaler >= 0.1) & (a.q_scaler <= 2.0))
    t = random_model(temperature=True, version=4)
    assert t.q_scaler[-1] == 0.001 and t.descriptor_dim == 5 + 5 * 6 + 1
    p = random_model(cutoffs=([5.0, 4.5], [4.0, 3.5]))
    np.testing.assert_array_equal(p.radial_cutoffs, [5.0, 4.5])
    with pytest.raises(ValueError):
        random_model(cutoffs=(3.0, 4.0))
    with pytest.raises(ValueError):
        random_model(zbl="bogus")


def test_empty_model_sizes():
    m = Model.empty(version=4, types=["Te", "Pb"], radial_cutoffs=8.0, angular_cutoffs=4.0,
                    n_max_radial=6, n_max_angular=6, basis_size_radial=6,
                    basis_size_angular=6, l_max=4, l_max_flags=(2, 0), n_neurons=30)
    assert m.num_parameters == 3033 and m.descriptor_dim == 42
    assert not m.parameters.any() and not m.q_scaler.any()


def test_with_and_without_zbl():
    base = random_model(types=("Li", "La", "O"))
    universal = base.with_zbl(1.8)
    assert universal.zbl == ZBLSettings("universal", 0.9, 1.8)
    assert base.zbl is None  # a copy
    np.testing.assert_array_equal(universal.parameters, base.parameters)
    universal.parameters[0] += 1.0
    assert universal.parameters[0] != base.parameters[0]
    typewise = base.with_zbl(2.0, factor=0.7)
    table = typewise.zbl_table()
    # Li (R_cov 1.6) - O (R_cov 0.84): min(0.7 * 2.44, 2.0)
    assert table[0, 2, 0] == 0.0 and table[0, 2, 1] == pytest.approx(0.7 * 2.44)
    assert table[1, 1, 1] == 2.0  # La-La: capped at the outer radius
    inner = base.with_zbl(2.0, inner=0.5)
    assert (inner.zbl.inner, inner.zbl.outer) == (0.5, 2.0)
    assert typewise.without_zbl().zbl is None and typewise.zbl is not None
    for bad in (dict(outer=-1.0), dict(outer=1.0, inner=1.5), dict(outer=1.0, factor=0.0)):
        with pytest.raises(ValueError):
            base.with_zbl(**bad)


@pytest.mark.parametrize("kwargs, message", [
    (dict(outer="abc"), "with_zbl: outer must be a number, got 'abc'"),
    (dict(outer=None), "with_zbl: outer must be a number, got None"),
    (dict(outer=2.0, factor="x"), "with_zbl: factor must be a number, got 'x'"),
    # Before: accepted; ZBL stopped abruptly at the angular cutoff and read_model refused the
    # file model.write() wrote.
    (dict(outer=20.0), "ZBL outer radius 20 A of Li-Li exceeds its angular cutoff 4 A"),
])
def test_with_zbl_bad_arguments_are_one_input_error(kwargs, message):
    from nepzbl_plugin.errors import InputError

    base = random_model(types=("Li", "O"))
    assert base.angular_cutoffs.max() == 4.0
    with pytest.raises(InputError, match=message):
        base.with_zbl(**kwargs)
    base.with_zbl(4.0)  # at the cutoff: fine


def test_model_api_bad_arguments_are_nepzbl_errors(tmp_path):
    from nepzbl_plugin.errors import InputError
    from nepzbl_plugin.io.nep_in import read_nep_in

    (tmp_path / "nep.in").write_text("type 2 Li O\ncutoff 4 3\nn_max 2 2\nbasis_size 2 2\n"
                                     "l_max 4 0 0\nneuron 3\n")
    # a path works as the NepIn does (was: AttributeError 'str' object has no attribute ...)
    assert Model.from_nep_in(tmp_path / "nep.in").num_parameters == \
        Model.from_nep_in(read_nep_in(tmp_path / "nep.in")).num_parameters
    with pytest.raises(InputError, match="from_nep_in takes a NepIn .* not NoneType"):
        Model.from_nep_in(None)
    model = random_model(types=("Li", "O"))
    with pytest.raises(InputError, match="block must be a whole number 0..1 .* not 1.0"):
        model.network(1.0)
    model.types = ["Li", "Xx"]  # was: KeyError 'Xx' from deep inside the evaluator
    with pytest.raises(InputError, match="model species 'Xx' is not an element symbol"):
        _ = model.atomic_numbers


def test_summary_mentions_everything():
    text = read_model(shared_file("llzo", "NEP802-ZBL.txt")).summary()
    for piece in ("nep4_zbl", "Li La Zr O", "radial 6 A, angular 4 A", "universal, inner 0.9 A",
                  "Li-O: inner 0.9 A, outer 1.8 A", "30 components", "5281", "neurons        : 30",
                  # GPUMD's own header numbers: the l_max line and the cutoff line's counts
                  "l_max          : 4 2 0 (3-body l_max 4 + q222)",
                  "max neighbours : radial 95, angular 30"):
        assert piece in text, piece
    per_type = random_model(cutoffs=([5.0, 4.5], [4.0, 3.5]), zbl="flexible").summary()
    assert "Li  radial 5 A, angular 4 A" in per_type and "O   radial 4.5 A" in per_type
    assert "flexible" in per_type and "Li-O: inner" in per_type


def test_calorine_round_trip_is_exact():
    for kwargs in (dict(zbl="flexible"), dict(zbl="typewise", cutoffs=([5, 4.5], [4, 3.5])),
                   dict(temperature=True), dict(neurons_second=3), dict(flags=(0, 1, 1, 1))):
        model = random_model(**kwargs, seed=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cmodel = to_calorine(model)
        back = from_calorine(cmodel)
        np.testing.assert_array_equal(back.parameters, model.parameters)
        np.testing.assert_array_equal(back.q_scaler, model.q_scaler)
        assert back.flags_on == model.flags_on and back.temperature == model.temperature
        if model.zbl is not None:
            assert back.zbl.mode == model.zbl.mode
            np.testing.assert_array_equal(back.zbl_table(), model.zbl_table())
    with pytest.raises(UnsupportedModelError, match="NEP4"):
        to_calorine(random_model(version=3))


def test_calorine_conversion_evaluates_identically(tmp_path):
    from calorine.calculators import CPUNEP

    model = random_model(zbl="universal", seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        to_calorine(model).write(str(tmp_path / "calorine.txt"))
    model.write(tmp_path / "ours.txt")
    atoms = _structure(model.types)
    energies = []
    for name in ("calorine.txt", "ours.txt"):
        a = atoms.copy()
        a.calc = CPUNEP(str(tmp_path / name))
        energies.append(a.get_potential_energy())
    assert energies[0] == energies[1]


@pytest.mark.parametrize("zbl", [None, "universal", "typewise", "flexible"])
def test_nep3_upgrades_to_nep4_exactly(zbl, tmp_path, capsys):
    from calorine.calculators import CPUNEP

    from nepzbl_plugin.cli import main
    from nepzbl_plugin.engine import Evaluator

    nep3 = random_model(version=3, types=("Li", "O", "Zr"), zbl=zbl, seed=7)
    nep3.write(tmp_path / "nep3.txt")
    assert main(["model", str(tmp_path / "nep3.txt"), "-o", str(tmp_path / "nep4.txt"),
                 "--to-nep4"]) == 0
    assert "nep3" in capsys.readouterr().out
    old, new = read_model(tmp_path / "nep3.txt"), read_model(tmp_path / "nep4.txt")
    assert (old.version, new.version) == (3, 4)
    assert new.model_token == ("nep4_zbl" if zbl else "nep4")
    assert new.num_parameters == old.num_parameters + 2 * old.network_block_size
    for t in range(3):  # every species carries the shared block, untouched
        np.testing.assert_array_equal(new.network(t)["w0"], old.network(0)["w0"])
    assert new.shared_bias == old.shared_bias
    structures = [_structure(("Li", "O", "Zr"), seed=s) for s in (1, 2, 3)]
    structures[1].symbols = ["Li"] * len(structures[1])  # one species only
    for atoms in structures:
        a = Evaluator(old).evaluate(atoms)
        b = Evaluator(new).evaluate(atoms)
        assert abs(a["energy"] - b["energy"]) <= 1e-12 * max(1.0, abs(a["energy"]))
        np.testing.assert_allclose(b["forces"], a["forces"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(b["virial"], a["virial"], rtol=0, atol=1e-12)
    if zbl in (None, "universal"):  # calorine reads the upgraded file and agrees
        atoms = structures[0].copy()
        atoms.calc = CPUNEP(str(tmp_path / "nep4.txt"))
        assert atoms.get_potential_energy() == pytest.approx(
            Evaluator(new).evaluate(structures[0])["energy"], rel=1e-10)


def test_to_nep4_refuses_other_versions(tmp_path, capsys):
    from nepzbl_plugin.cli import main

    random_model(version=5, seed=1).write(tmp_path / "nep5.txt")
    assert main(["model", str(tmp_path / "nep5.txt"), "-o", str(tmp_path / "x.txt"),
                 "--to-nep4"]) == 2
    assert "only nep3 models can be upgraded" in capsys.readouterr().err
    with pytest.raises(ValueError, match="only nep3"):
        random_model(version=5, seed=1).to_nep4()
