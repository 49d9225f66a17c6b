"""The CUDA engine against the CPU engine (its contract), plus the no-GPU behaviour.

GPU tests are marked ``gpu`` and skipped without a device (tests/conftest.py). Tolerances:
float64 1e-10 relative energy and 1e-9 eV/Angstrom (eV) forces (virials); float32 1e-6
relative energy and 1e-5 relative force RMS.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import shared_file

from nepzbl_plugin.engine import Evaluator
from nepzbl_plugin.engine.cuda import CudaEvaluator, CudaUnavailableError, cuda_available
from nepzbl_plugin.errors import EngineError
from nepzbl_plugin.testing import random_model

ALL = ("energy", "energies", "forces", "virial", "virials", "descriptors", "latent", "zbl")


# ---------------------------------------------------------------------- structures
def _species(atoms: Atoms, types, rng) -> Atoms:
    atoms.set_chemical_symbols([types[k] for k in rng.integers(0, len(types), len(atoms))])
    return atoms


def _random_cell_atoms(cell, n, rng, min_dist=1.2, pbc=True) -> Atoms:
    """n atoms at random fractional positions, no two closer than min_dist (periodic)."""
    cell = np.asarray(cell, dtype=float)
    atoms = Atoms(cell=cell, pbc=pbc)
    while len(atoms) < n:
        trial = atoms.copy()
        trial.append("H")
        trial.positions[-1] = rng.random(3) @ cell
        if len(trial) == 1:
            atoms = trial
        elif trial.get_distances(-1, range(len(trial) - 1), mic=True).min() > min_dist:
            atoms = trial
    return atoms


def structure(kind: str, types, seed: int = 0) -> Atoms:
    rng = np.random.default_rng(seed)
    if kind == "bulk":
        atoms = bulk("Cu", "fcc", a=4.1, cubic=True).repeat((2, 2, 2))
        atoms.rattle(0.1, seed=seed)
    elif kind == "triclinic":
        atoms = _random_cell_atoms([[7.0, 0, 0], [2.1, 6.8, 0], [1.3, -1.7, 7.2]], 30, rng)
    elif kind == "small":  # thinner than the cutoff: many periodic images of each atom
        atoms = _random_cell_atoms([[2.9, 0, 0], [0.8, 3.1, 0], [0.3, 0.5, 3.3]], 2, rng)
    elif kind == "slab":
        atoms = bulk("Cu", "fcc", a=4.1, cubic=True).repeat((2, 2, 2))
        atoms.rattle(0.1, seed=seed)
        atoms.center(vacuum=4.0, axis=2)
        atoms.pbc = (True, True, False)
    elif kind == "molecule":  # no cell at all
        atoms = _random_cell_atoms(np.eye(3) * 5.0, 10, rng, pbc=False)
        atoms.cell = np.zeros((3, 3))
    elif kind == "zbl":  # one pair deep in the ZBL core, one in the switching region
        atoms = bulk("Cu", "fcc", a=4.1, cubic=True).repeat((2, 2, 2))
        atoms.rattle(0.05, seed=seed)
        atoms.positions[1] = atoms.positions[0] + [0.75, 0.2, 0.1]
        atoms.positions[5] = atoms.positions[4] + [0.0, 1.3, 0.2]
    elif kind == "unwrapped":  # periodic, with atoms several cells outside the box
        atoms = _random_cell_atoms([[7.0, 0, 0], [2.1, 6.8, 0], [1.3, -1.7, 7.2]], 30, rng)
        shifts = rng.integers(-3, 4, size=(len(atoms), 3))
        atoms.positions += shifts @ atoms.cell.array
    elif kind == "outside":  # open boundaries, atoms far outside a non-zero cell
        atoms = _random_cell_atoms(np.eye(3) * 5.0, 10, rng, pbc=False)
        atoms.positions += [-40.0, 25.0, 60.0]
    elif kind == "big_box":  # a molecule in a huge open box: the cell list is coarsened
        atoms = _random_cell_atoms(np.eye(3) * 5.0, 10, rng, pbc=False)
        atoms.cell = np.eye(3) * 5000.0
    else:
        raise ValueError(kind)
    return _species(atoms, types, rng)


STRUCTURES = ("bulk", "triclinic", "small", "slab", "molecule", "zbl", "unwrapped", "outside",
              "big_box")

GENERATED = {
    "nep4": dict(version=4),
    "nep3_zbl_universal": dict(version=3, zbl="universal"),
    "nep4_zbl_typewise": dict(version=4, zbl="typewise", types=("Li", "La", "O")),
    "nep5_zbl_flexible": dict(version=5, zbl="flexible", types=("Li", "Zr", "O")),
    "all_invariants": dict(flags=(0, 1, 1, 1, 1, 1), l_max=4),
    "l8_big_basis": dict(l_max=8, basis=(12, 12), n_max=(5, 3), flags=(2, 1, 0, 0, 0, 0)),
    "per_type_cutoffs": dict(types=("Li", "O"), cutoffs=([5.0, 4.2], [4.0, 3.2]),
                             zbl="universal"),
}

SHARED = {
    "llzo_nep802_zbl": ("llzo", "NEP802-ZBL.txt"),
    "llzo_nep802": ("llzo", "NEP802.txt"),
    "C_nep4": ("models", "C_2022_NEP4.txt"),
    "PbTe_nep4": ("models", "PbTe_NEP4.txt"),
    "Si_5body": ("models", "Si_2022_NEP4_5body.txt"),
}


def _model(name):
    if name in GENERATED:
        return random_model(seed=3, **GENERATED[name])
    from nepzbl_plugin import read_model

    return read_model(shared_file(*SHARED[name]))


def _assert_matches(gpu: dict, cpu: dict, energy_rel=1e-10, atol=1e-9):
    e_scale = max(abs(cpu["energy"]), 1.0)
    assert abs(gpu["energy"] - cpu["energy"]) <= energy_rel * e_scale
    for key in ("energies", "forces", "virial", "virials", "forces_zbl", "virial_zbl",
                "energies_zbl", "descriptors", "latent"):
        if key in cpu:
            np.testing.assert_allclose(gpu[key], cpu[key], rtol=0, atol=atol, err_msg=key)
    if "energy_zbl" in cpu:
        assert abs(gpu["energy_zbl"] - cpu["energy_zbl"]) <= energy_rel * e_scale


# ---------------------------------------------------------------------- without a GPU
def test_import_never_needs_a_gpu():
    import nepzbl_plugin.engine.cuda as cuda_engine

    assert isinstance(cuda_engine.cuda_available(), bool)
    assert cuda_engine.device_count() >= 0


def test_device_count_does_not_crash():
    try:
        from nepzbl_plugin import _cuda
    except ImportError:
        pytest.skip("the CUDA extension is not built")
    assert _cuda.device_count() >= 0


@pytest.mark.skipif(cuda_available(), reason="a GPU is present")
def test_no_gpu_raises_a_clear_error():
    model = random_model()
    with pytest.raises(CudaUnavailableError, match="CUDA"):
        CudaEvaluator(model)
    with pytest.raises(RuntimeError, match="CUDA"):
        Evaluator(model, device="cuda")


@pytest.mark.skipif(cuda_available(), reason="a GPU is present")
def test_auto_falls_back_to_cpu():
    ev = Evaluator(random_model(), device="auto")
    assert ev.device == "cpu"
    out = ev.evaluate(structure("bulk", ("Li", "O")), ("energy",))
    assert np.isfinite(out["energy"])


def test_missing_extension_is_a_clear_error(monkeypatch):
    import nepzbl_plugin
    import nepzbl_plugin.engine.cuda as cuda_engine

    monkeypatch.setitem(sys.modules, "nepzbl_plugin._cuda", None)  # as if never built
    monkeypatch.delattr(nepzbl_plugin, "_cuda", raising=False)
    assert not cuda_engine.cuda_available()
    with pytest.raises(CudaUnavailableError, match="not built"):
        CudaEvaluator(random_model())
    assert Evaluator(random_model(), device="auto").device == "cpu"


def test_bad_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        CudaEvaluator(random_model(), precision="half")


# ---------------------------------------------------------------------- GPU vs CPU
@pytest.mark.gpu
@pytest.mark.parametrize("model_name", list(GENERATED) + list(SHARED))
@pytest.mark.parametrize("kind", STRUCTURES)
def test_float64_matches_cpu(model_name, kind):
    model = _model(model_name)
    atoms = structure(kind, model.types, seed=len(kind))
    cpu = Evaluator(model, device="cpu").evaluate(atoms, ALL)
    gpu = CudaEvaluator(model, precision="float64").evaluate(atoms, ALL)
    _assert_matches(gpu, cpu)


@pytest.mark.gpu
@pytest.mark.parametrize("model_name", ["llzo_nep802_zbl", "nep5_zbl_flexible", "all_invariants"])
@pytest.mark.parametrize("kind", ["bulk", "triclinic", "zbl"])
def test_float32_close_to_cpu(model_name, kind):
    model = _model(model_name)
    atoms = structure(kind, model.types, seed=7)
    props = ("energy", "forces", "virial")
    cpu = Evaluator(model, device="cpu").evaluate(atoms, props)
    gpu = CudaEvaluator(model, precision="float32").evaluate(atoms, props)
    assert abs(gpu["energy"] - cpu["energy"]) <= 1e-6 * abs(cpu["energy"])
    rms = np.sqrt(np.mean((gpu["forces"] - cpu["forces"]) ** 2))
    assert rms <= 1e-5 * np.sqrt(np.mean(cpu["forces"] ** 2))


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_run_twice_identical(precision):
    model = _model("llzo_nep802_zbl")
    atoms = structure("triclinic", model.types, seed=1)
    first = CudaEvaluator(model, precision=precision).evaluate(atoms, ALL)
    ev = CudaEvaluator(model, precision=precision)
    second = ev.evaluate(atoms, ALL)
    third = ev.evaluate(atoms, ALL)  # reuses the neighbour list
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
        np.testing.assert_array_equal(first[key], third[key], err_msg=key)


@pytest.mark.gpu
def test_verlet_skin_reuse_and_rebuild():
    model = _model("llzo_nep802_zbl")
    atoms = structure("bulk", model.types, seed=2)
    ev = CudaEvaluator(model, precision="float64", skin=1.0)
    ev.evaluate(atoms)
    assert ev.num_builds == 1
    rng = np.random.default_rng(0)
    for _ in range(3):  # small moves: the list is reused and results stay exact
        atoms.positions += rng.uniform(-0.05, 0.05, atoms.positions.shape)
        out = ev.evaluate(atoms, ("energy", "forces", "virial"))
        ref = Evaluator(model).evaluate(atoms, ("energy", "forces", "virial"))
        _assert_matches(out, ref)
    assert ev.num_builds == 1
    atoms.positions[3] += [0.6, 0.0, 0.0]  # more than half the skin: rebuild
    out = ev.evaluate(atoms)
    assert ev.num_builds == 2
    _assert_matches(out, Evaluator(model).evaluate(atoms))
    atoms.set_cell(atoms.cell.array * 1.01, scale_atoms=True)  # new cell: rebuild
    out = ev.evaluate(atoms)
    assert ev.num_builds == 3
    _assert_matches(out, Evaluator(model).evaluate(atoms))
    other = structure("triclinic", model.types, seed=5)  # other atoms: rebuild
    _assert_matches(ev.evaluate(other), Evaluator(model).evaluate(other))
    assert ev.num_builds == 4


@pytest.mark.gpu
def test_batch_matches_single_calls():
    model = _model("nep4_zbl_typewise")
    structures = [structure(kind, model.types, seed=k) for k, kind in enumerate(STRUCTURES)]
    ev = CudaEvaluator(model, precision="float64")
    many = ev.evaluate_many(structures, ALL)
    cpu = Evaluator(model).evaluate_many(structures, ALL)
    for gpu_out, cpu_out in zip(many, cpu, strict=True):
        _assert_matches(gpu_out, cpu_out)


@pytest.mark.gpu
def test_update_parameters_and_evaluator_device():
    model = _model("nep5_zbl_flexible")
    atoms = structure("triclinic", model.types, seed=4)
    ev = CudaEvaluator(model, precision="float64")
    ev.evaluate(atoms)
    noise = np.random.default_rng(0).standard_normal(model.parameters.size)
    new = model.parameters * (1.0 + 0.01 * noise)
    ev.update_parameters(new)
    cpu = Evaluator(model)
    cpu.update_parameters(new)
    _assert_matches(ev.evaluate(atoms, ALL), cpu.evaluate(atoms, ALL))
    assert Evaluator(model, device="auto").device == "cuda"


@pytest.mark.gpu
def test_engine_errors_are_clear():
    model = _model("llzo_nep802_zbl")
    atoms = structure("bulk", model.types, seed=0)
    atoms.positions[1] = atoms.positions[0]
    ev = CudaEvaluator(model, precision="float64")
    with pytest.raises(EngineError, match="same position"):
        ev.evaluate(atoms)
    atoms = structure("bulk", model.types, seed=0)
    atoms.positions[2, 0] = np.nan
    with pytest.raises(EngineError, match="NaN"):
        ev.evaluate(atoms)
    good = ev.evaluate(structure("bulk", model.types, seed=0))  # usable after errors
    assert np.isfinite(good["energy"])
    assert ev.device_bytes > 0


# ---------------------------------------------------------------------- without a GPU, again
_EMULATION_CHECK = """
import numpy as np
from ase.build import bulk
from nepzbl_plugin import _cuda
from nepzbl_plugin.engine.cuda import CudaEvaluator
from nepzbl_plugin.engine import Evaluator
from nepzbl_plugin.testing import random_model

