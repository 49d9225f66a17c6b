"""GPUMD's temperature models (``nep4_temperature``, nep.in ``model_type 3``): the temperature is
one more descriptor entry, the last, scaled by q_scaler like the others (GPUMD's trainer fixes
that scaler at 0.001).

The reference is exact algebra: at a fixed temperature T the input adds the constant
w0[k, D-1] q_scaler[D-1] T to neuron k, so the temperature model equals the plain model whose
bias b0 absorbs it (:meth:`Model.at_temperature`), which the engine and calorine evaluate as
any other nep4 model. The training gradient is held to the same folded model (the chain rule
through the fold gives the temperature column's gradient) and to finite differences.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from ase.build import bulk

from nepzbl_plugin.calculators import NEP
from nepzbl_plugin.engine import Evaluator, System
from nepzbl_plugin.errors import InputError, NepFormatError
from nepzbl_plugin.io.nep_in import parse_nep_in
from nepzbl_plugin.io.xyz import TrainingStructure, format_train_xyz, parse_train_xyz
from nepzbl_plugin.model import read_model
from nepzbl_plugin.testing import random_model
from nepzbl_plugin.train.gradient import TrainingBatch, linear_functional_gradient

ALL = ("energy", "energies", "forces", "virial", "virials", "latent")


def temperature_model(version=4, zbl="universal", seed=3):
    model = random_model(version=version, zbl=zbl, temperature=True, seed=seed,
                         flags=(2, 1, 0, 0, 0, 0), n_max=(3, 3), basis=(6, 6), neurons=8)
    model.q_scaler[-1] = 0.001  # GPUMD's temperature scaler
    return model


def li_o_cell(seed=1, rattle=0.15):
    atoms = bulk("Li", "bcc", a=3.45, cubic=True) * (2, 2, 2)
    atoms.numbers[::3] = 8
    atoms.rattle(rattle, seed=seed)
    return atoms


def assert_same(ours, ref, rel=1e-12):
    for key in ref:
        scale = max(1.0, float(np.abs(ref[key]).max()))
        np.testing.assert_allclose(ours[key], ref[key], rtol=0, atol=rel * scale, err_msg=key)


# ------------------------------------------------------------------------------- engine
@pytest.mark.parametrize("version", [3, 4, 5])
def test_engine_equals_the_folded_plain_model(version):
    """Energies, forces, virials (total and per atom) and the latent space at 0, 300 and
    1500 K equal those of at_temperature(T) to 1e-12; the temperature changes them."""
    model = temperature_model(version=version)
    atoms = li_o_cell()
    ev = Evaluator(model)
    energies = []
    for t in (0.0, 300.0, 1500.0):
        ours = ev.evaluate(System(*_system_arrays(ev, atoms), temperature=t), ALL)
        ref = Evaluator(model.at_temperature(t)).evaluate(atoms, ALL)
        assert_same(ours, ref)
        energies.append(ours["energy"])
    assert abs(energies[2] - energies[1]) > 1e-3  # the input matters


def _system_arrays(ev, atoms):
    s = ev.system(atoms)
    return s.types, s.positions, s.cell, s.pbc


def test_descriptors_end_with_the_scaled_temperature():
    model = temperature_model()
    atoms = li_o_cell()
    atoms.info["temperature"] = 750.0
    q = Evaluator(model).evaluate(atoms, ("descriptors",))["descriptors"]
    assert q.shape == (len(atoms), model.descriptor_dim)
    np.testing.assert_array_equal(q[:, -1], 0.75)
    plain = Evaluator(model.at_temperature(750.0)).evaluate(atoms, ("descriptors",))
    np.testing.assert_allclose(q[:, :-1], plain["descriptors"], rtol=0, atol=1e-14)


def test_folded_model_runs_in_calorine(tmp_path):
    """The folded model is a plain nep4_zbl file: calorine (NEP_CPU) evaluates it to the
    house tolerance (energy 1e-10 relative, forces 1e-9 eV/A) of the temperature model."""
    calculators = pytest.importorskip("calorine.calculators")
    model = temperature_model()
    path = tmp_path / "nep.txt"
    model.at_temperature(900.0).write(path, precision="full")
    assert open(path).readline().split()[0] == "nep4_zbl"
    atoms = li_o_cell()
    with contextlib.redirect_stdout(io.StringIO()):
        atoms.calc = calculators.CPUNEP(str(path))
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    ours = Evaluator(model).evaluate(System(*_system_arrays(Evaluator(model), atoms),
                                            temperature=900.0))
    assert abs(ours["energy"] - energy) <= 1e-10 * abs(energy)
    np.testing.assert_allclose(ours["forces"], forces, rtol=0, atol=1e-9)


def test_a_temperature_model_needs_a_temperature():
    model = temperature_model()
    ev = Evaluator(model)
    atoms = li_o_cell()
    with pytest.raises(ValueError, match="temperature model"):
        ev.evaluate(atoms)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="kelvin"):
            ev.evaluate(System(*_system_arrays(ev, atoms), temperature=bad))
    atoms.info["temperature"] = "hot"
    with pytest.raises(ValueError, match="number of kelvin"):
        ev.evaluate(atoms)
    # plain models ignore the temperature entirely
    plain = Evaluator(random_model(seed=3))
    a = plain.evaluate(li_o_cell())
    b = plain.evaluate(System(*_system_arrays(plain, li_o_cell()), temperature=5000.0))
    assert a["energy"] == b["energy"]
    with pytest.raises(ValueError, match="needs a temperature model"):
        random_model(seed=3).at_temperature(300.0)
    # one check of the value for the engines and for folding (model.checked_temperature)
    for bad in (-1.0, float("nan"), "hot", None):
        with pytest.raises(InputError, match="finite number of kelvin >= 0"):
            model.at_temperature(bad)


def test_batch_evaluation_takes_each_structure_s_temperature():
    model = temperature_model()
    ev = Evaluator(model)
    frames = []
    for k, t in enumerate((100.0, 800.0, 1400.0)):
        atoms = li_o_cell(seed=k)
        atoms.info["temperature"] = t
        frames.append(atoms)
    many = ev.evaluate_many(frames, ("energy", "forces"))
    for atoms, out in zip(frames, many, strict=True):
        ref = Evaluator(model.at_temperature(atoms.info["temperature"])).evaluate(
            atoms, ("energy", "forces"))
        assert_same(out, ref)


# ------------------------------------------------------------------------------- calculator
def test_calculator_temperature_parameter():
    model = temperature_model()
    atoms = li_o_cell()
    atoms.calc = NEP(model, temperature=600.0)
    e600 = atoms.get_potential_energy()
    ref = Evaluator(model.at_temperature(600.0)).evaluate(atoms)["energy"]
    assert abs(e600 - ref) <= 1e-12 * max(1.0, abs(ref))
    atoms.calc.set(temperature=1200.0)  # clears the stored results
    e1200 = atoms.get_potential_energy()
    assert abs(e1200 - Evaluator(model.at_temperature(1200.0)).evaluate(atoms)["energy"]) <= 1e-12
    assert abs(e1200 - e600) > 1e-3
    # without the parameter the structure's own temperature is used
    atoms.calc = NEP(model)
    atoms.info["temperature"] = 600.0
    assert abs(atoms.get_potential_energy() - e600) <= 1e-12 * max(1.0, abs(e600))
    stress = atoms.get_stress()
    assert np.all(np.isfinite(stress))


# ------------------------------------------------------------------------------- train.xyz
def test_train_xyz_temperature_round_trip_and_errors():
    frame = TrainingStructure(symbols=["Li", "O"], positions=[[0, 0, 0], [1.9, 0, 0]],
                              cell=np.eye(3) * 6, energy=-3.0, forces=np.zeros((2, 3)),
                              temperature=850.5)
    text = format_train_xyz([frame])
    assert "temperature=850.5" in text.splitlines()[1]
    back = parse_train_xyz(text)[0]
    assert back.temperature == 850.5 and "temperature" not in back.info
    atoms = back.to_atoms()
    assert atoms.info["temperature"] == 850.5
    assert TrainingStructure.from_atoms(atoms).temperature == 850.5
    assert parse_train_xyz(text.replace(" temperature=850.5", ""))[0].temperature is None
    for bad, message in (("temperature=-3", "0 <= T"), ("temperature=warm", "expected a number")):
        with pytest.raises(NepFormatError, match=message) as err:
            parse_train_xyz(text.replace("temperature=850.5", bad), source="train.xyz")
        assert "train.xyz" in str(err.value) and "line 2" in str(err.value)


# ------------------------------------------------------------------------------- gradient
def _batch(model, temperatures, seed=4):
    frames = []
    for k, t in enumerate(temperatures):
        atoms = li_o_cell(seed=seed + k, rattle=0.2)
        types = Evaluator(model).system(atoms).types
        frames.append((types, atoms.positions, atoms.cell.array, (True,) * 3, t))
    return TrainingBatch.from_structures(frames)


def test_gradient_equals_the_folded_models_gradient():
    """Per structure at temperature T: every gradient entry equals the folded model's; the
    temperature column's is the chain rule through the fold, -q_scaler[D-1] T dPhi/db0."""
    model = temperature_model()
    D, N1 = model.descriptor_dim, model.n_neurons
    temperatures = (250.0, 1100.0)
    batch = _batch(model, temperatures)
    rng = np.random.default_rng(7)
    S, A = batch.num_structures, int(batch.atom_offsets[-1])
    alpha, fadj, vadj = rng.normal(size=S), rng.normal(size=(A, 3)), rng.normal(size=(S, 9))
    total = linear_functional_gradient(model, batch, alpha, fadj, vadj)
    expected = np.zeros_like(total)
    off = batch.atom_offsets
    for s, t in enumerate(temperatures):
        one = TrainingBatch(batch.types[off[s]:off[s + 1]], batch.positions[off[s]:off[s + 1]],
                            batch.cells[s:s + 1], batch.pbc[s:s + 1], [0, off[s + 1] - off[s]])
        folded = model.at_temperature(t)
        g = linear_functional_gradient(folded, one, alpha[s:s + 1], fadj[off[s]:off[s + 1]],
                                       vadj[s:s + 1])
        bs, bs_plain = model.network_block_size, folded.network_block_size
        for b in range(model.num_networks):
            gp = g[b * bs_plain:(b + 1) * bs_plain]
            w0 = gp[:N1 * (D - 1)].reshape(N1, D - 1)
            b0 = gp[N1 * (D - 1):N1 * (D - 1) + N1]
            block = np.concatenate([
                np.hstack([w0, (-model.q_scaler[-1] * t * b0)[:, None]]).ravel(),
                gp[N1 * (D - 1):]])
            expected[b * bs:(b + 1) * bs] += block
        expected[model.num_network_parameters - 1:] += g[folded.num_network_parameters - 1:]
    scale = np.abs(expected).max()
    assert np.abs(total - expected).max() <= 1e-10 * scale
    column = np.concatenate([np.arange(N1) * D + D - 1 + b * model.network_block_size
                             for b in range(model.num_networks)])
    assert np.abs(total[column]).max() > 1e-6 * scale  # the temperature weights do learn


