"""validation/llzo/run.py --size smoke: every item of the LLZO report runs on a few steps and the
report has a row and a section for each, so that the scripts do not rot. It checks the plumbing,
not the numbers (those are in validation/llzo/REPORT.md); skipped without ../shared/data/llzo."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LLZO = ROOT / "validation" / "llzo"
SHARED = Path(os.environ.get("NEPZBL_SHARED", ROOT.parent / "shared")) / "data" / "llzo"


@pytest.fixture()
def runner(monkeypatch):
    """run.py imported with its folder first on sys.path (its items import ``common``)."""
    monkeypatch.syspath_prepend(str(LLZO))
    for name in [n for n in sys.modules if n == "common" or n.startswith("item") or n in
                 ("run", "md_grid")]:
        monkeypatch.delitem(sys.modules, name)
    return importlib.import_module("run")


@pytest.mark.skipif(not (SHARED / "NEPstd.txt").is_file(), reason="LLZO data not present")
def test_smoke_runs_every_item_and_writes_the_report(runner, tmp_path, capsys):
    status = runner.main(["--size", "smoke", "--out", str(tmp_path), "--threads", "1"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    report = (tmp_path / "REPORT.md").read_text()
    for number in runner.ITEMS:
        record = json.loads((tmp_path / "results" / f"item{number}.json").read_text())
        assert record["item"] == number and record["size"] == "smoke"
        assert record["wall_s"] > 0
        assert f"\n## {number}. " in report
    # no item is missing from the summary table or left without a section
    assert "| not run at this size |" not in report and "not written yet" not in report
    assert "Not run at this size." not in report
    verdicts = report.split("## Verdict at this size")[1].split("## Summary")[0]
    assert all(f"\n{n}. " in verdicts for n in runner.ITEMS)
    # item 1 reproduces the paper's Li-Li curves even on the coarse smoke grid
    dimers = json.loads((tmp_path / "results" / "item1.json").read_text())["result"]["models"]
    assert dimers["NEPstd"]["li_li_max_abs_dE_eV"] < 1e-5
    assert dimers["NEPstd"]["pairs"]["Li-Li"]["barrier_eV"] == pytest.approx(2.556, abs=0.01)
    assert dimers["NEP802-ZBL"]["pairs"]["Li-Li"]["barrier_eV"] is None
    # the trained models are GPUMD files with neighbour counts
    trained = json.loads((tmp_path / "results" / "item2.json").read_text())["result"]
    for variant in trained["variants"].values():
        cutoff = variant["header_cutoff"].split()
        assert cutoff[0] == "cutoff" and int(cutoff[3]) > 0 and int(cutoff[4]) > 0
    for png in (tmp_path / "figures").glob("*.png"):
        assert png.stat().st_size > 1000
    # a second run skips what is saved and rewrites the same report
    assert runner.main(["--size", "smoke", "--out", str(tmp_path), "--threads", "1"]) == 0
    assert "skipped" in capsys.readouterr().out


@pytest.mark.skipif(not (SHARED / "NEPstd.txt").is_file(), reason="LLZO data not present")
def test_report_only_marks_items_not_run(runner, tmp_path, capsys):
    assert runner.main(["--size", "smoke", "--out", str(tmp_path), "--report-only"]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert report.count("Not run at this size.") == len(runner.ITEMS)


@pytest.mark.skipif(not (SHARED / "NEPstd.txt").is_file(), reason="LLZO data not present")
def test_paper_size_refuses_to_start_without_a_gpu(runner, tmp_path, capsys):
    import common

    if common.gpu_name() is not None:
        pytest.skip("a GPU is present")
    assert runner.main(["--size", "paper", "--out", str(tmp_path)]) == 2
    assert "needs a GPU" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
