"""Training benchmarks of the issue's targets (run by the lead; not part of the tests).

* ``llzo``: train NEP25-ZBL (``llzo/NEP25-ZBL``, ``zbl 1.8``) and evaluate the held-out
  ``llzo/validation/*.xyz`` (120 frames) at wall-time milestones. Target within 20 min on 2
  cores: energy < 0.60 meV/atom, force < 42.3 meV/Å, virial < 5.6 meV/atom.
* ``pbte``: train GPUMD's PbTe example; target train RMSE 0.41 meV/atom, 39.9 meV/Å in 20 min.
* ``memory``: peak memory of a 2000 x 192-atom training set (LLZO frames, randomly
  displaced); target < 8 GB.
* ``llzo-peers``: the same LLZO training with nepzbl, neppo and TorchNEP for the same wall
  time each, one after the other on the same cores; every final model is evaluated on the
  held-out frames by the same code. neppo's run is step-based with a cosine learning-rate
  schedule, so its step count is set from timed calibration runs to end within the budget;
  TorchNEP's plateau schedule does not depend on the length, so a long run is stopped at the
  budget.
* ``scaling``: optimiser steps per second of the CPU trainer for each thread count (default 1
  and 2), measured in one run, interleaved and repeated (the order alternates every round),
  best of the rounds, with the ratio to one thread. Target: 2 threads >= 1.8 x 1 thread; 16
  threads >= 12 x 1 thread on a 16-core machine. A step is exactly the trainer's Adam step:
  predictions, loss, adjoints, gradient, update, on the batches the trainer draws (nep.in's
  settings: 4 structures per batch for LLZO) and, separately, on the full set (the L-BFGS
  phase). The load average is printed, as other processes bias the numbers.

* ``gpu``: the issue-14 GPU targets on one H200: LLZO NEP25-ZBL trained on the GPU
  (``--device cuda``, float32 products and float64 sums) with a report every 10 epochs; the first
  wall time (start-up included) at which the held-out RMSEs are below all three targets
  within 20 s, the optimiser steps per second and the device memory of the training set.
  Writes ``nepzbl_reference.json`` (the final held-out force RMSE and when nepzbl first had
  it) for ``peers``; with ``--peer-minutes`` > 0, the peers follow on the same GPU.
  ``--gradient-kernel``, ``--predictions-in-gradient-kernel`` and ``--pair-order`` train with
  other per-atom kernels than the defaults; ``--fastest-from gpu_epoch.json`` with the
  fastest of ``gpu-epoch``'s kernel table (``device_all.sh 5``), which would become the default.
* ``peers``: neppo and TorchNEP (pure-Python packages over PyTorch, when installed) on the
  same input, on ``--device``: the training time each needs to reach nepzbl's held-out force
  RMSE, read from ``--nepzbl-reference`` or measured by a ``--seconds`` nepzbl run first; a
  table with the ratios to nepzbl's time. Each peer trains through its own nep.in runner
  (``benchmarks/peer_training.py``) in a child process, with its own defaults wherever
  GPUMD's nep.in says nothing, in runs of doubling length (``--peer-first`` steps or epochs,
  each run from scratch) until one reaches the target or ``--peer-seconds`` are spent. Every
  nep.txt written is evaluated by nepzbl's own code (``predict``, as for nepzbl's models),
  after checking that it is the model nep.in defines (types, ZBL) and that nepzbl's
  evaluation of it agrees with the peer's own in float64; a file nepzbl cannot read is
  reported as such, without an RMSE.
* ``gpu-epoch``: a 2000-structure, 192-atom set (LLZO frames, randomly displaced): the time of
  one epoch (every structure's loss and gradient once, the trainer's call) on the GPU in
  batches that fill it (32768 atoms) and in nep.in's ``batch_size``, the time of one call by
  batch size, the epoch with each choice of per-atom kernels (``KERNEL_CHOICES``) and with
  the first (contiguous) layout of work arrays and gradient rows, and the device memory,
  against the CPU trainer's epoch time (``--threads``, measured on 100 structures and
  scaled); target at least 20 times the CPU rate.

* ``schedules``: loss + gradient evaluations (and wall time) to the held-out targets for each
  optimiser schedule (``--schedules``: Adam with batches of 4 and L-BFGS after 3 halvings, the
  CPU default; the same with L-BFGS after 1 halving; full-batch L-BFGS from the start; Adam
  on the full batch), ``--epochs`` each, seed 0, on ``--device``. On a GPU an evaluation of a
  batch of 4 LLZO structures and of all 25 take about the same time (too few atoms to fill
  it), so evaluations are the GPU's cost; on the CPU the cost grows with the structures.
  Prints a table with the ratio to the first schedule and writes ``schedules.png``.
* ``gpu-steps``: where the time of a GPU training step goes. LLZO NEP25-ZBL, nep.in's batches
  and the full set, in one run: Adam steps per second with the loss on the host (predictions
  to the host, numpy loss and adjoints, adjoints back, gradient: the previous GPU path), with
  loss and gradient in one device call and Adam on the host, and with :class:`DeviceAdam`
  (everything on the device); SNES generations per second with the population's predictions
  brought back against only its losses; the CPU trainer on ``--threads`` as the peer, with
  the ratio of each row to it. The device rows are timed again with the kernels' work arrays
  and gradient rows contiguous per thread (the first layout), the A/B of the interleaved
  layout, and with each other choice of per-atom kernels (``KERNEL_CHOICES``).

* ``startup``: the trainer's start-up before its first step, part by part, on LLZO NEP25-ZBL
  (25 frames) and on the 2000 x 192-atom set: the neighbour counts of the ``cutoff`` line by
  the C engine's cell list (what the trainer uses) against the numpy count (timed on at most
  100 frames and scaled), the q_scaler, the initial parameters, and the training backend's
  set-up (the CPU's; the GPU's upload and neighbour lists where there is a GPU), best of
  ``--rounds``.
* ``host-steps``: the host's share of a training step at LLZO's 6,849 parameters: scipy's
  L-BFGS-B iteration, an SNES generation (and its normal draws), a report's writes (nep.txt,
  checkpoint, loss.out row); on a GPU these run between device calls.

``--device`` (auto, cpu, cuda) chooses where ``llzo``, ``pbte``, ``memory``, ``llzo-peers``
and ``peers`` train. Each prints a table (time, RMSEs) and writes a PNG of RMSE vs wall time
next to its outputs.

Usage::

    PYTHONPATH=. python benchmarks/bench_train.py llzo [--minutes 20] [--out DIR] [--optimizer X]
    PYTHONPATH=. python benchmarks/bench_train.py pbte [--minutes 20]
    PYTHONPATH=. python benchmarks/bench_train.py memory [--minutes 3]
    PYTHONPATH=. python benchmarks/bench_train.py llzo-peers [--minutes 5]
    PYTHONPATH=. python benchmarks/bench_train.py gpu [--seconds 20] [--peer-minutes 5]
                                                      [--fastest-from gpu_epoch.json]
    PYTHONPATH=. python benchmarks/bench_train.py peers [--device cuda] [--peer-seconds 75]
        [--nepzbl-reference OUT/nepzbl_reference.json] [--peers neppo,torchnep] [--table-only]
    PYTHONPATH=. python benchmarks/bench_train.py gpu-epoch [--threads 16]
    PYTHONPATH=. python benchmarks/bench_train.py gpu-steps [--threads 16] [--seconds 3]
    PYTHONPATH=. python benchmarks/bench_train.py schedules [--epochs 1500] [--device cpu]
        [--schedules adam,adam-polish1,lbfgs,adam-full]
    PYTHONPATH=. python benchmarks/bench_train.py scaling [--threads 1,2] [--rounds 5]
                                                          [--seconds 3]
    PYTHONPATH=. python benchmarks/bench_train.py startup [--rounds 3]
    PYTHONPATH=. python benchmarks/bench_train.py host-steps [--rounds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("nepzbl_plugin") is None:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, str(REPO))
from nepzbl_plugin.cli.train import TrainingProgressBar  # noqa: E402
from nepzbl_plugin.train.cuda_backend import GRADIENT_KERNELS, KERNELS  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from peer_training import LENGTH_UNIT, MODEL_FILE, PACKAGE, last_step, parse_timing  # noqa: E402
from rehearsal import REHEARSAL, rehearsed  # noqa: E402

DATA = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared")) / "data"

LLZO_TARGET = {"energy": 0.60e-3, "force": 42.3e-3, "virial": 5.6e-3}
PBTE_TARGET = {"energy": 0.41e-3, "force": 39.9e-3}
MILESTONES_MIN = (1, 2, 5, 10, 15, 20, 30, 45, 60)
DEVICE = ["auto"]  # --device
PEERS = ("neppo", "torchnep")
PEER_STARTUP_S = 5.0  # a peer's interpreter start and import torch, on top of its budget
PEER_GROUPS = set()  # process groups of the peers' runs in progress, ended on SIGTERM


def _read(nep_in_path, xyz_paths):
    from nepzbl_plugin.io.nep_in import read_nep_in
    from nepzbl_plugin.io.xyz import read_train_xyz

    nep_in = read_nep_in(nep_in_path)
    structures = []
    for path in xyz_paths:
        structures += read_train_xyz(path, species=nep_in.types)
    return nep_in, structures


def _llzo_2000():
    """(nep.in, 2000 structures, the generator that made them): the 192-atom LLZO frames of
    NEP25-ZBL repeated, each rattled by 0.02 Å, for the memory and GPU-epoch runs (8 in a
    rehearsal)."""
    nep_in, base = _read(DATA / "llzo/NEP25-ZBL/nep.in", [DATA / "llzo/NEP25-ZBL/train.xyz"])
    rng = np.random.default_rng(0)
    structures = []
    for k in range(rehearsed(2000, 8)):
        st = base[k % len(base)]
        structures.append(dataclasses.replace(
            st, positions=st.positions + rng.normal(0, 0.02, st.positions.shape)))
    return nep_in, structures, rng


def _plot(rows, path, title, keys, targets):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.8))
    t = np.array([r["time"] for r in rows]) / 60.0
    for ax, (key, unit) in zip(np.atleast_1d(axes), keys, strict=True):
        ax.plot(t, [r[key] * 1e3 for r in rows], "o-")
        name = key.split("_")[0]
        if name in targets:
            ax.axhline(targets[name] * 1e3, color="r", ls="--", label="target")
            ax.legend()
        ax.set_xlabel("wall time (min)")
        ax.set_ylabel(f"{key} ({unit})")
        ax.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bench_llzo(minutes, out, optimizer):
    from nepzbl_plugin.train import predict, train

    nep_in, structures = _read(DATA / "llzo/NEP25-ZBL/nep.in",
                               [DATA / "llzo/NEP25-ZBL/train.xyz"])
    _, held_out = _read(DATA / "llzo/NEP25-ZBL/nep.in",
                        sorted((DATA / "llzo/validation").glob("*.xyz")))
    snapshots = []
    pending = list(MILESTONES_MIN)

    def callback(record, model):
        # Keep the first model after each milestone (and the latest); evaluate afterwards so
        # that the held-out evaluation does not count as training time.
        if pending and record["time"] >= 60 * pending[0]:
            while pending and record["time"] >= 60 * pending[0]:
                pending.pop(0)
            snapshots.append((record, model))
        latest[0] = (record, model)

    latest = [None]
    t0 = time.monotonic()
    model, history = train(structures, nep_in, output_dir=out, optimizer=optimizer,
                           max_time=60 * minutes, callback=callback, progress=TrainingProgressBar(),
                           device=DEVICE[0])
    wall = time.monotonic() - t0
    if latest[0] is not None and (not snapshots or snapshots[-1][0] is not latest[0][0]):
        snapshots.append(latest[0])
    rows = []
    for record, snap in snapshots:
        _, rmse = predict(snap, held_out)
        rows.append({"time": record["time"], "step": record["step"],
                     "energy": rmse["energy"], "force": rmse["force"],
                     "virial": rmse["virial"],
                     "train_force": record["rmse_force_train"]})
    print(f"\nLLZO NEP25-ZBL, {len(structures)} train / {len(held_out)} held-out frames, "
          f"{optimizer or 'default'} optimiser, total wall {wall:.0f} s "
          f"(stop: {history.stop_reason})")
    print(f"{'time (s)':>9} {'step':>6} {'E (meV/atom)':>13} {'F (meV/Å)':>10} "
          f"{'V (meV/atom)':>13} {'train F (meV/Å)':>16}")
    for r in rows:
        print(f"{r['time']:9.0f} {r['step']:6d} {r['energy'] * 1e3:13.3f} "
              f"{r['force'] * 1e3:10.2f} {r['virial'] * 1e3:13.3f} {r['train_force'] * 1e3:16.2f}")
    final = rows[-1]
    ok = all(final[k] < LLZO_TARGET[k] for k in LLZO_TARGET)
    print("targets (held-out): energy < 0.60 meV/atom, force < 42.3 meV/Å, virial < 5.6 "
          f"meV/atom: {'MET' if ok else 'NOT met'}")
    _plot(rows, Path(out) / "bench_llzo.png", "LLZO NEP25-ZBL held-out RMSE",
          [("energy", "meV/atom"), ("force", "meV/Å"), ("virial", "meV/atom")], LLZO_TARGET)


def bench_pbte(minutes, out, optimizer):
    from nepzbl_plugin.train import train

    nep_in, structures = _read(DATA / "pbte/nep.in", [DATA / "pbte/train.xyz"])
    t0 = time.monotonic()
    _, history = train(structures, nep_in, output_dir=out, optimizer=optimizer,
                       max_time=60 * minutes, progress=TrainingProgressBar(), device=DEVICE[0])
    wall = time.monotonic() - t0
    print(f"\nPbTe, {len(structures)} frames, total wall {wall:.0f} s "
          f"(stop: {history.stop_reason})")
    print(f"{'time (s)':>9} {'step':>6} {'E train (meV/atom)':>19} {'F train (meV/Å)':>16}")
    for r in history.records:
        print(f"{r['time']:9.0f} {r['step']:6d} {r['rmse_energy_train'] * 1e3:19.3f} "
              f"{r['rmse_force_train'] * 1e3:16.2f}")
    last = history.records[-1]
    ok = (last["rmse_energy_train"] < PBTE_TARGET["energy"]
          and last["rmse_force_train"] < PBTE_TARGET["force"])
    print(f"targets (train): 0.41 meV/atom, 39.9 meV/Å: {'MET' if ok else 'NOT met'}")
    rows = [{"time": r["time"], "energy": r["rmse_energy_train"],
             "force": r["rmse_force_train"]} for r in history.records]
    _plot(rows, Path(out) / "bench_pbte.png", "PbTe train RMSE",
          [("energy", "meV/atom"), ("force", "meV/Å")], PBTE_TARGET)


def bench_memory(minutes, out, optimizer):
    from nepzbl_plugin.train import train

    nep_in, structures, _ = _llzo_2000()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    t0 = time.monotonic()
    train(structures, nep_in, output_dir=out, optimizer=optimizer, max_time=60 * minutes,
          progress=TrainingProgressBar(), device=DEVICE[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"\n2000 x 192-atom set: peak resident memory {peak:.2f} GB "
          f"({before:.2f} GB before training; wall {time.monotonic() - t0:.0f} s); "
          f"target < 8 GB: {'MET' if peak < 8 else 'NOT met'}")


def bench_llzo_peers(minutes, out, optimizer):
    """nepzbl, neppo and TorchNEP on NEP25-ZBL for the same wall time each, one after the
    other on the same cores; held-out RMSE of every final model by nepzbl's same code."""
    from nepzbl_plugin.train import predict, train

    nep_in_path, nep_in, structures, held_out = _llzo_sets()
    device = _peer_device(DEVICE[0])
    budget = 60.0 * minutes
    results = {}

    t0 = time.monotonic()
    model, history = train(structures, nep_in, output_dir=out / "nepzbl",
                           optimizer=optimizer, max_time=budget, progress=TrainingProgressBar(),
                           device=DEVICE[0])
    wall = time.monotonic() - t0
    _, rmse = predict(model, held_out)
    results["nepzbl"] = (wall, f"{history.records[-1]['step']} steps", rmse, "")

    for code in PEERS:
        version = _peer_version(code)
        if version is None:
            print(f"{code} is not installed: not measured")
            continue
        if code == "neppo":
            # neppo's learning rate follows a cosine over the run's steps: the step count is
            # set from the cost of a step, timed from two short runs (start-up cancels out)
            short = _run_peer(code, out / "neppo_5", device, 5, budget)
            longer = _run_peer(code, out / "neppo_25", device, 25, budget)
            per_step = max(((longer["train"] or longer["wall"])
                            - (short["train"] or short["wall"])) / 20, 1e-3)
            set_up = (short["train"] or short["wall"]) - 5 * per_step
            length = max(25, int((budget - set_up) / per_step))
            print(f"neppo {version}: {per_step:.3f} s per step, {length} steps for "
                  f"{minutes:g} min")
            # planned to end within the budget: the limit only catches a bad plan
            limit = 1.5 * budget + 10
        else:
            # TorchNEP's plateau schedule does not depend on the run's length: a long run,
            # stopped at the budget, leaves the model of its lowest training loss so far
            # (plus the start-up nepzbl's wall does not include: interpreter, import torch)
            length, limit = 1_000_000, budget + PEER_STARTUP_S
        run = _run_peer(code, out / code, device, length, limit)
        rmse, note = _evaluate_peer_model(out / code / MODEL_FILE[code], nep_in, held_out)
        done = _peer_progress(out / code, code)
        results[f"{code} {version}"] = (run["wall"], done, rmse, note)

    print(f"\nLLZO NEP25-ZBL (zbl 1.8), {len(structures)} train / {len(held_out)} held-out "
          f"frames, {minutes:g} min each on the same cores ({device}); a peer's wall time "
          "includes its interpreter start and import torch")
    print(f"{'code':<16} {'wall (s)':>9} {'run':>14} {'E (meV/atom)':>13} {'F (meV/Å)':>10} "
          f"{'V (meV/atom)':>13}")
    for code, (wall, done, rmse, note) in results.items():
        if rmse is None:
            print(f"{code:<16} {wall:9.0f} {done:>14} {note}")
            continue
        print(f"{code:<16} {wall:9.0f} {done:>14} {rmse['energy'] * 1e3:13.3f} "
              f"{rmse['force'] * 1e3:10.2f} {rmse['virial'] * 1e3:13.3f} {note}")


