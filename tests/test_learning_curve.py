"""Learning curves (issue 15 item 4): seeded subsets, held-out scores equal to GPUMD's prediction
mode on the saved models, the per-size spread, the CLI's table/JSON/PNG and its one-line errors.
Tiny data (10-atom cells of a random teacher) and a few Adam epochs: seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_trainer import NEP_IN, _structures

from nepzbl_plugin.cli import main
from nepzbl_plugin.io.nep_in import parse_nep_in
from nepzbl_plugin.io.xyz import write_train_xyz
from nepzbl_plugin.model import read_model
from nepzbl_plugin.train.learning_curve import (
    DiffusivityProbe,
    LearningCurveError,
    learning_curve,
    split_held_out,
)
from nepzbl_plugin.train.trainer import predict

QUICK = {"optimizer": "adam", "epochs": 3}


@pytest.fixture(scope="module")
def data():
    return parse_nep_in(NEP_IN), _structures(8)


@pytest.fixture(scope="module")
def curve(data, tmp_path_factory):
    nep_in, structures = data
    events = []
    out = tmp_path_factory.mktemp("lc")
    result = learning_curve(structures, nep_in, [4, 2], repeats=2, seed=5,
                            held_out_fraction=0.25, output_dir=out,
                            progress=lambda done, total, label: events.append(
                                (done, total, label)),
                            **QUICK)
    return result, events, out


def test_points_seeds_and_progress(curve):
    result, events, _ = curve
    assert result.sizes == [2, 4] and result.held_out_frames == 2 and result.pool_frames == 6
    assert [(p.size, p.repeat, p.seed) for p in result.points] == [
        (2, 0, 5), (4, 0, 5), (2, 1, 6), (4, 1, 6)]
    assert events == [(k, 4, "learning curve") for k in range(5)]
    for p in result.points:
        assert 0 < p.rmse_energy_eV_per_atom < 1 and 0 < p.rmse_force_eV_per_A < 10
        assert p.rmse_virial_eV_per_atom is not None and p.diffusivity_cm2_per_s is None


def test_scores_are_the_prediction_of_the_saved_model(curve, data):
    result, _, out = curve
    _, structures = data
    _, held = split_held_out(structures, 0.25, seed=5)
    for p in result.points:
        model = read_model(out / f"n{p.size}_r{p.repeat}" / "nep.txt")
        _, rmse = predict(model, held)
        # nep.txt stores GPUMD's printed precision, hence the relative tolerance
        assert p.rmse_energy_eV_per_atom == pytest.approx(rmse["energy"], rel=1e-4)
        assert p.rmse_force_eV_per_A == pytest.approx(rmse["force"], rel=1e-4)
        assert p.rmse_virial_eV_per_atom == pytest.approx(rmse["virial"], rel=1e-4)


def test_summary_is_mean_and_sample_std_over_repeats(curve):
    result, _, _ = curve
    for row in result.summary():
        values = [p.rmse_force_eV_per_A for p in result.points if p.size == row["size"]]
        assert row["repeats"] == 2
        assert row["rmse_force_eV_per_A_mean"] == pytest.approx(np.mean(values))
        assert row["rmse_force_eV_per_A_std"] == pytest.approx(np.std(values, ddof=1))
        assert row["diffusivity_cm2_per_s_mean"] is None
    assert json.loads(json.dumps(result.as_dict()))["summary"] == result.summary()


def test_same_seed_same_curve_and_given_held_out(data):
    nep_in, structures = data
    first = learning_curve(structures[:6], nep_in, [3], repeats=1, held_out=structures[6:],
                           **QUICK)
    again = learning_curve(structures[:6], nep_in, [3], repeats=1, held_out=structures[6:],
                           **QUICK)
    assert first.held_out_frames == 2 and first.pool_frames == 6
    assert first.points[0].rmse_force_eV_per_A == again.points[0].rmse_force_eV_per_A


def test_split_is_seeded_and_disjoint(data):
    _, structures = data
    pool, held = split_held_out(structures, 0.25, seed=1)
    assert len(pool) == 6 and len(held) == 2
    assert {id(s) for s in pool}.isdisjoint({id(s) for s in held})
    assert [id(s) for s in split_held_out(structures, 0.25, seed=1)[1]] == [id(s) for s in held]


@pytest.mark.parametrize("kwargs, message", [
    ({"sizes": [7]}, "larger than the 6 frames"),
    ({"sizes": [0]}, "must be positive"),
    ({"sizes": [2], "repeats": 0}, "at least 1"),
    ({"sizes": [2], "held_out_fraction": 1.5}, "between 0 and 1"),
])
def test_bad_requests_are_one_clear_error(data, kwargs, message):
    nep_in, structures = data
    sizes = kwargs.pop("sizes")
    with pytest.raises(LearningCurveError, match=message):
        learning_curve(structures, nep_in, sizes, **kwargs, **QUICK)


def test_diffusivity_probe_runs_md_and_msd(data):
    from ase import Atoms

    nep_in, structures = data
    s = structures[0]
    start = Atoms(s.symbols, positions=s.positions, cell=s.cell, pbc=True)
    probe = DiffusivityProbe(start, 300.0, steps=60, every=5, species="Li", blocks=2)
    result = learning_curve(structures, nep_in, [2], repeats=1, diffusivity=probe, **QUICK)
    point = result.points[0]
    assert np.isfinite(point.diffusivity_cm2_per_s) and point.diffusivity_cm2_per_s > 0
    assert np.isfinite(point.diffusivity_error_cm2_per_s)
    assert result.summary()[0]["diffusivity_cm2_per_s_mean"] == point.diffusivity_cm2_per_s


def test_cli_writes_table_json_png(data, tmp_path, capsys):
    nep_in_text, structures = NEP_IN, data[1]
    (tmp_path / "nep.in").write_text(nep_in_text)
    write_train_xyz(tmp_path / "train.xyz", structures[:6])
    write_train_xyz(tmp_path / "test.xyz", structures[6:])
    out = tmp_path / "out"
    args = ["learning-curve", str(tmp_path / "nep.in"), str(tmp_path / "train.xyz"),
            "--sizes", "2", "4", "--repeats", "2", "--held-out", str(tmp_path / "test.xyz"),
            "--optimizer", "adam", "--epochs", "3", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "meV/atom" in text and "meV/Å" in text and "4 models" in text
    table = np.loadtxt(out / "learning_curve.txt", ndmin=2)
    assert table.shape == (2, 10) and list(table[:, 0]) == [2, 4]
    saved = json.loads((out / "learning_curve.json").read_text())
    assert saved["held_out_frames"] == 2 and len(saved["points"]) == 4
    assert table[1, 4] == pytest.approx(saved["summary"][1]["rmse_force_eV_per_A_mean"] * 1e3,
                                        rel=1e-5)
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"][0]["size"] == 2


def test_cli_bad_input_is_one_line(data, tmp_path, capsys):
    (tmp_path / "nep.in").write_text(NEP_IN)
    write_train_xyz(tmp_path / "train.xyz", data[1][:4])
    code = main(["learning-curve", str(tmp_path / "nep.in"), str(tmp_path / "train.xyz"),
                 "--sizes", "9", "--epochs", "2", "--no-progress", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "larger than" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
