"""Active learning (``nepzbl al``): the EMT example end to end, resume after interruptions
(exceptions and kill -9) to the same data set, external labels, FPS and the MaxVol grade on
synthetic descriptors, and config errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nepzbl_plugin.al import (
    ConfigError,
    extrapolation_grade,
    farthest_point_sampling,
    format_table,
    load_config,
    maxvol_active_set,
    run_active_learning,
)
from nepzbl_plugin.al.example import write_example
from nepzbl_plugin.cli import main


# ------------------------------------------------------------------------------ helpers
def _example(directory: Path, **changes) -> Path:
    """The EMT example in ``directory``, with ``old -> new`` text replacements of al.toml."""
    config = write_example("emt", directory)
    text = config.read_text()
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    config.write_text(text)
    return config


# a cheaper variant for the resume tests: no audit
_LEAN = {"enabled = true ": "enabled = false"}


def _final_data(config_path: Path) -> str:
    config = load_config(config_path)
    return (config.state / f"iter_{len(config.iterations):03d}" / "data.xyz").read_text()


class _Stop(Exception):
    pass


def _stop_at(event: str, iteration: int, occurrence: int = 1):
    seen = {"n": 0}

    def callback(name, info):
        if name == event and info.get("iteration") == iteration:
            seen["n"] += 1
            if seen["n"] == occurrence:
                raise _Stop(f"{event} {iteration} {occurrence}")

    return callback


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the lean example: its config and final data set."""
    directory = tmp_path_factory.mktemp("al_reference")
    config = _example(directory, **_LEAN)
    result = run_active_learning(load_config(config))
    assert result.status == "finished"
    return config, _final_data(config)


