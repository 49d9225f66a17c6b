"""Two hidden layers (GPUMD's ``ANN N1 N2``, nep.in ``neuron N1 N2``): GPUMD's ``nep`` trains
them, but its MD and NEP_CPU do not read them; nepzbl's engines evaluate them and train them.

References: numpy's two-layer network on the engine's own descriptors (the layout of
``nep-reference.md`` 1.7.4 and the maths of 2.9: h1 = tanh(w0 x - b0), h2 = tanh(w1 h1 - b1),
U = w2 . h2 - b2), central finite differences for forces, virials and the training gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from nepzbl_plugin.engine import Evaluator
from nepzbl_plugin.errors import InputError
from nepzbl_plugin.testing import random_model
from nepzbl_plugin.train.gradient import TrainingBatch, linear_functional_gradient


def two_layer_model(version=4, zbl="universal", seed=5, temperature=False):
    return random_model(version=version, zbl=zbl, seed=seed, neurons=7, neurons_second=5,
                        flags=(2, 1, 0, 0, 0, 0), n_max=(3, 3), basis=(6, 6), scale=0.5,
                        temperature=temperature)


def li_o_cell(seed=1, rattle=0.15):
    atoms = bulk("Li", "bcc", a=3.45, cubic=True) * (2, 2, 2)
    atoms.numbers[::3] = 8
    atoms.rattle(rattle, seed=seed)
    return atoms


def numpy_site_energies(model, types, x):
    """U_i of the two-layer network on the network input x (N, D), per nep-reference 1.7.4."""
    D, N1, N2 = model.descriptor_dim, model.n_neurons, model.n_neurons_second
    p, bs = model.parameters, model.network_block_size
    b2 = p[model.num_network_parameters - 1]
    out = np.empty(len(types))
    for i, t in enumerate(types):
        block = p[(0 if model.version == 3 else t) * bs:][:bs]
        w0 = block[:N1 * D].reshape(N1, D)
        b0 = block[N1 * D:N1 * D + N1]
        rest = block[N1 * D + N1:]
        w1 = rest[:N2 * N1].reshape(N2, N1)  # w1[j, k]: index j * N1 + k
        b1, w2 = rest[N2 * N1:N2 * N1 + N2], rest[N2 * N1 + N2:N2 * N1 + 2 * N2]
        h1 = np.tanh(w0 @ x[i] - b0)
        h2 = np.tanh(w1 @ h1 - b1)
        out[i] = w2 @ h2 - b2 - (block[-1] if model.version == 5 else 0.0)
    return out


@pytest.mark.parametrize("version", [3, 4, 5])
def test_site_energies_equal_numpy_on_the_engine_descriptors(version):
    model = two_layer_model(version=version)
    atoms = li_o_cell()
    ev = Evaluator(model)
    out = ev.evaluate(atoms, ("energy", "energies", "descriptors", "zbl"))
    types = ev.system(atoms).types
    expected = numpy_site_energies(model, types, out["descriptors"]) + out["energies_zbl"]
    np.testing.assert_allclose(out["energies"], expected, rtol=0, atol=1e-12)
    assert abs(out["energy"] - expected.sum()) <= 1e-12 * max(1.0, abs(expected.sum()))


def test_forces_and_virial_are_the_energy_s_derivatives():
    model = two_layer_model()
    atoms = li_o_cell()
    ev = Evaluator(model)
    out = ev.evaluate(atoms, ("energy", "forces", "virial"))
    h = 1e-5
    for i, c in ((0, 0), (3, 1), (10, 2)):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, c] += h
        minus.positions[i, c] -= h
        fd = -(ev.evaluate(plus, ("energy",))["energy"]
               - ev.evaluate(minus, ("energy",))["energy"]) / (2 * h)
        assert abs(fd - out["forces"][i, c]) <= 1e-6, (i, c)
    # W = -dE/d(strain) for a symmetric strain
    for a, b in ((0, 0), (0, 1), (2, 2)):
        strain = np.zeros((3, 3))
        strain[a, b] = strain[b, a] = h
        energies = []
        for sign in (1, -1):
            s = atoms.copy()
            s.set_cell(atoms.cell.array @ (np.eye(3) + sign * strain), scale_atoms=True)
            energies.append(ev.evaluate(s, ("energy",))["energy"])
        fd = -(energies[0] - energies[1]) / (2 * h) / (1 if a == b else 2)
        assert abs(fd - out["virial"][a, b]) <= 1e-6, (a, b)


def test_latent_space_is_refused_in_one_line():
    with pytest.raises(InputError, match="one hidden layer"):
        Evaluator(two_layer_model()).evaluate(li_o_cell(), ("latent",))


def _batch(model, n=3, seed=4):
    ev = Evaluator(model)
    frames = []
    for k in range(n):
        atoms = li_o_cell(seed=seed + k, rattle=0.2)
        frames.append((ev.system(atoms).types, atoms.positions, atoms.cell.array, (True,) * 3,
                       300.0 + 400.0 * k))
    return TrainingBatch.from_structures(frames), frames


@pytest.mark.parametrize("version,temperature", [(4, False), (5, False), (4, True)])
def test_training_gradient_matches_finite_differences(version, temperature):
    model = two_layer_model(version=version, temperature=temperature)
    if temperature:
        model.q_scaler[-1] = 0.001
    batch, frames = _batch(model)
    rng = np.random.default_rng(3)
    S, A = batch.num_structures, int(batch.atom_offsets[-1])
    alpha, fadj, vadj = rng.normal(size=S), rng.normal(size=(A, 3)), rng.normal(size=(S, 9))
    g, p = linear_functional_gradient(model, batch, alpha, fadj, vadj, return_predictions=True)
    # the training code's predictions are the engine's
    ev = Evaluator(model)
    from nepzbl_plugin.engine import System

    off = batch.atom_offsets
    for s, (types, positions, cell, pbc, t) in enumerate(frames):
        out = ev.evaluate(System(types, positions, cell, pbc, t), ("energy", "forces", "virial"))
        assert abs(out["energy"] - p.energy[s]) <= 1e-10 * max(1.0, abs(out["energy"]))
        np.testing.assert_allclose(p.forces[off[s]:off[s + 1]], out["forces"], rtol=0,
                                   atol=1e-10)
        np.testing.assert_allclose(p.virial[s], out["virial"], rtol=0, atol=1e-10)

    def phi(z):
        _, q = linear_functional_gradient(model, batch, parameters=z, return_predictions=True)
        return alpha @ q.energy + np.sum(fadj * q.forces) + np.sum(vadj * q.virial.reshape(S, 9))

    D, N1, N2 = model.descriptor_dim, model.n_neurons, model.n_neurons_second
    bs = model.network_block_size
    picks = [3, N1 * D + 2,                      # w0, b0
             N1 * D + N1 + 2 * N1 + 1,           # w1[2, 1]
             N1 * D + N1 + N2 * N1 + 3,          # b1[3]
             N1 * D + N1 + N2 * N1 + N2 + 4,     # w2[4]
             bs + D - 1,                         # the second species' w0 (the temperature
                                                 # column for a temperature model)
             model.num_network_parameters - 1,   # b2
             model.num_network_parameters + 7]   # a descriptor coefficient
    if version == 5:
        picks.append(bs - 1)                     # beta
    z0 = model.parameters.copy()
    for index in picks:
        h = 1e-5
        zp, zm = z0.copy(), z0.copy()
        zp[index] += h
        zm[index] -= h
        fd = (phi(zp) - phi(zm)) / (2 * h)
        assert abs(fd - g[index]) <= 1e-6 * max(1.0, abs(fd)), (index, fd, g[index])


NEP_IN = """type 2 Li O
zbl 1.6
cutoff 4 3.5
n_max 3 3
basis_size 5 5
l_max 4 2
neuron 6 4
batch 4
"""


def test_training_a_two_layer_model(tmp_path):
    from nepzbl_plugin.io.nep_in import parse_nep_in
    from nepzbl_plugin.io.xyz import TrainingStructure
    from nepzbl_plugin.model import read_model
    from nepzbl_plugin.train import train

    reference = Evaluator(random_model(zbl="universal", seed=8, scale=0.5))
    frames = []
    for k in range(6):
        atoms = li_o_cell(seed=30 + k, rattle=0.2)
        out = reference.evaluate(atoms)
        frames.append(TrainingStructure(symbols=atoms.get_chemical_symbols(),
                                        positions=atoms.positions, cell=atoms.cell.array,
                                        energy=out["energy"], forces=out["forces"],
                                        virial=out["virial"]))
    said = []
    model, history = train(frames, parse_nep_in(NEP_IN), output_dir=tmp_path, optimizer="adam",
                           epochs=40, seed=1, progress=None, log=said.append)
    # the user is told where such a model runs: not in GPUMD's MD or NEP_CPU
    assert any("GPUMD's MD and NEP_CPU/LAMMPS cannot read" in line for line in said)
    assert "ANN 6 4" in (tmp_path / "nep.txt").read_text()
    first, last = history.records[0], history.records[-1]
    assert last["rmse_force_train"] < first["rmse_force_train"]
    back = read_model(tmp_path / "nep.txt")
    assert back.n_neurons_second == 4
    out = Evaluator(back).evaluate(frames[0].to_atoms())
    assert np.all(np.isfinite(out["forces"]))


def test_views_and_the_temperature_fold_with_two_layers():
    model = two_layer_model(version=5, temperature=True)
    model.q_scaler[-1] = 0.001
    net = model.network(1)
    D, N1, N2 = model.descriptor_dim, model.n_neurons, model.n_neurons_second
    assert net["w0"].shape == (N1, D) and net["w1"].shape == (N2, N1)
    assert net["b1"].shape == (N2,) and net["w2"].shape == (N2,) and net["beta"].shape == (1,)
    start = model.network_block_size
    assert net["w1"][2, 1] == model.parameters[start + N1 * D + N1 + 2 * N1 + 1]
    assert net["beta"][0] == model.parameters[2 * start - 1]
    # the folded plain model at 700 K is the temperature model at 700 K
    atoms = li_o_cell()
    atoms.info["temperature"] = 700.0
    ours = Evaluator(model).evaluate(atoms, ("energy", "forces", "virial"))
    plain = model.at_temperature(700.0)
    assert plain.n_neurons_second == N2 and not plain.temperature
    ref = Evaluator(plain).evaluate(atoms, ("energy", "forces", "virial"))
    for key in ref:
        np.testing.assert_allclose(ours[key], ref[key], rtol=0, atol=1e-12)