def _llzo_sets():
    """nep.in's path, nep.in, the 25 training and the 120 held-out frames (8 in a rehearsal:
    every report's model is evaluated on them)."""
    nep_in_path = DATA / "llzo/NEP25-ZBL/nep.in"
    nep_in, structures = _read(nep_in_path, [DATA / "llzo/NEP25-ZBL/train.xyz"])
    _, held_out = _read(nep_in_path, sorted((DATA / "llzo/validation").glob("*.xyz")))
    return nep_in_path, nep_in, structures, held_out[:rehearsed(len(held_out), 8)]


def _gpu_memory_used_mib() -> float | None:
    """Device-wide memory in use (MiB) from nvidia-smi, or None."""
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used",
                              "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=10).stdout.split()
        return float(out[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def _gpu_memory_text() -> str:
    """The device's memory in use, "N MiB", or why it is unknown."""
    used = _gpu_memory_used_mib()
    return "unknown (no nvidia-smi)" if used is None else f"{used:.0f} MiB"


def _nepzbl_held_out_run(structures, nep_in, held_out, seconds, out, optimizer, device,
                         max_rows=None, **train_options):
    """Train nepzbl for ``seconds`` (None: until ``train_options``' epochs) with a report every
    10 steps; the held-out RMSEs of every report's model (of every k-th and the last when there
    are more than ``max_rows``), evaluated afterwards so that they do not count as training
    time. Returns the model, the history, the wall time and the rows (wall time since the
    call, step, parameter updates, loss evaluations, RMSEs)."""
    from nepzbl_plugin.train import predict, train

    snapshots = []
    t0 = time.monotonic()

    def callback(record, model):
        snapshots.append((time.monotonic() - t0, record, model))

    model, history = train(structures, nep_in, output_dir=out, optimizer=optimizer,
                           max_time=seconds, callback=callback, report_interval=10,
                           device=device, log=None, **train_options)
    wall = time.monotonic() - t0
    if max_rows and len(snapshots) > max_rows:
        # a GPU run reports a few hundred times in 20 s: evaluating all would take minutes
        every = -(-len(snapshots) // max_rows)
        snapshots = snapshots[every - 1::every] + ([snapshots[-1]] if len(snapshots) % every
                                                   else [])
    rows = []
    for when, record, snap in snapshots:
        _, rmse = predict(snap, held_out)
        rows.append({"time": when, "step": record["step"], "updates": record["updates"],
                     "evaluations": record["evaluations"], **rmse})
    return model, history, wall, rows


def _adam_phase(records, structures, nep_in):
    """The Adam phase of a history that switched to L-BFGS (the last report whose updates are
    its epochs times the batches of an epoch: step, updates, time), or None when the run
    never left Adam or never used it."""
    from nepzbl_plugin.train import trainer as T

    batch = T.settings_from_nep_in(nep_in, structures, optimizer="adam").batch_size
    per_epoch = -(-structures // batch)
    adam = [r for r in records if r.get("updates") == per_epoch * r["step"]]
    if not adam or len(adam) == len(records):
        return None
    last = adam[-1]
    return {"epochs": last["step"], "updates": last["updates"], "time": last["time"]}


def _nepzbl_reference(rows, device, seconds, version):
    """The peers' target: nepzbl's final held-out force RMSE, and the first wall time at which
    nepzbl's held-out force RMSE was that low."""
    target = rows[-1]["force"]
    first = next(r for r in rows if r["force"] <= target)
    return {"code": f"nepzbl {version}", "device": device, "budget_s": seconds,
            "target_force": target, "time_to_target": first["time"], "step": first["step"],
            "energy": rows[-1]["energy"], "virial": rows[-1]["virial"]}


def _first_at_llzo_targets(rows):
    """The first row whose held-out RMSEs are below all three LLZO targets, or None."""
    return next((r for r in rows if all(r[k] < LLZO_TARGET[k] for k in LLZO_TARGET)), None)


# name: (what it is, train() options); the first is the reference of the ratio column
SCHEDULES = {
    "adam": ("Adam, batches of 4, L-BFGS after 3 halvings (the CPU default)",
             {"optimizer": "adam"}),
    "adam-polish1": ("Adam, batches of 4, L-BFGS after 1 halving",
                     {"optimizer": "adam", "polish_after": 1}),
    "lbfgs": ("full-batch L-BFGS from the start", {"optimizer": "lbfgs"}),
    "adam-full": ("Adam, full batch, L-BFGS after 3 halvings",
                  {"optimizer": "adam", "batch_size": 10**6}),
}


def bench_schedules(epochs, out, names, device):
    """Loss evaluations (each one batch's loss and gradient) to the held-out targets for each
    optimiser schedule, LLZO NEP25-ZBL. On a GPU a batch of 4 structures (768 atoms) and the
    whole set (4800) each take about one latency-bound kernel sequence, so evaluations, not
    structures, measure the GPU's cost; on the CPU the cost is the structures evaluated."""
    _, nep_in, structures, held_out = _llzo_sets()
    results = []
    for name in names:
        what, options = SCHEDULES[name]
        options = dict(options)
        _, history, wall, rows = _nepzbl_held_out_run(
            structures, nep_in, held_out, None, Path(out) / name, options.pop("optimizer"),
            device, epochs=epochs, seed=0, **options)
        first = _first_at_llzo_targets(rows)
        results.append({"schedule": name, "what": what, "first": first, "last": rows[-1],
                        "wall": wall, "stop": history.stop_reason, "rows": rows})
        print(f"{name}: {what}: " + (f"targets at evaluation {first['evaluations']}, "
                                     f"{first['time']:.0f} s" if first else "targets not met")
              + f"; {rows[-1]['evaluations']} evaluations in {wall:.0f} s", flush=True)
    (Path(out) / "schedules.json").write_text(json.dumps(results, indent=1) + "\n")
    reference = results[0]["first"]
    print(f"\nLLZO NEP25-ZBL ({len(structures)} frames), {epochs} epochs or L-BFGS iterations "
          f"each, seed 0, device {device}; held-out targets ({len(held_out)} frames): "
          "E < 0.60 meV/atom, F < 42.3 meV/Å, V < 5.6 meV/atom")
    print(f"{'schedule':<13} {'evaluations':>11} {'x ' + results[0]['schedule']:>12} "
          f"{'updates':>8} {'step':>5} {'time (s)':>9} | {'at the end: evals':>17} "
          f"{'E (meV/atom)':>13} {'F (meV/Å)':>10} {'V (meV/atom)':>13}")
    for r in results:
        f, last = r["first"], r["last"]
        ratio = (f"{f['evaluations'] / reference['evaluations']:.2f}" if f and reference
                 else "-")
        reached = (f"{f['evaluations']:>11d} {ratio:>12} {f['updates']:>8d} {f['step']:>5d} "
                   f"{f['time']:9.0f}" if f else f"{'not met':>11} {'-':>12} {'':>8} {'':>5} "
                   f"{'':>9}")
        print(f"{r['schedule']:<13} {reached} | {last['evaluations']:>17d} "
              f"{last['energy'] * 1e3:13.3f} {last['force'] * 1e3:10.2f} "
              f"{last['virial'] * 1e3:13.3f}")
    _plot_schedules(results, Path(out) / "schedules.png")


def _plot_schedules(results, path):
    """Held-out RMSE against loss evaluations, one line per schedule, the targets dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("energy", "meV/atom"), ("force", "meV/Å"), ("virial", "meV/atom")]
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.8))
    for ax, (key, unit) in zip(axes, keys, strict=True):
        for r in results:
            ax.plot([row["evaluations"] for row in r["rows"]],
                    [row[key] * 1e3 for row in r["rows"]], "-", label=r["schedule"])
        ax.axhline(LLZO_TARGET[key] * 1e3, color="k", ls="--", label="target")
        ax.set_xlabel("loss + gradient evaluations")
        ax.set_ylabel(f"held-out {key} RMSE ({unit})")
        ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle("LLZO NEP25-ZBL: held-out RMSE against evaluations, by optimiser schedule")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bench_gpu(seconds, out, optimizer, peer_minutes, peer_first, kernels=None):
    """Time to the held-out targets on the GPU, steps/s, device memory; peers on the GPU.
    ``kernels`` (a :func:`kernel_choice` dict) trains with other per-atom kernels than the
    defaults."""
    import json

    from nepzbl_plugin import __version__
    from nepzbl_plugin.train.cuda_backend import CudaBackend

    nep_in_path, nep_in, structures, held_out = _llzo_sets()
    options = {}
    if kernels is not None:
        print(f"per-atom kernels: {kernels['label']} ({kernels['why']})", flush=True)
        # the factory's kernels, not the trainer's timed choice (gpu_kernels "auto")
        options.update(backend=functools.partial(_chosen_backend, kernels), gpu_kernels=None)
    # at most 100 reports evaluated (0.2 s apart over 20 s): a GPU run reports every 10 of its
    # thousands of steps, and all of them would take the step's time limit (80 s) and more
    model, history, wall, rows = _nepzbl_held_out_run(structures, nep_in, held_out, seconds,
                                                      out, optimizer, "cuda", max_rows=100,
                                                      **options)
    reached = _first_at_llzo_targets(rows)
    last = history.records[-1] if history.records else {}
    epochs = last.get("step", 0)
    # an optimiser step is one parameter update (Adam: one per batch of nep.in's 4 structures,
    # 7 an epoch here; L-BFGS: one per iteration), not an epoch
    updates, evaluations = last.get("updates", 0), last.get("evaluations", 0)
    train_time = last.get("time", wall)
    backend = CudaBackend(model, structures)
    print(f"\nLLZO NEP25-ZBL on the GPU, {len(structures)} train / {len(held_out)} held-out "
          f"frames, {optimizer or 'default'} optimiser, budget {seconds:g} s, wall {wall:.1f} s "
          f"(start-up included; stop: {history.stop_reason})"
          + ("" if kernels is None else f"; per-atom kernels: {kernels['label']}"))
    for tuning in history.kernel_tunings:  # the trainer's choice of kernels, each phase
        print(tuning.describe())
    print(f"{'wall (s)':>9} {'step':>6} {'E (meV/atom)':>13} {'F (meV/Å)':>10} "
          f"{'V (meV/atom)':>13}")
    for r in rows:
        print(f"{r['time']:9.1f} {r['step']:6d} {r['energy'] * 1e3:13.3f} "
              f"{r['force'] * 1e3:10.2f} {r['virial'] * 1e3:13.3f}")
    per_second = 1.0 / max(train_time, 1e-9)
    print(f"optimiser steps per second: {updates * per_second:.1f} (target >= 100; "
          f"{updates} parameter updates, {evaluations} loss + gradient evaluations, {epochs} "
          f"epochs or L-BFGS iterations in {train_time:.1f} s of training); "
          f"training-set device memory {backend.device_bytes / 2**20:.0f} MiB; GPU memory in "
          f"use {_gpu_memory_text()}")
    phase = _adam_phase(history.records, len(structures), nep_in)
    if phase is not None:
        print(f"of which Adam: {phase['updates']} steps in {phase['epochs']} epochs, "
              f"{phase['time']:.1f} s: {phase['updates'] / max(phase['time'], 1e-9):.1f} Adam "
              "steps per second (reports included), then full-batch L-BFGS")
    print("held-out targets (0.60 meV/atom, 42.3 meV/Å, 5.6 meV/atom) within 20 s: "
          + (f"MET at {reached['time']:.1f} s" if reached and reached["time"] <= 20 else "NOT met"))
    if not rows:
        return
    _plot(rows, Path(out) / "bench_gpu.png", "LLZO NEP25-ZBL held-out RMSE (GPU)",
          [("energy", "meV/atom"), ("force", "meV/Å"), ("virial", "meV/atom")], LLZO_TARGET)
    reference = _nepzbl_reference(rows, "cuda", seconds, __version__)
    if kernels is not None:
        reference["kernels"] = kernels["label"]
    # the peers' target, for `bench_train.py peers --nepzbl-reference` in a later call
    (Path(out) / "nepzbl_reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    if peer_minutes > 0:
        _peers_time_to_target(nep_in_path, nep_in, held_out, reference, 60 * peer_minutes,
                              "cuda", Path(out), peer_first)


def bench_peers(out, device, peer_seconds, peers, reference_path, seconds, optimizer, first,
                table_only=False):
    """nepzbl's held-out force RMSE (from ``gpu``'s output, or a run of ``seconds`` now), then
    the time each peer needs to reach it on the same device. Every result is also written to
    ``out`` (nepzbl_reference.json, peer_CODE.json), so that each peer can run under a time
    limit of its own and ``table_only`` prints the table of them all afterwards."""
    import json

    from nepzbl_plugin import __version__

    if table_only:
        reference = json.loads((out / "nepzbl_reference.json").read_text())
        results = [json.loads((out / f"peer_{code}.json").read_text()) for code in peers
                   if (out / f"peer_{code}.json").is_file()]
        budget = max((r["budget"] for r in results), default=peer_seconds)
        _print_peer_table(reference, results, budget, device)
        return
    nep_in_path, nep_in, structures, held_out = _llzo_sets()
    candidates, found = _first_file(reference_path)
    if found is not None:
        reference = json.loads(found.read_text())
        print(f"nepzbl's target from {found} ({reference['device']}, "
              f"{reference['budget_s']:g} s run): held-out F "
              f"{reference['target_force'] * 1e3:.2f} meV/Å at {reference['time_to_target']:.1f} s")
    else:
        if candidates:
            print(f"no {' or '.join(map(str, candidates))}: nepzbl trains {seconds:g} s now")
        nepzbl_device = "cuda" if device == "cuda" else "cpu"
        _, _, wall, rows = _nepzbl_held_out_run(structures, nep_in, held_out, seconds,
                                                out / "nepzbl", optimizer, nepzbl_device,
                                                max_rows=40)
        reference = _nepzbl_reference(rows, nepzbl_device, seconds, __version__)
        print(f"nepzbl {__version__} on {nepzbl_device}: {rows[-1]['step']} steps in "
              f"{wall:.1f} s, held-out F {reference['target_force'] * 1e3:.2f} meV/Å, first "
              f"reached at {reference['time_to_target']:.1f} s")
    (out / "nepzbl_reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    if peers:
        _peers_time_to_target(nep_in_path, nep_in, held_out, reference, peer_seconds, device,
                              out, first, peers)


def _peer_device(device: str) -> str:
    """cuda or cpu for the peers' torch: ``auto`` is the GPU when nepzbl's CUDA engine finds
    one (asking torch would import it, and start CUDA, in this process)."""
    if device != "auto":
        return device
    try:
        from nepzbl_plugin.engine.cuda import cuda_available

        return "cuda" if cuda_available() else "cpu"
    except ImportError:
        return "cpu"


def _end_peers_on_sigterm():
    """A ``timeout`` around this script sends SIGTERM to it alone: a peer's run, in a session of
    its own, would go on training on the device into the next measurement. End those runs (by
    their process groups), then this process."""
    import signal

    def end(signum, frame):
        for group in list(PEER_GROUPS):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, end)


def _peer_version(code: str) -> str | None:
    """The installed version of a peer package (without importing it, so without torch), or
    None."""
    from importlib import metadata

    try:
        return metadata.version(PACKAGE.get(code, code))
    except metadata.PackageNotFoundError:
        return None


def _run_peer(code, run_dir, device, length, seconds) -> dict:
    """Train ``code`` on LLZO NEP25-ZBL for ``length`` steps (neppo) or epochs (TorchNEP) in a
    fresh ``run_dir``, stopped after ``seconds``. The run's wall time (interpreter start and
    imports included), its training time (after ``import torch``; None when stopped), whether
    the budget stopped it, and its exit status."""
    import shutil
    import signal
    import subprocess

    shutil.rmtree(run_dir, ignore_errors=True)  # TorchNEP resumes from a checkpoint it finds
    run_dir.mkdir(parents=True)
    shutil.copy(DATA / "llzo/NEP25-ZBL/nep.in", run_dir / "nep.gpumd.in")
    shutil.copy(DATA / "llzo/NEP25-ZBL/train.xyz", run_dir / "train.xyz")
    command = [sys.executable, str(REPO / "benchmarks/peer_training.py"), "train", code, device,
               str(length)]
    stopped = False
    t0 = time.monotonic()
    with open(run_dir / "peer.log", "w") as log:
        # a session of its own: the budget stops the run with the processes it started
        child = subprocess.Popen(command, cwd=run_dir, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        PEER_GROUPS.add(child.pid)
        try:
            child.wait(timeout=max(seconds, 1.0))
        except subprocess.TimeoutExpired:
            stopped = True
        wall = time.monotonic() - t0
        try:
            os.killpg(child.pid, signal.SIGKILL)  # also any worker left behind by a clean exit
        except ProcessLookupError:
            pass
        child.wait()
        PEER_GROUPS.discard(child.pid)
    timing = parse_timing((run_dir / "peer.log").read_text(errors="replace"))
    return {"length": length, "wall": wall, "train": timing[1] if timing else None,
            "stopped": stopped, "returncode": child.returncode, "dir": run_dir}


def _peer_progress(run_dir, code) -> str:
    """How far a run got, from its log: TorchNEP's last epoch, neppo's last reported step."""
    text = (run_dir / "peer.log").read_text(errors="replace")
    done = last_step(code, text)
    return f"{done} {LENGTH_UNIT[code]}" if done is not None else "-"


def _evaluate_peer_model(path, nep_in, held_out) -> tuple[dict | None, str]:
    """Held-out RMSEs of a peer's nep.txt by nepzbl's code (the one that evaluates nepzbl's own
    models), or None and why not: a file nepzbl cannot read, or a model that is not the one
    nep.in asks for (types, ZBL), gives no number rather than a wrong one."""
    from nepzbl_plugin.errors import NepzblError
    from nepzbl_plugin.model import read_model
    from nepzbl_plugin.train import predict

    if not path.is_file():
        return None, "no model written"
    try:
        model = read_model(path)
    except NepzblError as error:
        return None, f"nepzbl cannot read {path.name}: {error}"
    if list(model.types) != list(nep_in.types):
        return None, f"{path.name} has the types {model.types}, nep.in {nep_in.types}"
    wanted = nep_in.zbl_settings()
    if (model.zbl is None) != (wanted is None) or (
            wanted is not None and (model.zbl.mode, model.zbl.inner, model.zbl.outer)
            != (wanted.mode, wanted.inner, wanted.outer)):
        return None, (f"{path.name} has ZBL {model.zbl}, nep.in asks for {wanted}: not the "
                      "model nep.in defines")
    _, rmse = predict(model, held_out)
    return rmse, ""


def _check_frames(held_out, path):
    """Four held-out frames (their closest pairs, 1.56 to 1.63 Å, already inside ZBL's outer
    radius of 1.8 Å) and two copies of the first compressed to 80 % and 50 % (closest pairs 1.30
    and 0.81 Å: ZBL's switching zone and its pure range below 0.9 Å), written as an xyz file for
    the peers' own evaluators."""
    import dataclasses

    from nepzbl_plugin.io.xyz import write_train_xyz

    frames = list(held_out[:4])
    for scale in (0.8, 0.5):
        frames.append(dataclasses.replace(held_out[0], positions=held_out[0].positions * scale,
                                          cell=held_out[0].cell * scale))
    write_train_xyz(path, frames)
    return frames


def _check_peer_model(code, model_path, held_out, run_dir) -> str:
    """Compare nepzbl's evaluation of a peer's model with the peer's own (float64, CPU) on
    held-out and compressed frames: the RMSEs are the peer's model only if they agree."""
    import json
    import subprocess

    from nepzbl_plugin.model import read_model
    from nepzbl_plugin.train import predict

    frames = _check_frames(held_out, run_dir / "check.xyz")
    command = [sys.executable, str(REPO / "benchmarks/peer_training.py"), "check", code,
               str(model_path.resolve()), str((run_dir / "check.xyz").resolve())]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=45,
                              cwd=run_dir)
        theirs = json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as error:
        return f"own evaluation failed ({type(error).__name__}); not cross-checked"
    ours, _ = predict(read_model(model_path), frames)
    atoms = np.array([len(f.symbols) for f in frames])
    d_force = np.max(np.abs(np.concatenate([np.asarray(f) for f in theirs["forces"]])
                            - ours.forces))
    d_energy = np.max(np.abs(np.asarray(theirs["energy"]) - ours.energy) / atoms)
    verdict = "agree" if d_force < 1e-6 and d_energy < 1e-6 else "DISAGREE"
    return (f"nepzbl and {code}'s own float64 evaluation of {model_path.name} {verdict}: max "
            f"|dF| {d_force:.1e} eV/Å, |dE| {d_energy:.1e} eV/atom on 4 held-out frames and 2 "
            "compressed to the ZBL range")


def _peers_time_to_target(nep_in_path, nep_in, held_out, reference, budget, device, out,
                          first, peers=None):
    """For each peer, runs of doubling length (``first`` steps or epochs, then twice as many,
    each from scratch) until one's held-out force RMSE reaches nepzbl's, or ``budget``
    seconds are spent on that peer; the time to the target is that run's training time. A table
    with the ratios to nepzbl's time follows."""
    import json

    target = reference["target_force"]
    results = []
    for code in peers or PEERS:
        version = _peer_version(code)
        if version is None:
            print(f"{code} is not installed: not measured")
            continue
        name = f"{code} {version}"
        runs, spent, length = [], 0.0, first
        while budget - spent >= 5.0:
            run = _run_peer(code, out / code / f"{LENGTH_UNIT[code]}_{length}", device, length,
                            budget - spent)
            spent += run["wall"]
            run["rmse"], run["note"] = _evaluate_peer_model(run["dir"] / MODEL_FILE[code],
                                                            nep_in, held_out)
            run["done"] = last_step(code, (run["dir"] / "peer.log").read_text(errors="replace"))
            runs.append(run)
            state = ("stopped by the budget" if run["stopped"]
                     else f"exit {run['returncode']}" if run["returncode"] else "done")
            force = (f"held-out F {run['rmse']['force'] * 1e3:.1f} meV/Å" if run["rmse"]
                     else run["note"])
            trained = f"{run['train']:.1f}" if run["train"] is not None else "-"
            print(f"{name}: {length} {LENGTH_UNIT[code]} ({run['done'] or 0} done), "
                  f"{run['wall']:.1f} s wall ({trained} s after imports, {state}), "
                  f"{force}", flush=True)
            if run["returncode"] and not run["stopped"]:
                log = (run["dir"] / "peer.log").read_text(errors="replace").splitlines()
                print("  " + "\n  ".join(log[-8:]))
            if run["rmse"] is not None and run["rmse"]["force"] <= target:
                break
            if run["stopped"] or run["returncode"] or run["note"].startswith(("nepzbl cannot",
                                                                             "model")):
                break
            length *= 2
        scored = [r for r in runs if r["rmse"] is not None]
        reached = next((r for r in scored if r["rmse"]["force"] <= target), None)
        best = reached or (min(scored, key=lambda r: r["rmse"]["force"]) if scored else None)
        check = ""
        if best is not None:
            check = _check_peer_model(code, best["dir"] / MODEL_FILE[code], held_out,
                                      best["dir"])
        for run in runs:
            run["dir"] = str(run["dir"])
        results.append({"name": name, "reached": reached, "best": best, "spent": spent,
                        "budget": budget, "check": check, "unit": LENGTH_UNIT[code],
                        "note": runs[-1]["note"] if runs else "not run"})
        (out / f"peer_{code}.json").write_text(json.dumps(results[-1], indent=1) + "\n")
    _print_peer_table(reference, results, budget, device)


def _print_peer_table(reference, results, budget, device):
    nepzbl_time = reference["time_to_target"]
    print(f"\nLLZO NEP25-ZBL (zbl 1.8): time to nepzbl's held-out force RMSE "
          f"{reference['target_force'] * 1e3:.2f} meV/Å (120 frames), each peer on {device}, "
          f"at most {budget:.0f} s per peer; nepzbl on {reference['device']}")
    print(f"{'code':<20} {'time (s)':>9} {'x nepzbl':>9} {'run':>13} {'F (meV/Å)':>10} "
          f"{'E (meV/atom)':>13} {'V (meV/atom)':>13} {'spent (s)':>10}")
    print(f"{reference['code']:<20} {nepzbl_time:9.1f} {1.0:9.2f} "
          f"{str(reference['step']) + ' steps':>13} {reference['target_force'] * 1e3:10.2f} "
          f"{reference['energy'] * 1e3:13.3f} {reference['virial'] * 1e3:13.3f} "
          f"{reference['budget_s']:10.0f}")
    for r in results:
        best = r["best"]
        if best is None:
            print(f"{r['name']:<20} {'-':>9} {'-':>9} {'-':>13} {r['note']}")
            continue
        if r["reached"] is not None:
            # a run the budget stopped: its wall time bounds the time to the target from above
            when = best["train"] if best["train"] is not None else best["wall"]
            time_text, ratio = f"{when:.1f}", f"{when / nepzbl_time:.2f}"
        else:
            time_text, ratio = f"> {r['spent']:.0f}", f"> {r['spent'] / nepzbl_time:.1f}"
        rmse = best["rmse"]
        length = (f"{best['done'] or 0}/{best['length']}" if best["stopped"]
                  else str(best["length"]))
        print(f"{r['name']:<20} {time_text:>9} {ratio:>9} "
              f"{length + ' ' + r['unit']:>13} {rmse['force'] * 1e3:10.2f} "
              f"{rmse['energy'] * 1e3:13.3f} {rmse['virial'] * 1e3:13.3f} {r['spent']:10.0f}")
    print("time: nepzbl's first report at the target (start-up included, imports and reading "
          "the xyz not); a peer's training time in the first run of doubling length that "
          "reaches it (after import torch; its reading of the xyz and neighbour lists "
          "included). '> S': not reached within the S seconds spent, the row shows its best "
          "run ('n/m': a run the budget stopped after n of m). Held-out RMSEs of every model by "
          "nepzbl's evaluation of the nep.txt written.")
    for r in results:
        if r["check"]:
            print(f"  {r['name']}: {r['check']}")


# The CUDA trainer's per-atom kernel choices (CudaBackend.set_kernels(predict_kernel,
# gradient)), the default first, timed against each other by gpu-steps, gpu-epoch and
# bench_profile_train.py
KERNEL_CHOICES = (
    ("default kernels (gradient at 12 warps per SM)", (True, "default")),
    ("predictions in the gradient kernel (before 2026-11-30)", (False, "default")),
    ("gradient in the 16-warp, 128-register kernel", (True, "wide")),
    ("gradient in the unbounded kernel (8 warps per SM)", (True, "unbounded")),
    ("gradient in the warp kernel (a warp an atom)", (True, "warp")),
    ("predictions and gradient in the warp kernel", (False, "warp")),
)
# gpu-epoch's row for the other layout (CudaBackend.set_interleaved(False))
LAYOUT_AB = "default kernels, work arrays and gradient rows contiguous"
# and its rows for the pairs in the neighbour list's own order (CudaBackend(pair_order="list"),
# the order before 2026-11-30; "type" is the default), by gradient kernel
PAIR_ORDER_AB = (
    ("default kernels, pairs in the neighbour list's order", "default"),
    ("gradient in the warp kernel, pairs in the list's order", "warp"),
)


def kernel_choice(gradient="default", predict_kernel=True, pair_order="type", interleaved=True,
                  label=None, why="named on the command line"):
    """One choice of the CUDA trainer's per-atom kernels, pair order and layout, as
    ``bench_train.py gpu`` trains with it (:func:`_chosen_backend`)."""
    if label is None:
        label = next((name for name, choice in KERNEL_CHOICES
                      if choice == (predict_kernel, gradient)),
                     f"gradient in the {gradient} kernel, predictions in "
                     + ("their own kernel" if predict_kernel else "the gradient kernel"))
        if pair_order != "type":
            label += ", pairs in the list's order"
        if not interleaved:
            label += ", work arrays contiguous"
    return {"label": label, "predict_kernel": predict_kernel, "gradient": gradient,
            "pair_order": pair_order, "interleaved": interleaved, "why": why}


def fastest_epoch_kernels(path):
    """The :func:`kernel_choice` of the fastest row of ``gpu-epoch``'s table of kernel choices
    (its ``gpu_epoch.json`` at ``path``), so that a later call on the device trains with it
    (``device_all.sh 5``): the 20 s target is then measured with the kernels that would become
    the default."""
    timed = json.loads(Path(path).read_text())["gpu_epoch_s_by_kernels"]
    rows = {name: {"predict_kernel": predict, "gradient": gradient}
            for name, (predict, gradient) in KERNEL_CHOICES}
    rows[LAYOUT_AB] = {"interleaved": False}
    rows.update({name: {"gradient": gradient, "pair_order": "list"}
                 for name, gradient in PAIR_ORDER_AB})
    known = {name: seconds for name, seconds in timed.items() if name in rows}
    if not known:
        raise SystemExit(f"{path}: no row of gpu-epoch's kernel table that this script knows")
    best = min(known, key=known.get)
    return kernel_choice(label=best, why=f"the fastest epoch in {path}: {known[best]:.3f} s, "
                         f"the defaults' {timed.get(KERNEL_CHOICES[0][0], float('nan')):.3f} s",
                         **rows[best])


def _chosen_backend(kernels, model, structures):
    """A :class:`CudaBackend` with the per-atom kernels, pair order and layout of ``kernels``
    (train()'s ``backend`` factory)."""
    from nepzbl_plugin.train.cuda_backend import CudaBackend

    backend = CudaBackend(model, structures, pair_order=kernels["pair_order"])
    backend.set_kernels(kernels["predict_kernel"], kernels["gradient"])
    backend.set_interleaved(kernels["interleaved"])
    return backend


def bench_gpu_epoch(threads, out):
    """One epoch of a 2000 x 192-atom set on the GPU against the CPU trainer, both through the
    trainer's own call (loss and gradient of a batch in one call, the loss in C), and the time
    of one such call by batch size on the GPU: a small batch leaves most of the GPU idle (one
    thread per atom), so the GPU's epoch is timed with nep.in's batches and with batches that
    fill it (:data:`~nepzbl_plugin.train.trainer.GPU_FULL_BATCH_ATOMS` atoms)."""
    from nepzbl_plugin.model import Model
    from nepzbl_plugin.train import trainer as T
    from nepzbl_plugin.train._backend import EngineBackend
    from nepzbl_plugin.train.cuda_backend import CudaBackend
    from nepzbl_plugin.train.loss import Labels

    nep_in, structures, rng = _llzo_2000()
    atoms = sum(len(st.symbols) for st in structures)
    per_structure = len(structures[0].symbols)
    model = Model.from_nep_in(nep_in)
    model.parameters[:] = rng.normal(0, 0.1, model.num_parameters)
    loss = _trainer_loss(nep_in, model)
    batch = nep_in.batch_size or 25
    fill = max(1, min(len(structures), T.GPU_FULL_BATCH_ATOMS // per_structure))
    params = model.parameters

    def epoch(backend, count, size):
        t0 = time.monotonic()
        for first in range(0, count, size):
            backend.loss_and_gradient(params, np.arange(first, min(count, first + size)))
        return time.monotonic() - t0

    t0 = time.monotonic()
    labels = Labels.from_structures(structures, list(model.types))
    gpu = CudaBackend(model, structures)
    gpu.attach_loss(labels, loss)
    upload = time.monotonic() - t0
    # the kernels the trainer would choose for a filled call (train(gpu_kernels="auto")); its
    # epoch is the row of that choice in the table below
    tuning = gpu.tune_kernels(params, np.arange(fill))
    gpu.set_kernels()
    calls = []  # (structures per call, ms per call)
    for size in sorted({1, 4, batch, 100, fill, 2 * fill} & set(range(1, len(structures) + 1))):
        call = functools.partial(gpu.loss_and_gradient, params, np.arange(size))
        call()  # warm-up
        calls.append((size, 1e3 / _timed(call, 0.5)[0]))
    epoch(gpu, min(batch, len(structures)), batch)  # warm-up
    gpu_epoch_batch = epoch(gpu, len(structures), batch)
    gpu_epoch = epoch(gpu, len(structures), fill)
    by_kernels = {KERNEL_CHOICES[0][0]: gpu_epoch}
    for label, choice in KERNEL_CHOICES[1:]:  # the per-atom kernels' A/B, filled batches
        gpu.set_kernels(*choice)
        epoch(gpu, min(fill, len(structures)), fill)  # warm-up
        by_kernels[label] = epoch(gpu, len(structures), fill)
    gpu.set_kernels()
    gpu.set_interleaved(False)  # the layout's A/B: its gradient rows are most of the memory
    epoch(gpu, min(fill, len(structures)), fill)  # warm-up
    by_kernels[LAYOUT_AB] = epoch(gpu, len(structures), fill)
    gpu.set_interleaved(True)
    device_bytes = int(gpu.device_bytes)
    del gpu  # the pair order's A/B: the same set uploaded again, in the list's order
    listed = CudaBackend(model, structures, pair_order="list")
    listed.attach_loss(labels, loss)
    for label, gradient in PAIR_ORDER_AB:
        listed.set_kernels(True, gradient)
        epoch(listed, min(fill, len(structures)), fill)  # warm-up
        by_kernels[label] = epoch(listed, len(structures), fill)
    del listed
    n_cpu = min(100, len(structures))
    cpu = EngineBackend(model, structures[:n_cpu], num_threads=threads)
    cpu.attach_loss(Labels.from_structures(structures[:n_cpu], list(model.types)), loss)
    cpu_epoch = epoch(cpu, n_cpu, batch) * len(structures) / n_cpu
    print(f"\n{len(structures)} x {per_structure}-atom set ({atoms} atoms), the trainer's call "
          "(loss + gradient of a batch) on the GPU by batch size:")
    print(f"{'structures':>10} {'atoms':>7} {'ms per call':>12} {'atoms/s':>10}")
    for size, ms in calls:
        print(f"{size:10d} {size * per_structure:7d} {ms:12.2f} "
              f"{size * per_structure / ms * 1e3:10.3g}")
    print(f"GPU epoch {gpu_epoch:.2f} s in batches of {fill} (the GPU filled, "
          f"{fill * per_structure} atoms), {gpu_epoch_batch:.2f} s in nep.in's batches of {batch} "
          f"(upload and neighbour lists {upload:.1f} s once); device memory "
          f"{device_bytes / 2**30:.2f} GiB (GPU in use {_gpu_memory_text()})")
    print(f"CPU {threads} threads {cpu_epoch:.1f} s per epoch in batches of {batch} ({n_cpu} "
          f"structures, scaled): GPU {cpu_epoch / gpu_epoch:.1f} times faster filled, "
          f"{cpu_epoch / gpu_epoch_batch:.1f} times in batches of {batch} (target >= 20)")
    print(f"\n{'per-atom kernels, layout (epoch in batches of ' + str(fill) + ')':<58} "
          f"{'epoch (s)':>9} {'x CPU':>7}")
    for label, seconds in by_kernels.items():
        print(f"{label:<58} {seconds:9.3f} {cpu_epoch / seconds:7.1f}")
    tuned_label = next(label for label, choice in KERNEL_CHOICES
                       if choice == KERNELS[tuning.chosen])
    tuned_epoch = by_kernels[tuned_label]
    print(f"the trainer's choice for a filled call: {tuning.chosen} ({tuned_label}), epoch "
          f"{tuned_epoch:.3f} s, {cpu_epoch / tuned_epoch:.1f} times the CPU (target >= 20); "
          "ms a call by choice: " + ", ".join(f"{name} {ms:.3g}"
                                              for name, ms in tuning.ms_per_call.items()))
    result = {"structures": len(structures), "atoms": atoms, "batch": batch, "fill_batch": fill,
              "gpu_epoch_s": gpu_epoch, "gpu_epoch_batch_s": gpu_epoch_batch,
              "call_ms_by_structures": {str(size): ms for size, ms in calls},
              "upload_s": upload, "device_bytes": device_bytes,
              "gpu_memory_in_use": _gpu_memory_text(), "cpu_threads": threads,
              "cpu_structures_timed": n_cpu, "cpu_epoch_s_scaled": cpu_epoch,
              "ratio": cpu_epoch / gpu_epoch, "ratio_batch": cpu_epoch / gpu_epoch_batch,
              "gpu_epoch_s_by_kernels": by_kernels,
              "tuned_kernels": tuning.chosen, "tuning_ms_per_call": tuning.ms_per_call,
              "gpu_epoch_tuned_s": tuned_epoch, "ratio_tuned": cpu_epoch / tuned_epoch,
              "target": 20}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "gpu_epoch.json").write_text(json.dumps(result, indent=1) + "\n")


def _scaling_setup():
    """Model, loss, labels and structures of LLZO NEP25-ZBL as
    :func:`nepzbl_plugin.train.train` prepares them."""
    from nepzbl_plugin.model import Model
    from nepzbl_plugin.train import trainer as T
    from nepzbl_plugin.train.initialise import initialise_parameters
    from nepzbl_plugin.train.loss import Labels
    from nepzbl_plugin.train.qscaler import compute_q_scaler

    nep_in_path = DATA / "llzo/NEP25-ZBL/nep.in"
    if not nep_in_path.exists():
        raise SystemExit(f"{nep_in_path} not found: the scaling benchmark needs the LLZO data")
    nep_in, structures = _read(nep_in_path, [DATA / "llzo/NEP25-ZBL/train.xyz"])
    name = f"LLZO NEP25-ZBL ({len(structures)} structures)"
    settings = T.settings_from_nep_in(nep_in, len(structures))
    model = Model.from_nep_in(nep_in)
    model.q_scaler[:] = compute_q_scaler(model, structures, initial_para=settings.initial_para)
    model.parameters[:] = initialise_parameters(model, structures, seed=settings.seed)
    loss = _trainer_loss(nep_in, model)
    labels = Labels.from_structures(structures, list(model.types))
    return name, settings, model, loss, labels, structures


def _trainer_loss(nep_in, model):
    """GPUMD's loss for ``model`` with nep.in's weights, as :func:`nepzbl_plugin.train.train`
    builds it."""
    from nepzbl_plugin.train import trainer as T
    from nepzbl_plugin.train.loss import Loss

    weights = T.loss_weights_from_nep_in(nep_in, model.num_types).resolved(model.num_parameters)
    return Loss(weights, model.parameter_types(), global_mask=T._global_mask(model))


def _timed(step, seconds):
    """Calls ``step()`` for about ``seconds`` (at least twice); returns calls per wall second
    and process CPU seconds per call."""
    count, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and count >= 2:
            return count / elapsed, (time.process_time() - c0) / count


def _best_of(call, rounds, repeat=1):
    """The fastest of ``rounds`` rounds of ``repeat`` calls of ``call()``: (wall seconds per
    call, the last call's value)."""
    times = []
    for _ in range(max(1, rounds)):
        t0 = time.perf_counter()
        for _ in range(repeat):
            value = call()
        times.append((time.perf_counter() - t0) / repeat)
    return min(times), value


def _adam_step(backend, loss, labels, params0, batches):
    """The trainer's Adam step (``_Run.value_and_gradient`` + ``Adam.step``: the C loss when
    the backend has the labels attached, else the numpy loss) on the given batches, cycled,
    as a function of no arguments."""
    from nepzbl_plugin.train.optimizers import Adam

    params = params0.copy()
    adam = Adam(params.size, learning_rate=1e-3)
    subsets = [labels.subset(b) for b in batches]
    steps = [0]

    def step():
        k = steps[0] % len(batches)
        if getattr(backend, "has_loss", False):  # the trainer's path: the loss in C
            _, grad = backend.loss_and_gradient(params, batches[k])
        else:  # the numpy loss
            pred = backend.predict(params, batches[k])
            loss.evaluate(subsets[k], pred, params)
            grad = backend.gradient(params, batches[k], loss.adjoints(subsets[k], pred, params))
        adam.step(params, grad)
        steps[0] += 1
    return step


def _steps_per_second(backend, loss, labels, params0, batches, seconds):
    """Adam steps (:func:`_adam_step`) for about ``seconds``: steps per wall second and process
    CPU seconds per step."""
    return _timed(_adam_step(backend, loss, labels, params0, batches), seconds)


def bench_gpu_steps(threads, seconds):
    """Adam steps/s and SNES generations/s on the GPU with the loss on the host, fused, and
    fully on the device, against the CPU trainer, in one run."""
    from nepzbl_plugin.train._backend import EngineBackend
    from nepzbl_plugin.train.cuda_backend import CudaBackend
    from nepzbl_plugin.train.optimizers import Adam
    from nepzbl_plugin.train.snes import SNES

    name, settings, model, loss, labels, structures = _scaling_setup()
    n = len(structures)
    perm = np.random.default_rng(settings.seed).permutation(n)
    size = settings.batch_size
    cases = {f"Adam, batches of {size}": [np.sort(perm[k:k + size]) for k in range(0, n, size)],
             f"full batch ({n})": [np.arange(n)]}
    params0 = model.parameters.copy()
    t0 = time.monotonic()
    host_loss = CudaBackend(model, structures)
    device_loss = CudaBackend(model, structures)
    device_loss.attach_loss(labels, loss)
    upload = time.monotonic() - t0
    cpu = EngineBackend(model, structures, num_threads=threads)
    cpu.attach_loss(labels, loss)
    print(f"{name}; {model.num_parameters} parameters; upload and neighbour lists {upload:.2f} s "
          f"per backend; {seconds:g} s per row")

    def per_second(step):  # calls per second after one warm-up call
        step()
        return _timed(step, seconds)[0]

    def resident(backend, batches):
        adam, k = Adam(params0.size, learning_rate=1e-3), [0]
        device = backend.device_adam(adam, params0.copy())

        def step():
            device.step(batches[k[0] % len(batches)])
            k[0] += 1
        return step

    for case, batches in cases.items():
        reference = per_second(_adam_step(cpu, loss, labels, params0, batches))
        rows = [(f"CPU trainer, {threads} threads", reference),
                ("GPU, loss on the host",
                 per_second(_adam_step(host_loss, loss, labels, params0, batches))),
                ("GPU, loss + gradient in one call, Adam on the host",
                 per_second(_adam_step(device_loss, loss, labels, params0, batches))),
                ("GPU, everything on the device (DeviceAdam)",
                 per_second(resident(device_loss, batches)))]
        device_loss.set_interleaved(False)  # A/B: the first layout
        rows.append(("  the same, work arrays and gradient rows contiguous per thread",
                     per_second(resident(device_loss, batches))))
        device_loss.set_interleaved(True)
        for label, choice in KERNEL_CHOICES[1:]:  # A/B: the per-atom kernels
            device_loss.set_kernels(*choice)
            rows.append((f"  the same, {label}", per_second(resident(device_loss, batches))))
        device_loss.set_kernels()
        print(f"\n{case}")
        print(f"{'path':<68} {'steps/s':>9} {'x CPU':>7}")
        for label, rate in rows:
            print(f"{label:<68} {rate:9.1f} {rate / reference:7.2f}")

    population = rehearsed(settings.population, 4)
    snes = SNES(loss.parameter_types, model.num_types, population=population, seed=1,
                mu=params0)
    batch = cases[next(iter(cases))][0]
    sub = labels.subset(batch)

    def snes_host(backend):
        def generation():
            pop = snes.ask()
            preds = backend.predict_population(pop, batch)
            snes.tell(np.array([loss.evaluate(sub, p, z).total
                                for p, z in zip(preds, pop, strict=True)]))
        return generation

    def snes_device():
        def generation():
            pop = snes.ask()
            snes.tell(np.array([v.total for v in device_loss.population_losses(pop, batch)]))
        return generation

    def snes_cpu():
        def generation():
            pop = snes.ask()
            snes.tell(np.array([v.total for v in cpu.population_losses(pop, batch)]))
        return generation

    reference = per_second(snes_cpu())
    rows = [(f"CPU trainer, {threads} threads", reference),
            ("GPU, predictions to the host, numpy loss", per_second(snes_host(host_loss))),
            ("GPU, losses on the device", per_second(snes_device()))]
    device_loss.set_interleaved(False)
    rows.append(("  the same, work arrays contiguous per thread", per_second(snes_device())))
    device_loss.set_interleaved(True)
    print(f"\nSNES, population {population}, one batch of {len(batch)}")
    print(f"{'path':<68} {'gen/s':>9} {'x CPU':>7}")
    for label, rate in rows:
        print(f"{label:<68} {rate:9.1f} {rate / reference:7.2f}")
    print(f"\ntraining-set device memory {device_loss.device_bytes / 2**20:.0f} MiB; GPU memory "
          f"in use {_gpu_memory_text()}; target >= 100 Adam steps/s")


def bench_scaling(threads, rounds, seconds):
    from nepzbl_plugin.train._backend import EngineBackend

    name, settings, model, loss, labels, structures = _scaling_setup()
    n = len(structures)
    rng = np.random.default_rng(settings.seed)
    perm = rng.permutation(n)
    size = settings.batch_size
    minibatches = [np.sort(perm[k:k + size]) for k in range(0, n, size)]
    cases = {f"Adam, batches of {settings.batch_size}": minibatches,
             f"full batch ({n})": [np.arange(n)]}
    backends = {t: EngineBackend(model, structures, num_threads=t) for t in threads}
    for backend in backends.values():
        backend.attach_loss(labels, loss)
    params0 = model.parameters.copy()
    load_before = os.getloadavg()
    print(f"{name}; {model.num_parameters} parameters; {os.cpu_count()} CPUs; load average "
          f"{load_before[0]:.1f} (1 min) at the start")
    for case, batches in cases.items():
        for t in threads:  # warm-up: page in, start the OpenMP team
            _steps_per_second(backends[t], loss, labels, params0, batches, 0.0)
        rates = {t: [] for t in threads}
        cpu = {t: [] for t in threads}
        for r in range(rounds):
            for t in (threads if r % 2 == 0 else threads[::-1]):
                rate, cpu_per_step = _steps_per_second(backends[t], loss, labels, params0,
                                                       batches, seconds)
                rates[t].append(rate)
                cpu[t].append(cpu_per_step)
        t1 = threads[0]
        best1, cpu1 = max(rates[t1]), min(cpu[t1])
        print(f"\n{case}: {rounds} rounds of {seconds:g} s per thread count, interleaved")
        print(f"{'threads':>8} {'best (steps/s)':>15} {'median (steps/s)':>17} "
              f"{'best / best(' + str(t1) + ')':>16} {'CPU (ms/step)':>14} "
              f"{'CPU efficiency':>15}")
        for t in threads:
            best, median = max(rates[t]), float(np.median(rates[t]))
            # CPU efficiency: one thread's CPU time per step over this count's (1 = no
            # parallel overhead); the wall ratio approaches threads x efficiency on idle cores
            print(f"{t:8d} {best:15.2f} {median:17.2f} {best / best1:16.2f} "
                  f"{1e3 * min(cpu[t]):14.1f} {cpu1 * t1 / min(cpu[t]):15.2f}")
    load_after = os.getloadavg()
    print(f"\nload average {load_after[0]:.1f} (1 min) at the end; target: 2 threads >= 1.8 x "
          "1 thread (16 threads >= 12 x on 16 cores). On a machine busy with other sessions "
          "the wall ratio shows the CPU share this process gets, not the code's scaling "
          "(Linux shares CPU per session, not per thread); the CPU efficiency column does not "
          "depend on it.")


def bench_startup(rounds):
    """The trainer's start-up before its first step, part by part (best of ``rounds``), on
    LLZO's 25 frames and the 2000-frame set; the neighbour counts by numpy against the C
    engine's (the trainer's), with the ratio."""
    from nepzbl_plugin.engine.cpu import neighbour_counts as c_counts
    from nepzbl_plugin.model import Model
    from nepzbl_plugin.neighbours import max_neighbour_counts
    from nepzbl_plugin.neighbours import neighbour_counts as numpy_counts
    from nepzbl_plugin.train._backend import EngineBackend
    from nepzbl_plugin.train.cuda_backend import CudaBackend, cuda_training_available
    from nepzbl_plugin.train.initialise import initialise_parameters
    from nepzbl_plugin.train.qscaler import compute_q_scaler

    nep_in, llzo = _read(DATA / "llzo/NEP25-ZBL/nep.in", [DATA / "llzo/NEP25-ZBL/train.xyz"])
    _, large, _ = _llzo_2000()
    model = Model.from_nep_in(nep_in)

    def best(call):
        return _best_of(call, rounds)

    gpu = cuda_training_available()
    print(f"the trainer's start-up, best of {rounds} (load average "
          f"{os.getloadavg()[0]:.1f}; CUDA {'present' if gpu else 'absent'}):")
    print(f"{'set':<24} {'part':<46} {'time (s)':>9} {'x C count':>10}")
    part = functools.partial
    for name, structures in ((f"LLZO {len(llzo)} frames", llzo),
                             (f"LLZO {len(large)} x 192 atoms", large)):
        timed = structures[:100]
        numpy_s, numpy_max = best(part(max_neighbour_counts, model, timed, count=numpy_counts))
        numpy_s *= len(structures) / len(timed)
        c_s, c_max = best(part(max_neighbour_counts, model, structures, count=c_counts))
        same = max_neighbour_counts(model, timed, count=c_counts) == numpy_max
        scaled_from = " (scaled from 100)" if len(timed) < len(structures) else ""
        rows = [(f"neighbour counts, numpy{scaled_from}", numpy_s),
                (f"neighbour counts, C (the trainer's): {c_max[0]} {c_max[1]}", c_s)]
        scaled = model.copy()
        rows.append(("q_scaler", best(part(compute_q_scaler, scaled, structures))[0]))
        scaled.q_scaler[:] = compute_q_scaler(scaled, structures)
        rows.append(("initial parameters",
                     best(part(initialise_parameters, scaled, structures, seed=0))[0]))
        rows.append(("CPU backend (EngineBackend)",
                     best(part(EngineBackend, scaled, structures))[0]))
        if gpu:
            rows.append(("GPU backend: upload, neighbour lists",
                         best(part(CudaBackend, scaled, structures))[0]))
        for what, seconds in rows:
            print(f"{name:<24} {what:<46} {seconds:9.3f} {seconds / c_s:10.1f}")
        if not same:
            print(f"{name}: the C and numpy counts DIFFER on the first 100 frames")


def bench_host_steps(rounds):
    """The host's share of a training step, for LLZO NEP25-ZBL's parameter count (best of
    ``rounds``, 20 repetitions each): scipy's L-BFGS-B step (``lbfgs_minimize``, the trainer's
    history, on a quadratic whose loss and gradient cost next to nothing; 60 iterations
    timed once the history is full), an SNES generation
    of nep.in's population (``ask`` and ``tell``, and the normal draws alone), and a report's
    writes (nep.txt, the checkpoint, a loss.out row). On a GPU these run between device
    calls, so they bound the steps per second however fast the kernels get."""
    import tempfile

    from nepzbl_plugin.io.gpumd_outputs import write_loss_out
    from nepzbl_plugin.model import Model
    from nepzbl_plugin.train.checkpoint import save_checkpoint
    from nepzbl_plugin.train.optimizers import LBFGS_HISTORY, lbfgs_minimize
    from nepzbl_plugin.train.snes import SNES

    nep_in, _ = _read(DATA / "llzo/NEP25-ZBL/nep.in", [])
    model = Model.from_nep_in(nep_in)
    rng = np.random.default_rng(0)
    model.parameters[:] = rng.normal(0, 0.1, model.num_parameters)
    P, T = model.num_parameters, model.num_types

    def best(call):
        return _best_of(call, rounds, repeat=20)[0]

    curvature = rng.uniform(0.1, 10.0, P)

    def quadratic(x):
        return 0.5 * float(curvature @ (x * x)), curvature * x

    def lbfgs_iteration():  # per iteration once the history is full, as in a long run
        stamps = []

        def stamp(x, loss):
            stamps.append(time.perf_counter())
            return False  # go on

        lbfgs_minimize(quadratic, rng.normal(size=P), max_iterations=LBFGS_HISTORY + 60,
                       callback=stamp)
        full = stamps[LBFGS_HISTORY:]
        return (full[-1] - full[0]) / max(1, len(full) - 1)

    lbfgs_minimize(quadratic, rng.normal(size=P), max_iterations=2)  # scipy's import
    lbfgs_s = min(lbfgs_iteration() for _ in range(max(1, rounds)))
    population = int(getattr(nep_in, "population", None) or 50)
    snes = SNES(model.parameter_types(), T, population=population, seed=0)
    losses = rng.normal(size=(population, T + 1))

    def generation():
        snes.ask()
        snes.tell(losses)

    rows = [(f"L-BFGS-B step (scipy, history {LBFGS_HISTORY} full), per iteration", lbfgs_s),
            (f"SNES generation of {population} (ask + tell)", best(generation)),
            (f"  of which {population} x {P} normal draws",
             best(lambda: snes.rng.standard_normal((population, P))))]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        arrays = {"parameters": model.parameters, "q_scaler": model.q_scaler,
                  "m": model.parameters.copy(), "v": model.parameters.copy()}
        row = np.zeros((1, 10))
        rows += [("report: nep.txt", best(lambda: model.write(folder / "nep.txt"))),
                 ("report: checkpoint (.npz + .json)",
                  best(lambda: save_checkpoint(folder, arrays, {"step": 1}))),
                 ("report: a loss.out row",
                  best(lambda: write_loss_out(folder / "loss.out", row, append=True)))]
    print(f"host work of a training step, LLZO NEP25-ZBL ({P} parameters), best of {rounds} "
          f"(load average {os.getloadavg()[0]:.1f}):")
    print(f"{'part':<52} {'ms':>8}")
    for what, seconds in rows:
        print(f"{what:<52} {seconds * 1e3:8.2f}")


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_device_scripts.py parses the device scripts' calls)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=("llzo", "pbte", "memory", "llzo-peers", "scaling",
                                         "gpu", "gpu-epoch", "gpu-steps", "peers",
                                         "schedules", "startup", "host-steps"))
    parser.add_argument("--minutes", type=float, default=None,
                        help="training wall time in minutes (default 20; memory: 3)")
    parser.add_argument("--out", default=None, help="output folder (default bench_train_CASE)")
    parser.add_argument("--optimizer", default=None, help="adam (default), lbfgs or snes")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where llzo/pbte/memory/llzo-peers/peers train (default auto: "
                             "the GPU when nepzbl finds one)")
    parser.add_argument("--threads", default=None,
                        help="scaling: comma-separated thread counts (default 1,2); gpu-epoch, "
                             "gpu-steps: CPU threads of the comparison (default 16)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="scaling: interleaved rounds per thread count (default 5); "
                             "startup, host-steps: rounds, the best counts (default 5)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="scaling, gpu-steps: seconds per measurement (default 3); gpu: "
                             "training budget in seconds (default 20); peers: nepzbl's budget "
                             "when it has no --nepzbl-reference (default 20)")
    parser.add_argument("--peer-minutes", type=float, default=5.0,
                        help="gpu: the most each peer may train, in minutes (default 5; 0: "
                             "no peers)")
    parser.add_argument("--peer-seconds", type=float, default=75.0,
                        help="peers: the most each peer may train, in seconds (default 75)")
    parser.add_argument("--peer-first", type=int, default=100,
                        help="gpu, peers: a peer's first run length in steps (neppo) or epochs "
                             "(TorchNEP), doubled until the target (default 100)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"peers: which, comma-separated (default {','.join(PEERS)}; "
                             "torchnep-eager: TorchNEP without torch.compile)")
    parser.add_argument("--nepzbl-reference", default=None,
                        help="peers: nepzbl_reference.json written by the gpu case (nepzbl's "
                             "held-out force RMSE and its time), or several comma-separated, "
                             "the first found is read; none found: nepzbl trains --seconds now")
    parser.add_argument("--schedules", default=",".join(SCHEDULES),
                        help="schedules: which, comma-separated, the first the reference "
                             f"(default {','.join(SCHEDULES)})")
    parser.add_argument("--epochs", type=int, default=1500,
                        help="schedules: epochs (L-BFGS: iterations) per schedule (default "
                             "1500)")
    parser.add_argument("--table-only", action="store_true",
                        help="peers: print the table of the results already in --out")
    parser.add_argument("--gradient-kernel", default="default", choices=GRADIENT_KERNELS,
                        help="gpu: the trainer's gradient kernel (default: the default)")
    parser.add_argument("--predictions-in-gradient-kernel", action="store_true",
                        help="gpu: the prediction pass in the gradient kernel, not in its own")
    parser.add_argument("--pair-order", default="type", choices=("type", "list"),
                        help="gpu: each atom's pairs on the device in the neighbours' type "
                             "order (default) or in the neighbour list's")
    parser.add_argument("--fastest-from", default=None,
                        help="gpu: train with the fastest kernels of gpu-epoch's table, read "
                             "from the first of these comma-separated gpu_epoch.json files that "
                             "exists (none: the kernels named by the options above)")
    return parser


def _first_file(paths):
    """The paths of a comma-separated option (None: none) and the first of them that is a
    file (None when none is)."""
    candidates = [Path(p) for p in (paths or "").split(",") if p]
    return candidates, next((p for p in candidates if p.is_file()), None)


def _kernels_from_args(args):
    """The kernel choice ``gpu`` trains with: the fastest of a gpu_epoch.json, the options, or
    None for the defaults."""
    _, found = _first_file(args.fastest_from)
    if found is not None:
        return fastest_epoch_kernels(found)
    choice = kernel_choice(args.gradient_kernel, not args.predictions_in_gradient_kernel,
                           args.pair_order)
    if args.fastest_from:  # said, so that the output shows which kernels ran
        choice["why"] = f"none of {args.fastest_from} found: the options' choice"
        return choice
    return None if choice["label"] == KERNEL_CHOICES[0][0] else choice


def main(argv=None):
    args = build_parser().parse_args(argv)
    DEVICE[0] = args.device
    if REHEARSAL:  # tools/rehearse_device.py: the same command lines, tiny budgets
        args.seconds = {"gpu-steps": 0.2, "gpu": 5.0, "peers": 5.0}.get(args.case, args.seconds)
        args.peer_first = min(args.peer_first, 10)
        print("rehearsal (NEPZBL_REHEARSAL=1): tiny sizes"
              + (f", --seconds {args.seconds:g}" if args.seconds is not None else "")
              + f", --peer-first {args.peer_first}", flush=True)
    if args.case in ("peers", "llzo-peers", "gpu"):
        _end_peers_on_sigterm()
    if args.case == "scaling":
        threads = [int(t) for t in (args.threads or "1,2").split(",")]
        bench_scaling(threads, args.rounds, args.seconds if args.seconds is not None else 3.0)
        return
    if args.case == "gpu-steps":
        bench_gpu_steps(int(args.threads or 16), args.seconds if args.seconds is not None else 3.0)
        return
    if args.case == "startup":
        bench_startup(args.rounds)
        return
    if args.case == "host-steps":
        bench_host_steps(args.rounds)
        return
    minutes = args.minutes if args.minutes is not None else {"memory": 3, "llzo-peers": 5}.get(
        args.case, 20)
    out = Path(args.out or f"bench_train_{args.case}")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("nepzbl_restart.*"):
        old.unlink()  # a benchmark always starts afresh
    if args.case == "gpu":
        bench_gpu(args.seconds if args.seconds is not None else 20.0, out, args.optimizer,
                  args.peer_minutes, args.peer_first, _kernels_from_args(args))
    elif args.case == "peers":
        bench_peers(out, _peer_device(args.device), args.peer_seconds,
                    [p for p in args.peers.split(",") if p], args.nepzbl_reference,
                    args.seconds if args.seconds is not None else 20.0, args.optimizer,
                    args.peer_first, args.table_only)
    elif args.case == "gpu-epoch":
        bench_gpu_epoch(int(args.threads or 16), out)
    elif args.case == "schedules":
        names = [n for n in args.schedules.split(",") if n]
        unknown = [n for n in names if n not in SCHEDULES]
        if unknown or not names:
            sys.exit(f"bench_train.py schedules: unknown schedule(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(SCHEDULES)}")
        bench_schedules(rehearsed(args.epochs, 20), out, names, args.device)
    else:
        {"llzo": bench_llzo, "pbte": bench_pbte, "memory": bench_memory,
         "llzo-peers": bench_llzo_peers}[args.case](minutes, out, args.optimizer)


if __name__ == "__main__":
    main()
