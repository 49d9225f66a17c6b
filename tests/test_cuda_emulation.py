"""The host emulation of the CUDA sources (cext/nep_cuda_emulation.cuh) made as strict as a
device where it can be, and the CUDA code checked under it for what a plain sequential run
cannot show:

* launches a device refuses (0 blocks, more than 2^31 - 1 blocks, 0 or more than 1024
  threads) run nothing and leave cudaErrorInvalidConfiguration for cudaGetLastError;
* kernels with __syncthreads run each block's threads as fibers that wait at every barrier,
  so that a thread reads what the others wrote before the barrier, and nothing after it;
* NEPCU_EMU_REVERSE=1 runs every launch's blocks and threads last first: the engine, the
  training kernels and the MD loop must give the same bits as in the forward order, which
  they do only if no thread reads what another thread of the same launch writes;
* the gpu-marked tests, which skip on a machine without a GPU, run and pass against the
  emulated package, so that a Python slip in them cannot first show on a lent device.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cuda_emulation import emulated_package, run_emulated

REPO = Path(__file__).resolve().parents[1]

_LAUNCHES = r"""
#include <stdio.h>
#include "nep_cuda_internal.cuh"

static int runs[8], rotated[8];

__global__ void k_count(int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) runs[i] += 1;
}

/* each thread reads its neighbour's shared value: right only if every thread of the block has
 * written before any reads, that is with a working barrier */
__global__ void k_rotate(int *out)
{
    __shared__ int value[4];
    const int t = threadIdx.x;
    value[t] = 10 * (int)blockIdx.x + t;
    __syncthreads();
    const int next = value[(t + 1) % 4];
    __syncthreads();
    value[t] = -1; /* the next block's barrier must not let its threads read these */
    out[4 * blockIdx.x + t] = next;
}

int main()
{
    int bad = 0;
    NEPCU_LAUNCH(k_count, 0, 32, nullptr, 8);           /* no blocks */
    bad += cudaGetLastError() != cudaErrorInvalidConfiguration;
    bad += cudaGetLastError() != cudaSuccess;            /* read once, then cleared */
    NEPCU_LAUNCH(k_count, 1, 1025, nullptr, 8);          /* too many threads */
    bad += cudaGetLastError() != cudaErrorInvalidConfiguration;
    NEPCU_LAUNCH(k_count, 1, 0, nullptr, 8);             /* no threads */
    bad += cudaGetLastError() != cudaErrorInvalidConfiguration;
    NEPCU_LAUNCH(k_count, 2147483648LL, 1, nullptr, 8);  /* more blocks than a grid holds */
    bad += cudaGetLastError() != cudaErrorInvalidConfiguration;
    for (int k = 0; k < 8; ++k) bad += runs[k] != 0;     /* none of them ran */
    NEPCU_LAUNCH(k_count, 3, 3, nullptr, 8);             /* 9 threads for 8 entries */
    bad += cudaGetLastError() != cudaSuccess;
    for (int k = 0; k < 8; ++k) bad += runs[k] != 1;
    NEPCU_LAUNCH_BARRIERS(k_rotate, 2, 4, nullptr, rotated);
    bad += cudaGetLastError() != cudaSuccess;
    for (int k = 0; k < 8; ++k) bad += rotated[k] != 10 * (k / 4) + (k + 1) % 4;
    printf("%d\n", bad);
    return 0;
}
"""


def test_emulation_launches_as_a_device_does(tmp_path):
    """Refused launches leave cudaErrorInvalidConfiguration and run nothing; a barrier makes
    every thread of a block wait for the others; the same in the reversed order."""
    if not shutil.which("g++"):
        pytest.skip("needs g++")
    source = tmp_path / "launches.cu"
    source.write_text(_LAUNCHES)
    exe = tmp_path / "launches"
    subprocess.run(["g++", "-O0", "-std=c++17", "-x", "c++", "-DNEPCU_HOST_EMULATION",
                    f"-I{REPO / 'cext'}", str(source), "-o", str(exe)], check=True)
    for reverse in ("0", "1"):
        done = subprocess.run([str(exe)], capture_output=True, text=True,
                              env={"NEPCU_EMU_REVERSE": reverse}, check=True)
        assert done.stdout.strip() == "0", (reverse, done.stdout)
        # each refusal is named on stderr, so that an unchecked one shows in a test's output
        assert done.stderr.count("invalid launch of k_count") == 4, done.stderr


_SAME_BITS = r"""
import hashlib
import numpy as np
from ase.build import bulk
from nepzbl_plugin import _cuda
from nepzbl_plugin.engine import Evaluator
from nepzbl_plugin.engine.base import model_spec
from nepzbl_plugin.md import EngineForces, run_md
from nepzbl_plugin.md.cuda_loop import DeviceMSD, DeviceRDF
from nepzbl_plugin.md.observers import DistanceMonitor
from nepzbl_plugin.testing import random_model
from nepzbl_plugin.train.gradient import TrainingBatch