assert _cuda.device_count() == 1, "not the emulated build"
props = ("energy", "energies", "forces", "virial", "virials", "descriptors", "latent", "zbl")
variants = (dict(version=4, zbl="universal"),
            dict(version=5, zbl="flexible", flags=(0, 1, 1, 1, 1, 1)),
            dict(version=4, zbl="universal", neurons_second=6))  # k_network2
for kw in variants:
    model = random_model(types=("Li", "La", "O"), seed=1, **kw)
    wanted = tuple(p for p in props if p != "latent" or not model.n_neurons_second)
    atoms = bulk("Cu", "fcc", a=4.0, cubic=True).repeat((2, 2, 1))
    atoms.rattle(0.1, seed=2)
    atoms.positions[1] = atoms.positions[0] + [0.8, 0.3, 0.1]
    atoms.set_chemical_symbols([model.types[k % 3] for k in range(len(atoms))])
    cpu = Evaluator(model).evaluate(atoms, wanted)
    for precision, tol in (("float64", 1e-9), ("float32", 2e-3)):
        gpu = CudaEvaluator(model, precision=precision).evaluate(atoms, wanted)
        assert abs(gpu["energy"] - cpu["energy"]) <= tol * abs(cpu["energy"]), precision
        for key in ("forces", "virial", "virials", "forces_zbl", "descriptors", "latent"):
            if key not in cpu:
                continue
            scale = max(1.0, np.abs(cpu[key]).max())
            assert np.abs(gpu[key] - cpu[key]).max() <= tol * scale, (precision, key)
