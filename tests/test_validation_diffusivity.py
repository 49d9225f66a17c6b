"""validation/llzo_diffusivity.py --smoke: the exact chain of the diffusivity validation
(nepzbl md NPT -> mean cell -> nepzbl md NVT -> nepzbl analyze msd) on a few hundred steps.
It checks the plumbing, not the number; skipped without ../shared/data/llzo."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEPZBL_SHARED", ROOT.parent / "shared")) / "data" / "llzo"


@pytest.mark.skipif(not (SHARED / "NEPstd.txt").is_file(), reason="LLZO data not present")
def test_llzo_diffusivity_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "llzo_diffusivity", ROOT / "validation" / "llzo_diffusivity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke", "--threads", "1", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["smoke"] and summary["nvt_steps"] == 200
    assert summary["D_cm2_per_s"] > 0 and summary["D_error_cm2_per_s"] >= 0
    assert summary["target_range_cm2_per_s"] == pytest.approx([7.28e-6, 11.64e-6])
    assert "D_Li =" in capsys.readouterr().out
    assert (tmp_path / "msd_Li.png").is_file()
