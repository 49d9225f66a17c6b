"""GPUMD's MD outputs read back (issue 15 item 1): thermo.out, msd.out and rdf.out on small
synthetic files with known contents, and `nepzbl md --gpumd` running a fake `gpumd` from PATH."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from ase.build import bulk

from nepzbl_plugin.errors import NepFormatError
from nepzbl_plugin.io.gpumd_outputs import read_msd_out, read_rdf_out, read_thermo_out
from nepzbl_plugin.md.gpumd import read_gpumd_results, thermo_rows_from_gpumd
from nepzbl_plugin.md.observers import THERMO_COLUMNS


def _thermo_text(triclinic: bool) -> str:
    rows = []
    for k in range(3):
        row = [1000.0 + k, 24.0 + k, -1400.0 - k, 0.1, 0.2, 0.3, 0.01, 0.02, 0.03]
        if triclinic:
            row += [13.0, 0.0, 0.0, 0.5, 13.0, 0.0, 0.0, 0.0, 12.0 + 0.1 * k]
        else:
            row += [13.0, 13.1, 12.0 + 0.1 * k]
        rows.append(" ".join(f"{x:g}" for x in row))
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("triclinic", [False, True])
def test_thermo_out_columns(tmp_path, triclinic):
    path = tmp_path / "thermo.out"
    path.write_text(_thermo_text(triclinic))
    thermo = read_thermo_out(path)
    assert len(thermo) == 3
    np.testing.assert_allclose(thermo.temperature_K, [1000, 1001, 1002])
    np.testing.assert_allclose(thermo.kinetic_eV, [24, 25, 26])
    np.testing.assert_allclose(thermo.potential_eV, [-1400, -1401, -1402])
    np.testing.assert_allclose(thermo.pressure_GPa[0], [0.1, 0.2, 0.3, 0.01, 0.02, 0.03])
    np.testing.assert_allclose(thermo.cell[2, 2], [0, 0, 12.2])
    if triclinic:
        np.testing.assert_allclose(thermo.cell[0, 1], [0.5, 13.0, 0.0])
    else:
        np.testing.assert_allclose(thermo.cell[0], np.diag([13.0, 13.1, 12.0]))
    rows = thermo_rows_from_gpumd(thermo, every=100, timestep=2.0)
    col = {name: rows[:, k] for k, name in enumerate(THERMO_COLUMNS)}
    np.testing.assert_allclose(col["step"], [100, 200, 300])
    np.testing.assert_allclose(col["time_fs"], [200, 400, 600])
    np.testing.assert_allclose(col["E_total_eV"], [-1376, -1376, -1376])
    np.testing.assert_allclose(col["P_GPa"], 0.2)
    np.testing.assert_allclose(col["c_A"], [12.0, 12.1, 12.2])
    expected_volume = np.abs(np.linalg.det(thermo.cell))
    np.testing.assert_allclose(col["V_A3"], expected_volume)
    if not triclinic:
        np.testing.assert_allclose(col["gamma_deg"], 90.0)
    else:
        np.testing.assert_allclose(col["gamma_deg"][0],
                                   np.degrees(np.arccos(0.5 / np.hypot(0.5, 13.0))))


def test_thermo_out_bad_rows_name_the_line(tmp_path):
    path = tmp_path / "thermo.out"
    path.write_text(_thermo_text(False) + "1 2 3\n")
    with pytest.raises(NepFormatError, match=r"thermo.out.*line 4.*expected 12 columns"):
        read_thermo_out(path)
    path.write_text("1 2 3 4 5\n")
    with pytest.raises(NepFormatError, match="line 1"):
        read_thermo_out(path)
    path.write_text("1 2 x\n")
    with pytest.raises(NepFormatError, match="expected numbers"):
        read_thermo_out(path)


def _msd_block(diffusion_A2_per_ps, points=11, dt_ps=0.5, offset=0.3):
    """GPUMD's msd.out rows for a straight MSD = offset + 2 D t per axis."""
    lines = []
    for k in range(points):
        t = k * dt_ps
        msd = [offset + 2 * d * t for d in diffusion_A2_per_ps]
        lines.append(" ".join(f"{x:g}" for x in [t, *msd, *diffusion_A2_per_ps]))
    return "\n".join(lines) + "\n"


def test_msd_out_blocks_and_known_diffusivity(tmp_path):
    path = tmp_path / "msd.out"
    path.write_text(_msd_block((0.1, 0.2, 0.3)) + _msd_block((1.0, 1.0, 1.0), points=5))
    blocks = read_msd_out(path)
    assert [len(b.time_ps) for b in blocks] == [11, 5]
    assert blocks[0].msd_A2.shape == (1, 11, 3)
    np.testing.assert_allclose(blocks[0].sdc_A2_per_ps[0, 3], [0.1, 0.2, 0.3])
    total, axes = blocks[0].diffusion_cm2_per_s()
    # D = mean of the axis D's, 1 Angstrom^2/ps = 1e-4 cm^2/s
    assert total == pytest.approx(0.2e-4, rel=1e-9)
    np.testing.assert_allclose(axes, [0.1e-4, 0.2e-4, 0.3e-4], rtol=1e-9)
    assert blocks[1].diffusion_cm2_per_s()[0] == pytest.approx(1e-4, rel=1e-9)


