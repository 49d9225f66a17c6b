"""The device-resident MD loop (cext/nep_cuda_md.cu, nepzbl_plugin/md/cuda_loop.py).

Without a GPU the loop's own sources run in the host emulation (tests/cuda_emulation.py), so
these tests check the CUDA code everywhere: deterministic ensembles against the CPU run_md to
round-off, the stochastic thermostats by their statistics and reproducibility, the collapse
stop, and the on-device RDF and MSD accumulators against nepzbl_plugin.analysis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cuda_emulation import run_emulated

# "emulated": the CUDA sources built for the host (everywhere); "device": the installed
# extension on a real GPU (skipped without one, see conftest.py)
WHERE = ["emulated", pytest.param("device", marks=pytest.mark.gpu)]


def _run(where, script, tmp_path_factory, tmp_path):
    if where == "emulated":
        result = run_emulated(tmp_path_factory, script, tmp_path)
    else:
        import nepzbl_plugin

        # the package as imported: installed in CI, the tree in development
        root = str(Path(nepzbl_plugin.__file__).absolute().parents[1])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": path}, capture_output=True,
                                text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.split("RESULT", 1)[1])

_PRELUDE = """
import json
import numpy as np
from ase.build import bulk
from nepzbl_plugin import _cuda
from nepzbl_plugin.engine import Evaluator
from nepzbl_plugin.md import EngineForces, ThermoLog, run_md
from nepzbl_plugin.testing import random_model

assert _cuda.device_count() >= 1, "no CUDA device (emulated or real)"
model = random_model(types=("Li", "La", "O"), seed=1, version=4, zbl="universal", scale=0.3)


def structure(seed=2, repeat=(2, 2, 1)):
    atoms = bulk("Cu", "fcc", a=4.0, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=seed)
    atoms.set_chemical_symbols([model.types[k % 3] for k in range(len(atoms))])
    return atoms


class Keep:
    def __init__(self, every):
        self.every = every
        self.frames = []

    def __call__(self, frame):
        self.frames.append(frame)


def run(device, atoms, **kw):
    evaluator = Evaluator(model, device=device, precision="float64")
    return run_md(atoms, EngineForces(evaluator, atoms), **kw)
"""

_DETERMINISTIC = _PRELUDE + """
out = {}
for ensemble, extra in (("nve", {}), ("nvt-berendsen", dict(tau_temperature=20.0)),
                        ("npt-berendsen", dict(pressure=2.0, tau_pressure=50.0)),
                        ("npt-berendsen-aniso", dict(pressure=(1.0, 2.0, 3.0), tau_pressure=50.0))):
    atoms = structure()
    kept = {}
    results = {}
    for device in ("cpu", "cuda"):
        keep = Keep(5)
        thermo = ThermoLog(every=5)
        results[device] = run(device, atoms, steps=30, timestep=1.0, ensemble=ensemble,
                              temperature=600.0, seed=7, observers=[keep, thermo], **extra)
        kept[device] = (keep, thermo)
    cpu, gpu = results["cpu"], results["cuda"]
    assert gpu.extra.get("device") == "cuda" and cpu.steps_done == gpu.steps_done == 30
    position_error = max(np.abs(a.positions - b.positions).max()
                         for a, b in zip(kept["cpu"][0].frames, kept["cuda"][0].frames))
    velocity_error = max(np.abs(a.velocities_per_fs - b.velocities_per_fs).max()
                         for a, b in zip(kept["cpu"][0].frames, kept["cuda"][0].frames))
    thermo_error = np.abs(kept["cpu"][1].rows - kept["cuda"][1].rows).max()
    cell_error = np.abs(cpu.atoms.cell.array - gpu.atoms.cell.array).max()
    moved = float(np.abs(gpu.atoms.cell.array - atoms.cell.array).max())
    out[ensemble] = dict(position=float(position_error), velocity=float(velocity_error),
                         thermo=float(thermo_error), cell=float(cell_error), cell_moved=moved,
                         drift=[cpu.energy_drift_per_atom, gpu.energy_drift_per_atom])
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", WHERE)
def test_deterministic_ensembles_match_cpu_run_md(where, tmp_path_factory, tmp_path):
    """NVE, Berendsen NVT and Berendsen NPT (iso and aniso) have no noise: the device loop
    must follow the CPU engine's trajectory to float64 round-off."""
    out = _run(where, _DETERMINISTIC, tmp_path_factory, tmp_path)
    for ensemble, errors in out.items():
        assert errors["position"] < 1e-9, (ensemble, errors)
        assert errors["velocity"] < 1e-9, (ensemble, errors)
        assert errors["cell"] < 1e-9, (ensemble, errors)
        assert errors["thermo"] < 1e-6, (ensemble, errors)  # rows hold GPa, K, eV, Å
    assert out["npt-berendsen"]["cell_moved"] > 1e-3 and out["nve"]["cell_moved"] == 0.0
    assert out["npt-berendsen-aniso"]["cell_moved"] > 1e-3


