"""Small runs of every CUDA code path, for a GPU machine: under compute-sanitizer (memcheck,
racecheck, initcheck, synccheck; see tools/device_sanitize.sh) they show out-of-bounds and
unset-memory reads, shared-memory races and barrier misuse, which the host emulation of the
tests cannot. Each section prints "ok <name>"; the numbers are checked loosely (the gpu-marked
tests compare them with the CPU engine properly).

    PYTHONPATH=.:.device/site python3 tools/device_checks.py [--tiny]

--tiny: fewer atoms and steps (for the slow sanitizer tools).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # test_trainer's labelled structures

from ase import Atoms, units  # noqa: E402
from ase.build import bulk  # noqa: E402

from nepzbl_plugin import _cuda  # noqa: E402
from nepzbl_plugin.engine import Evaluator  # noqa: E402
from nepzbl_plugin.engine.base import model_spec  # noqa: E402
from nepzbl_plugin.md import EngineForces, run_md  # noqa: E402
from nepzbl_plugin.md.cuda_loop import DeviceMSD, DeviceRDF, cuda_model_of  # noqa: E402
from nepzbl_plugin.md.observers import DistanceMonitor  # noqa: E402
from nepzbl_plugin.testing import random_model  # noqa: E402
from nepzbl_plugin.train.gradient import TrainingBatch  # noqa: E402

TINY = "--tiny" in sys.argv
assert _cuda.device_count() >= 1, "no CUDA device"


def crystal(model, seed, repeat):
    atoms = bulk("Cu", "fcc", a=4.0, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=seed)
    atoms.set_chemical_symbols([model.types[(j + seed) % len(model.types)]
                                for j in range(len(atoms))])
    return atoms


def engine():
    """Every output of the engine, one- and two-layer networks, both precisions, a batch of
    structures of different sizes, a cell-less molecule and an empty structure."""
    props = ("energy", "energies", "forces", "virial", "virials", "descriptors", "latent", "zbl")
    for kw in (dict(version=4, zbl="universal"),
               dict(version=5, zbl="flexible", flags=(2, 1, 1, 1, 1, 1), l_max=6),
               dict(version=4, zbl="universal", neurons_second=6)):
        model = random_model(types=("Li", "La", "O"), seed=1, scale=0.3, **kw)
        wanted = tuple(p for p in props if p != "latent" or not model.n_neurons_second)
        frames = [crystal(model, k, (2, 2, 1 + k % 2)) for k in range(3)]
        molecule = Atoms(list(frames[0].symbols[:8]), positions=frames[0].positions[:8] * 1.1)
        frames.append(molecule)
        cpu = Evaluator(model).evaluate_many(frames, ("energy", "forces"))
        for precision, tol in (("float64", 1e-8), ("float32", 1e-2)):
            gpu = Evaluator(model, device="cuda", precision=precision)
            for _ in range(2):  # the second call reuses the list and the buffers
                got = gpu.evaluate_many(frames, wanted)
            for g, c in zip(got, cpu, strict=True):
                assert abs(g["energy"] - c["energy"]) <= tol * max(1.0, abs(c["energy"]))
                assert np.abs(g["forces"] - c["forces"]).max() <= tol * max(
                    1.0, np.abs(c["forces"]).max())
    print("ok engine", flush=True)


def training():
    """The training kernels: gradient run, subset, population (split by the budget too),
    then the device loss, its gradient and Adam steps."""
    from test_trainer import _structures

    from nepzbl_plugin.train.cuda_backend import CudaBackend
    from nepzbl_plugin.train.loss import Labels, Loss, LossWeights
    from nepzbl_plugin.train.optimizers import Adam
    from nepzbl_plugin.train.trainer import _global_mask

    model = random_model(types=("Li", "La", "O"), seed=2, n_max=(3, 2), basis=(5, 4),
                         neurons=6, cutoffs=(4.5, 3.5), version=5, zbl="universal",
                         flags=(2, 1, 0, 0, 0, 0))
    rng = np.random.default_rng(3)
    frames = []
    for k in range(2 if TINY else 4):
        atoms = crystal(model, k, (1, 1, 2))
        frames.append((np.array([model.types.index(s) for s in atoms.get_chemical_symbols()],
                                np.int32), atoms.positions, atoms.cell.array))
    batch = TrainingBatch.from_structures(frames)
    S, A = batch.num_structures, int(batch.atom_offsets[-1])
    params = model.parameters.copy()
    for float64 in (True, False):
        ts = _cuda.CudaTrainingSet(model_spec(model), batch.types, batch.positions, batch.cells,
                                   batch.pbc, batch.atom_offsets, float64=float64,
                                   temperatures=batch.temperatures)
        g, e, f, w = ts.run(params, np.arange(S, dtype=np.intc), rng.normal(size=S),
                            rng.normal(size=3 * A), rng.normal(size=9 * S))
        assert np.all(np.isfinite(g)) and np.all(np.isfinite(f))
        sub = np.array([S - 1, 0], dtype=np.intc)
        ts.run(params, sub, want_gradient=False)
        pop = params + 0.01 * rng.normal(size=(3, params.size))
        e3, _, _ = ts.predict_population(pop, sub)
        ts.set_population_budget(1)
        e1, _, _ = ts.predict_population(pop, sub)
        assert np.array_equal(e1, e3)
    structs = _structures(3 if TINY else 6, seed=1)
    model = random_model(types=("Li", "O"), zbl="universal", flags=(0,) * 6, n_max=(3, 3),
                         basis=(4, 4), neurons=5, cutoffs=(4.0, 3.0), seed=7, zbl_outer=1.5)
    labels = Labels.from_structures(structs, model.types)
    weights = LossWeights(num_types=2, lambda_v=0.3).resolved(model.num_parameters)
    loss = Loss(weights, model.parameter_types(), _global_mask(model))
    params = model.parameters.copy()
    for precision in ("float64", "float32"):
        gpu = CudaBackend(model, structs, precision=precision)
        gpu.attach_loss(labels, loss)
        idx = np.arange(len(structs))
        value, grad = gpu.loss_and_gradient(params, idx)
        assert value.is_finite() and np.all(np.isfinite(grad))
        gpu.population_losses(params + 0.01 * rng.normal(size=(4, params.size)), idx[::-1])
        adam = Adam(model.num_parameters, learning_rate=1e-2)
        z = params.copy()
        device = gpu.device_adam(adam, z)
        for step in range(3):
            device.step(idx[step % len(idx):])
        device.pull()
        assert np.all(np.isfinite(z))
    print("ok training", flush=True)


def md():
    """The device MD loop: Bussi and an anisotropic SCR barostat with the device observers,
    Langevin, a cell-less cluster, and another evaluation on the run's model between runs."""
    model = random_model(types=("Li", "La", "O"), seed=1, version=4, zbl="universal", scale=0.3)
    steps = 6 if TINY else 20
    for ensemble, extra in (("npt-scr-aniso", dict(pressure=(1.0, 2.0, 3.0), tau_pressure=50.0)),
                            ("nvt-langevin", dict(tau_temperature=20.0))):
        atoms = crystal(model, 2, (2, 2, 2))
        evaluator = Evaluator(model, device="cuda", precision="float64")
        observers = [DeviceRDF(r_max=4.0, bins=40, every=3), DeviceMSD(every=3),
                     DistanceMonitor(0.2, every=3, stop=False)]
        result = run_md(atoms, EngineForces(evaluator, atoms), steps=steps, timestep=1.0,
                        ensemble=ensemble, temperature=600.0, seed=5, observers=observers,
                        **extra)
        assert result.steps_done == steps and result.stopped is None, result.stopped
    rng = np.random.default_rng(4)
    grid = np.array([(x, y, z) for x in range(3) for y in range(2) for z in range(2)], float)
    cluster = Atoms([model.types[k % 3] for k in range(len(grid))],
                    positions=2.1 * grid + rng.normal(0, 0.05, grid.shape), pbc=False)
    evaluator = Evaluator(model, device="cuda", precision="float64")
    result = run_md(cluster, EngineForces(evaluator, cluster), steps=steps, timestep=1.0,
                    ensemble="nvt-bussi", temperature=400.0, tau_temperature=20.0, seed=3)
    assert result.steps_done == steps and result.stopped is None, result.stopped
    atoms = crystal(model, 3, (2, 2, 1))
    forces = EngineForces(evaluator, atoms)
    loop = _cuda.CudaMD(cuda_model_of(forces), forces.types, atoms.get_masses(), atoms.positions,
                        rng.normal(0, 0.005, (len(atoms), 3)), atoms.cell.array, atoms.pbc,
                        dt=units.fs, dof=3 * len(atoms) - 3)
    loop.run(3)
    evaluator.evaluate(crystal(model, 4, (3, 3, 2)))  # reallocates the buffers under the loop
    loop.run(3)
    loop.rdf_setup(4.0, 20)
    loop.rdf_sample()
    assert loop.rdf_counts()[0].sum() > 0 and np.isfinite(loop.state()["energy"])
    print("ok md", flush=True)


for section in (engine, training, md):
    section()
print("device checks ok")