# a temperature model (nep4_zbl_temperature): every structure of a batch at its own temperature
model = random_model(types=("Li", "La", "O"), seed=4, zbl="universal", temperature=True)
model.q_scaler[-1] = 0.001
frames = []
for k, t in enumerate((150.0, 1250.0)):
    atoms = bulk("Cu", "fcc", a=4.0, cubic=True).repeat((2, 2, 1))
    atoms.rattle(0.1, seed=5 + k)
    atoms.set_chemical_symbols([model.types[j % 3] for j in range(len(atoms))])
    atoms.info["temperature"] = t
    frames.append(atoms)
cpu = Evaluator(model).evaluate_many(frames, props)
for precision, tol in (("float64", 1e-9), ("float32", 2e-3)):
    gpu = CudaEvaluator(model, precision=precision).evaluate_many(frames, props)
    for c, g in zip(cpu, gpu):
        assert abs(g["energy"] - c["energy"]) <= tol * abs(c["energy"]), precision
        for key in ("forces", "virial", "descriptors", "latent"):
            scale = max(1.0, np.abs(c[key]).max())
            assert np.abs(g[key] - c[key]).max() <= tol * scale, (precision, key)
assert abs(cpu[0]["energy"] - cpu[1]["energy"]) > 1e-3
# the longest descriptor the kernels' per-thread dU/dq holds (NEPCU_MAX_DIM): 20 radial,
# 20 channels of 8 three-body blocks and the 6 optional invariants, and the temperature
model = random_model(types=("Li", "O"), seed=6, flags=(2, 1, 1, 1, 1, 1), l_max=8,
                     n_max=(19, 19), basis=(3, 3), neurons=4, temperature=True)
assert model.descriptor_dim == 301, model.descriptor_dim
model.q_scaler[-1] = 0.001
atoms = frames[0].copy()
atoms.set_chemical_symbols([model.types[j % 2] for j in range(len(atoms))])
cpu = Evaluator(model).evaluate(atoms, ("energy", "forces", "virial"))
gpu = CudaEvaluator(model, precision="float64").evaluate(atoms, ("energy", "forces", "virial"))
for key in ("energy", "forces", "virial"):
    scale = max(1.0, np.abs(cpu[key]).max())
    assert np.abs(gpu[key] - cpu[key]).max() <= 1e-9 * scale, ("longest descriptor", key)
print("emulation ok")
"""


@pytest.mark.slow
def test_cuda_sources_in_host_emulation(tmp_path_factory, tmp_path):
    """Compile the CUDA engine's own sources for the host (-DNEPCU_HOST_EMULATION: kernels
    as plain loops) and compare with the CPU engine, so that the CUDA sources are checked on
    machines without a GPU."""
    from cuda_emulation import run_emulated

    result = run_emulated(tmp_path_factory, _EMULATION_CHECK, tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "emulation ok" in result.stdout
