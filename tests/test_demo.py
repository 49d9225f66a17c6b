"""The demo's own parts: EMT data generation, the audit comparison and plot, and the whole
pipeline with a stand-in trainer (the real trainer is tested in its own files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nepzbl_plugin.demo import (
    CLOSE_CONTACT,
    compare_reports,
    demo_nep_in,
    generate_alloy_data,
    run_demo,
)
from nepzbl_plugin.zbl import suggest_zbl

SHORT = np.round(np.arange(10, 601, 5) * 0.01, 2)  # a coarser dimer grid keeps tests fast


@pytest.fixture(scope="module")
def small_data():
    return generate_alloy_data(4, temperatures=(900.0, 1500.0), steps_between=5, seed=3)


def test_generated_data_are_emt_labelled(small_data):
    from ase import Atoms
    from ase.calculators.emt import EMT

    assert len(small_data) == 4
    for s in small_data:
        assert set(s.symbols) <= {"Cu", "Ni"} and s.num_atoms == 32
        atoms = Atoms(s.symbols, positions=s.positions, cell=s.cell, pbc=True)
        atoms.calc = EMT()
        assert s.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(s.forces, atoms.get_forces(), atol=1e-10)
        virial = -atoms.get_stress(voigt=False) * atoms.get_volume()
        np.testing.assert_allclose(s.virial, virial, atol=1e-8)
        distances = atoms.get_all_distances(mic=True) + 1e3 * np.eye(len(atoms))
        assert distances.min() >= CLOSE_CONTACT
        assert s.temperature in (900.0, 1500.0) and "temperature" not in s.info
    assert {s.config_type for s in small_data} == {"emt_md_900K", "emt_md_1500K"}


def test_data_write_and_read_back(small_data, tmp_path):
    from nepzbl_plugin.io.xyz import read_train_xyz, write_train_xyz

    path = tmp_path / "train.xyz"
    write_train_xyz(path, small_data)
    back = read_train_xyz(path)
    assert len(back) == 4
    np.testing.assert_allclose(back[0].forces, small_data[0].forces, rtol=1e-12)


def test_demo_nep_in_with_and_without_zbl(small_data):
    plain = demo_nep_in()
    assert plain.types == ["Cu", "Ni"] and plain.zbl_settings() is None
    suggestion = suggest_zbl(small_data, ["Cu", "Ni"])
    with_zbl = demo_nep_in(suggestion)
    zbl = with_zbl.zbl_settings()
    assert zbl is not None and zbl.mode == suggestion.form
    flexible = demo_nep_in(suggest_zbl(small_data, ["Cu", "Ni"], form="flexible"))
    assert flexible.zbl_settings().mode == "flexible"


def _models(small_data):
    from nepzbl_plugin.testing import random_model

    suggestion = suggest_zbl(small_data, ["Cu", "Ni"])
    pure = random_model(types=("Cu", "Ni"), seed=1, neurons=8, basis=(6, 6))
    walled = pure.copy()
    walled.zbl = suggestion.zbl_settings()
    return pure, walled


def test_compare_reports_and_plot(small_data, tmp_path):
    from nepzbl_plugin.audit.report import plot_comparison
    from nepzbl_plugin.audit.verdict import audit

    pure, walled = _models(small_data)
    reports = [audit(m, name=n, hot_md=False, distances=SHORT)
               for m, n in ((pure, "NEP"), (walled, "NEP-ZBL"))]
    assert not reports[0].safe and reports[1].safe
    comparison = compare_reports(reports, ["NEP", "NEP-ZBL"], extra={"note": "x"})
    assert "COLLAPSE" in comparison.text and "verdict: NEP UNSAFE, NEP-ZBL SAFE" in comparison.text
    assert [row["pair"] for row in comparison.rows] == ["Cu-Cu", "Cu-Ni", "Ni-Ni"]
    assert all(row["NEP-ZBL"]["collapse_path"] is False for row in comparison.rows)
    png = tmp_path / "cmp.png"
    plot_comparison(reports, png, ["NEP", "NEP-ZBL"])
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_run_demo_with_stand_in_trainer(small_data, tmp_path, monkeypatch):
    import nepzbl_plugin.demo as demo
    import nepzbl_plugin.train as train_module

    pure, walled = _models(small_data)
    calls = []

    def fake_train(train_structures, nep_in, test_structures=None, **kwargs):
        calls.append((len(train_structures), nep_in.zbl_settings(), kwargs.get("epochs"),
                      kwargs.get("max_time")))
        model = pure.copy()
        model.zbl = nep_in.zbl_settings()
        return model, None

    monkeypatch.setattr(train_module, "train", fake_train)
    monkeypatch.setattr(demo, "generate_alloy_data", lambda n, **k: small_data * 2)
    lines = []
    summary = run_demo(str(tmp_path / "out"), num_structures=8, train_epochs=3, md_steps=20,
                       progress=False, log=lambda *a: lines.append(" ".join(map(str, a))))
    assert [c[1] is None for c in calls] == [True, False]
    # a step budget, never a wall-clock one: the same seed gives the same models everywhere
    assert [c[2:] for c in calls] == [(3, None), (3, None)]
    assert summary["safe"] == {"NEP": False, "NEP-ZBL": True}
    out = tmp_path / "out"
    for name in ("train.xyz", "test.xyz", "nep.txt", "nep_zbl.txt", "demo_dimers.png",
                 "summary.json", "audit_nep.json", "audit_nep_zbl.json", "nep.in.zbl"):
        assert (out / name).exists(), name
    assert json.loads((out / "summary.json").read_text())["safe"]["NEP-ZBL"] is True
    text = "\n".join(lines)
    assert "verdict: NEP UNSAFE, NEP-ZBL SAFE" in text and "test RMSE" in text


def test_demo_help_is_plain_text_and_output_ignored(capsys):
    from nepzbl_plugin.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    assert ":func:" not in text and "``" not in text and "--epochs" in text
    gitignore = Path(__file__).resolve().parents[1] / ".gitignore"
    if gitignore.exists():
        assert "/nepzbl-demo/" in gitignore.read_text().split()
