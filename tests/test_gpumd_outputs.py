"""GPUMD's training output files (nep-reference.md section 4.8)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

from nepzbl_plugin.errors import NepFormatError
from nepzbl_plugin.io.gpumd_outputs import (
    LossTable,
    format_loss_row,
    read_energy_out,
    read_force_out,
    read_loss_out,
    read_stress_out,
    read_virial_out,
    virial_to_stress_gpa,
    write_energy_out,
    write_force_out,
    write_loss_out,
    write_stress_out,
    write_virial_out,
)


# ------------------------------------------------------------------------------ loss.out
def test_read_gpumd_loss_and_write_identical_bytes(tmp_path):
    path = shared_file("pbte", "gpumd_loss.out")
    table = read_loss_out(path)
    assert len(table) == 200
    assert table.generation[0] == 100 and table.generation[-1] == 20000
    assert table.generation.dtype == np.int64
    # last line: 20000 0.05570 0.00510 0.01029 0.00041 0.03990 0 0 0 0
    assert table.total[-1] == 0.05570
    assert table.energy_train[-1] == 0.00041
    assert table.force_train[-1] == 0.03990
    assert table.virial_train[-1] == 0.0
    assert np.all(table.energy_test == 0)
    out = tmp_path / "loss.out"
    write_loss_out(out, table)
    assert out.read_bytes() == path.read_bytes()


def test_loss_row_padding_and_touching_fields(tmp_path):
    row = format_loss_row(100, [0.15328, 0.02081, 0.02458, 0.00189, 0.106, 0, 0, 0, 0])
    assert row == ("100     0.15328    0.02081    0.02458    0.00189      0.10600      "
                   "0.00000      0.00000      0.00000      0.00000      \n")
    # gen = 10000000 fills its 8 characters and touches Total; a big Total touches L1
    row = format_loss_row(10000000, [12345678.5, 1, 2, 3, 4, 5, 6, 7, 8])
    assert row.startswith("1000000012345678.500001.00000    2.00000")
    path = tmp_path / "loss.out"
    path.write_text("# a comment\n" + row + "\n")
    table = read_loss_out(path)
    assert table.generation.tolist() == [10000000]
    np.testing.assert_array_equal(table.as_array()[0, 1:], [12345678.5, 1, 2, 3, 4, 5, 6, 7, 8])


def test_loss_append_and_array_input(tmp_path):
    path = tmp_path / "loss.out"
    rows = np.array([[100, 1.5, 0.1, 0.2, 0.01, 0.2, 0.03, 0, 0, 0]])
    write_loss_out(path, rows)
    write_loss_out(path, rows + [[100, 0, 0, 0, 0, 0, 0, 0, 0, 0]], append=True)
    table = read_loss_out(path)
    assert isinstance(table, LossTable)
    assert table.generation.tolist() == [100, 200]
    assert table.virial_train.tolist() == [0.03, 0.03]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("100 1 2 3 4 5 6 7 8", "expected 10 columns"),
        ("1.5 1 2 3 4 5 6 7 8 9", "generation"),
        ("100 1 2 3 4 5 6 7 8 x", "non-numeric"),
        ("100 1 2 3 4 5 6 7 8 nan", "non-finite"),
    ],
)
def test_loss_bad_lines(tmp_path, line, fragment):
    path = tmp_path / "loss.out"
    path.write_text(format_loss_row(100, range(9)) + line + "\n")
    with pytest.raises(NepFormatError, match=fragment) as err:
        read_loss_out(path)
    assert err.value.line == 2


# ------------------------------------------------------------------------------ per-frame files
def test_energy_and_force_files(tmp_path):
    energy = tmp_path / "energy_train.out"
    write_energy_out(energy, [-3.75, 1e-7], [-3.5, 0.125])
    assert energy.read_text() == "-3.75 -3.5\n1e-07 0.125\n"
    back = read_energy_out(energy)
    np.testing.assert_array_equal(back.predicted, [-3.75, 1e-7])
    np.testing.assert_array_equal(back.reference, [-3.5, 0.125])

    force = tmp_path / "force_train.out"
    pred = np.array([[0.5, -1.25, 2.0], [1234567.0, 0.0, -0.001]])
    ref = np.array([[0.25, 0.5, 0.75], [1, 2, 3]])
    write_force_out(force, pred, ref)
    assert force.read_text().split("\n")[1] == "1.23457e+06 0 -0.001 1 2 3"  # %g: 6 digits
    back = read_force_out(force)
    np.testing.assert_array_equal(back.predicted[0], pred[0])
    assert back.predicted[1, 0] == 1234570.0
    np.testing.assert_array_equal(back.reference, ref)


def test_virial_file_sentinel_round_trip(tmp_path):
    path = tmp_path / "virial_test.out"
    pred = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1, 2, 3, 4, 5, 6]])
    ref = np.array([[0.15, 0.25, 0.35, -0.4, 0.5, 0.625], [np.nan] * 6])
    write_virial_out(path, pred, ref)
    lines = path.read_text().split("\n")
    assert lines[0] == "0.1 0.2 0.3 0.4 0.5 0.6 0.15 0.25 0.35 -0.4 0.5 0.625"
    assert lines[1] == "1 2 3 4 5 6 -1e+06 -1e+06 -1e+06 -1e+06 -1e+06 -1e+06"
    back = read_virial_out(path)
    np.testing.assert_array_equal(back.predicted, pred)
    np.testing.assert_array_equal(back.reference[0], ref[0])
    assert np.isnan(back.reference[1]).all()


def test_stress_conversion_and_file(tmp_path):
    # 2 frames: W/N = 0.5 eV/atom on xx with 10 atoms in 100 A^3 -> 5/100 eV/A^3 -> 8.010885 GPa
    virial = np.array([[0.5, 0, 0, 0, 0, 0], [np.nan] * 6])
    stress = virial_to_stress_gpa(virial, [10, 4], [100.0, 50.0])
    assert stress[0, 0] == pytest.approx(0.05 * 160.2177, rel=1e-15)
    assert np.isnan(stress[1]).all()
    path = tmp_path / "stress_train.out"
    write_stress_out(path, [[8.01089, 0, 0, 0, 0, -1], [1, 1, 1, 0, 0, 0]], stress)
    assert path.read_text().split("\n")[0] == "8.01089 0 0 0 0 -1 8.01089 0 0 0 0 0"
    back = read_stress_out(path)
    assert back.reference[0, 0] == 8.01089
    assert np.isnan(back.reference[1]).all()


@pytest.mark.parametrize(
    ("reader", "good", "bad", "fragment"),
    [
        (read_energy_out, "1 2", "1 2 3", "expected 2 columns"),
        (read_force_out, "1 2 3 4 5 6", "1 2 3 4 5 x", "expected a finite number"),
        (read_virial_out, " ".join(["1"] * 12), " ".join(["1"] * 11), "expected 12 columns"),
        (read_stress_out, " ".join(["1"] * 12), " ".join(["1"] * 11 + ["inf"]), "finite"),
    ],
)
def test_prediction_files_bad_lines(tmp_path, reader, good, bad, fragment):
    path = tmp_path / "x.out"
    path.write_text(f"{good}\n\n{good}\n{bad}\n")
    with pytest.raises(NepFormatError, match=fragment) as err:
        reader(path)
    assert err.value.line == 4


def test_writers_reject_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        write_force_out(tmp_path / "f.out", np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="reference shape"):
        write_virial_out(tmp_path / "v.out", np.zeros((2, 6)), np.zeros((3, 6)))
    with pytest.raises(ValueError, match="finite"):
        write_energy_out(tmp_path / "e.out", [np.nan], [1.0])