# ------------------------------------------------------------------------------ end to end
def test_emt_example_end_to_end(tmp_path, capsys):
    config = tmp_path / "toy" / "al.toml"
    assert main(["al", "--example", "emt", str(tmp_path / "toy")]) == 0
    assert config.is_file() and (tmp_path / "toy" / "train.xyz").is_file()
    assert main(["al", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "failure (%)" in out and "updated" in out
    state = tmp_path / "toy" / "al-state"
    records = json.loads((state / "iterations.json").read_text())
    assert [r["iteration"] for r in records] == [1, 2]
    for r in records:
        for key in ("iteration", "new_frames", "failure_ratio", "updated", "wall_s"):
            assert key in r
        assert 0.0 <= r["failure_ratio"] <= 1.0
        assert 1 <= r["new_frames"] <= 4  # max_frames of the example
        assert r["updated"] is True  # min_new_frames 3 <= new frames
        assert r["audit"]["checks"]["dimer"] in ("pass", "fail")
        assert r["wall_s"] > 0
    assert records[1]["training_size"] == 8 + records[0]["new_frames"] + records[1]["new_frames"]
    assert (state / "iterations.png").stat().st_size > 1000
    assert (state / "iter_002" / "nep.txt").is_file()
    assert (state / "iter_002" / "audit.json").is_file()
    # the MD ran on the current model's engine evaluator (EMT only labels)
    run = json.loads((state / "iter_001" / "md_run_00.json").read_text())
    assert run["device"] == "cpu" and run["md"]["thermostat"] == "langevin"
    # the labels are EMT's
    from ase.calculators.emt import EMT

    from nepzbl_plugin.io.xyz import read_train_xyz

    labelled = read_train_xyz(state / "iter_001" / "labelled.xyz")
    atoms = labelled[0].to_atoms()
    atoms.calc = EMT()
    assert atoms.get_potential_energy() == pytest.approx(labelled[0].energy, abs=1e-9)
    np.testing.assert_allclose(atoms.get_forces(), labelled[0].forces, atol=1e-9)
    # running again resumes a finished run: nothing changes
    before = (state / "iter_002" / "data.xyz").read_text()
    assert main(["al", str(config), "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == records
    assert (state / "iter_002" / "data.xyz").read_text() == before


def test_resume_after_exceptions_gives_the_same_data(reference, tmp_path):
    _, expected = reference
    config_path = _example(tmp_path, **_LEAN)
    stops = [("md_run_done", 1, 1), ("selected", 1, 1), ("labelled", 1, 1),
             ("iteration_start", 2, 1), ("md_progress", 2, 7), ("training", 2, 1),
             ("iteration_done", 2, 1)]
    for event, iteration, occurrence in stops:
        with pytest.raises(_Stop):
            run_active_learning(load_config(config_path),
                                callback=_stop_at(event, iteration, occurrence))
    result = run_active_learning(load_config(config_path))
    assert result.status == "finished"
    assert _final_data(config_path) == expected
    records = json.loads((tmp_path / "al-state" / "iterations.json").read_text())
    assert [r["iteration"] for r in records] == [1, 2]


_KILLER = """
import os, signal, sys
from nepzbl_plugin.al import load_config, run_active_learning

def callback(event, info):
    if event == sys.argv[2] and info.get("iteration") == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)

run_active_learning(load_config(sys.argv[1]), callback=callback)
"""


@pytest.mark.parametrize("event, iteration", [("md_progress", 1), ("training", 2)])
def test_resume_after_kill_9_gives_the_same_data(reference, tmp_path, event, iteration):
    _, expected = reference
    config_path = _example(tmp_path, **_LEAN)
    import nepzbl_plugin

    # the package as imported: installed in CI (the tree has no built extensions there)
    env = dict(os.environ, PYTHONPATH=str(Path(nepzbl_plugin.__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", _KILLER, str(config_path), event,
                           str(iteration)], env=env, cwd=tmp_path, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    run_active_learning(load_config(config_path))
    assert _final_data(config_path) == expected


def test_external_oracle_export_and_import(tmp_path, capsys):
    from ase.calculators.emt import EMT

    from nepzbl_plugin.al.oracle import label_frames
    from nepzbl_plugin.io.xyz import read_train_xyz, write_train_xyz

    config = _example(tmp_path, **_LEAN, **{
        '"ase.calculators.emt:EMT"': '"external"',
        "[[iteration]]\nruns = 2\ntemperature = [900, 1500]\n": ""})
    exported = tmp_path / "to_label.xyz"
    assert main(["al", str(config), "--quiet", "--export", str(exported)]) == 0
    frames = read_train_xyz(exported, require_energy=False, require_forces=False)
    assert 1 <= len(frames) <= 4 and frames[0].energy is None
    # a second run without labels stops at the same place
    assert main(["al", str(config), "--quiet"]) == 0
    assert "waiting for labels" in capsys.readouterr().out
    labelled = label_frames([f.to_atoms() for f in frames], EMT())
    write_train_xyz(tmp_path / "labelled.xyz", labelled)
    # wrong frames are refused with one line
    write_train_xyz(tmp_path / "wrong.xyz", labelled[:-1] if len(labelled) > 1
                    else labelled + labelled)
    assert main(["al", str(config), "--quiet", "--import", str(tmp_path / "wrong.xyz")]) == 2
    assert "exported" in capsys.readouterr().err
    assert main(["al", str(config), "--quiet", "--import", str(tmp_path / "labelled.xyz")]) == 0
    records = json.loads((tmp_path / "al-state" / "iterations.json").read_text())
    assert len(records) == 1 and records[0]["new_frames"] == len(frames)


# ------------------------------------------------------------------------------ selection
def test_fps_on_a_line():
    points = np.arange(11, dtype=float)[:, None]  # 0, 1, ..., 10
    assert farthest_point_sampling(points, np.array([[0.0]]), max_count=3) == [10, 5, 2]
    # stops when everything is closer than min_distance to the chosen set
    chosen = farthest_point_sampling(points, np.array([[0.0]]), min_distance=2.5)
    assert chosen == [10, 5]  # next best: 2, 3, 7 or 8 at distance 2 < 2.5
    assert farthest_point_sampling(points, np.array([[0.0]]), min_distance=0.5) == \
        [10, 5, 2, 7, 1, 3, 4, 6, 8, 9]
    # candidates already in the reference are never chosen
    assert farthest_point_sampling(points[:3], points[:3], min_distance=1e-9) == []
    # no reference: the first is the farthest from the mean
    assert farthest_point_sampling(np.array([[0.0, 0], [1, 0], [5, 5]]), max_count=2) == [2, 0]


def test_fps_in_many_dimensions_keeps_the_min_distance():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(200, 8))
    reference = rng.normal(size=(20, 8))
    chosen = farthest_point_sampling(points, reference, min_distance=1.5)
    selected = np.concatenate([reference, points[chosen]])
    for k, index in enumerate(chosen):
        # each chosen point was at least min_distance from everything chosen before it
        before = selected[: len(reference) + k]
        assert np.min(np.linalg.norm(before - points[index], axis=1)) >= 1.5
    # and every point left out is within min_distance of the final set
    left = np.setdiff1d(np.arange(len(points)), chosen)
    for i in left:
        assert np.min(np.linalg.norm(selected - points[i], axis=1)) < 1.5 + 1e-12


def test_maxvol_picks_the_extreme_rows_and_grades():
    matrix = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.1, 0.0], [0.3, -0.2]])
    active = maxvol_active_set(matrix)
    assert sorted(active.rows.tolist()) == [0, 1]
    grades = active.grade(matrix)
    np.testing.assert_allclose(grades, [1.0, 1.0, 0.5, 0.1, 0.3], atol=1e-12)
    np.testing.assert_allclose(active.grade(np.array([[2.0, 0.0], [-3.0, 1.0]])), [2.0, 3.0],
                               atol=1e-12)


def test_maxvol_grade_inside_and_outside_the_training_cloud():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 6))  # training descriptors span a 3-d subspace of 6-d space
    train = rng.uniform(-1, 1, size=(300, 3)) @ basis
    active = maxvol_active_set(train)
    assert len(active.rows) == 3  # the rank, though the descriptors have 6 components
    assert np.max(active.grade(train)) <= 1.05  # MaxVol's tolerance
    inside = rng.uniform(-0.5, 0.5, size=(50, 3)) @ basis
    assert np.max(active.grade(inside)) < 1.05
    outside = 4.0 * rng.uniform(0.9, 1.0, size=(5, 3)) @ basis
    assert np.min(active.grade(outside)) > 2.0
    # per structure: the worst atom decides
    per_atom = [train[:10], np.concatenate([train[:10], outside[:1]])]
    grades = extrapolation_grade(active, per_atom)
    assert grades[0] <= 1.05 and grades[1] > 2.0


