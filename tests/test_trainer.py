"""The trainer end to end on a tiny generated data set: analytic gradient of the full loss
against finite differences, `nepzbl train` writing GPUMD's files, resume, prediction mode,
divergence handling, fine-tune checks, bad input and the ZBL residual."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nepzbl_plugin.cli import main
from nepzbl_plugin.io import gpumd_outputs as go
from nepzbl_plugin.io.nep_in import parse_nep_in
from nepzbl_plugin.io.xyz import TrainingStructure, read_train_xyz, write_train_xyz
from nepzbl_plugin.model import Model, read_model
from nepzbl_plugin.testing import random_model
from nepzbl_plugin.train import TrainingDiverged, train
from nepzbl_plugin.train._backend import EngineBackend
from nepzbl_plugin.train.checkpoint import load_checkpoint
from nepzbl_plugin.train.gradient import TrainingBatch
from nepzbl_plugin.train.gradient import predict as gradient_predict
from nepzbl_plugin.train.loss import Labels, Loss, LossWeights

NEP_IN = """type 2 Li O
cutoff 4 3
n_max 3 3
basis_size 4 4
l_max 4 0 0
neuron 5
zbl 1.5
"""


def _teacher():
    return random_model(types=("Li", "O"), zbl="universal", flags=(0,) * 6, n_max=(3, 3),
                        basis=(4, 4), neurons=5, cutoffs=(4.0, 3.0), seed=3, zbl_outer=1.5)


def _structures(n=6, seed=0):
    """n cells of 10 atoms (6 Li, 4 O), labelled by a random teacher model (NEP + ZBL);
    every other structure has a virial."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        size = 6.0 + rng.uniform(0, 0.5)
        while True:
            pos = rng.uniform(0, size, (10, 3))
            d = pos[:, None] - pos[None]
            d -= size * np.round(d / size)
            if (np.linalg.norm(d, axis=-1) + 10 * np.eye(10)).min() > 1.2:
                break
        out.append(TrainingStructure(
            symbols=["Li"] * 6 + ["O"] * 4, positions=pos,
            cell=np.eye(3) * size + rng.normal(0, 0.1, (3, 3)), energy=0.0,
            forces=np.zeros((10, 3)), virial=np.zeros((3, 3)) if k % 2 == 0 else None,
        ))
    teacher = _teacher()
    p = gradient_predict(teacher, TrainingBatch.from_structures(out, teacher.types))
    for k, st in enumerate(out):
        st.energy = float(p.energy[k]) + 0.3 * 10  # an offset the shift must absorb
        st.forces = p.forces[10 * k : 10 * k + 10].copy()
        if st.virial is not None:
            st.virial = 0.5 * (p.virial[k] + p.virial[k].T)
    return out


@pytest.fixture(scope="module")
def data():
    return parse_nep_in(NEP_IN), _structures()


def _write_inputs(directory: Path, structures, extra=""):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "nep.in").write_text(NEP_IN + extra)
    write_train_xyz(directory / "train.xyz", structures[:5])
    write_train_xyz(directory / "test.xyz", structures[5:])


