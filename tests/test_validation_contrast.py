"""validation/al_contrast_long.py on the paper's two NEP802 models for a fraction of a
picosecond: the chain (two side-by-side runs with the loop's MD and failure rule, one record
each) and the record's fields, not the physics; skipped without ../shared/data/llzo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEPZBL_SHARED", ROOT.parent / "shared")) / "data" / "llzo"


@pytest.mark.skipif(not (SHARED / "NEP802.txt").is_file(), reason="LLZO data not present")
def test_contrast_runs_write_one_record_per_model(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "validation" / "al_contrast_long.py"), "--ps", "0.2",
         "--sample-interval", "50", "--tag", "smoke", "--out", str(tmp_path),
         "--model-zbl", str(SHARED / "NEP802-ZBL.txt"),
         "--model-nozbl", str(SHARED / "NEP802.txt")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "frames failed" in result.stdout and "E* (eV)" in result.stdout
    for variant in ("zbl", "nozbl"):
        record = json.loads((tmp_path / f"al_contrast_long_smoke_{variant}.json").read_text())
        assert record["status"] == "done" and record["atoms"] == 192
        assert record["samples_planned"] == record["samples_done"] == 4
        assert record["failure_ratio"] == 0.0  # 0.2 ps is far too short to collapse
        assert 1.2 < record["shortest_distance_A"] < 2.5
        assert record["limits_A"]["Li-O"] == pytest.approx(0.9224, abs=1e-3)
        assert record["collision_energy_eV"] == pytest.approx(0.63, abs=0.02)
        assert record["ps_done"] == pytest.approx(0.2) and record["steps_done"] == 200
        assert record["device"] == "cpu" and record["atom_steps_per_s"] > 0


def _contrast(*args, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "validation" / "al_contrast_long.py"),
                           *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not (SHARED / "NEP802.txt").is_file(), reason="LLZO data not present")
def test_contrast_run_stops_at_its_wall_budget_and_reports_how_far_it_got(tmp_path):
    """A budget shorter than one sample: the run stops cleanly at its first sample, and the
    record says how far it got, E* from the ps done (not the planned ps) on the supercell."""
    from nepzbl_plugin.audit.stress_test import knock_on_energy

    result = _contrast("--ps", "100", "--sample-interval", "10", "--wall-seconds", "1e-6",
                       "--repeat", "2", "1", "1", "--variants", "nozbl", "--tag", "budget",
                       "--model-nozbl", str(SHARED / "NEP802.txt"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (tmp_path / "al_contrast_long_budget_zbl.json").exists()
    record = json.loads((tmp_path / "al_contrast_long_budget_nozbl.json").read_text())
    assert record["status"].startswith("stopped: wall budget")
    assert record["atoms"] == 384 and record["repeat"] == [2, 1, 1]
    assert record["samples_done"] == 1 and record["steps_done"] == 10
    assert record["ps_done"] == pytest.approx(0.01)
    assert record["collision_energy_eV"] == pytest.approx(knock_on_energy(1200, 384 * 1e-5),
                                                          abs=1e-3)
    assert record["collision_energy_planned_eV"] > record["collision_energy_eV"]
    assert record["failed_frames"] == 0 and record["failure_ratio"] == 0.0
    table = _contrast("--table-only", "--out", str(tmp_path))
    assert table.returncode == 0, table.stderr[-2000:]
    lines = table.stdout.strip().splitlines()
    assert len(lines) == 2 and "budget: without ZBL" in lines[1] and "budget" in lines[1][-10:]


def test_contrast_refuses_a_supercell_that_is_not_the_frame_repeated(tmp_path):
    if not (SHARED / "NEP25-ZBL" / "train.xyz").is_file():
        pytest.skip("LLZO data not present")
    result = _contrast("--atoms", "1000", "--out", str(tmp_path), timeout=60)
    assert result.returncode != 0 and "192 k^3" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not (SHARED / "NEP802.txt").is_file(), reason="LLZO data not present")
def test_knock_on_contrast_separates_the_papers_models_and_reuses_its_records(tmp_path):
    """validation/al_contrast_knockon.py on the paper's models only, one kick per pair after
    100 steps: at the paper's collision energy (2.0 eV at 1200 K) NEP802 falls through and
    NEP802-ZBL does not; a second call reuses the records instead of running again."""
    script = str(ROOT / "validation" / "al_contrast_knockon.py")
    args = [sys.executable, script, "--train-seeds", "--kick-seeds", "2", "--steps", "100",
            "--kicks-per-pair", "1", "--out", str(tmp_path)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    saved = json.loads((tmp_path / "al_contrast_knockon.json").read_text())
    assert saved["E_star_eV"] == pytest.approx(2.00, abs=0.005)
    records = {r["model"]: r for r in saved["records"]}
    assert set(records) == {"NEP802", "NEP802-ZBL"}
    assert records["NEP802"]["fell_through"] and records["NEP802"]["shortest_A"] < 0.5
    assert records["NEP802"]["frames_failed_fraction"] > 0.3
    assert not records["NEP802-ZBL"]["fell_through"]
    assert records["NEP802-ZBL"]["frames_failed_fraction"] == 0.0
    assert records["NEP802-ZBL"]["shortest_A"] > 1.0 and not records["NEP802"]["zbl"]
    assert records["NEP802-ZBL"]["collisions"] == 9  # one per species pair in contact
    again = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 stress tests to run" in again.stdout and "2 saved" in again.stdout
    row = next(line for line in again.stdout.splitlines() if line.startswith("NEP802 "))
    assert row.count("1 of 1") == 2  # the seed failing, and falling through