def test_gradient_of_the_temperature_weights_matches_finite_differences():
    model = temperature_model(version=5)
    batch = _batch(model, (400.0, 1300.0))
    rng = np.random.default_rng(9)
    S, A = batch.num_structures, int(batch.atom_offsets[-1])
    alpha, fadj, vadj = rng.normal(size=S), rng.normal(size=(A, 3)), rng.normal(size=(S, 9))
    g = linear_functional_gradient(model, batch, alpha, fadj, vadj)
    D, bs = model.descriptor_dim, model.network_block_size

    def phi(z):
        _, p = linear_functional_gradient(model, batch, parameters=z, return_predictions=True)
        return (alpha @ p.energy + np.sum(fadj * p.forces)
                + np.sum(vadj * p.virial.reshape(S, 9)))

    z0 = model.parameters.copy()
    for index in (D - 1, 3 * D - 1, bs + 5 * D - 1, 2):
        h = 1e-4
        zp, zm = z0.copy(), z0.copy()
        zp[index] += h
        zm[index] -= h
        fd = (phi(zp) - phi(zm)) / (2 * h)
        assert abs(fd - g[index]) <= 1e-6 * max(1.0, abs(fd)), index


# ------------------------------------------------------------------------------- MD
def test_md_feeds_each_step_s_target_temperature():
    from nepzbl_plugin.md.base import TemperatureSchedule
    from nepzbl_plugin.md.dynamics import EngineForces, run_md

    model = temperature_model()
    atoms = li_o_cell(rattle=0.05)
    forces = EngineForces(Evaluator(model), atoms)
    schedule = TemperatureSchedule.linear(300.0, 900.0, 20)
    result = run_md(atoms, forces, 20, 1.0, ensemble="nvt-berendsen", temperature=schedule,
                    tau_temperature=10.0, seed=1)
    assert result.steps_done == 20 and result.stopped is None
    assert forces.temperature == pytest.approx(900.0)  # the last step's target
    # NVE takes the run's temperature as the input throughout
    nve = EngineForces(Evaluator(model), atoms)
    run_md(atoms, nve, 5, 1.0, ensemble="nve", temperature=450.0, seed=1)
    assert nve.temperature == pytest.approx(450.0)
    # the starting energy is the folded model's at the first target
    start = EngineForces(Evaluator(model), atoms)
    start.temperature = 300.0
    e, _, _ = start(atoms.positions, atoms.cell.array)
    ref = Evaluator(model.at_temperature(300.0)).evaluate(atoms)["energy"]
    assert abs(e - ref) <= 1e-12 * max(1.0, abs(ref))