def test_full_loss_gradient_matches_finite_differences(data):
    nep_in, structures = data
    model = Model.from_nep_in(nep_in)
    rng = np.random.default_rng(1)
    model.q_scaler[:] = rng.uniform(0.3, 1.0, model.descriptor_dim)
    params = rng.normal(0, 0.5, model.num_parameters)
    backend = EngineBackend(model, structures)
    labels = Labels.from_structures(structures, model.types)
    weights = LossWeights(num_types=2, lambda_v=0.3, lambda_shear=1.7, force_delta=0.5,
                          type_weight=[1.0, 1.5]).resolved(model.num_parameters)
    loss = Loss(weights, model.parameter_types())
    idx = np.arange(len(structures))

    def value(z):
        return loss.evaluate(labels, backend.predict(z, idx), z).value

    pred = backend.predict(params, idx)
    grad = backend.gradient(params, idx, loss.adjoints(labels, pred, params))
    h = 1e-5
    for v in rng.choice(model.num_parameters, 25, replace=False):
        up, dn = params.copy(), params.copy()
        up[v] += h
        dn[v] -= h
        fd = (value(up) - value(dn)) / (2 * h)
        assert grad[v] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_train_cli_writes_gpumd_files_and_resumes(tmp_path, data):
    _, structures = data
    _write_inputs(tmp_path, structures)
    args = ["train", str(tmp_path), "--no-progress", "--seed", "4"]
    assert main(args + ["--epochs", "20"]) == 0
    for name in ("nep.txt", "loss.out", "energy_train.out", "force_train.out",
                 "virial_train.out", "stress_train.out", "energy_test.out", "force_test.out",
                 "virial_test.out", "stress_test.out", "parity_train.png", "parity_test.png",
                 "nepzbl_restart.json"):
        assert (tmp_path / name).exists(), name
    loss = go.read_loss_out(tmp_path / "loss.out")
    assert list(loss.generation) == [10, 20]
    assert np.all(loss.force_test > 0)
    energy = go.read_energy_out(tmp_path / "energy_train.out")
    forces = go.read_force_out(tmp_path / "force_train.out")
    virial = go.read_virial_out(tmp_path / "virial_train.out")
    assert energy.predicted.shape == (5,) and forces.predicted.shape == (50, 3)
    assert np.isnan(virial.reference[1]).all() and np.isfinite(virial.reference[0]).all()
    # the written force RMSE equals the last loss.out entry (same model, no shift on forces)
    rmse_f = np.sqrt(np.mean((forces.predicted - forces.reference) ** 2))
    assert rmse_f == pytest.approx(loss.force_train[-1], abs=1e-5)

    # nep.txt is readable by calorine and predicts what energy_train.out says (bias included)
    from calorine.calculators import CPUNEP

    atoms = structures[0].to_atoms()
    atoms.calc = CPUNEP(str(tmp_path / "nep.txt"))
    assert atoms.get_potential_energy() / 10 == pytest.approx(energy.predicted[0], abs=2e-5)

    # resume: 20 more epochs continue from the checkpoint and equal one 40-epoch run
    assert main(args + ["--epochs", "40"]) == 0
    resumed = read_model(tmp_path / "nep.txt")
    assert list(go.read_loss_out(tmp_path / "loss.out").generation) == [10, 20, 30, 40]
    fresh = tmp_path / "fresh"
    _write_inputs(fresh, structures)
    assert main(["train", str(fresh), "--no-progress", "--seed", "4", "--epochs", "40"]) == 0
    np.testing.assert_allclose(read_model(fresh / "nep.txt").parameters, resumed.parameters,
                               rtol=0, atol=1e-12)

    # prediction mode evaluates nep.txt on train.xyz and writes energy_train.out
    energy = go.read_energy_out(tmp_path / "energy_train.out")
    (tmp_path / "energy_train.out").unlink()
    (tmp_path / "nep.in").write_text(NEP_IN + "prediction 1\n")
    assert main(["train", str(tmp_path), "--no-progress"]) == 0
    predicted = go.read_energy_out(tmp_path / "energy_train.out")
    np.testing.assert_allclose(predicted.predicted, energy.predicted, atol=2e-5)


def test_api_returns_model_and_history_and_is_deterministic(data):
    nep_in, structures = data
    a, hist_a = train(structures[:5], nep_in, epochs=15, seed=2, report_interval=5, log=None)
    b, hist_b = train(structures[:5], nep_in, epochs=15, seed=2, report_interval=5, log=None)
    np.testing.assert_array_equal(a.parameters, b.parameters)
    assert [r["step"] for r in hist_a.records] == [5, 10, 15]
    assert hist_a.column("loss")[-1] < hist_a.column("loss")[0]
    assert hist_a.stop_reason == "reached 15 epochs"


def test_predict_api_as_documented(tmp_path, data):
    """docs/api.md: predictions with energy/forces/virial attributes, RMSEs in eV units, and
    GPUMD's *_<which>.out files in output_dir (created as train() creates its own)."""
    from nepzbl_plugin.train import predict

    structures = data[1]
    predictions, rmse = predict(_teacher(), structures, output_dir=tmp_path / "new",
                                which="test")
    assert predictions.energy.shape == (len(structures),)
    assert predictions.forces.shape == (sum(len(s.symbols) for s in structures), 3)
    assert predictions.virial.shape == (len(structures), 3, 3)
    assert set(rmse) == {"energy", "force", "virial"} and rmse["force"] < 1e-8
    assert {p.name for p in (tmp_path / "new").iterdir()} == {
        f"{q}_test.out" for q in ("energy", "force", "virial", "stress")}
    with pytest.raises(ValueError, match="which must be 'train' or 'test', not '../x'"):
        predict(_teacher(), structures, output_dir=tmp_path / "new", which="../x")