assert _cuda.device_count() == 1, "not the emulated build"
digest = hashlib.sha256()


def add(*arrays):
    for a in arrays:
        digest.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())


model = random_model(types=("Li", "La", "O"), seed=1, version=4, zbl="universal", scale=0.3)
frames = []
for k in range(3):
    atoms = bulk("Cu", "fcc", a=4.0, cubic=True).repeat((2, 2, 1 + k % 2))
    atoms.rattle(0.05, seed=k)
    atoms.set_chemical_symbols([model.types[(j + k) % 3] for j in range(len(atoms))])
    frames.append(atoms)
# the engine: a batch of structures of different sizes, both precisions
for precision in ("float64", "float32"):
    evaluator = Evaluator(model, device="cuda", precision=precision)
    for r in evaluator.evaluate_many(frames, ("energy", "forces", "virials", "descriptors")):
        add(r["energy"], r["forces"], r["virials"], r["descriptors"])
# the training kernels: gradient, predictions and a population
structures = [(np.array([model.types.index(s) for s in a.get_chemical_symbols()], np.int32),
               a.positions, a.cell.array) for a in frames]
batch = TrainingBatch.from_structures(structures)
S, A = batch.num_structures, int(batch.atom_offsets[-1])
rng = np.random.default_rng(3)
alpha, fadj, vadj = rng.normal(size=S), rng.normal(size=(A, 3)), rng.normal(size=(S, 9))
params = model.parameters.copy()
for float64 in (True, False):
    ts = _cuda.CudaTrainingSet(model_spec(model), batch.types, batch.positions, batch.cells,
                               batch.pbc, batch.atom_offsets, float64=float64,
                               temperatures=batch.temperatures)
    add(*ts.run(params, np.arange(S, dtype=np.intc), alpha, fadj.ravel(), vadj.ravel()))
    ts.set_kernels(True, 3)  # the warp gradient kernel (its blocks take several atoms each)
    add(*ts.run(params, np.arange(S, dtype=np.intc), alpha, fadj.ravel(), vadj.ravel()))
    ts.set_kernels(False, 3)  # and a prediction pass in it
    add(*ts.run(params, np.arange(S, dtype=np.intc), want_gradient=False)[1:])
    ts.set_kernels()
    add(*ts.predict_population(params + 0.01 * rng.normal(size=(3, params.size)),
                               np.array([2, 0], dtype=np.intc)))
# the MD loop with its device observers (kinetic-energy tree, RDF, MSD, minimum distances)
atoms = frames[1].copy()
rdf, msd = DeviceRDF(r_max=4.5, bins=45, every=5), DeviceMSD(every=5)
monitor = DistanceMonitor(0.2, every=5, stop=False)
evaluator = Evaluator(model, device="cuda", precision="float64")
result = run_md(atoms, EngineForces(evaluator, atoms), steps=10, timestep=1.0,
                ensemble="nvt-bussi", temperature=600.0, tau_temperature=20.0, seed=7,
                observers=[rdf, msd, monitor])
add(result.atoms.positions, result.atoms.get_velocities(), *rdf.rdf.values())
add(*[np.array(list(v.values())) for _, v in msd.history])
add(*[np.array(list(v.values())) for _, v in monitor.history])
print("DIGEST", digest.hexdigest())
"""


@pytest.mark.slow
def test_cuda_code_gives_the_same_bits_in_reverse_launch_order(tmp_path_factory, tmp_path):
    """Engine, training kernels and MD loop in the forward and the reversed launch order:
    the same bits, so no kernel relies on the order of its threads or blocks."""
    digests = []
    for reverse in ("0", "1"):
        result = run_emulated(tmp_path_factory, _SAME_BITS, tmp_path,
                              env={"NEPCU_EMU_REVERSE": reverse})
        assert result.returncode == 0, result.stderr[-3000:]
        assert "invalid launch" not in result.stderr, result.stderr[-3000:]
        digests.append(result.stdout.split("DIGEST", 1)[1].strip())
    assert digests[0] == digests[1]


@pytest.mark.slow
def test_gpu_marked_tests_pass_on_the_emulated_device(tmp_path_factory, tmp_path):
    """The tests marked gpu (skipped in this run for want of a device) against the emulated
    package, where _cuda reports one device: every one runs and passes. The device session
    then only meets what emulation cannot show (memory spaces, streams, float32 on
    hardware), not a broken test."""
    package = emulated_package(tmp_path_factory)
    files = [str(REPO / "tests" / name)
             for name in ("test_cuda.py", "test_cuda_md.py", "test_train_cuda.py")]
    # cwd is an empty folder: `python -m pytest` puts it first on sys.path, and the
    # checkout's own nepzbl_plugin (no emulated _cuda) must not shadow the emulated one
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", *files],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(package)},
        capture_output=True, text=True, timeout=900)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    if (REPO.parent / "shared" / "data").is_dir() or os.environ.get("NEPZBL_SHARED"):
        assert "skipped" not in summary, summary  # with the data every gpu test runs