_TEMPERATURE_MODEL = _PRELUDE + """
# a temperature model: the device loop feeds every step's target, as run_md on the CPU does
from nepzbl_plugin.md import TemperatureSchedule
model = random_model(types=("Li", "La", "O"), seed=1, version=4, zbl="universal", scale=0.3,
                     temperature=True)
model.q_scaler[-1] = 0.001
atoms = structure()
frames = {}
for device in ("cpu", "cuda"):
    keep = Keep(5)
    run(device, atoms, steps=30, timestep=1.0, ensemble="nvt-berendsen", tau_temperature=20.0,
        temperature=TemperatureSchedule.linear(300.0, 1500.0, 30), seed=7, observers=[keep])
    frames[device] = keep.frames
error = max(np.abs(a.positions - b.positions).max() + abs(a.potential_energy - b.potential_energy)
            for a, b in zip(frames["cpu"], frames["cuda"]))
print("RESULT" + json.dumps(dict(error=float(error), frames=len(frames["cuda"]))))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", WHERE)
def test_temperature_model_follows_the_ramp_on_the_device(where, tmp_path_factory, tmp_path):
    """A nep4_temperature model under a 300 -> 1500 K ramp: the device loop's energies and
    positions equal the CPU run's to float64 round-off (each step gets its target)."""
    out = _run(where, _TEMPERATURE_MODEL, tmp_path_factory, tmp_path)
    assert out["frames"] == 7 and out["error"] < 1e-9, out


_STOCHASTIC = _PRELUDE + """
out = {}
atoms = structure(repeat=(2, 2, 2))
for ensemble in ("nvt-langevin", "nvt-bussi", "npt-scr", "npt-scr-aniso"):
    runs = []
    for seed in (11, 11, 12):
        thermo = ThermoLog(every=2)
        result = run("cuda", atoms, steps=400, timestep=1.0, ensemble=ensemble,
                     temperature=800.0, tau_temperature=10.0, tau_pressure=100.0, seed=seed,
                     observers=[thermo])
        runs.append((result, thermo.column("T_K"), thermo.rows))
    temperatures = runs[0][1][len(runs[0][1]) // 4:]
    out[ensemble] = dict(mean=float(temperatures.mean()), steps=runs[0][0].steps_done,
                         same_seed_identical=bool(np.array_equal(runs[0][2], runs[1][2])),
                         other_seed_differs=not bool(np.array_equal(runs[0][2], runs[2][2])),
                         volume_changes=bool(np.ptp(runs[0][2][:, 16]) > 0))
# a linear ramp: the Bussi thermostat follows the target
thermo = ThermoLog(every=10)
from nepzbl_plugin.md import TemperatureSchedule
run("cuda", atoms, steps=600, timestep=1.0, ensemble="nvt-bussi",
    temperature=TemperatureSchedule.linear(300.0, 1500.0, 600), tau_temperature=10.0, seed=3,
    observers=[thermo])
t = thermo.column("T_K")
out["ramp"] = dict(early=float(t[5:15].mean()), late=float(t[-10:].mean()))
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", WHERE)
def test_stochastic_thermostats_statistics_and_reproducibility(where, tmp_path_factory, tmp_path):
    out = _run(where, _STOCHASTIC, tmp_path_factory, tmp_path)
    for ensemble in ("nvt-langevin", "nvt-bussi", "npt-scr", "npt-scr-aniso"):
        got = out[ensemble]
        assert got["steps"] == 400, (ensemble, got)
        # 32 atoms: the instantaneous temperature fluctuates by about 15%; the mean of 300
        # correlated samples is within a few percent of the target
        assert abs(got["mean"] - 800.0) < 0.12 * 800.0, (ensemble, got)
        assert got["same_seed_identical"] and got["other_seed_differs"], (ensemble, got)
    assert out["npt-scr"]["volume_changes"] and out["npt-scr-aniso"]["volume_changes"]
    assert out["ramp"]["early"] < 700.0 < 1200.0 < out["ramp"]["late"], out["ramp"]


_OBSERVERS = _PRELUDE + """
from nepzbl_plugin.analysis import RDF
from nepzbl_plugin.analysis.msd import msd_per_axis
from nepzbl_plugin.md import DistanceMonitor
from nepzbl_plugin.md.cuda_loop import DeviceMSD, DeviceRDF
from nepzbl_plugin.md.observers import pair_min_distances

