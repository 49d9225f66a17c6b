"""The GPU training objective (cext/nep_train_cuda*.cu) and its backend, checked without a
GPU: the CUDA sources are compiled for the host (-DNEPCU_HOST_EMULATION, kernels as plain
loops) and compared with the CPU gradient (cext/nep_train.c) in one subprocess.

Tolerances: float64 1e-10 relative to the gradient's largest entry (both are exact; only the
summation order differs), float32 1e-4 (float products, float64 sums). On a machine with a
GPU the same checks run on the device (marked ``gpu``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nepzbl_plugin.errors import NepFormatError
from nepzbl_plugin.io.nep_in import parse_nep_in

REPO = Path(__file__).resolve().parents[1]

_CHECK = r'''
import numpy as np
from nepzbl_plugin import _cuda
from nepzbl_plugin.engine.base import model_spec
from nepzbl_plugin.testing import random_model
from nepzbl_plugin.train.gradient import TrainingBatch, linear_functional_gradient
from nepzbl_plugin.train.cuda_backend import CudaBackend, make_backend
from nepzbl_plugin.train._backend import EngineBackend
from nepzbl_plugin.train.loss import Adjoints

rng = np.random.default_rng(5)


def structures(types, n, seed):
    r = np.random.default_rng(seed)
    out = []
    for k in range(n):
        size = 5.5 + r.uniform(0, 0.5)
        natoms = 6 + k
        while True:
            pos = r.uniform(0, size, (natoms, 3))
            d = pos[:, None] - pos[None]
            d -= size * np.round(d / size)
            if (np.linalg.norm(d, axis=-1) + 10 * np.eye(natoms)).min() > 1.0:
                break
        cell = np.eye(3) * size + r.normal(0, 0.15, (3, 3))
        out.append((r.integers(0, len(types), natoms).astype(np.int32), pos, cell))
    return out


variants = [
    dict(version=3, flags=(0,) * 6, l_max=4),
    dict(version=4, zbl="universal", flags=(2, 1, 0, 0, 0, 0), l_max=4),
    dict(version=5, zbl="flexible", flags=(1, 1, 1, 1, 1, 1), l_max=6),
    dict(version=4, zbl="universal", flags=(0,) * 6, l_max=8),
    dict(version=4, zbl="universal", flags=(2, 1, 0, 0, 0, 0), l_max=4, temperature=True),
    dict(version=5, zbl="universal", flags=(2, 1, 0, 0, 0, 0), l_max=4, neurons_second=4),
]
for kw in variants:
    model = random_model(types=("Li", "La", "O"), seed=2, n_max=(3, 2), basis=(5, 4),
                         neurons=6, cutoffs=(4.5, 3.5), **kw)
    frames = structures(model.types, 4, 1)
    if model.temperature:  # each structure at its own temperature, GPUMD's scaler
        model.q_scaler[-1] = 0.001
        frames = [f + ((True,) * 3, 200.0 + 300.0 * k) for k, f in enumerate(frames)]
    batch = TrainingBatch.from_structures(frames)
    S, A = batch.num_structures, int(batch.atom_offsets[-1])
    alpha = rng.normal(size=S)
    fadj = rng.normal(size=(A, 3))
    vadj = rng.normal(size=(S, 9))
    params = model.parameters.copy()
    g_cpu, p_cpu = linear_functional_gradient(model, batch, alpha, fadj, vadj,
                                              parameters=params, return_predictions=True)
    scale = np.abs(g_cpu).max()
    sel = np.arange(S, dtype=np.intc)
    for float64, tol in ((True, 1e-10), (False, 1e-4)):
        ts = _cuda.CudaTrainingSet(model_spec(model), batch.types, batch.positions,
                                   batch.cells, batch.pbc, batch.atom_offsets, float64=float64,
                                   temperatures=batch.temperatures)
        g, e, f, w = ts.run(params, sel, alpha, fadj.ravel(), vadj.ravel())
        err = np.abs(g - g_cpu).max() / scale
        assert err <= tol, (kw, float64, "gradient", err)
        ftol = 1e-10 if float64 else 1e-4
        for got, want in ((e, p_cpu.energy), (f, p_cpu.forces), (w, p_cpu.virial)):
            assert np.abs(got - want).max() <= ftol * max(1, np.abs(want).max()), (kw, float64)
        # a subset in another order: the same numbers for those structures
        sub = np.array([2, 0], dtype=np.intc)
        off = batch.atom_offsets
        atoms = np.concatenate([np.arange(off[s], off[s + 1]) for s in sub])
        g2, e2, f2, w2 = ts.run(params, sub, alpha[sub], fadj[atoms].ravel(), vadj[sub].ravel())
        assert np.array_equal(e2, e[sub]) and np.array_equal(f2, f[atoms]), (kw, "subset")
        sub_batch = TrainingBatch.from_structures([frames[s] for s in sub])
        g2_cpu = linear_functional_gradient(model, sub_batch, alpha[sub], fadj[atoms],
                                            vadj[sub], parameters=params)
        assert np.abs(g2 - g2_cpu).max() <= tol * np.abs(g2_cpu).max(), (kw, "subset gradient")
        # reproducible bit for bit
        g3, _, _, _ = ts.run(params, sel, alpha, fadj.ravel(), vadj.ravel())
        assert np.array_equal(g, g3)
        # the gradient alone (no forces' terms, pass 2 over the angular pairs): the same
        # operations, in the default and in the warp kernel (the same bits in host
        # emulation; a device compiler may fuse the separate loop's products differently)
        for gradient_kernel in (0, 3):
            ts.set_kernels(True, gradient_kernel)
            g_with = ts.run(params, sel, alpha, fadj.ravel(), vadj.ravel())[0]
            alone = ts.run(params, sel, alpha, fadj.ravel(), vadj.ravel(),
                           want_predictions=False)
            assert alone[1:] == (None, None, None), kw
            err = np.abs(alone[0] - g_with).max() / np.abs(g_with).max()
            assert err <= 1e-13, (kw, gradient_kernel, "gradient alone", err)
        ts.set_kernels()
        # each thread's work arrays and gradient row contiguous (the earlier layout): the
        # same bits but for the gradient, whose rows are then summed in another order
        ts.set_interleaved(False)
        g4, e4, f4, w4 = ts.run(params, sel, alpha, fadj.ravel(), vadj.ravel())
        pe4 = ts.predict_population(params[None, :] + np.zeros((2, 1)), sub)[0]
        ts.set_interleaved(True)
        assert np.array_equal(f, f4) and np.array_equal(w, w4), kw
        assert np.abs(g - g4).max() <= 1e-13 * np.abs(g).max(), kw
        # several tiles (as a large set runs), in both layouts and with the warp kernel's
        # blocks capped alike: the same predictions, the gradient up to its sums' order
        ts.set_tile(7)
        for interleaved, gradient_kernel in ((True, 0), (False, 0), (True, 3)):
            ts.set_interleaved(interleaved)
            ts.set_kernels(True, gradient_kernel)
            g8, e8, f8, w8 = ts.run(params, sel, alpha, fadj.ravel(), vadj.ravel())
            assert np.abs(g8 - g).max() <= 1e-13 * np.abs(g).max(), (kw, interleaved)
            assert np.abs(f8 - f).max() <= 1e-2 * tol * max(1.0, np.abs(f).max()), kw
            assert np.abs(e8 - e).max() <= 1e-2 * tol * max(1.0, np.abs(e).max()), kw
        ts.set_tile(1 << 30)
        ts.set_interleaved(True)
        ts.set_kernels()
        assert np.array_equal(pe4[0], e[sub]) and np.array_equal(pe4[1], e[sub]), kw
        # the same numbers from the other kernel choices: predictions in the gradient kernel
        # instead of their own, the gradient in the 16-warp, the unbounded or the warp kernel
        # (the warp kernel sums the gradient per atom before adding it, and rows per warp;
        # on a device the compiler may fuse a product and a sum differently in each
        # specialisation: round-off, so a tolerance far below tol)
        def same(a, b):
            return np.abs(a - b).max() <= 1e-2 * tol * max(1.0, np.abs(b).max())
        _, e7, f7, w7 = ts.run(params, sub, want_gradient=False)
        for predict_kernel, wide in ((False, 0), (True, 1), (False, 1), (True, 2), (True, 3),
                                     (False, 3)):
            ts.set_kernels(predict_kernel, wide)
            g5, e5, f5, w5 = ts.run(params, sel, alpha, fadj.ravel(), vadj.ravel())
            _, e6, f6, w6 = ts.run(params, sub, want_gradient=False)
            ts.set_kernels()
            assert same(g5, g) and same(e5, e) and same(f5, f) and same(w5, w), (kw, wide)
            assert same(e6, e7) and same(f6, f7) and same(w6, w7), (kw, predict_kernel)
            assert same(e7, e[sub]), kw
        # a population in one call: each member as its own call
        pop = params + 0.01 * rng.normal(size=(3, params.size))
        pe, pf, pw = ts.predict_population(pop, sub)
        for k in range(3):
            _, e1, f1, w1 = ts.run(pop[k], sub, want_gradient=False)
            assert np.array_equal(pe[k], e1) and np.array_equal(pf[k], f1), (kw, "population")
            assert np.array_equal(pw[k], w1), (kw, "population virial")
        # the same bits when the memory budget splits the population into launches of one
        # candidate each, or of four and one
        pop5 = params + 0.01 * rng.normal(size=(5, params.size))
        e5, f5, w5 = ts.predict_population(pop5, sub)
        for budget in (1, ts.device_bytes // 2):
            ts.set_population_budget(budget)
            e3, f3, w3 = ts.predict_population(pop5, sub)
            assert np.array_equal(e3, e5) and np.array_equal(f3, f5), (kw, "budget", budget)
            assert np.array_equal(w3, w5), (kw, "budget virial", budget)
        ts.set_population_budget(1 << 30)
        # each atom's pairs in the neighbour list's order instead of its neighbours' type
        # order: the same numbers up to the order of the sums over an atom's pairs
        listed = _cuda.CudaTrainingSet(model_spec(model), batch.types, batch.positions,
                                       batch.cells, batch.pbc, batch.atom_offsets,
                                       float64=float64, temperatures=batch.temperatures,
                                       pair_order="list")
        for gradient_kernel in (0, 3):
            listed.set_kernels(True, gradient_kernel)
            g9, e9, f9, w9 = listed.run(params, sel, alpha, fadj.ravel(), vadj.ravel())
            assert same(g9, g) and same(e9, e) and same(f9, f) and same(w9, w), (kw, "pairs")
        del listed
    try:
        _cuda.CudaTrainingSet(model_spec(model), batch.types, batch.positions, batch.cells,
                              batch.pbc, batch.atom_offsets, pair_order="spatial")
    except ValueError as error:
        assert "pair_order must be one of type, list, not 'spatial'" in str(error), error
    else:
        raise AssertionError("an unknown pair order was accepted")
    # finite differences of Phi = alpha.E + a.F + B:W in float64 (central, 1e-6 relative)
    ts = _cuda.CudaTrainingSet(model_spec(model), batch.types, batch.positions, batch.cells,
                               batch.pbc, batch.atom_offsets, float64=True,
                               temperatures=batch.temperatures)
    g, _, _, _ = ts.run(params, sel, alpha, fadj.ravel(), vadj.ravel())
    def phi(z):
        _, e, f, w = ts.run(z, sel, want_gradient=False)
        return alpha @ e + np.sum(fadj * f) + np.sum(vadj * w.reshape(S, 9))
    for k in rng.choice(params.size, 6, replace=False):
        h = 1e-5 * max(1.0, abs(params[k]))
        zp, zm = params.copy(), params.copy()
        zp[k] += h
        zm[k] -= h
        fd = (phi(zp) - phi(zm)) / (2 * h)
        assert abs(fd - g[k]) <= 1e-6 * max(1.0, abs(fd)), (kw, "finite difference", k, fd, g[k])
print("training emulation ok")  # (also printed on a real GPU)
'''

_TRAIN_CHECK = r'''
import numpy as np
import sys
sys.path.insert(0, sys.argv[1])
from test_trainer import _structures, NEP_IN
from nepzbl_plugin.io.nep_in import parse_nep_in
from nepzbl_plugin.train import train

structures = _structures()
nep_in = parse_nep_in(NEP_IN)


def same_run(what, test_structures=None, **kw):
    """The final loss of one run (seed 3) on the CPU and on the GPU: equal within float32."""
    losses = {}
    for device in ("cpu", "cuda"):
        model, history = train(structures[:4], nep_in, test_structures, seed=3, resume=False,
                               log=None, device=device, **kw)
        losses[device] = history.records[-1]["loss"]
        if test_structures is not None:
            assert history.records[-1].get("rmse_force_test") is not None
    assert abs(losses["cuda"] - losses["cpu"]) / losses["cpu"] < 1e-4, (what, losses)
    return losses


losses = same_run("adam", structures[4:], optimizer="adam", epochs=8, batch_size=2,
                  report_interval=4, polish_after=0)
# SNES: the population and its losses on the device in one launch sequence per generation
snes = same_run("snes", optimizer="snes", epochs=4, report_interval=2)
# full-batch L-BFGS: loss and gradient in one call to the device per evaluation
lbfgs = same_run("lbfgs", optimizer="lbfgs", epochs=6, report_interval=3)
# the same outputs and checkpoint: half the run on the GPU, resumed on the CPU
import tempfile
from pathlib import Path
with tempfile.TemporaryDirectory() as folder:
    common = dict(optimizer="adam", seed=3, batch_size=2, report_interval=4, polish_after=0,
                  output_dir=folder, log=None)
    train(structures[:4], nep_in, structures[4:], epochs=4, device="cuda", **common)
    names = {p.name for p in Path(folder).iterdir()}
    for name in ("nep.txt", "loss.out", "energy_train.out", "force_train.out",
                 "energy_test.out", "nepzbl_restart.json"):
        assert name in names, (name, names)
    model, history = train(structures[:4], nep_in, structures[4:], epochs=8, device="cpu",
                           **common)
    resumed = history.records[-1]["loss"]
assert abs(resumed - losses["cpu"]) / losses["cpu"] < 1e-4, (resumed, losses)
# no optimizer named: on the GPU a set this small trains with full-batch L-BFGS
messages = []
_, history = train(structures[:4], nep_in, seed=3, resume=False, log=messages.append,
                   device="cuda", epochs=3, report_interval=3)
assert any("all 40 atoms of the training set" in m and "full-batch L-BFGS" in m
           for m in messages), messages
assert history.records[-1]["updates"] == 3, history.records[-1]
print("training run ok", losses, snes, lbfgs, resumed)
'''


_LOSS_CHECK = r'''
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_trainer import _structures
from nepzbl_plugin.testing import random_model
from nepzbl_plugin.train._backend import EngineBackend
from nepzbl_plugin.train.cuda_backend import CudaBackend
from nepzbl_plugin.train.loss import Labels, Loss, LossWeights
from nepzbl_plugin.train.optimizers import Adam
from nepzbl_plugin.train.trainer import _global_mask

rng = np.random.default_rng(11)
structs = _structures(6, seed=1)
for k, st in enumerate(structs):  # every weight of the loss away from its default
    st.weight = 1.0 + 0.25 * k
    st.energy_weight = 0.5 if k == 1 else 1.0
    st.forces = st.forces + rng.normal(0, 0.05, st.forces.shape)
    st.energy += rng.normal(0, 0.1)
model = random_model(types=("Li", "O"), zbl="universal", flags=(0,) * 6, n_max=(3, 3),
                     basis=(4, 4), neurons=5, cutoffs=(4.0, 3.0), seed=7, zbl_outer=1.5)
P = model.num_parameters
labels = Labels.from_structures(structs, model.types)
weights = LossWeights(num_types=2, lambda_v=0.3, lambda_shear=1.7, force_delta=0.5,
                      type_weight=[1.0, 1.5]).resolved(P)
loss = Loss(weights, model.parameter_types(), _global_mask(model))
cpu = EngineBackend(model, structs)
params = model.parameters.copy()
NAMES = ("total", "l1", "l2", "energy", "force", "virial")
SCALARS = ("shift", "rmse_energy", "rmse_force", "rmse_virial")


def same_loss(got, want, tol, what):
    for name in NAMES:
        a, b = getattr(got, name), getattr(want, name)
        assert np.abs(a - b).max() <= tol * max(1e-12, np.abs(b).max()), (what, name, a, b)
    for name in SCALARS:
        a, b = getattr(got, name), getattr(want, name)
        assert abs(a - b) <= tol * max(1e-12, abs(b)), (what, name, a, b)


def host(z, idx):
    sub = labels.subset(idx)
    pred = cpu.predict(z, idx)
    return loss.evaluate(sub, pred, z), cpu.gradient(z, idx, loss.adjoints(sub, pred, z))


for precision, tol in (("float64", 1e-10), ("float32", 1e-4)):
    gpu = CudaBackend(model, structs, precision=precision)
    gpu.attach_loss(labels, loss)
    for idx in (np.arange(6), np.array([4, 1, 3])):
        want, g_want = host(params, idx)
        got, g = gpu.loss_and_gradient(params, idx)
        same_loss(got, want, tol, (precision, "loss", idx))
        err = np.abs(g - g_want).max() / np.abs(g_want).max()
        assert err <= tol, (precision, "gradient", idx, err)
        again, g2 = gpu.loss_and_gradient(params, idx)
        assert np.array_equal(g, g2) and again.value == got.value, "reproducible bit for bit"
        pop = params + 0.01 * rng.normal(size=(4, P))
        for z, value in zip(pop, gpu.population_losses(pop, idx), strict=True):
            same_loss(value, host(z, idx)[0], tol, (precision, "population", idx))
    if precision == "float32":
        continue
    # the exact gradient of the whole loss: central finite differences
    idx = np.arange(6)
    _, g = gpu.loss_and_gradient(params, idx)
    for k in rng.choice(P, 8, replace=False):
        h = 1e-6 * max(1.0, abs(params[k]))
        zp, zm = params.copy(), params.copy()
        zp[k] += h
        zm[k] -= h
        fd = (gpu.loss_and_gradient(zp, idx, False)[0].value
              - gpu.loss_and_gradient(zm, idx, False)[0].value) / (2 * h)
        assert abs(fd - g[k]) <= 1e-6 * max(1.0, abs(fd)), ("finite difference", k, fd, g[k])
    # Adam on the device against the host Adam, AdamW decay included. The host Adam steps on
    # this backend's own gradient (checked against the CPU above): Adam divides by sqrt(v), so
    # a component whose gradient is round-off turns a 1e-16 difference into a step of the
    # learning rate, and a device's FMA contraction differs from the CPU's in exactly those
    # bits (on an H200 the loss after two steps on the CPU's gradients was 1.1e-9 off). With
    # the same gradients, what is compared is DeviceAdam's update alone.
    adam_host = Adam(P, learning_rate=1e-2, weight_decay=0.01, decay_mask=loss.parameter_types < 2)
    adam_dev = Adam(P, learning_rate=1e-2, weight_decay=0.01, decay_mask=loss.parameter_types < 2)
    z_host, z_dev = params.copy(), params.copy()
    device = gpu.device_adam(adam_dev, z_dev)
    for step, idx in enumerate([np.array([0, 2]), np.array([1, 3, 5]), np.array([4])] * 3):
        want, g_want = gpu.loss_and_gradient(z_host, idx)
        adam_host.learning_rate = adam_dev.learning_rate = 1e-2 / (1 + step)
        adam_host.step(z_host, g_want)
        got, updated = device.step(idx)
        assert updated
        same_loss(got, want, 1e-9, ("adam", step))
    device.pull()
    assert adam_dev.step_count == adam_host.step_count == 9
    for a, b, what in ((z_dev, z_host, "parameters"), (adam_dev.m, adam_host.m, "m"),
                       (adam_dev.v, adam_host.v, "v")):
        assert np.abs(a - b).max() <= 1e-9 * np.abs(b).max(), what
    # a non-finite loss makes no update and says so
    bad = Labels.from_structures(structs, model.types)
    bad.energy[2] = np.nan
    gpu_bad = CudaBackend(model, structs, precision=precision)
    gpu_bad.attach_loss(bad, loss)
    adam_bad = Adam(P, learning_rate=1e-2)
    z_bad = params.copy()
    device = gpu_bad.device_adam(adam_bad, z_bad)
    value, updated = device.step(np.arange(6))
    assert not updated and not value.is_finite() and adam_bad.step_count == 0
    device.pull()
    assert np.array_equal(z_bad, params)
print("device loss ok")
'''


_TUNING_CHECK = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_trainer import _structures, NEP_IN
from nepzbl_plugin.errors import InputError
from nepzbl_plugin.io.nep_in import parse_nep_in
from nepzbl_plugin.testing import random_model
from nepzbl_plugin.train import train
from nepzbl_plugin.train.cuda_backend import KERNELS, TUNING_MARGIN, CudaBackend
from nepzbl_plugin.train.loss import Labels, Loss, LossWeights
from nepzbl_plugin.train.trainer import _global_mask

structs = _structures(6, seed=1)
model = random_model(types=("Li", "O"), zbl="universal", flags=(0,) * 6, n_max=(3, 3),
                     basis=(4, 4), neurons=5, cutoffs=(4.0, 3.0), seed=7, zbl_outer=1.5)
params = model.parameters.copy()
backend = CudaBackend(model, structs, precision="float64")
try:
    backend.tune_kernels(params, [0])
except ValueError as error:
    assert "attach_loss" in str(error), error
else:
    raise AssertionError("tune_kernels ran without a loss")
weights = LossWeights(num_types=2).resolved(model.num_parameters)
backend.attach_loss(Labels.from_structures(structs, model.types),
                    Loss(weights, model.parameter_types(), _global_mask(model)))
assert backend.kernels == "thread"
try:
    backend.use_kernels("block")
except ValueError as error:
    assert "thread, thread-wide, thread-unbounded, warp-gradient, warp" in str(error), error
else:
    raise AssertionError("an unknown kernel name was accepted")

# every choice: the same loss and gradient up to the order of float64 sums
want_value, want = backend.loss_and_gradient(params, [0, 2, 3])
for name in KERNELS:
    backend.use_kernels(name)
    assert backend.kernels == name
    value, got = backend.loss_and_gradient(params, [0, 2, 3])
    assert abs(value.value - want_value.value) <= 1e-12 * abs(want_value.value), name
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max(), name
backend.set_kernels(False, "default")  # a combination without a name
assert backend.kernels is None


class Clock:
    # each reading advances by the cost (s) of the kernels in use: a call between two
    # readings then takes exactly that
    def __init__(self, costs):
        self.costs, self.now = costs, 0.0

    def __call__(self):
        self.now += self.costs.get(backend.kernels, 0.0)
        return self.now


def tuned(**faster):
    costs = {name: 1e-3 for name in KERNELS}
    costs.update(faster)
    return backend.tune_kernels(params, [1, 4], clock=Clock(costs))


t = tuned(warp=0.4e-3, **{"warp-gradient": 0.5e-3})
assert t.chosen == "warp" and backend.kernels == "warp", t
want_ms = {**{n: 1.0 for n in KERNELS}, "warp-gradient": 0.5, "warp": 0.4}
assert all(abs(t.ms_per_call[n] - ms) < 1e-9 for n, ms in want_ms.items()), t
assert (t.structures, t.atoms) == (2, len(structs[1].symbols) + len(structs[4].symbols)), t
assert t.describe().startswith("GPU kernels for calls of 2 structures ("), t.describe()
assert "warp, 0.4 ms a call (thread kernels 1 ms); timed 5 choices" in t.describe(), t.describe()
# within the margin the earlier choice stays: the default, not the noise's pick
t = tuned(warp=(1 - 0.5 * TUNING_MARGIN) * 1e-3)
assert t.chosen == "thread" and backend.kernels == "thread", t
assert t.describe().endswith(" s") and "thread kernels" not in t.describe(), t.describe()
# a call over 0.2 s is timed once after its warm-up: 4 readings a choice instead of 8
clock = Clock({name: 0.3 for name in KERNELS})
backend.tune_kernels(params, [0], clock=clock)
assert abs(clock.now - 0.3 * (2 + 4 * len(KERNELS))) < 1e-9, clock.now
t = backend.tune_kernels(params, [0, 1, 2])  # the real clock
assert t.chosen in KERNELS and backend.kernels == t.chosen and set(t.ms_per_call) == set(KERNELS)
assert all(ms > 0 for ms in t.ms_per_call.values()), t

# the trainer: one tuning per phase, logged; a named choice is used as named, the same numbers
nep_in = parse_nep_in(NEP_IN)
run = dict(seed=3, resume=False, device="cuda", optimizer="adam", epochs=4, batch_size=2,
           report_interval=2, polish_after=0)
messages = []
_, history = train(structs[:4], nep_in, log=messages.append, **run)
assert len(history.kernel_tunings) == 1, history.kernel_tunings
assert history.kernel_tunings[0].structures == 2, history.kernel_tunings
assert sum(m.startswith("GPU kernels for calls of 2 structures (") for m in messages) == 1, messages
losses = {}
for name in ("thread", "warp"):  # with a test set, whose reports use the same choice
    _, history = train(structs[:4], nep_in, structs[4:], log=None, gpu_kernels=name, **run)
    assert history.kernel_tunings == [], name
    losses[name] = [history.records[-1][key] for key in ("loss", "rmse_force_test")]
assert np.allclose(losses["warp"], losses["thread"], rtol=1e-9, atol=0), losses
_, history = train(structs[:4], nep_in, log=None, **{**run, "optimizer": "lbfgs"})
assert [t.structures for t in history.kernel_tunings] == [4], history.kernel_tunings
_, history = train(structs[:4], nep_in, log=None, **{**run, "optimizer": "snes"})
assert history.kernel_tunings == [], "SNES's population has its own kernel"
_, history = train(structs[:4], nep_in, log=None, **{**run, "device": "cpu"})
assert history.kernel_tunings == []
try:
    train(structs[:4], nep_in, log=None, gpu_kernels="block", **run)
except InputError as error:
    assert "gpu_kernels must be 'auto' or one of thread," in str(error), error
else:
    raise AssertionError("an unknown gpu_kernels was accepted")
print("kernel tuning ok")
"""


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    from cuda_emulation import emulated_package

    return emulated_package(tmp_path_factory)


