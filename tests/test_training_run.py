"""A GPUMD user's training run: nep.in keywords, what the run says it will do, the progress
callback, SIGTERM, data without virials and the checks on every `nepzbl train` option."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_trainer import NEP_IN, _structures, _write_inputs

from nepzbl_plugin.cli import main
from nepzbl_plugin.errors import NepFormatError
from nepzbl_plugin.io.nep_in import parse_nep_in
from nepzbl_plugin.train import train
from nepzbl_plugin.train.trainer import settings_from_nep_in

# Every keyword of GPUMD's current nep (src/main_nep/parameters.cu, parse_one_keyword).
GPUMD_KEYWORDS = """\
type 2 Li O
model_type 0
prediction 0
version 4
cutoff 6 4
n_max 4 4
basis_size 8 8
l_max 4 2 0
neuron 30
batch 100
population 50
generation 1000
lambda_1 0.05
lambda_2 0.05
lambda_e 1
lambda_f 1
lambda_v 0.1
lambda_q 0.1
lambda_z 0.5
lambda_shear 1
type_weight 1 1
force_delta 0
zbl 2
initial_para 1
sigma0 0.1
atomic_v 0
use_typewise_cutoff_zbl 0.7
output_descriptor 0
charge_mode 0
save_potential 1000 0 0
output_interval 100
import_q_scaler 0
"""


@pytest.fixture(scope="module")
def data():
    return parse_nep_in(NEP_IN), _structures()


# ---------------------------------------------------------------------------- nep.in (item 3)
def test_every_gpumd_keyword_is_read_and_mode_is_model_type():
    nep = parse_nep_in(GPUMD_KEYWORDS)
    assert nep.generation == 1000 and nep.population == 50 and nep.output_interval == 100
    assert parse_nep_in("type 1 Si\nmode 0\n").model_type == 0
    with pytest.raises(NepFormatError, match="given twice"):
        parse_nep_in("type 1 Si\nmode 0\nmodel_type 0\n")


@pytest.mark.parametrize("text, replaced_by", [
    ("use_typewise_cutoff 2.5 2", "cutoff rcR_0 rcA_0 rcR_1 rcA_1"),
    ("cutoff 6 4 95 29", "neighbour counts MN_R MN_A of nep.txt"),
    ("zbl 0.9 1.8", "use_typewise_cutoff_zbl"),
    ("zbl 0 1.8 0.6", "use_typewise_cutoff_zbl"),
])
def test_removed_forms_say_what_replaced_them(text, replaced_by):
    with pytest.raises(NepFormatError, match="line 2") as error:
        parse_nep_in(f"type 1 Si\n{text}\n")
    assert replaced_by in str(error.value)


def test_generation_maps_to_epochs_with_gradient_optimisers_in_one_line():
    nep = parse_nep_in("type 1 Si\ngeneration 300\npopulation 60\n")
    settings = settings_from_nep_in(nep, 12)
    assert settings.optimizer == "adam" and settings.epochs == 300
    mapping = [n for n in settings.notes if "generation 300" in n]
    assert len(mapping) == 1 and "at most 300 epochs" in mapping[0] and "\n" not in mapping[0]
    snes = settings_from_nep_in(parse_nep_in("type 1 Si\ngeneration 300\noptimizer snes\n"), 12)
    assert snes.epochs == 300 and not any("generation 300" in n for n in snes.notes)
    explicit = settings_from_nep_in(nep, 12, epochs=7)
    assert explicit.epochs == 7 and not any("generation" in n for n in explicit.notes)


# ---------------------------------------------------------------------------- the run (item 4)
def test_run_says_how_it_stops_and_reports_progress_with_a_total(data):
    nep_in, structures = data
    events, messages = [], []
    train(structures[:5], nep_in, epochs=4, max_time=600.0, report_interval=2, seed=0,
          progress=lambda event, **info: events.append((event, info)), log=messages.append)
    stops = [m for m in messages if m.startswith("the run stops at the first of")]
    assert stops and "4 epochs" in stops[0] and "max_time 10 min" in stops[0]
    start = events[0]
    assert start[0] == "start" and start[1]["total"] == 4 and start[1]["max_time"] == 600.0
    assert start[1]["phase"] == "Adam" and start[1]["unit"] == "epoch"
    assert [i["step"] for e, i in events if e == "step"] == [1, 2, 3, 4]
    assert [i["step"] for e, i in events if e == "report"] == [2, 4]
    assert events[-1][0] == "end"
    with pytest.raises(TypeError, match="progress"):
        train(structures[:5], nep_in, epochs=1, progress=True, log=None)


def test_progress_bar_runs_to_the_nearer_limit():
    import io

    from nepzbl_plugin.cli.train import TrainingProgressBar

    bar = TrainingProgressBar(file=io.StringIO())
    bar("start", phase="Adam", unit="epoch", initial=0, total=100, max_time=60.0, elapsed=0.0)
    bar("step", step=10, elapsed=30.0)  # the time budget ends first: half done, not a tenth
    assert bar.fraction() == pytest.approx(0.5) and bar.bar.total == 1000
    bar("step", step=80, elapsed=31.0)
    assert bar.fraction() == pytest.approx(0.8)
    bar("end")
    bar("start", phase="L-BFGS", unit="epoch", initial=0, total=None, max_time=None,
        elapsed=0.0)
    assert bar.bar.total is None  # only the stopping rule ends it: a plain counter
    bar("end")


def test_resume_in_the_lbfgs_phase_names_lbfgs(tmp_path, data):
    nep_in, structures = data
    kwargs = dict(seed=0, patience=1, polish_after=1, report_interval=5)
    train(structures[:5], nep_in, output_dir=tmp_path, epochs=30, log=None, **kwargs)
    assert json.loads((tmp_path / "nepzbl_restart.json").read_text())["phase"] == "lbfgs"
    events, messages = [], []
    train(structures[:5], nep_in, output_dir=tmp_path, epochs=35, log=messages.append,
          progress=lambda event, **info: events.append((event, info)), **kwargs)
    assert any("resuming in its L-BFGS phase" in m for m in messages)
    stops = next(m for m in messages if m.startswith("the run stops"))
    assert "L-BFGS converging" in stops and "halvings" not in stops
    assert events[0][1]["phase"] == "L-BFGS"


def test_data_without_virials_show_na_and_no_virial_panel(tmp_path, data):
    import matplotlib.image

    nep_in, structures = data
    no_virial = [s for s in structures if s.virial is None]
    messages = []
    train(no_virial, nep_in, output_dir=tmp_path, epochs=2, log=messages.append)
    final = next(m for m in messages if m.startswith("stopped:"))
    assert "virial n/a" in final and "0.000 meV/atom" not in final.split("virial")[-1]
    narrow = matplotlib.image.imread(tmp_path / "parity_train.png").shape[1]
    train(structures[:4], nep_in, output_dir=tmp_path / "with", epochs=2, log=messages.append)
    wide = matplotlib.image.imread(tmp_path / "with" / "parity_train.png").shape[1]
    assert narrow / wide == pytest.approx(2 / 3, rel=0.02)  # energy and force panels only


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_checkpoint_and_write_every_output(tmp_path, data, signum):
    _, structures = data
    _write_inputs(tmp_path, structures)
    import nepzbl_plugin

    # the package as imported: installed in CI (the tree has no built extensions there)
    env = dict(os.environ, PYTHONPATH=str(Path(nepzbl_plugin.__file__).resolve().parents[1]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "nepzbl_plugin", "train", str(tmp_path), "--epochs", "100000",
         "--no-progress"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)  # cwd: `python -m` puts it first on sys.path, before the package as imported
    deadline = time.monotonic() + 120
    while not (tmp_path / "loss.out").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (tmp_path / "loss.out").exists(), proc.communicate(timeout=30)
    for f in ("nep.txt", "energy_train.out", "parity_train.png"):
        (tmp_path / f).unlink(missing_ok=True)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}" in err and "Traceback" not in err
    for name in ("nep.txt", "loss.out", "energy_train.out", "force_train.out",
                 "virial_train.out", "stress_train.out", "energy_test.out", "parity_train.png",
                 "parity_test.png", "nepzbl_restart.json"):
        assert (tmp_path / name).exists(), name
    scalars = json.loads((tmp_path / "nepzbl_restart.json").read_text())
    assert scalars["stop_reason"] == "interrupted" and not scalars["finished"]


# ---------------------------------------------------------------------------- options (item 5)
@pytest.mark.parametrize("option, value, words", [
    ("--learning-rate", "-0.01", "must be positive"),
    ("--epochs", "-5", "out of range"),
    ("--batch-size", "0", "out of range"),
    ("--optimizer", "adamw", "expected one of adam, lbfgs, snes"),
    ("--max-time", "0", "must be positive"),
    ("--seed", "-1", "out of range"),
    ("--target-force-rmse", "nan", "expected a number"),
    ("--epochs", "ten", "expected an integer"),
])
def test_bad_option_values_exit_2_with_one_line(tmp_path, capsys, data, option, value, words):
    _, structures = data
    _write_inputs(tmp_path, structures)
    assert main(["train", str(tmp_path), option + "=" + value, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nepzbl: error: {option} {value}: ")
    assert words in err[0]
    assert not (tmp_path / "nep.txt").exists()


def test_nep_in_keyword_and_option_give_the_same_check(tmp_path, capsys, data):
    _, structures = data
    _write_inputs(tmp_path, structures, extra="learning_rate -1\n")
    assert main(["train", str(tmp_path), "--no-progress"]) == 2
    from_file = capsys.readouterr().err
    assert "learning_rate: must be positive, found -1" in from_file
    _write_inputs(tmp_path, structures)
    assert main(["train", str(tmp_path), "--learning-rate", "-1"]) == 2
    assert "--learning-rate -1: must be positive, found -1" in capsys.readouterr().err