def test_maxvol_selection_in_the_loop(tmp_path):
    config = _example(tmp_path, **{**_LEAN, 'method = "fps"': 'method = "maxvol"',
                                   "[[iteration]]\nruns = 2\ntemperature = [900, 1500]\n": ""})
    result = run_active_learning(load_config(config))
    assert result.status == "finished"
    selection = json.loads((tmp_path / "al-state" / "iter_001" / "selection.json").read_text())
    assert selection["method"] == "maxvol"
    assert selection["selected"] <= selection["extrapolating"] <= selection["candidates"]
    assert selection["grade_max"] > 0


# ------------------------------------------------------------------------------ config
def _config_text(tmp_path, body: str) -> Path:
    write_example("emt", tmp_path)
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(body))
    return path


_GOOD = """\
state = "s"
[data]
train = "train.xyz"
nep_in = "nep.in"
[oracle]
calculator = "emt"
[training]
epochs = 5
[[iteration]]
temperature = 300
"""


@pytest.mark.parametrize("body, key, words", [
    ("state = [\n", None, "not valid TOML"),
    (_GOOD.replace('state = "s"\n', ""), "state", "missing"),
    (_GOOD.replace("[data]", "[data]\nmodel = \"absent.txt\""), "data.model", "not found"),
    (_GOOD.replace("epochs = 5", "epochs = -5"), "training.epochs", "at least 1"),
    (_GOOD.replace("epochs = 5", "epochs = \"five\""), "training.epochs", "must be a number"),
    (_GOOD.replace("epochs = 5", "max_epochs = 5"), "training.max_epochs", "unknown key"),
    (_GOOD.replace("epochs = 5", "fine_tune = false"), "training", "epochs or max_time"),
    (_GOOD.replace("temperature = 300", "temperature = [300, -1]"), "iteration[1].temperature",
     "positive"),
    (_GOOD.replace("temperature = 300", "runs = 2"), "iteration[1].temperature", "missing"),
    (_GOOD.replace("[[iteration]]\ntemperature = 300\n", ""), "iteration", "missing"),
    (_GOOD.replace('"emt"', '"no_such_module_here"'), "oracle.calculator", "neither"),
    (_GOOD + "[selection]\nmethod = \"random\"\n", "selection.method", "'fps' or 'maxvol'"),
    (_GOOD + "[filter]\nfraction = 1.5\n", "filter.fraction", "at most 1"),
    ('device = "tpu"\n' + _GOOD, "device", "'cpu', 'cuda' or 'auto'"),
    ("surprise = 1\n" + _GOOD, "surprise", "unknown key"),
    (_GOOD + "runs = 0\n", "iteration[1].runs", "at least 1"),
    (_GOOD + "thermostat = \"nose\"\n", "iteration[1].thermostat", "langevin, bussi"),
    (_GOOD.replace("[data]", "[md]\nthermostat = 3\n[data]"), "md.thermostat",
     "non-empty string"),
    (_GOOD + "steps = 5000\nknock_on_energy = 2.0\nknock_on_horizon = 100\n",
     "iteration[1].knock_on_energy", "not both"),
    (_GOOD + "steps = 5000\nknock_on_horizon = 1e-5\n", "iteration[1].knock_on_horizon",
     "above 1e-4 atom ns"),
    (_GOOD + "steps = 5000\nknock_on_energy = -1\n", "iteration[1].knock_on_energy",
     "at least 0"),
    (_GOOD + "steps = 5000\nknock_on_energy = 2\nknock_on_rounds = 0\n",
     "iteration[1].knock_on_rounds", "at least 1"),
    (_GOOD + "steps = 700\nknock_on_energy = 2\n", "iteration[1].steps",
     "give at least 800 steps"),
    (_GOOD.replace("[data]", "[md]\nknock_on_interval = 1\n[data]"), "md.knock_on_interval",
     "at least 2"),
])
def test_config_errors_name_the_file_and_key(tmp_path, body, key, words):
    path = _config_text(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path))
    if key is not None:
        assert f": {key}: " in message
    assert words in message