def _run(emulated, script, *args):
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=emulated,
                            env={**os.environ, "PYTHONPATH": str(emulated)},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_gradient_matches_cpu_in_host_emulation(emulated):
    """float64 to 1e-10 and float32 to 1e-4 of the CPU gradient for nep3/4/5, every
    optional invariant, l_max 4/6/8, both ZBL forms; predictions; subsets; reproducibility;
    finite differences."""
    assert "training emulation ok" in _run(emulated, _CHECK)


@pytest.mark.slow
def test_cpu_and_gpu_runs_end_at_the_same_loss(emulated):
    """The same seed on the CPU and on the (emulated) GPU: the same loss within float32."""
    pytest.importorskip("ase")
    assert "training run ok" in _run(emulated, _TRAIN_CHECK, str(REPO / "tests"))


@pytest.mark.slow
def test_loss_and_adam_on_the_device_match_the_host_in_host_emulation(emulated):
    """GPUMD's loss, its adjoints and Adam on the device (cext/nep_train_loss.h) against the
    numpy loss and optimiser: every λ, weight and force_delta away from its default, subsets,
    SNES populations; float64 to 1e-10, float32 to 1e-4; finite differences of the loss;
    nine Adam(W) steps; a non-finite loss makes no update."""
    assert "device loss ok" in _run(emulated, _LOSS_CHECK, str(REPO / "tests"))