@pytest.mark.parametrize("optimizer", ["snes", "lbfgs"])
def test_other_optimizers_run_and_reduce_the_loss(tmp_path, data, optimizer):
    nep_in, structures = data
    extra = {"snes": "population 10\nbatch 3\noutput_interval 5\n", "lbfgs": ""}[optimizer]
    nep_in = parse_nep_in(NEP_IN + extra)
    model, hist = train(structures[:5], nep_in, output_dir=tmp_path, optimizer=optimizer,
                        epochs=10, seed=0, report_interval=5, log=None)
    assert [r["step"] for r in hist.records] == [5, 10]
    assert np.isfinite(model.parameters).all()
    if optimizer == "lbfgs":
        assert hist.column("loss")[-1] < hist.column("loss")[0]
    state = load_checkpoint(tmp_path)
    assert state is not None and state[1]["optimizer"] == optimizer


def test_divergence_stops_and_keeps_last_good_files(tmp_path, data, monkeypatch):
    nep_in, structures = data
    calls = {"n": 0}
    original = EngineBackend.gradient

    def poisoned(self, params, indices, adjoints):
        calls["n"] += 1
        g = original(self, params, indices, adjoints)
        return g * np.nan if calls["n"] > 12 else g

    monkeypatch.setattr(EngineBackend, "gradient", poisoned)
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train(structures[:5], nep_in, output_dir=tmp_path, epochs=50, seed=0, batch_size=5,
              report_interval=5, log=None)
    model = read_model(tmp_path / "nep.txt")
    assert np.isfinite(model.parameters).all()
    arrays, scalars = load_checkpoint(tmp_path)
    assert scalars["step"] == 10 and np.isfinite(arrays["parameters"]).all()


def test_bad_input_gives_clear_errors(tmp_path, data):
    nep_in, structures = data
    st = structures[0]
    stranger = TrainingStructure(symbols=["Li"] * 9 + ["H"], positions=st.positions,
                                 cell=st.cell, energy=st.energy, forces=st.forces)
    with pytest.raises(ValueError, match="'H' not in|H.*not in"):
        train([stranger], nep_in, log=None)
    no_forces = TrainingStructure(symbols=st.symbols, positions=st.positions, cell=st.cell,
                                  energy=st.energy, forces=None)
    with pytest.raises(ValueError, match="no forces"):
        train([no_forces], nep_in, log=None)
    other = random_model(types=("Li", "O"), zbl="universal", flags=(0,) * 6, n_max=(4, 3),
                         basis=(4, 4), neurons=5, cutoffs=(4.0, 3.0), zbl_outer=1.5)
    with pytest.raises(ValueError, match="n_max"):
        train(structures, nep_in, initial_model=other, log=None)
    # the CLI reports a missing force column as one line with exit status 2
    _write_inputs(tmp_path, structures)
    text = (tmp_path / "train.xyz").read_text().replace(":forces:R:3", "")
    lines = [" ".join(line.split()[:4]) if len(line.split()) == 7 else line
             for line in text.splitlines()]
    (tmp_path / "train.xyz").write_text("\n".join(lines) + "\n")
    assert main(["train", str(tmp_path), "--no-progress", "--epochs", "1"]) == 2


def test_fine_tune_starts_from_the_given_model(tmp_path, data):
    nep_in, structures = data
    base, _ = train(structures[:5], nep_in, epochs=5, seed=0, log=None)
    base.write(tmp_path / "base.txt", precision="full")
    tuned_in = parse_nep_in(NEP_IN + f"fine_tune {tmp_path / 'base.txt'} none.restart\n")
    tuned, hist = train(structures[:5], tuned_in, epochs=1, seed=0, report_interval=1,
                        log=None)
    np.testing.assert_array_equal(tuned.q_scaler, base.q_scaler)
    assert hist.records[0]["loss"] < 2.0 * train(structures[:5], nep_in, epochs=1, seed=0,
                                                 log=None)[1].records[0]["loss"]