def test_a_state_that_is_a_file_is_a_config_error(tmp_path):
    path = _config_text(tmp_path, _GOOD)
    (tmp_path / "s").write_text("not a folder\n")
    with pytest.raises(ConfigError, match=r": state: .*s exists and is not a folder"):
        load_config(path)


def test_good_config_and_cli_error_is_one_line(tmp_path, capsys):
    config = load_config(_config_text(tmp_path, _GOOD))
    assert config.oracle == "emt" and config.epochs == 5
    assert config.iterations[0].runs[0].t_start == config.iterations[0].runs[0].t_end == 300.0
    bad = _config_text(tmp_path, _GOOD.replace("epochs = 5", "epochs = 0"))
    assert main(["al", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "training.epochs" in err and "Traceback" not in err
    assert main(["al"]) == 2
    assert main(["al", str(tmp_path / "absent.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bad_oracle_is_one_clear_error(tmp_path):
    from nepzbl_plugin.al import OracleError, load_oracle

    with pytest.raises(OracleError, match="cannot import"):
        load_oracle("no_such_module_xyz:Calc")
    with pytest.raises(OracleError, match="has no"):
        load_oracle("ase.calculators.emt:NoSuchThing")
    with pytest.raises(OracleError, match="--export"):
        load_oracle("external")


# ------------------------------------------------------------------------------ MD filter
def _cu_cell():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.set_chemical_symbols(["Cu", "Ni"] * 16)
    return atoms


def test_md_frames_too_short_are_counted():
    from ase.calculators.emt import EMT

    from nepzbl_plugin.al import run_md
    from nepzbl_plugin.al.config import MDRunSpec

    spec = MDRunSpec(300.0, 600.0, steps=20, timestep=1.0, friction=0.02, sample_interval=5)
    loose = run_md(_cu_cell(), EMT(), spec, {("Cu", "Cu"): 1.0, ("Cu", "Ni"): 1.0,
                                             ("Ni", "Ni"): 1.0}, seed=3)
    assert loose.planned == 4 and len(loose.frames) == 4 and loose.failure_ratio == 0.0
    assert all(2.0 < d < 2.6 for d in loose.min_distances)  # fcc neighbours at 2.55 Å
    # a limit above the nearest-neighbour distance of one pair: every frame fails
    strict = run_md(_cu_cell(), EMT(), spec, {("Cu", "Ni"): 3.0}, seed=3)
    assert strict.failed == [True] * 4 and strict.failure_ratio == 1.0
    assert strict.good_frames == []
    # the same seed gives the same trajectory
    np.testing.assert_array_equal(loose.frames[-1].positions, strict.frames[-1].positions)


def test_md_run_that_blows_up_counts_the_missing_frames():
    from ase.calculators.emt import EMT

    from nepzbl_plugin.al import run_md
    from nepzbl_plugin.al.config import MDRunSpec

    class Exploding(EMT):
        calls = 0

        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            Exploding.calls += 1
            if Exploding.calls > 12:
                self.results["energy"] = float("nan")
                self.results["forces"] = self.results["forces"] * np.nan

    spec = MDRunSpec(300.0, 300.0, steps=40, timestep=1.0, friction=0.02, sample_interval=5)
    result = run_md(_cu_cell(), Exploding(), spec, {}, seed=0)
    assert result.aborted and len(result.frames) < result.planned == 8
    assert result.num_failed == result.planned - len(result.frames)
    assert result.failure_ratio == pytest.approx(result.num_failed / 8)


def test_md_run_stopped_by_its_callback_is_a_shorter_run():
    """A callback that returns a reason (a wall-time budget) ends the run at that sample: the
    failure ratio is over the samples taken, nothing counts as a blow-up."""
    from ase.calculators.emt import EMT

    from nepzbl_plugin.al import run_md
    from nepzbl_plugin.al.config import MDRunSpec

    spec = MDRunSpec(300.0, 300.0, steps=40, timestep=1.0, friction=0.02, sample_interval=5)
    seen = []

    def budget(done, planned):
        seen.append((done, planned))
        return "wall budget" if done == 3 else None

    result = run_md(_cu_cell(), EMT(), spec, {("Cu", "Ni"): 3.0}, seed=0, callback=budget)
    assert seen == [(1, 8), (2, 8), (3, 8)]
    assert result.stopped == "wall budget" and result.aborted is None
    assert len(result.frames) == result.planned == 3 and result.steps_done == 15
    assert result.num_failed == 3 and result.failure_ratio == 1.0
    full = run_md(_cu_cell(), EMT(), spec, {}, seed=0, callback=lambda done, planned: None)
    assert full.stopped is None and full.planned == 8 and full.steps_done == 40


@pytest.mark.parametrize("thermostat", ["langevin", "bussi"])
def test_md_on_the_engine_evaluator_is_the_calculators_trajectory(thermostat):
    """The loop drives MD with the model's engine evaluator (EngineForces, arrays in and out);
    the same run through the ASE calculator of the same model (CalculatorForces) is the same
    trajectory, and the target temperature follows the linear ramp."""
    from nepzbl_plugin.al import run_md
    from nepzbl_plugin.al.config import MDRunSpec
    from nepzbl_plugin.calculators import NEP
    from nepzbl_plugin.engine import Evaluator
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Cu", "Ni"), cutoffs=(4.0, 3.5), seed=2, scale=0.3)
    spec = MDRunSpec(300.0, 900.0, steps=30, timestep=1.0, friction=0.05, sample_interval=10,
                     thermostat=thermostat)
    limits = {("Cu", "Cu"): 1.0, ("Cu", "Ni"): 1.0, ("Ni", "Ni"): 1.0}
    engine = run_md(_cu_cell(), Evaluator(model), spec, limits, seed=5)
    calculator = run_md(_cu_cell(), NEP(model), spec, limits, seed=5)
    assert engine.aborted is None and len(engine.frames) == engine.planned == 3
    for a, b in zip(engine.frames, calculator.frames, strict=True):
        np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=1e-9)
    np.testing.assert_allclose(engine.temperatures, calculator.temperatures, rtol=1e-9)
    assert engine.failure_ratio == 0.0
    assert all(1.5 < d < 2.7 for d in engine.min_distances)


def test_knock_on_config_md_defaults_and_per_iteration_override(tmp_path):
    """[md]'s knock-on keys are every iteration's default; an iteration's energy or horizon
    replaces both, and 0 turns the collisions off there. The energy of a horizon is E* at the
    top of the ramp."""
    from nepzbl_plugin.audit.stress_test import knock_on_energy

    body = _GOOD.replace("[data]", "[md]\nsteps = 2000\nknock_on_horizon = 24576\n"
                                   "knock_on_interval = 100\n[data]")
    body = body.replace("temperature = 300", "temperature = [800, 1200]")
    body += ("[[iteration]]\ntemperature = 500\nknock_on_energy = 0\n"
             "[[iteration]]\ntemperature = 500\nknock_on_energy = 1.5\nknock_on_rounds = 1\n")
    first, off, energy = (it.runs[0] for it in load_config(_config_text(tmp_path, body))
                          .iterations)
    assert first.knocks_on and first.knock_on_interval == 100 and first.knock_on_rounds == 3
    assert first.collision_energy() == pytest.approx(knock_on_energy(1200.0, 24576.0))
    assert first.collision_energy() == pytest.approx(2.00, abs=0.005)
    assert first.knock_on_steps(3) == [1100 + 100 * n for n in range(9)]
    assert first.as_dict()["knock_on_energy_eV"] == pytest.approx(first.collision_energy())
    assert not off.knocks_on and off.collision_energy() is None and off.knock_on_steps(3) == []
    assert "knock_on_energy_eV" not in off.as_dict()
    assert energy.collision_energy() == 1.5 and energy.knock_on_horizon is None
    assert energy.knock_on_steps(2) == [1800, 1900]


def test_md_run_with_knock_ons_collides_the_pairs_in_turn_at_its_end():
    """Knock-on collisions at the end of a run: each pair in turn at the planned steps, the
    samples just after a collision left out of the frames, the same trajectory as without
    them up to the first, and their energy in the run after it."""
    from ase.calculators.emt import EMT

    from nepzbl_plugin.al import run_md
    from nepzbl_plugin.al.config import MDRunSpec

    pairs = [("Cu", "Cu"), ("Cu", "Ni"), ("Ni", "Ni")]
    spec = MDRunSpec(300.0, 600.0, steps=400, timestep=1.0, friction=0.02, sample_interval=10,
                     knock_on_energy=8.0, knock_on_rounds=2, knock_on_interval=50)
    limits = {pair: 1.9 for pair in pairs}
    result = run_md(_cu_cell(), EMT(), spec, limits, seed=4, knock_pairs=pairs)
    assert [k["step"] for k in result.knock_ons] == list(range(100, 400, 50))
    assert [k["pair"] for k in result.knock_ons] == ["Cu-Cu", "Cu-Ni", "Ni-Ni"] * 2
    assert all(2.0 < k["distance"] < 2.9 for k in result.knock_ons)  # nearest neighbours
    assert result.knock_on_energy == 8.0 and result.steps_done == 400
    # 10 samples before the first collision, then 3 per 50-step segment (30, 40, 50 steps
    # after the collision: the first 25 are transient)
    assert result.planned == len(result.frames) == 10 + 6 * 3
    assert result.aborted is None
    plain = run_md(_cu_cell(), EMT(), spec, limits, seed=4, knock_pairs=())
    assert plain.knock_ons == [] and plain.knock_on_energy is None
    assert plain.planned == 40 and plain.failure_ratio == 0.0
    # before the first collision the two runs are the same trajectory
    np.testing.assert_array_equal(result.frames[9].positions, plain.frames[9].positions)
    assert result.temperatures[:10] == plain.temperatures[:10]
    # 30 fs after it, the 8 eV are heat: about 1900 K on 32 atoms, the thermostat taking some
    assert result.temperatures[10] > plain.temperatures[12] + 500  # both at step 130


def test_loop_with_knock_ons_records_them_and_refuses_a_run_too_short(tmp_path):
    """The EMT example with collisions in its last iteration: the pairs the data bring into
    contact are collided, md_run_R.json lists the collisions and the record the energy; a run
    too short for one round over those pairs is a ConfigError naming the key."""
    from nepzbl_plugin.al import contact_pairs
    from nepzbl_plugin.io.xyz import read_train_xyz

    config = _example(tmp_path / "ok", **_LEAN)
    text = config.read_text() + ("\n[[iteration]]\nruns = 1\ntemperature = [600, 900]\n"
                                 "steps = 200\nknock_on_energy = 3.0\nknock_on_rounds = 1\n"
                                 "knock_on_interval = 40\n")
    config.write_text(text)
    loaded = load_config(config)
    data = [s.to_atoms() for s in read_train_xyz(loaded.train)]
    pairs = contact_pairs(["Cu", "Ni"], data)
    assert pairs == [("Cu", "Cu"), ("Cu", "Ni"), ("Ni", "Ni")]
    result = run_active_learning(loaded)
    assert result.status == "finished"
    k = len(loaded.iterations)
    run = json.loads((loaded.state / f"iter_{k:03d}" / "md_run_00.json").read_text())
    assert run["knock_on_energy_eV"] == 3.0
    assert [c["pair"] for c in run["knock_ons"]] == ["Cu-Cu", "Cu-Ni", "Ni-Ni"]
    assert [c["step"] for c in run["knock_ons"]] == [80, 120, 160]
    assert run["md"]["knock_on_energy_eV"] == 3.0
    records = json.loads((loaded.state / "iterations.json").read_text())
    assert records[-1]["knock_on_energy_eV"] == 3.0
    assert all(r["knock_on_energy_eV"] is None for r in records[:-1])
    table = format_table(records).splitlines()
    assert "kicks (eV)" in table[0] and "3.00" in table[-1] and "3.00" not in table[2]

    short = _example(tmp_path / "short", **_LEAN)
    short.write_text(short.read_text() + ("\n[[iteration]]\nruns = 1\ntemperature = 900\n"
                                          "steps = 100\nknock_on_energy = 3.0\n"
                                          "knock_on_rounds = 1\nknock_on_interval = 40\n"))
    with pytest.raises(ConfigError, match=r"iteration\[\d\]\.steps: 100 steps leave no room "
                                          r"for 3 knock-on collisions .* at least 160 steps"):
        run_active_learning(load_config(short))
    assert not (tmp_path / "short" / "al-state").exists()  # refused before any work


def test_collapse_limits_are_the_audits():
    from nepzbl_plugin.al import collapse_limits
    from nepzbl_plugin.audit.distances import min_pair_distances

    atoms = _cu_cell()
    limits = collapse_limits(["Cu", "Ni"], [atoms], 0.6)
    distances = min_pair_distances([atoms], ["Cu", "Ni"])
    assert limits[("Cu", "Ni")] == pytest.approx(0.6 * distances["Cu-Ni"])
    assert limits[("Cu", "Cu")] == pytest.approx(0.6 * distances["Cu-Cu"])


def test_python_3_10_without_tomli_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    from nepzbl_plugin.al import config as config_module
    from nepzbl_plugin.errors import NepzblError

    path = write_example("emt", tmp_path)
    real_import = builtins.__import__

    def no_tomli(name, *args, **kwargs):
        if name == "tomli":
            raise ImportError("no tomli")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(config_module.sys, "version_info", (3, 10, 0))
    monkeypatch.setattr(builtins, "__import__", no_tomli)
    with pytest.raises(NepzblError, match="tomli"):
        load_config(path)


# ------------------------------------------------------------------------------ on the GPU path
_CUDA_LOOP = r'''
import json
from pathlib import Path
from nepzbl_plugin import _cuda
from nepzbl_plugin.cli import main

assert _cuda.device_count() >= 1, "no CUDA device (emulated or real)"
root = Path("toy")
assert main(["al", "--example", "emt", str(root)]) == 0
config = root / "al.toml"
config.write_text(config.read_text().replace("seed = 0\n", 'seed = 0\ndevice = "cuda"\n', 1))
(root / "nep.in").write_text((root / "nep.in").read_text() + "device cuda\n")
assert main(["al", str(config), "--quiet"]) == 0
state = root / "al-state"
out = {"records": json.loads((state / "iterations.json").read_text())}
for k in (0, 1, 2):
    out[f"train_{k}"] = json.loads((state / f"iter_{k:03d}" / "train.json").read_text())
for k in (1, 2):
    out[f"md_{k}"] = json.loads((state / f"iter_{k:03d}" / "md_run_00.json").read_text())
print("RESULT" + json.dumps(out))
'''


@pytest.mark.slow
def test_emt_example_on_the_cuda_path_in_host_emulation(tmp_path_factory, tmp_path):
    """The loop with ``device = "cuda"`` and nep.in's ``device cuda``: every MD run goes
    through the CUDA evaluator and the device MD loop, every training through the GPU
    backend (the CUDA sources compiled for the host, kernels as plain loops). Both
    iterations finish, with the per-iteration table and the CPU run's data-set bookkeeping."""
    from cuda_emulation import run_emulated

    result = run_emulated(tmp_path_factory, _CUDA_LOOP, tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT", 1)[1])
    records = out["records"]
    assert [r["iteration"] for r in records] == [1, 2]
    for r in records:
        assert 0.0 <= r["failure_ratio"] <= 1.0 and 1 <= r["new_frames"] <= 4
        assert r["updated"] is True
    assert records[1]["training_size"] == 8 + records[0]["new_frames"] + records[1]["new_frames"]
    assert all(out[f"train_{k}"]["device"] == "cuda" for k in (0, 1, 2))
    assert all(out[f"md_{k}"]["device"] == "cuda" for k in (1, 2))
    assert all(out[f"md_{k}"]["frames"] == 10 for k in (1, 2))


_KNOCK_ON_DEVICE = r'''
import json
import numpy as np
from ase.build import bulk
from nepzbl_plugin import _cuda
from nepzbl_plugin.al import run_md
from nepzbl_plugin.al.config import MDRunSpec
from nepzbl_plugin.engine import Evaluator
from nepzbl_plugin.testing import random_model

assert _cuda.device_count() >= 1, "no CUDA device (emulated or real)"
model = random_model(types=("Li", "La", "O"), seed=1, version=4, zbl="universal", scale=0.3)
atoms = bulk("Cu", "fcc", a=4.0, cubic=True).repeat((2, 2, 1))
atoms.rattle(0.05, seed=2)
atoms.set_chemical_symbols([model.types[k % 3] for k in range(len(atoms))])
spec = MDRunSpec(300.0, 600.0, steps=300, friction=0.002, sample_interval=10,
                 knock_on_energy=3.0, knock_on_rounds=1, knock_on_interval=50)
pairs = [("Li", "La"), ("Li", "O")]
evaluator = Evaluator(model, device="cuda", precision="float64")
runs = [run_md(atoms, evaluator, spec, {}, seed=3, knock_pairs=pairs) for _ in range(2)]
plain = run_md(atoms, evaluator, spec, {}, seed=3, knock_pairs=())
print("RESULT" + json.dumps({
    "device": evaluator.device, "steps": [k["step"] for k in runs[0].knock_ons],
    "pairs": [k["pair"] for k in runs[0].knock_ons], "planned": runs[0].planned,
    "frames": len(runs[0].frames), "steps_done": runs[0].steps_done,
    "aborted": runs[0].aborted,
    "same": all(np.array_equal(a.positions, b.positions)
                for a, b in zip(runs[0].frames, runs[1].frames)),
    "same_before": bool(np.array_equal(runs[0].frames[19].positions,
                                       plain.frames[19].positions)),
    # the samples after the collisions (steps 230-250, 280-300) against the plain run's
    "hotter": float(np.mean(runs[0].temperatures[20:]) - np.mean(
        [plain.temperatures[k] for k in (22, 23, 24, 27, 28, 29)]))}))
'''


@pytest.mark.slow
@pytest.mark.parametrize("where", ["emulated", pytest.param("device", marks=pytest.mark.gpu)])
def test_knock_on_run_on_the_device_loop(where, tmp_path_factory, tmp_path):
    """The loop's knock-on runs on a CUDA evaluator go through the device MD loop segment by
    segment: collisions at the planned steps, the samples the CPU path takes, the same
    trajectory for the same seed, the plain run's up to the first collision, and its energy
    in the run after it."""
    from test_cuda_md import _run

    out = _run(where, _KNOCK_ON_DEVICE, tmp_path_factory, tmp_path)
    assert out["device"] == "cuda" and out["aborted"] is None
    assert out["steps"] == [200, 250] and out["pairs"] == ["Li-La", "Li-O"]
    assert out["planned"] == out["frames"] == 20 + 2 * 3 and out["steps_done"] == 300
    assert out["same"] and out["same_before"]
    # 2 x 3 eV on 16 atoms is about 1500 K each before the weak thermostat takes it
    assert out["hotter"] > 500