@pytest.mark.slow
def test_gpu_kernels_are_timed_and_chosen_in_host_emulation(emulated):
    """CudaBackend.tune_kernels keeps the fastest choice (a clock made to order: beyond the
    margin, within it, a slow call timed once), every choice gives the same numbers, and the
    trainer times its kernels once a phase on the GPU (a named choice is used as named)."""
    pytest.importorskip("ase")
    assert "kernel tuning ok" in _run(emulated, _TUNING_CHECK, str(REPO / "tests"))


@pytest.mark.gpu
def test_gpu_kernels_are_timed_and_chosen_on_the_gpu():
    pytest.importorskip("ase")
    assert "kernel tuning ok" in _run(_imported_package_root(), _TUNING_CHECK,
                                      str(REPO / "tests"))


def test_device_keyword():
    assert parse_nep_in("type 1 H\ndevice cuda\n").device == "cuda"
    assert parse_nep_in("type 1 H\n").device is None
    with pytest.raises(NepFormatError, match="device"):
        parse_nep_in("type 1 H\ndevice tpu\n")


def test_cpu_device_uses_the_engine_backend():
    from nepzbl_plugin.testing import random_model
    from nepzbl_plugin.train._backend import EngineBackend
    from nepzbl_plugin.train.cuda_backend import make_backend

    model = random_model(types=("Li", "O"), seed=1)
    assert isinstance(make_backend("cpu", model, []), EngineBackend)
    with pytest.raises(ValueError, match="device"):
        make_backend("tpu", model, [])


