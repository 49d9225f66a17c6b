"""ZBL chosen from data: suggested radii stay below the data, the files run in GPUMD unchanged
(checked with nepzbl's own GPUMD-faithful readers), and flexible coefficients are recovered."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import shared_file

from nepzbl_plugin.audit.zbl import UNIVERSAL, zbl_energy
from nepzbl_plugin.elements import COVALENT_RADII, atomic_number
from nepzbl_plugin.io.nep_in import parse_nep_in, read_nep_in, read_zbl_in
from nepzbl_plugin.model import Model, ZBLSettings, pair_index
from nepzbl_plugin.zbl import (
    fit_flexible_zbl,
    oracle_dimer_energies,
    suggest_zbl,
)


def _alloy(a=3.6, ni_sites=(0,)):
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(2)
    symbols = atoms.get_chemical_symbols()
    for i in ni_sites:
        symbols[i] = "Ni"
    atoms.set_chemical_symbols(symbols)
    return atoms


def _rsum(a, b):
    return COVALENT_RADII[atomic_number(a) - 1] + COVALENT_RADII[atomic_number(b) - 1]


def _model_table(suggestion) -> np.ndarray:
    """What GPUMD would use: the (T, T, 10) table of a model with the suggested ZBL."""
    T = len(suggestion.species)
    probe = Model.__new__(Model)
    probe.types = suggestion.species
    probe.zbl = suggestion.zbl_settings()
    return Model.zbl_table(probe) if T else None


def test_suggest_typewise_on_synthetic_alloy():
    frames = [_alloy(3.6), _alloy(3.5, ni_sites=(0, 5))]
    s = suggest_zbl(frames, ["Cu", "Ni"])
    nn = 3.5 / np.sqrt(2)
    assert s.data_min_distances["Cu-Cu"] == pytest.approx(nn)
    assert s.data_min_distances["Cu-Ni"] == pytest.approx(nn)
    assert s.form == "typewise"
    assert s.factor >= 0.5
    for pair, outer in s.outer.items():
        assert outer <= 0.9 * s.data_min_distances[pair] + 1e-12
        assert s.inner[pair] == 0.0
    assert s.factor == pytest.approx(np.floor(1000 * 0.9 * nn / _rsum("Cu", "Cu")) / 1000)
    # nep.in lines parse as GPUMD does and give exactly the radii suggested
    nep = parse_nep_in("type 2 Cu Ni\n" + "\n".join(s.nep_in_lines()) + "\n")
    assert nep.use_typewise_cutoff_zbl and nep.typewise_cutoff_zbl_factor == s.factor
    assert 1.0 <= nep.zbl <= 4.0
    table = _model_table(s)
    for p, a in enumerate(s.species):
        for q, b in enumerate(s.species):
            name = f"{a}-{b}" if p <= q else f"{b}-{a}"
            assert table[p, q, 1] == pytest.approx(s.outer[name])
    assert s.header_lines()[1].split()[0] == "zbl" and len(s.header_lines()[1].split()) == 4


def test_suggest_flexible_writes_gpumd_zbl_in(tmp_path):
    frames = [_alloy(3.6)]
    s = suggest_zbl(frames, ["Cu", "Ni"], form="flexible")
    written = s.write(tmp_path)
    assert sorted(p.split("/")[-1] for p in written) == ["nep.in.zbl", "zbl.in"]
    table = read_zbl_in(tmp_path / "zbl.in", 2)
    assert table.shape == (3, 10)
    np.testing.assert_allclose(table[:, 2:], np.tile(UNIVERSAL, (3, 1)))
    for k, pair in enumerate(["Cu-Cu", "Cu-Ni", "Ni-Ni"]):
        assert table[k, 1] == pytest.approx(s.outer[pair], abs=1e-7)
        assert table[k, 0] == pytest.approx(s.outer[pair] / 2, abs=1e-4)
    # nep.in + zbl.in in one folder read back as flexible ZBL, as GPUMD's nep does
    (tmp_path / "nep.in").write_text("type 2 Cu Ni\n" + (tmp_path / "nep.in.zbl").read_text())
    nep = read_nep_in(tmp_path / "nep.in")
    assert nep.zbl_settings().mode == "flexible"
    assert s.header_lines() == ["nep4_zbl 2 Cu Ni", "zbl 0 0"]


def test_suggest_universal_and_errors():
    s = suggest_zbl([_alloy(3.6)], ["Cu", "Ni"], form="universal")
    assert s.form == "universal" and s.nep_in_lines() == [f"zbl {s.zbl_value:g}"]
    assert 1.0 <= s.zbl_value <= 0.9 * 3.6 / np.sqrt(2)
    squeezed = _alloy(3.6)
    squeezed.positions[1] = squeezed.positions[0] + [1.0, 0, 0]
    with pytest.raises(ValueError, match="1 <= r_outer <= 4"):
        suggest_zbl([squeezed], ["Cu", "Ni"], form="universal")
    with pytest.raises(ValueError, match="typewise ZBL needs a factor"):
        suggest_zbl([squeezed], ["Cu", "Ni"], form="typewise")
    with pytest.raises(ValueError, match="unknown ZBL form"):
        suggest_zbl([squeezed], form="magic")


def test_suggest_llzo_training_set(tmp_path):
    data = shared_file("llzo", "NEP25-ZBL", "train.xyz")
    s = suggest_zbl(data, ["Li", "La", "Zr", "O"])
    # Li-O at 1.54 Å and Li-Li at 1.58 Å need a factor 0.44 < 0.5: typewise cannot, flexible can
    assert s.form == "flexible"
    assert any("0.5" in note for note in s.notes)
    assert any(note.startswith("Zr-Zr") for note in s.notes)
    for pair, d in s.data_min_distances.items():
        if d is not None:
            assert s.outer[pair] < d
    assert s.outer["Li-O"] == pytest.approx(0.9 * 1.53737, abs=1e-3)
    s.write(tmp_path)
    table = read_zbl_in(tmp_path / "zbl.in", 4)
    assert table.shape == (10, 10)
    assert table[pair_index(0, 3, 4), 1] == pytest.approx(s.outer["Li-O"], abs=1e-7)
    nep_in = parse_nep_in("type 4 Li La Zr O\n" + (tmp_path / "nep.in.zbl").read_text())
    assert 1.0 <= nep_in.zbl <= 4.0


def test_cli_suggest(tmp_path, capsys):
    from ase.io import write

    from nepzbl_plugin.cli import main

    path = tmp_path / "train.xyz"
    write(path, [_alloy(3.6)], format="extxyz")
    assert main(["zbl", "suggest", str(path), "--types", "Cu", "Ni", "--out",
                 str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["form"] == "typewise" and (tmp_path / "nep.in.zbl").exists()
    assert main(["zbl", "suggest", str(path), "--out", str(tmp_path)]) == 0
    assert "use_typewise_cutoff_zbl" in capsys.readouterr().out


# ---------------------------------------------------------------------------- fitting
KNOWN = np.array([0.25, 3.1998, 0.45, 0.94229, 0.27, 0.4029, 0.03, 0.20162])


def _synthetic(a, b, coefficients, r):
    return zbl_energy(r, a, b, 10.0, 11.0, coefficients)  # switch == 1 on r < 10


def test_fit_recovers_known_amplitudes():
    r = np.round(np.arange(10, 71) * 0.01, 2)
    dimers = {"Li-Li": (r, _synthetic("Li", "Li", KNOWN, r)),
              "Li-O": (r, _synthetic("Li", "O", KNOWN * [1, 1, 0.9, 1, 1.1, 1, 1, 1], r)),
              "O-O": (r, _synthetic("O", "O", UNIVERSAL, r))}
    radii = {"Li-Li": (0.7, 1.4), "Li-O": (0.7, 1.38), "O-O": (1.0, 2.0)}
    fit = fit_flexible_zbl(dimers, ["Li", "O"], radii)
    np.testing.assert_allclose(fit.table[0, 2:], KNOWN, atol=1e-6)
    np.testing.assert_allclose(fit.table[1, 2:], KNOWN * [1, 1, 0.9, 1, 1.1, 1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(fit.table[2, 2:], UNIVERSAL, atol=1e-6)
    np.testing.assert_allclose(fit.table[:, :2], [[0.7, 1.4], [0.7, 1.38], [1.0, 2.0]])
    assert max(fit.relative_rms.values()) < 1e-8


def test_fit_exponents_reproduces_curve(tmp_path):
    r = np.round(np.arange(10, 91) * 0.01, 2)
    coefficients = np.array([0.2, 2.9, 0.5, 1.0, 0.27, 0.45, 0.03, 0.22])
    dimers = {"Cu-Cu": (r, _synthetic("Cu", "Cu", coefficients, r))}
    fit = fit_flexible_zbl(dimers, ["Cu"], {"Cu-Cu": (0.9, 1.8)}, fit_exponents=True)
    row = fit.table[0]
    fitted = zbl_energy(r, "Cu", "Cu", 10.0, 11.0, row[2:])
    np.testing.assert_allclose(fitted, dimers["Cu-Cu"][1], rtol=1e-4)
    assert np.all(np.diff(row[3::2]) < 0)  # exponents ordered as GPUMD lists them
    path = tmp_path / "zbl.in"
    fit.write_zbl_in(path)
    np.testing.assert_allclose(read_zbl_in(path, 1), fit.table, rtol=1e-9)


class _PairCalculator:
    """A stand-in oracle: flexible-ZBL pair energy with known coefficients, as an ASE
    calculator (energy and forces of a dimer)."""

    def __new__(cls, coefficients):
        from ase.calculators.calculator import Calculator, all_changes

        class PairZBL(Calculator):
            implemented_properties = ["energy", "forces"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                d = atoms.get_distance(0, 1, mic=True, vector=True)
                r = np.linalg.norm(d)
                a, b = atoms.get_chemical_symbols()
                e = float(zbl_energy(r, a, b, 10.0, 11.0, coefficients))
                h = 1e-6
                de = (zbl_energy(r + h, a, b, 10.0, 11.0, coefficients)
                      - zbl_energy(r - h, a, b, 10.0, 11.0, coefficients)) / (2 * h)
                forces = np.zeros((2, 3))
                forces[1] = -de * d / r
                forces[0] = -forces[1]
                self.results = {"energy": e, "forces": forces}

        return PairZBL()


def test_fit_from_any_ase_calculator_oracle():
    calc = _PairCalculator(KNOWN)
    dimers = oracle_dimer_energies(calc, ["Li", "O"], np.round(np.arange(10, 71) * 0.01, 2),
                                   reference_distance=12.0)
    assert set(dimers) == {"Li-Li", "Li-O", "O-O"}
    fit = fit_flexible_zbl(dimers, ["Li", "O"], {p: (0.7, 1.4) for p in dimers})
    # energies are relative to 12 Å, where this oracle is 1e-12 eV: amplitudes come back
    for row in fit.table:
        np.testing.assert_allclose(row[2:], KNOWN, atol=1e-5)


def test_cli_fit_from_dimer_files(tmp_path, capsys):
    from nepzbl_plugin.audit.dimer import DimerCurve
    from nepzbl_plugin.cli import main

    r = np.round(np.arange(10, 61) * 0.01, 2)
    curve = DimerCurve(("Cu", "Cu"), r, _synthetic("Cu", "Cu", KNOWN, r))
    curve.write(tmp_path / "cucu.txt")
    assert main(["zbl", "fit", "--types", "Cu", "--dimer", f"Cu-Cu={tmp_path / 'cucu.txt'}",
                 "--radius", "Cu-Cu=0.6,1.5", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    table = read_zbl_in(tmp_path / "zbl.in", 1)
    np.testing.assert_allclose(table[0, 2:], KNOWN, atol=1e-4)  # file has 6 decimals
    assert out["header"] == ["nep4_zbl 1 Cu", "zbl 0 0"]
    assert (tmp_path / "nep_header.txt").read_text().splitlines() == out["header"]


def test_cli_fit_takes_several_pairs_after_one_option(tmp_path, capsys):
    """docs/audit.md writes `--dimer A-B=FILE ...` and `--radius A-B=INNER,OUTER ...`: several
    pairs after one option work, and so does repeating the option."""
    from nepzbl_plugin.audit.dimer import DimerCurve
    from nepzbl_plugin.cli import main

    r = np.round(np.arange(10, 61) * 0.01, 2)
    files = {}
    for pair in ("Li-Li", "Li-O", "O-O"):
        files[pair] = tmp_path / f"{pair}.txt"
        DimerCurve(tuple(pair.split("-")), r, _synthetic(*pair.split("-"), KNOWN, r)).write(
            files[pair])
    assert main(["zbl", "fit", "--types", "Li", "O",
                 "--dimer", f"Li-Li={files['Li-Li']}", f"Li-O={files['Li-O']}",
                 "--dimer", f"O-O={files['O-O']}",
                 "--radius", "Li-Li=0.6,1.2", "Li-O=0.6,1.2", "--radius", "O-O=0.6,1.2",
                 "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["header"] == ["nep4_zbl 2 Li O", "zbl 0 0"]
    table = read_zbl_in(tmp_path / "zbl.in", 2)
    np.testing.assert_allclose(table[:, 2:], np.tile(KNOWN, (3, 1)), atol=1e-4)


def test_fitted_table_goes_into_a_model(tmp_path):
    from nepzbl_plugin import read_model
    from nepzbl_plugin.testing import random_model

    r = np.round(np.arange(10, 71) * 0.01, 2)
    dimers = {p: (r, _synthetic(*p.split("-"), KNOWN, r)) for p in ("Li-Li", "Li-O", "O-O")}
    fit = fit_flexible_zbl(dimers, ["Li", "O"], {p: (0.6, 1.2) for p in dimers})
    model = random_model(types=("Li", "O"))
    model.zbl = fit.zbl_settings()
    assert isinstance(model.zbl, ZBLSettings)
    path = tmp_path / "nep.txt"
    model.write(path)
    assert [line.strip() for line in path.read_text().splitlines()[:2]] == fit.header_lines()
    back = read_model(path)
    np.testing.assert_allclose(back.zbl.flexible, fit.table, rtol=1e-6)


def test_cli_suggest_typewise_that_cannot_fit_is_one_line(tmp_path, capsys):
    from ase.io import write

    from nepzbl_plugin.cli import main

    squeezed = _alloy(3.6)
    squeezed.positions[1] = squeezed.positions[0] + [1.0, 0, 0]
    path = tmp_path / "train.xyz"
    write(path, [squeezed], format="extxyz")
    assert main(["zbl", "suggest", str(path), "--form", "typewise", "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "typewise ZBL needs a factor >= 0.5" in err[0]
    assert "--form flexible" in err[0]


def test_fit_refuses_dimer_curves_that_are_not_zbl_like(tmp_path, capsys):
    from nepzbl_plugin.audit.dimer import DimerCurve
    from nepzbl_plugin.cli import main
    from nepzbl_plugin.zbl import ZBLChoiceError

    # a soft, EMT-like exponential wall: a few eV at 0.1 Å where ZBL gives thousands
    r = np.round(np.arange(10, 61) * 0.01, 2)
    soft = 5.0 * np.exp(-2.0 * r)
    with pytest.raises(ZBLChoiceError, match="not ZBL-like"):
        fit_flexible_zbl({"Cu-Cu": (r, soft)}, ["Cu"], {"Cu-Cu": (0.6, 1.5)})
    DimerCurve(("Cu", "Cu"), r, soft).write(tmp_path / "cucu.txt")
    assert main(["zbl", "fit", "--types", "Cu", "--dimer", f"Cu-Cu={tmp_path / 'cucu.txt'}",
                 "--radius", "Cu-Cu=0.6,1.5", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Cu-Cu: the dimer energies are not ZBL-like" in err[0]
    assert not (tmp_path / "zbl.in").exists()