# ------------------------------------------------------------------------------- training
NEP_IN = """type 2 Li O
model_type 3
zbl 1.6
cutoff 4 3.5
n_max 3 3
basis_size 5 5
l_max 4 2
neuron 6
batch 4
"""


def _training_frames(n=6):
    reference = temperature_model(seed=11)
    ev = Evaluator(reference)
    frames = []
    for k in range(n):
        atoms = li_o_cell(seed=20 + k, rattle=0.2)
        t = 200.0 + 250.0 * k
        out = ev.evaluate(System(*_system_arrays(ev, atoms), temperature=t))
        frames.append(TrainingStructure(symbols=atoms.get_chemical_symbols(),
                                        positions=atoms.positions, cell=atoms.cell.array,
                                        energy=out["energy"], forces=out["forces"],
                                        virial=out["virial"], temperature=t))
    return frames


def test_training_a_temperature_model_writes_a_gpumd_temperature_model(tmp_path):
    from nepzbl_plugin.train import train

    frames = _training_frames()
    model, history = train(frames, parse_nep_in(NEP_IN), output_dir=tmp_path,
                           optimizer="adam", epochs=3, seed=1, progress=None)
    text = (tmp_path / "nep.txt").read_text().splitlines()
    assert text[0].split()[0] == "nep4_zbl_temperature"
    back = read_model(tmp_path / "nep.txt")
    assert back.temperature and back.q_scaler[-1] == pytest.approx(0.001)
    assert np.isfinite(history.records[-1]["rmse_force_train"])
    # the written model reproduces the trainer's own predictions at each frame's temperature
    ev = Evaluator(back)
    out = ev.evaluate(System(*_system_arrays(ev, frames[0].to_atoms()),
                             temperature=frames[0].temperature))
    assert np.all(np.isfinite(out["forces"]))
    frames[2].temperature = None
    with pytest.raises(ValueError, match="training structure 2 has no temperature"):
        train(frames, parse_nep_in(NEP_IN), output_dir=tmp_path / "bad", optimizer="adam",
              epochs=1, seed=1, progress=None)