def test_msd_out_groups_and_errors(tmp_path):
    path = tmp_path / "msd.out"
    path.write_text("0 0 0 0 0 0 0 1 1 1 0 0 0\n1 2 2 2 1 1 1 6 6 6 3 3 3\n")
    block = read_msd_out(path)[0]
    assert block.msd_A2.shape == (2, 2, 3)
    assert block.diffusion_cm2_per_s(group=1)[0] == pytest.approx(2.5e-4)
    path.write_text("0 1 2 3\n")
    with pytest.raises(NepFormatError, match="expected 7 columns"):
        read_msd_out(path)


RDF_TEXT = """#radius total type_0_0 type_0_1 type_1_1
0.05000 0.00000 0.00000 0.00000 0.00000
0.15000 1.50000 2.00000 1.00000 0.50000
#radius total type_0_0 type_0_1 type_1_1
0.05000 0.10000 0.20000 0.30000 0.40000
0.15000 1.10000 1.20000 1.30000 1.40000
"""


def test_rdf_out_header_blocks_and_species_names(tmp_path):
    path = tmp_path / "rdf.out"
    path.write_text(RDF_TEXT)
    blocks = read_rdf_out(path, species=["Li", "O"])
    assert len(blocks) == 2
    np.testing.assert_allclose(blocks[0].r_A, [0.05, 0.15])
    np.testing.assert_allclose(blocks[0].total, [0, 1.5])
    assert list(blocks[1].partial) == ["Li-Li", "Li-O", "O-O"]
    np.testing.assert_allclose(blocks[1].partial["Li-O"], [0.3, 1.3])
    assert list(read_rdf_out(path)[0].partial) == ["type_0_0", "type_0_1", "type_1_1"]
    with pytest.raises(NepFormatError, match="type index beyond"):
        read_rdf_out(path, species=["Li"])
    path.write_text("0.05 0.0\n0.15 1.2\n")  # an old file: radius and total only
    old = read_rdf_out(path)[0]
    assert old.partial == {} and old.total[1] == pytest.approx(1.2)


FAKE_GPUMD = """#!/bin/sh
# stands in for GPUMD: checks its inputs are here, writes the three outputs
test -f run.in && test -f model.xyz && test -f nep.txt || exit 3
cat > thermo.out <<'EOF'
{thermo}EOF
cat > msd.out <<'EOF'
{msd}EOF
cat > rdf.out <<'EOF'
{rdf}EOF
"""


def test_md_gpumd_runs_gpumd_from_path_and_reads_back(tmp_path, monkeypatch, capsys):
    from nepzbl_plugin.cli import main
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Li", "O"), zbl="universal", seed=2, scale=0.3)
    model.write(tmp_path / "nep.txt")
    atoms = bulk("Li", "bcc", a=3.5, cubic=True).repeat(2)
    atoms.symbols[::4] = "O"
    atoms.write(tmp_path / "start.xyz")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "gpumd"
    fake.write_text(FAKE_GPUMD.format(thermo=_thermo_text(False),
                                      msd=_msd_block((0.1, 0.2, 0.3)), rdf=RDF_TEXT))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    out = tmp_path / "run"
    status = main(["md", str(tmp_path / "nep.txt"), str(tmp_path / "start.xyz"),
                   "--ensemble", "nvt", "--temperature", "1000", "--steps", "300",
                   "--every", "100", "--dt", "1", "--out", str(out), "--gpumd"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "2.000e-05 cm²/s" in printed and "K" in printed and "GPa" in printed
    table = np.loadtxt(out / "thermo.txt")
    assert table.shape == (3, len(THERMO_COLUMNS))
    np.testing.assert_allclose(table[:, 0], [100, 200, 300])
    results = json.loads((out / "gpumd_results.json").read_text())
    assert results["msd"]["D_cm2_per_s"] == pytest.approx(2e-5, rel=1e-6)
    assert results["rdf_first_peak_A"] == {"Li-Li": 0.15, "Li-O": 0.15, "O-O": 0.15}
    again = read_gpumd_results(out, every=100, timestep=1.0, species=["Li", "O"])
    assert len(again.msd) == 1 and len(again.rdf) == 2


def test_md_gpumd_failure_is_reported(tmp_path, monkeypatch, capsys):
    from nepzbl_plugin.cli import main
    from nepzbl_plugin.testing import random_model

    random_model(types=("Li", "O"), seed=2).write(tmp_path / "nep.txt")
    atoms = bulk("Li", "bcc", a=3.5, cubic=True)
    atoms.write(tmp_path / "start.xyz")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gpumd").write_text("#!/bin/sh\nexit 5\n")
    (bin_dir / "gpumd").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    status = main(["md", str(tmp_path / "nep.txt"), str(tmp_path / "start.xyz"),
                   "--temperature", "300", "--steps", "10", "--out", str(tmp_path / "o"),
                   "--gpumd"])
    assert status == 1
    assert "status 5" in capsys.readouterr().out
    assert not (tmp_path / "o" / "gpumd_results.json").exists()