def test_residual_command_subtracts_zbl(tmp_path, data, capsys):
    _, structures = data
    _write_inputs(tmp_path, structures)
    assert main(["residual", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ZBL adds" in out and "removes" in out and "force (eV/Å)" in out
    assert "ZBL fraction" not in out and "Li-O" in out
    residual = read_train_xyz(tmp_path / "train_minus_zbl.xyz")
    zbl_model = Model.from_nep_in(parse_nep_in(NEP_IN))
    zbl = gradient_predict(zbl_model, TrainingBatch.from_structures(structures[:5], ["Li", "O"]))
    for k in range(5):
        assert residual[k].energy == pytest.approx(structures[k].energy - zbl.energy[k],
                                                   abs=1e-8)
        np.testing.assert_allclose(residual[k].forces,
                                   structures[k].forces - zbl.forces[10 * k : 10 * k + 10],
                                   atol=1e-8)


def test_adam_switches_to_lbfgs_and_resumes_in_that_phase(tmp_path, data):
    nep_in, structures = data
    messages = []
    _, hist = train(structures[:5], nep_in, output_dir=tmp_path, epochs=40, seed=0,
                    patience=1, polish_after=1, report_interval=5, log=messages.append)
    assert any("continuing with full-batch L-BFGS" in m for m in messages)
    arrays, scalars = load_checkpoint(tmp_path)
    assert scalars["phase"] == "lbfgs"
    steps = [r["step"] for r in hist.records]
    assert steps == sorted(steps) and steps[-1] == 40
    _, resumed = train(structures[:5], nep_in, output_dir=tmp_path, epochs=50, seed=0,
                       patience=1, polish_after=1, report_interval=5, log=messages.append)
    assert resumed.records[-1]["step"] == 50
    assert resumed.records[-1]["loss"] <= hist.records[-1]["loss"] * (1 + 1e-9)


class _NumpyLossBackend:
    """The CPU backend without its C loss: the trainer falls back to the numpy loss."""

    def __init__(self, model, structures):
        self.inner = EngineBackend(model, structures)

    def predict(self, params, indices):
        return self.inner.predict(params, indices)

    def gradient(self, params, indices, adjoints):
        return self.inner.gradient(params, indices, adjoints)

    def descriptors(self, indices, model=None):
        return self.inner.descriptors(indices, model)


@pytest.mark.parametrize("optimizer", ["adam", "snes"])
def test_c_loss_and_numpy_loss_train_the_same_run(data, optimizer):
    """The trainer's loss in C (cext/nep_train_loss.h, on the backend) and the numpy loss
    take the same steps: the same losses and parameters to rounding."""
    nep_in, structures = data
    if optimizer == "snes":
        nep_in = parse_nep_in(NEP_IN + "population 10\nbatch 3\n")
    runs = {}
    for name, backend in (("c", None), ("numpy", _NumpyLossBackend)):
        model, hist = train(structures[:5], nep_in, optimizer=optimizer, epochs=6, seed=4,
                            report_interval=3, log=None, backend=backend)
        runs[name] = (model.parameters, hist.column("loss"))
    np.testing.assert_allclose(runs["c"][1], runs["numpy"][1], rtol=1e-9)
    np.testing.assert_allclose(runs["c"][0], runs["numpy"][0], rtol=1e-7, atol=1e-9)


def test_history_counts_optimiser_updates_and_evaluations(tmp_path, data):
    """Steps per second need the updates, not the epochs: Adam makes one update per batch
    (batches of 2 of 5 structures: 3 an epoch), L-BFGS one per iteration (with one or more
    evaluations each), SNES one per generation (one evaluation per candidate); a resumed
    run continues the counts of the checkpoint."""
    nep_in, structures = data
    messages = []
    _, hist = train(structures[:5], nep_in, output_dir=tmp_path / "a", epochs=12, seed=0,
                    batch_size=2, patience=1, polish_after=1, report_interval=3,
                    log=messages.append)
    switch = next(m for m in messages if "continuing with full-batch L-BFGS" in m)
    adam_epochs = int(switch.split()[1].rstrip(":"))
    last = hist.records[-1]
    assert 0 < adam_epochs < 12 and last["step"] == 12
    assert last["updates"] == 3 * adam_epochs + (12 - adam_epochs)
    assert last["evaluations"] >= last["updates"]
    adam_rows = [r for r in hist.records if r["step"] <= adam_epochs]
    assert [r["updates"] for r in adam_rows] == [3 * r["step"] for r in adam_rows]
    assert [r["evaluations"] for r in adam_rows] == [3 * r["step"] for r in adam_rows]

    snes_in = parse_nep_in(NEP_IN + "population 10\nbatch 3\n")
    _, snes = train(structures[:5], snes_in, optimizer="snes", output_dir=tmp_path / "s",
                    epochs=4, seed=1, report_interval=2, log=None)
    assert [(r["step"], r["updates"], r["evaluations"]) for r in snes.records] == [
        (2, 2, 20), (4, 4, 40)]
    _, resumed = train(structures[:5], snes_in, optimizer="snes", output_dir=tmp_path / "s",
                       epochs=6, seed=1, report_interval=2, log=None)
    assert (resumed.records[-1]["updates"], resumed.records[-1]["evaluations"]) == (6, 60)
    scalars = load_checkpoint(tmp_path / "s")[1]
    assert (scalars["updates"], scalars["evaluations"]) == (6, 60)


def test_bad_update_count_in_checkpoint_is_one_error(tmp_path, data):
    import json

    from nepzbl_plugin.errors import NepFormatError

    nep_in, structures = data
    train(structures[:5], nep_in, output_dir=tmp_path, epochs=2, seed=0, log=None)
    path = tmp_path / "nepzbl_restart.json"
    meta = json.loads(path.read_text())
    meta["updates"] = "many"
    path.write_text(json.dumps(meta))
    with pytest.raises(NepFormatError, match="'updates': expected a count >= 0, found 'many'"):
        train(structures[:5], nep_in, output_dir=tmp_path, epochs=4, seed=0, log=None)


def test_default_optimizer_on_the_gpu_is_full_batch_lbfgs_for_small_sets(data):
    """On a GPU a small set is evaluated whole for the cost of a mini-batch: the default is
    then full-batch L-BFGS; a large set, the CPU, or a named optimizer keep their choice."""
    from nepzbl_plugin.train.trainer import GPU_FULL_BATCH_ATOMS, settings_from_nep_in

    nep_in, _ = data
    small = settings_from_nep_in(nep_in, 25, gpu_atoms=4800)
    assert (small.optimizer, small.optimizer_is_default) == ("lbfgs", True)
    assert "all 4800 atoms of the training set" in small.notes[0]
    assert "add `optimizer adam` for the CPU's default" in small.notes[0]
    large = settings_from_nep_in(nep_in, 2000, gpu_atoms=GPU_FULL_BATCH_ATOMS + 1)
    assert (large.optimizer, large.batch_size) == ("adam", 4)
    assert settings_from_nep_in(nep_in, 25).optimizer == "adam"
    named = settings_from_nep_in(nep_in, 25, gpu_atoms=4800, optimizer="adam")
    assert (named.optimizer, named.optimizer_is_default) == ("adam", False)
    assert settings_from_nep_in(parse_nep_in(NEP_IN + "optimizer snes\n"), 25,
                                gpu_atoms=4800).optimizer == "snes"


def test_a_run_resumed_on_another_device_keeps_its_default_optimizer(tmp_path, data):
    """A default run begun on the GPU (L-BFGS there) goes on with L-BFGS on the CPU, whose
    default is Adam; an optimizer named on resume must still match the checkpoint."""
    nep_in, structures = data
    train(structures[:5], nep_in, output_dir=tmp_path, optimizer="lbfgs", epochs=3, seed=0,
          report_interval=3, log=None)
    messages = []
    _, history = train(structures[:5], nep_in, output_dir=tmp_path, epochs=6, seed=0,
                       report_interval=3, log=messages.append)
    assert any("the checkpoint was made by lbfgs" in m and "going on with lbfgs" in m
               for m in messages)
    assert history.records[-1]["step"] == 6
    assert load_checkpoint(tmp_path)[1]["optimizer"] == "lbfgs"
    with pytest.raises(ValueError, match="another model or optimizer"):
        train(structures[:5], nep_in, output_dir=tmp_path, optimizer="adam", epochs=9,
              log=None)


def test_train_cli_adam_only_keeps_adam_where_the_default_is_lbfgs(tmp_path, data, capsys,
                                                                   monkeypatch):
    """`--adam-only` asks for Adam: on a GPU (stood in for here: the trainer is told it
    trains on one, the CPU computes) the default would otherwise be full-batch L-BFGS."""
    import nepzbl_plugin.train.trainer as trainer

    _, structures = data
    monkeypatch.setattr(trainer, "_trains_on_gpu", lambda device: True)
    for folder, extra, expected in (("default", [], "with lbfgs"),
                                    ("adam_only", ["--adam-only"], "with adam")):
        _write_inputs(tmp_path / folder, structures)
        assert main(["train", str(tmp_path / folder), "--no-progress", "--epochs", "2"] + extra
                    ) == 0
        out = capsys.readouterr().out
        assert f"parameters {expected} on 5 structures" in out, out