def test_cli_model_at_temperature(tmp_path):
    from nepzbl_plugin.cli import main

    model = temperature_model()
    source, out = tmp_path / "nep.txt", tmp_path / "nep_900K.txt"
    model.write(source, precision="full")
    assert main(["model", str(source), "-o", str(out), "--at-temperature", "900",
                 "--full-precision"]) == 0
    folded = read_model(out)
    assert folded.model_token == "nep4_zbl" and not folded.temperature
    atoms = li_o_cell()
    atoms.info["temperature"] = 900.0
    ref = Evaluator(read_model(source)).evaluate(atoms)
    assert_same(Evaluator(folded).evaluate(atoms), ref)
    assert main(["model", str(out), "-o", str(tmp_path / "x.txt"), "--at-temperature", "1"]) != 0


def test_md_of_a_temperature_model_without_a_temperature_is_one_clear_error(tmp_path, capsys):
    from nepzbl_plugin.cli import main
    from nepzbl_plugin.md.dynamics import EngineForces, MDSetupError, run_md

    model = temperature_model()
    atoms = li_o_cell(rattle=0.05)
    with pytest.raises(MDSetupError, match="temperature model"):
        run_md(atoms, EngineForces(Evaluator(model), atoms), 5, 1.0, ensemble="nve")
    path = tmp_path / "nep.txt"
    model.write(path)
    from ase.io import write

    write(tmp_path / "start.xyz", atoms)
    status = main(["md", str(path), str(tmp_path / "start.xyz"), "--ensemble", "nve",
                   "--steps", "5", "--out", str(tmp_path / "md")])
    err = capsys.readouterr().err
    assert status == 2 and "temperature model" in err and "Traceback" not in err