def _imported_package_root() -> Path:
    import nepzbl_plugin

    return Path(nepzbl_plugin.__file__).absolute().parents[1]


@pytest.mark.gpu
def test_gradient_matches_cpu_on_the_gpu():
    """The same checks on a real device, with the CUDA extension as imported."""
    assert "training emulation ok" in _run(_imported_package_root(), _CHECK)


@pytest.mark.gpu
def test_cpu_and_gpu_runs_end_at_the_same_loss_on_the_gpu():
    pytest.importorskip("ase")
    assert "training run ok" in _run(_imported_package_root(), _TRAIN_CHECK, str(REPO / "tests"))


@pytest.mark.gpu
def test_loss_and_adam_on_the_gpu_match_the_host():
    assert "device loss ok" in _run(_imported_package_root(), _LOSS_CHECK, str(REPO / "tests"))


def test_device_cuda_without_a_gpu_is_one_clear_error(tmp_path, capsys):
    from nepzbl_plugin.cli import main
    from nepzbl_plugin.train.cuda_backend import cuda_training_available

    if cuda_training_available():
        pytest.skip("a GPU is present")
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from test_trainer import _structures, _write_inputs
    finally:
        sys.path.pop(0)
    _write_inputs(tmp_path, _structures(3))
    assert main(["train", str(tmp_path), "--no-progress", "--device", "cuda",
                 "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cuda" in err[0].lower() and "Traceback" not in err[0]
    assert main(["train", str(tmp_path), "--no-progress", "--device", "tpu"]) == 2
    assert "--device" in capsys.readouterr().err
    assert main(["train", str(tmp_path), "--no-progress", "--gpu-kernels", "block"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nepzbl: error: --gpu-kernels 'block': choose auto or one of thread, "
                   "thread-wide, thread-unbounded, warp-gradient, warp"], err


_OVERLAP_CHECK = r'''
import sys
from nepzbl_plugin.errors import EngineError
from nepzbl_plugin.io.nep_in import parse_nep_in
from nepzbl_plugin.io.xyz import parse_train_xyz, format_train_xyz
from nepzbl_plugin.model import Model
from nepzbl_plugin.train.cuda_backend import CudaBackend
sys.path.insert(0, sys.argv[1])
from test_trainer import _structures, NEP_IN
structs = _structures()[:3]
structs[2].positions[3] = structs[2].positions[1]
structs = parse_train_xyz(format_train_xyz(structs), source="frames.xyz")
model = Model.from_nep_in(parse_nep_in(NEP_IN))
try:
    CudaBackend(model, structs)
except EngineError as error:
    assert error.structure == 2, error.structure
    assert str(error).startswith(f"{structs[2].source}: uploading the training set"), str(error)
    assert "same position" in str(error), str(error)
    print("overlap named ok")
'''


@pytest.mark.slow
def test_upload_names_the_frame_of_two_atoms_at_one_place_in_host_emulation(emulated):
    """The GPU's training set is built once: a frame with two atoms at one place is refused
    there, and the error names the file and the frame's line, as on the CPU."""
    assert "overlap named ok" in _run(emulated, _OVERLAP_CHECK, str(REPO / "tests"))
