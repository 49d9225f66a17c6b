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
    assert "failure ratio" in result.stdout
    for variant in ("zbl", "nozbl"):
        record = json.loads((tmp_path / f"al_contrast_long_smoke_{variant}.json").read_text())
        assert record["status"] == "done" and record["atoms"] == 192
        assert record["samples_planned"] == record["samples_done"] == 4
        assert record["failure_ratio"] == 0.0  # 0.2 ps is far too short to collapse
        assert 1.2 < record["shortest_distance_A"] < 2.5
        assert record["limits_A"]["Li-O"] == pytest.approx(0.9224, abs=1e-3)
        assert record["collision_energy_eV"] == pytest.approx(0.63, abs=0.02)