def test_md_whose_first_evaluation_fails_reports_it():
    """A force field that fails at step 0 ends the run with the reason (no drift to report),
    not with an error about the run's own bookkeeping."""
    from nepzbl_plugin.md.dynamics import run_md

    def broken(positions, cell):
        raise RuntimeError("no forces today")

    result = run_md(li_o_cell(), broken, 5, 1.0, ensemble="nve")
    assert result.steps_done == 0 and "no forces today" in result.stopped
    assert np.isnan(result.energy_drift_per_atom)


def test_tools_without_a_temperature_say_so_in_one_line(tmp_path, capsys):
    from nepzbl_plugin.cli import main

    path = tmp_path / "nep.txt"
    temperature_model().write(path)
    assert main(["audit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "temperature model" in err and "--at-temperature" in err and "Traceback" not in err


def test_training_gradient_checks_temperatures_on_every_call_with_a_cache():
    """The C gradient keeps neighbour lists between calls; the temperatures it reads anew each
    call, so a non-finite one is refused even for a structure whose list is kept."""
    from nepzbl_plugin import _core
    from nepzbl_plugin.engine.base import model_spec
    from nepzbl_plugin.train.gradient import TrainingCache

    model = temperature_model()
    batch = _batch(model, (300.0, 900.0))
    batch.structure_ids = np.arange(2, dtype=np.int32)
    cache = TrainingCache()
    S, A = batch.num_structures, int(batch.atom_offsets[-1])

    def call(temperatures):
        statuses = np.zeros(S, dtype=np.int32)
        status = _core.train_gradient(
            model_spec(model), batch.types, batch.positions, batch.cells, batch.pbc,
            batch.atom_offsets, None, None, None, None, np.zeros(S), np.zeros(3 * A),
            np.zeros(9 * S), statuses, 1, cache._core_cache, batch.structure_ids,
            np.ascontiguousarray(temperatures, dtype=np.float64))
        return status, statuses

    assert call([300.0, 900.0])[0] == 0  # the lists are kept from here on
    status, statuses = call([300.0, np.nan])
    assert status == 7 and list(statuses) == [0, 7]  # NEP_ERR_NONFINITE, structure 1
    assert call([300.0, 900.0])[0] == 0
