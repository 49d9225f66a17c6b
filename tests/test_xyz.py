"""train.xyz / test.xyz reading and writing (nep-reference.md section 4.2)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nepzbl_plugin.errors import NepFormatError
from nepzbl_plugin.io.xyz import (
    TrainingStructure,
    format_train_xyz,
    parse_train_xyz,
    read_train_xyz,
    write_train_xyz,
)

# A valid two-frame file; each bad-input test changes one line of it.
GOOD = """\
2
Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0" Properties=species:S:1:pos:R:3:forces:R:3 energy=-7.5
Si 0.0 0.0 0.0 0.1 0.2 0.3
O 1.0 1.1 1.2 -0.1 -0.2 -0.3
1
Lattice="3.0 0.0 0.0 0.5 3.0 0.0 0.0 0.0 3.0" Properties=species:S:1:pos:R:3:forces:R:3 energy=-2.25
Si 0.5 0.5 0.5 0.0 0.0 0.0
"""


def _replace_line(text: str, lineno: int, new: str) -> str:
    lines = text.split("\n")
    lines[lineno - 1] = new
    return "\n".join(lines)


def _random_structure(rng, n, *, forces=True, energy=True, virial=True, **kw):
    symbols = list(rng.choice(["Li", "La", "Zr", "O"], n))
    cell = np.diag(rng.uniform(5, 10, 3)) + rng.uniform(-0.5, 0.5, (3, 3))
    w = rng.normal(size=(3, 3)) * 10
    return TrainingStructure(
        symbols=symbols,
        positions=rng.uniform(0, 5, (n, 3)),
        cell=cell,
        energy=float(rng.normal() * 100) if energy else None,
        forces=rng.normal(size=(n, 3)) if forces else None,
        virial=(w + w.T) / 2 if virial else None,
        **kw,
    )


def _assert_same(a: TrainingStructure, b: TrainingStructure):
    assert a.symbols == b.symbols
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.cell, b.cell)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    assert a.energy == b.energy
    for x, y in ((a.forces, b.forces), (a.virial, b.virial)):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert (a.weight, a.energy_weight, a.config_type) == (b.weight, b.energy_weight, b.config_type)
    assert a.info == b.info


# ------------------------------------------------------------------------------ round trips
def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    frames = [
        _random_structure(rng, 7, weight=2.5, energy_weight=0.3, config_type="bulk hot"),
        _random_structure(rng, 1, virial=False, info={"Time": "30.0", "source": "md run 3"}),
        _random_structure(rng, 3, config_type="dimer", pbc=[True, True, False]),
    ]
    frames[0].positions[0, 0] = 1e-300  # extreme but finite values survive too
    frames[0].forces[1, 2] = -123456789.123456789
    path = tmp_path / "train.xyz"
    write_train_xyz(path, frames)
    back = read_train_xyz(path)
    assert len(back) == 3
    for a, b in zip(frames, back, strict=True):
        _assert_same(a, b)
    # writing again gives the same bytes
    write_train_xyz(tmp_path / "again.xyz", back)
    assert (tmp_path / "again.xyz").read_text() == path.read_text()


def test_round_trip_without_energy_or_forces(tmp_path):
    rng = np.random.default_rng(2)
    frames = [_random_structure(rng, 4, forces=False, energy=False, virial=False)]
    path = tmp_path / "x.xyz"
    write_train_xyz(path, frames)
    with pytest.raises(NepFormatError, match="force"):
        read_train_xyz(path)
    back = read_train_xyz(path, require_forces=False, require_energy=False)
    _assert_same(frames[0], back[0])


def test_writer_output_is_gpumd_style(tmp_path):
    s = TrainingStructure(
        symbols=["Si"], positions=[[0.5, 0.25, 0.0]], cell=np.eye(3) * 3.0, energy=-4.5,
        forces=[[0.1, 0.0, -0.1]], virial=np.diag([1.0, 2.0, 3.0]), weight=2.0,
        config_type="a b",
    )
    text = format_train_xyz([s])
    assert text == (
        "1\n"
        'Lattice="3.0 0.0 0.0 0.0 3.0 0.0 0.0 0.0 3.0" Properties=species:S:1:pos:R:3:forces:R:3 '
        'energy=-4.5 virial="1.0 0.0 0.0 0.0 2.0 0.0 0.0 0.0 3.0" weight=2.0 config_type="a b" '
        'pbc="T T T"\n'
        "Si 0.5 0.25 0.0 0.1 0.0 -0.1\n"
    )


def test_atomic_write_leaves_no_temporary(tmp_path):
    rng = np.random.default_rng(3)
    write_train_xyz(tmp_path / "t.xyz", [_random_structure(rng, 2)])
    assert [p.name for p in tmp_path.iterdir()] == ["t.xyz"]
    bad = _random_structure(rng, 2)
    bad.forces[0, 0] = np.nan
    with pytest.raises(ValueError, match="forces"):
        write_train_xyz(tmp_path / "t.xyz", [bad])
    assert [p.name for p in tmp_path.iterdir()] == ["t.xyz"]  # old file kept, no leftovers


# ------------------------------------------------------------------------------ real data
def test_read_pbte_old_force_column_no_virial():
    frames = read_train_xyz(shared_file("pbte", "train.xyz"), species=["Te", "Pb"])
    assert len(frames) == 25
    first = frames[0]
    assert first.num_atoms == 250
    assert first.energy == -937.191
    assert first.virial is None
    assert first.config_type == "nep2xyz"
    assert first.symbols[0] == "Te"
    np.testing.assert_array_equal(first.positions[0], [3.391217, 3.024926, 3.37478])
    np.testing.assert_array_equal(first.forces[0], [0.07834588, 0.3368932, -0.1323393])
    np.testing.assert_array_equal(first.cell[0], [0.0, 16.42598, 16.42598])
    assert first.volume == pytest.approx(2 * 16.42598**3, rel=1e-14)
    assert all(f.virial is None and f.forces.shape == (250, 3) for f in frames)
    assert set(first.symbols) == {"Te", "Pb"}


def test_read_llzo_stress_becomes_virial():
    frames = read_train_xyz(shared_file("llzo", "NEP25-ZBL", "train.xyz"))
    assert len(frames) == 25
    first = frames[0]
    assert first.num_atoms == 192
    assert first.energy == -1419.6705703992648
    # Lattice rows a = (12.888, 0, 0), b = (0.1226, 13.323, 0), c = (...,12.872): triangular
    volume = 12.88820256 * 13.32260381 * 12.87172325
    assert first.volume == pytest.approx(volume, rel=1e-14)
    # stress= "0.003104827814488813 0.004415074312347343 ..." (tensile positive, eV/A^3)
    assert first.virial[0, 0] == pytest.approx(-0.003104827814488813 * volume, rel=1e-14)
    assert first.virial[0, 1] == pytest.approx(-0.004415074312347343 * volume, rel=1e-14)
    assert first.virial[1, 2] == pytest.approx(0.00810393027929273 * volume, rel=1e-14)
    np.testing.assert_array_equal(first.virial, first.virial.T)
    assert first.info == {"Time": "30.0"}
    assert first.forces[0, 0] == 0.34754096


# ------------------------------------------------------------------------------ parsing rules
def test_keys_case_insensitive_with_spaces_and_extra_columns():
    text = (
        "2\n"
        'LATTICE = " 4 0 0 0 4 0 0 0 4 " ENERGY = -3.0 '
        "properties=SPECIES:S:1:tags:I:1:POS:R:3:charges:R:2:FORCE:R:3 Weight=0.5 Energy_Weight=2\n"
        "Li 7 0 0 0 9 9 1 2 3\n"
        "O 8 1 1 1 9 9 4 5 6\n"
    )
    (s,) = parse_train_xyz(text)
    assert s.symbols == ["Li", "O"]
    np.testing.assert_array_equal(s.positions, [[0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(s.forces, [[1, 2, 3], [4, 5, 6]])
    assert (s.energy, s.weight, s.energy_weight) == (-3.0, 0.5, 2.0)


def test_virial_symmetrised_by_the_later_element_and_later_key_wins():
    text = _replace_line(
        GOOD, 2,
        'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy=1 '
        'virial="0 0 0 0 0 0 0 0 0" energy=-7.5 virial="1 2 3 4 5 6 7 8 9"',
    )
    s = parse_train_xyz(text)[0]
    assert s.energy == -7.5
    np.testing.assert_array_equal(s.virial, [[1, 4, 7], [4, 5, 8], [7, 8, 9]])
    assert s.virial_voigt_per_atom.tolist() == [0.5, 2.5, 4.5, 2.0, 4.0, 3.5]


def test_virial_and_stress_agreeing_within_tolerance_uses_virial():
    # V = 64, N = 2: stress -1/64 -> virial 1.0; 1.0019 differs by 0.00095 eV/atom
    line = ('Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy=-7.5 '
            'virial="1.0019 0 0 0 0 0 0 0 0" stress="-0.015625 0 0 0 0 0 0 0 0"')
    s = parse_train_xyz(_replace_line(GOOD, 2, line))[0]
    assert s.virial[0, 0] == 1.0019
    bad = line.replace("1.0019", "1.0021")
    with pytest.raises(NepFormatError, match="disagree") as err:
        parse_train_xyz(_replace_line(GOOD, 2, bad))
    assert err.value.line == 2


def test_windows_line_endings():
    frames = parse_train_xyz(GOOD.replace("\n", "\r\n"))
    assert [f.energy for f in frames] == [-7.5, -2.25]
    np.testing.assert_array_equal(frames[0].forces[1], [-0.1, -0.2, -0.3])


def test_species_filter_and_other_columns_names():
    frames = parse_train_xyz(GOOD, species=["O", "Si"])
    assert [f.symbols for f in frames] == [["Si", "O"], ["Si"]]
    assert frames[1].cell[1, 0] == 0.5


# ------------------------------------------------------------------------------ bad input
BAD_CASES = [
    # (line to replace, new text, 1-based line expected, message fragment)
    (1, "2 3", 1, "number of atoms"),
    (1, "two", 1, "number of atoms"),
    (1, "0", 1, ">= 1"),
    (2, "Properties=species:S:1:pos:R:3:forces:R:3 energy=-7.5", 2, "Lattice"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4" energy=-7.5', 2, "Properties"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3', 2, "energy"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 energy=1', 2, "force"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:forces:R:3 energy=1', 2, "'pos'"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:2:forces:R:3 energy=1', 2,
     "3 column"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R energy=1', 2, "triplets"),
    (2, 'Lattice="4 0 0 0 4 0 0 0" Properties=species:S:1:pos:R:3:forces:R:3 energy=1', 2,
     "9 numbers"),
    (2, 'Lattice="4 0 0 0 4 0 8 0 0" Properties=species:S:1:pos:R:3:forces:R:3 energy=1', 2,
     "singular"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy=abc', 2,
     "number"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy=inf', 2,
     "finite"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy=1 '
     "weight=0", 2, "0 < w <= 100"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy=1 '
     "weight=100.5", 2, "0 < w <= 100"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy=1 '
     'virial="1 2 3"', 2, "9 numbers"),
    (2, 'Lattice="4 0 0 0 4 0 0 0 4 Properties=species:S:1:pos:R:3:forces:R:3 energy=1', 2,
     "quote"),
    (2, "", 2, "empty"),
    (4, "O 1.0 1.1 1.2 -0.1 -0.2", 4, "expected 7 columns"),
    (4, "O 1.0 1.1 1.2 -0.1 -0.2 -0.3 0.4", 4, "expected 7 columns"),
    (3, "Si 0.0 zero 0.0 0.1 0.2 0.3", 3, "expected a number"),
    (4, "O 1.0 1.1 1.2 -0.1 nan -0.3", 4, "finite"),
    (4, "O 1.0 1.1 1.2 -0.1 -inf -0.3", 4, "finite"),
    (4, "Xx 1.0 1.1 1.2 -0.1 -0.2 -0.3", 4, "not an element"),
    (5, "", 5, "blank line"),
]


@pytest.mark.parametrize(("lineno", "new", "expected_line", "fragment"), BAD_CASES)
def test_bad_input_names_the_line(tmp_path, lineno, new, expected_line, fragment):
    path = tmp_path / "train.xyz"
    path.write_text(_replace_line(GOOD, lineno, new))
    with pytest.raises(NepFormatError, match=fragment) as err:
        read_train_xyz(path)
    assert err.value.line == expected_line
    assert err.value.path == str(path)
    assert f"line {expected_line}" in str(err.value)


def test_unknown_species_when_species_given():
    with pytest.raises(NepFormatError, match="not in the species list") as err:
        parse_train_xyz(GOOD, species=["Si"])
    assert err.value.line == 4


def test_truncated_file():
    lines = GOOD.split("\n")
    with pytest.raises(NepFormatError, match="file ends after 1 of the 2 atom lines") as err:
        parse_train_xyz("\n".join(lines[:3]) + "\n")
    assert err.value.line == 4
    with pytest.raises(NepFormatError, match="comment line") as err:
        parse_train_xyz("\n".join(lines[:5]))
    assert err.value.line == 6


def test_not_utf8(tmp_path):
    path = tmp_path / "train.xyz"
    path.write_bytes(GOOD.encode().replace(b"O 1.0", b"O\xff 1.0"))
    with pytest.raises(NepFormatError, match="UTF-8") as err:
        read_train_xyz(path)
    assert err.value.line == 4


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_train_xyz(tmp_path / "nope.xyz")


# ------------------------------------------------------------------------------ ASE
def test_ase_round_trip_signs():
    rng = np.random.default_rng(4)
    s = _random_structure(rng, 5, weight=3.0, config_type="x")
    atoms = s.to_atoms()
    assert atoms.get_potential_energy() == s.energy
    np.testing.assert_array_equal(atoms.get_forces(), s.forces)
    stress = atoms.get_stress(voigt=False)
    # ASE stress is tensile positive: stress = -W / V
    np.testing.assert_allclose(stress, -s.virial / s.volume, rtol=1e-14)
    assert atoms.info["weight"] == 3.0 and atoms.info["config_type"] == "x"
    back = TrainingStructure.from_atoms(atoms)
    np.testing.assert_allclose(back.virial, s.virial, rtol=1e-13, atol=1e-12)
    assert back.energy == s.energy and back.weight == 3.0 and back.config_type == "x"
    np.testing.assert_array_equal(back.forces, s.forces)


def test_from_atoms_rejects_unknown_elements_and_nan():
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms("X2", positions=[[0, 0, 0], [1, 1, 1]], cell=np.eye(3) * 5, pbc=True)
    with pytest.raises(ValueError, match="H..Pu"):
        TrainingStructure.from_atoms(atoms)
    atoms = Atoms("H2", positions=[[0, 0, 0], [1, 1, 1]], cell=np.eye(3) * 5, pbc=True)
    atoms.calc = SinglePointCalculator(atoms, energy=np.nan)
    with pytest.raises(ValueError, match="energy"):
        TrainingStructure.from_atoms(atoms)


# ------------------------------------------------------------------------------ fuzz
_FUZZ_BASE = GOOD + _replace_line(
    GOOD, 2,
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy=-7.5 '
    'virial="1 2 3 4 5 6 7 8 9" weight=2 config_type="a b" pbc="T T F"',
)
_ALPHABET = st.sampled_from(list(' \t\n"\'=:.-+eE0123456789SiOXTFnaif') + ["\r", "\x0c", "é"])


@st.composite
def _mutated(draw):
    text = _FUZZ_BASE
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "cut"]))
        if kind == "insert":
            text = text[:pos] + draw(st.text(_ALPHABET, min_size=1, max_size=4)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 6)) :]
        elif kind == "replace":
            text = text[:pos] + draw(_ALPHABET) + text[pos + 1 :]
        else:
            text = text[:pos]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_fuzz_only_nep_format_error_escapes(text):
    try:
        frames = parse_train_xyz(text, species=["Si", "O"])
    except NepFormatError as err:
        assert err.line is None or err.line >= 1
        return
    for f in frames:  # whatever was accepted is complete and finite
        assert np.isfinite(f.positions).all() and np.isfinite(f.forces).all()
        assert np.isfinite(f.energy) and 0 < f.weight <= 100
        assert f.volume > 0
        assert set(f.symbols) <= {"Si", "O"}