out = {}
atoms = structure(repeat=(2, 2, 2))
keep = Keep(10)
rdf = DeviceRDF(r_max=4.5, bins=45, every=10)
msd = DeviceMSD(every=10)
monitor = DistanceMonitor(0.2, every=10, stop=False)
run("cuda", atoms, steps=40, timestep=1.0, ensemble="nvt-langevin", temperature=900.0,
    tau_temperature=20.0, seed=5, observers=[keep, rdf, msd, monitor])
frames = [f.atoms(wrap=True) for f in keep.frames]
reference = RDF(r_max=4.5, bins=45, species=rdf.species).compute(frames)
out["rdf_error"] = max(float(np.abs(reference.rdf[k] - rdf.rdf[k]).max()) for k in rdf.rdf)
out["rdf_nonzero"] = bool(any(np.any(g > 0) for g in rdf.rdf.values()))
positions = np.array([f.positions for f in keep.frames])
symbols = np.array(keep.frames[0].symbols)
worst = 0.0
for k, (step, values) in enumerate(msd.history):
    for s, value in values.items():
        ref = msd_per_axis(positions[[0, k]][:, symbols == s], 2)[1]
        worst = max(worst, float(np.abs(ref - value).max()))
out["msd_error"] = worst
out["msd_positive"] = bool(msd.history[-1][1]["Li"].sum() > 0)
dist_error = 0.0
for (step, device), frame in zip(monitor.history, keep.frames):
    ref = pair_min_distances(frame.atoms(wrap=True), monitor.species, 3.0)
    for key, value in ref.items():
        if np.isfinite(value):
            dist_error = max(dist_error, abs(value - device[key]))
out["distance_error"] = dist_error

# collapse: two atoms sent at each other; both loops stop at the same step
atoms = structure()
velocities = np.zeros((len(atoms), 3))
bond = atoms.positions[1] - atoms.positions[0]
velocities[0] = 0.5 * bond
velocities[1] = -0.5 * bond
atoms.set_velocities(velocities)
start = float(np.linalg.norm(bond))
stops = {}
for device in ("cpu", "cuda"):
    monitor = DistanceMonitor(start - 0.4, every=1)
    result = run(device, atoms, steps=200, timestep=0.5, ensemble="nve", observers=[monitor])
    stops[device] = (result.steps_done, result.stopped)
out["stops"] = stops
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", WHERE)
def test_device_observers_match_the_analysis_package(where, tmp_path_factory, tmp_path):
    out = _run(where, _OBSERVERS, tmp_path_factory, tmp_path)
    assert out["rdf_nonzero"]
    assert out["rdf_error"] < 1e-9, out
    assert out["msd_error"] < 1e-10 and out["msd_positive"], out
    assert out["distance_error"] < 1e-10, out
    cpu, gpu = out["stops"]["cpu"], out["stops"]["cuda"]
    assert cpu[1] is not None and "collapse" in cpu[1], cpu
    assert gpu == cpu, (gpu, cpu)


_CLI = _PRELUDE + """
import subprocess, sys
from pathlib import Path

model.write("nep.txt")
structure().write("start.xyz")
rows = {}
for device in ("cpu", "cuda"):
    done = subprocess.run([sys.executable, "-m", "nepzbl_plugin", "md", "nep.txt", "start.xyz",
                           "--ensemble", "nve", "--temperature", "500", "--steps", "20",
                           "--every", "5", "--seed", "3", "--device", device, "--out", device,
                           "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    rows[device] = np.loadtxt(Path(device) / "thermo.txt")
    frames = Path(device, "trajectory.xyz").read_text().count("Lattice=")
    assert frames == 5, frames
print("RESULT" + json.dumps({"thermo": float(np.abs(rows["cpu"] - rows["cuda"]).max()),
                             "rows": len(rows["cuda"])}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", WHERE)
def test_nepzbl_md_device_cuda_writes_the_cpu_outputs(where, tmp_path_factory, tmp_path):
    """`nepzbl md --device cuda` goes through the device loop and writes the same thermo.txt
    and trajectory.xyz as the CPU engine (NVE: equal to round-off)."""
    out = _run(where, _CLI, tmp_path_factory, tmp_path)
    assert out["rows"] == 5
    assert out["thermo"] < 1e-6, out


_MOLECULE = _PRELUDE + """
from ase import Atoms

# a cluster without a cell (the engine bins it by the atoms' extent, which the device loop
# reads from device positions): the CPU run_md's trajectory to round-off
rng = np.random.default_rng(4)
grid = np.array([(x, y, z) for x in range(3) for y in range(2) for z in range(2)], float)
molecule = Atoms([model.types[k % 3] for k in range(len(grid))],
                 positions=2.1 * grid + rng.normal(0, 0.05, grid.shape), pbc=False)
assert abs(np.linalg.det(molecule.cell.array)) == 0.0
out = {}
for ensemble, extra in (("nve", {}), ("nvt-berendsen", dict(tau_temperature=20.0))):
    kept = {}
    for device in ("cpu", "cuda"):
        keep = Keep(5)
        run(device, molecule, steps=20, timestep=1.0, ensemble=ensemble, temperature=400.0,
            seed=3, observers=[keep], **extra)
        kept[device] = keep.frames
    out[ensemble] = max(float(np.abs(a.positions - b.positions).max())
                        for a, b in zip(kept["cpu"], kept["cuda"]))
    out[ensemble + "_moved"] = float(np.abs(kept["cuda"][-1].positions
                                            - molecule.positions).max())
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", WHERE)
def test_molecule_without_a_cell_on_the_device_loop(where, tmp_path_factory, tmp_path):
    """A cell-less cluster on the device loop: its binning lattice follows the atoms' extent,
    which needs the positions on the host (a host read of the device array crashes on a
    GPU, while the emulation, whose device memory is host memory, cannot tell)."""
    out = _run(where, _MOLECULE, tmp_path_factory, tmp_path)
    for ensemble in ("nve", "nvt-berendsen"):
        assert out[ensemble] < 1e-9, out
        assert out[ensemble + "_moved"] > 1e-3, out


_SHARED_MODEL = _PRELUDE + """
from ase import units
from nepzbl_plugin.md.cuda_loop import cuda_model_of

atoms = structure()
rng = np.random.default_rng(8)
velocities = rng.normal(0, 0.005, (len(atoms), 3))
masses = atoms.get_masses()


def start(evaluator):
    forces = EngineForces(evaluator, atoms)
    return _cuda.CudaMD(cuda_model_of(forces), forces.types, masses, atoms.positions,
                        velocities, atoms.cell.array, atoms.pbc, dt=units.fs,
                        dof=3 * len(atoms) - 3)


alone = start(Evaluator(model, device="cuda", precision="float64"))
alone.run(10)
shared_evaluator = Evaluator(model, device="cuda", precision="float64")
shared = start(shared_evaluator)
shared.run(5)
# the same CudaModel evaluates a bigger structure between two run() calls: its buffers are
# reused and reallocated under the loop, which must notice and evaluate its forces again
shared_evaluator.evaluate(structure(seed=9, repeat=(3, 3, 2)))
shared.run(5)
a, b = alone.state(), shared.state()
rdf_counts = []
for md in (alone, shared):
    shared_evaluator.evaluate(structure(seed=10, repeat=(2, 2, 3)))
    md.rdf_setup(4.0, 20)
    md.rdf_sample()
    rdf_counts.append(md.rdf_counts()[0])
out = {key: float(np.abs(np.asarray(a[key]) - np.asarray(b[key])).max())
       for key in ("positions", "velocities", "energy", "virial")}
out["rdf"] = float(np.abs(rdf_counts[0] - rdf_counts[1]).max())
out["rdf_total"] = float(rdf_counts[0].sum())
out["moved"] = float(np.abs(a["positions"] - atoms.positions).max())
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", WHERE)
def test_device_loop_survives_other_use_of_its_model(where, tmp_path_factory, tmp_path):
    """Another evaluation on the run's CudaModel between run() calls (it reuses, and for a
    bigger structure reallocates, the buffers the loop's forces and list point into): the
    trajectory and the observers are those of an undisturbed run, bit for bit."""
    out = _run(where, _SHARED_MODEL, tmp_path_factory, tmp_path)
    assert out["moved"] > 1e-4, out
    for key in ("positions", "velocities", "energy", "virial", "rdf"):
        assert out[key] == 0.0, out
    assert out["rdf_total"] > 0, out
