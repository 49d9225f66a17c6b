"""Rehearse the GPU session's scripts on this machine, so that a lent device's minutes are not
lost to a Python error: the exact command lines of ``benchmarks/device_all.sh`` (parts 1 to
5) and ``tools/device_sanitize.sh`` (sanitize, tests) run against the host emulation of
the CUDA sources (tests/cuda_emulation.py: the kernels as host loops, slow but the same code),
with ``NEPZBL_REHEARSAL=1`` shrinking the sizes and budgets inside the scripts
(benchmarks/rehearsal.py). Then every output the device session is meant to bring back is
checked: each step's status, the files under $OUT, the tables and JSON the docs copy, and that
nothing was written outside $OUT (but gpu-out/, the folder part 1 leaves for part 2).

What it cannot rehearse: speeds and time limits on the device (only their logic), nvidia-smi,
GPUMD (part 3 runs as on a device without .device/bin/gpumd), Nsight Compute (part 5's
ncu step runs only where ncu is installed), compute-sanitizer, the sm_90
build of tools/prepare_device.sh, and the peers on a GPU (they run with PEER_DEVICE=cpu).

Usage (after ``NEPZBL_CUDA_FEATURE=disabled tools/dev_build.sh``; about 4 minutes on 2 cores)::

    python3 tools/rehearse_device.py [--parts 1 2 3 4 5 sanitize tests] [--out build/rehearsal/out]
                                     [--peer-python /tmp/peers-venv/bin/python]

Exit status 0 when every check passes, 1 otherwise (the failures are listed). Run it alone in
the tree: a file another process writes meanwhile counts as written outside $OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from cuda_emulation import EmulationUnavailable, build_emulated_package  # noqa: E402

PARTS = ("1", "2", "3", "4", "5", "sanitize", "tests")
# the steps each part records in status.txt (device_all.sh's step names)
STEPS = {"1": ("tests", "bench_gpu_steps", "bench_train_gpu", "bench_train_gpu_adam",
              "bench_gpu_epoch", "bench_scaling"),
         "2": ("peers_nepzbl", "peers_neppo", "peers_torchnep", "peers_torchnep-eager",
               "peers_table"),
         "3": ("train_schedules", "bench_gpu", "bench_gpu_md"),
         "4": ("contrast_nep802", "contrast_nozbl", "contrast_zbl", "contrast_table"),
         "5": ("profile_train", "bench_train_gpu_fastest", "ncu_train")}
# steps a part runs only where their tool is installed (ncu): checked when they ran
OPTIONAL_STEPS = {"ncu_train"}
# part 4's result files (validation/al_contrast_long.py), under contrast/
CONTRAST_RUNS = ("nep802_nozbl", "nozbl", "zbl")


def command_of(part: str) -> list[str]:
    if part in STEPS:
        return ["bash", "benchmarks/device_all.sh", part]
    return ["bash", "tools/device_sanitize.sh", part]


def untracked_files() -> set[str]:
    """Files git does not track, ignored ones included (to see what a part wrote)."""
    done = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
                          cwd=REPO, capture_output=True, text=True, check=True)
    return {line[3:] for line in done.stdout.splitlines()}


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def check_part(part: str, out: Path, peers: set[str]) -> list[str]:
    """What is wrong with a part's outputs in ``out`` (an empty list when nothing is)."""
    problems = []

    def need(condition, what):
        if not condition:
            problems.append(what)

    def need_text(name, *phrases):
        text = read(out / name)
        need(text, f"{name} missing or empty")
        for phrase in phrases:
            need(not text or phrase in text, f"{name} lacks {phrase!r}")
        need("Traceback" not in text, f"{name} has a traceback")

    def need_tests():  # the emulation runs every gpu test: none may fail or skip (no data?)
        need_text("tests.txt", " passed")
        text = read(out / "tests.txt")
        need(" failed" not in text, "tests.txt: a test failed")
        need(" skipped" not in text, "tests.txt: tests skipped")

    if part in STEPS:
        status = read(out / "status.txt")
        for step in STEPS[part]:
            if step in OPTIONAL_STEPS and f"{step}: status " not in status:
                continue
            need(f"{step}: status 0 " in status,
                 f"step {step} did not end with status 0 (status.txt: "
                 f"{[line for line in status.splitlines() if line.startswith(step + ':')]})")
        need("CUDA devices 1" in read(out / "device.txt"), "device.txt lacks 'CUDA devices 1'")
    if part == "1":
        need_tests()
        need_text("bench_gpu_steps.txt", "Adam, batches of", "full batch",
                  "everything on the device (DeviceAdam)", "gradient rows contiguous",
                  "predictions in the gradient kernel", "gradient in the warp kernel", "SNES",
                  "training-set device memory")
        need_text("bench_train_gpu.txt", "LLZO NEP25-ZBL on the GPU", "optimiser steps per second",
                  "held-out targets")
        reference = out / "train_gpu" / "nepzbl_reference.json"
        need(reference.is_file(), "train_gpu/nepzbl_reference.json missing")
        if reference.is_file():
            keys = set(json.loads(reference.read_text()))
            need({"target_force", "time_to_target", "device", "budget_s"} <= keys,
                 f"nepzbl_reference.json has only {sorted(keys)}")
        need((out / "train_gpu" / "bench_gpu.png").is_file(), "train_gpu/bench_gpu.png missing")
        need((REPO / "gpu-out" / "nepzbl_reference.json").is_file(),
             "gpu-out/nepzbl_reference.json (part 2's target) missing")
        need((REPO / "gpu-out" / "gpu_epoch.json").is_file(),
             "gpu-out/gpu_epoch.json (part 5's choice of kernels) missing")
        need_text("bench_gpu_epoch.txt", "GPU epoch", "device memory", "per epoch",
                  "ms per call", "the GPU filled", "per-atom kernels",
                  "128-register kernel", "gradient in the unbounded kernel",
                  "gradient in the warp kernel", "predictions and gradient in the warp kernel",
                  "gradient rows contiguous", "pairs in the neighbour list's order",
                  "warp kernel, pairs in the list's order")
        need_text("bench_train_gpu_adam.txt", "optimiser steps per second", "held-out targets")
        need_text("bench_scaling.txt", "best / best(1)")
        epoch = out / "gpu_epoch" / "gpu_epoch.json"
        need(epoch.is_file() and {"gpu_epoch_s", "device_bytes", "ratio"}
             <= set(json.loads(epoch.read_text())), "gpu_epoch/gpu_epoch.json missing or short")
    elif part == "2":
        need((out / "peers" / "nepzbl_reference.json").is_file(),
             "peers/nepzbl_reference.json missing")
        need_text("peers_nepzbl.txt", "nepzbl")
        for code in ("neppo", "torchnep", "torchnep-eager"):
            if code in peers:
                need((out / "peers" / f"peer_{code}.json").is_file(),
                     f"peers/peer_{code}.json missing")
                need_text(f"peers_{code}.txt", "time to nepzbl's held-out force RMSE")
        need_text("peers_table.txt", "time to nepzbl's held-out force RMSE",
                  *[f"{code} " for code in sorted(peers)])
    elif part == "3":
        need_text("train_schedules.txt", "lbfgs: full-batch L-BFGS from the start",
                  "x lbfgs", "device cuda")
        need((out / "schedules" / "schedules.png").is_file(), "schedules/schedules.png missing")
        need_text("bench_gpu.txt", "wrote")
        rows = [[cell.strip() for cell in line.strip("|").split("|")]
                for line in read(out / "bench_gpu.md").splitlines() if line.startswith("|")]
        need(len(rows) == 3, f"bench_gpu.md: {len(rows)} table lines, not header, rule, row")
        if len(rows) == 3:
            row = dict(zip(rows[0], rows[2], strict=True))
            for column in ("GPU f32 (atom-steps/s)", "GPU f64 (atom-steps/s)",
                           "MD loop f32 (atom-steps/s)", "MD loop f64 (atom-steps/s)",
                           "MD f32/evaluate f32", "GPU mem f32 (B/atom)"):
                need(row.get(column, "-") != "-", f"bench_gpu.md: no {column}")
        result = out / "bench_gpu_md.json"
        need(result.is_file(), "bench_gpu_md.json missing")
        if result.is_file():
            data = json.loads(result.read_text())
            need(set(data.get("drift", {})) == {"float32", "float64", "cpu_float64"},
                 f"bench_gpu_md.json drift: {sorted(data.get('drift', {}))}")
            angular = data.get("angular", {})
            need(len(angular) == 4 and all(isinstance(v, float) for v in angular.values()),
                 f"bench_gpu_md.json angular: {angular}")
            need("wall_s" in data.get("nvt", {}), "bench_gpu_md.json lacks the NVT run")
    elif part == "4":
        for run in CONTRAST_RUNS:
            path = out / "contrast" / f"al_contrast_long_{run}.json"
            need(path.is_file(), f"contrast/{path.name} missing")
            if not path.is_file():
                continue
            record = json.loads(path.read_text())
            for key in ("device", "atoms", "ps_done", "collision_energy_eV", "failed_frames",
                        "samples_done", "shortest_distance_A", "atom_steps_per_s", "status"):
                need(record.get(key) is not None, f"contrast/{path.name}: no {key}")
            need(record.get("device") == "cuda", f"contrast/{path.name}: device "
                 f"{record.get('device')!r}, not 'cuda'")
            # the rehearsal's 2 s budget ends a 1000-step run early: the budget's path ran
            need(str(record.get("status", "")).startswith("stopped: wall budget"),
                 f"contrast/{path.name}: status {record.get('status')!r}, not stopped by its "
                 "wall budget")
            need((record.get("ps_done") or 0) > 0, f"contrast/{path.name}: no ps done")
        trained = [v for v in ("zbl", "nozbl")
                   if not (REPO / ".device" / "models" / f"{v}.txt").is_file()]
        for variant in trained:  # no first model carried: trained on the (emulated) GPU
            need((out / "contrast" / "models" / f"{variant}.txt").is_file(),
                 f"contrast/models/{variant}.txt (trained) missing")
        table = read(out / "contrast_table.txt")
        need_text("contrast_table.txt", "E* (eV)", "frames failed", "atom-steps/s",
                  "nep802: without ZBL", "with ZBL (zbl 1.8)")
        need(len(table.strip().splitlines()) == 1 + len(CONTRAST_RUNS),
             f"contrast_table.txt: {len(table.strip().splitlines())} lines, not a header and "
             f"{len(CONTRAST_RUNS)} rows")
    elif part == "5":
        need_text("profile_train.txt", "loss + gradient (the trainer's call)",
                  "gradient rows contiguous", "128-register kernel",
                  "gradient in the unbounded kernel", "gradient in the warp kernel",
                  "pairs in the neighbour list's order", "by difference")
        result = out / "profile_train.json"
        need(result.is_file() and len(json.loads(result.read_text()).get("ms", {})) == 11,
             "profile_train.json missing or short")
        # the 20 s target with part 1's fastest epoch kernels (its gpu_epoch.json, copied to
        # gpu-out/, when part 1 ran first; the defaults otherwise, and the output says so)
        need_text("bench_train_gpu_fastest.txt", "per-atom kernels:", "LLZO NEP25-ZBL on the GPU",
                  "held-out targets")
        need((out / "train_gpu_fastest" / "nepzbl_reference.json").is_file(),
             "train_gpu_fastest/nepzbl_reference.json missing")
        if (REPO / "gpu-out" / "gpu_epoch.json").is_file():
            need_text("bench_train_gpu_fastest.txt", "the fastest epoch in")
    elif part == "sanitize":
        need(read(out / "plain.txt").rstrip().endswith("device checks ok"),
             "plain.txt does not end with 'device checks ok'")
        need_text("plain.txt", "ok engine", "ok training", "ok md")
    elif part == "tests":
        need_tests()
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="which to rehearse, in this order (default: all)")
    parser.add_argument("--out", default=str(REPO / "build" / "rehearsal" / "out"),
                        help="each part's $OUT is OUT/PART, emptied first "
                             "(default: build/rehearsal/out)")
    parser.add_argument("--peer-python", default="/tmp/peers-venv/bin/python",
                        help="part 2's Python, with neppo and TorchNEP over torch (default: "
                             "%(default)s; this Python when it cannot import nepzbl_plugin)")
    args = parser.parse_args(argv)

    t0 = time.monotonic()
    try:
        pkg = build_emulated_package(REPO / "build" / "rehearsal",
                                     REPO / "nepzbl_plugin", reuse=True)
    except EmulationUnavailable as why:
        print(f"rehearse_device: cannot build the emulated package: {why} (build the CPU "
              "engine first: NEPZBL_CUDA_FEATURE=disabled tools/dev_build.sh)", file=sys.stderr)
        return 1
    print(f"emulated package {pkg} ready in {time.monotonic() - t0:.0f} s", flush=True)
    # the device has no ../shared: the data it reads is prepare_device.sh's .device/shared
    device_data = REPO / ".device" / "shared" / "data"
    if not device_data.is_dir():
        if not (REPO.parent / "shared" / "data").is_dir():
            print("rehearse_device: no ../shared/data to copy into .device/shared",
                  file=sys.stderr)
            return 1
        shutil.copytree(REPO.parent / "shared" / "data", device_data)
        print(f"copied ../shared/data to {device_data.relative_to(REPO)} (as "
              "tools/prepare_device.sh does)", flush=True)
    no_shared = REPO / "build" / "rehearsal" / "no-shared"
    no_shared.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NEPZBL_REHEARSAL": "1", "NEPZBL_REHEARSAL_PACKAGE": str(pkg),
           # `python -c` and `python -m pytest` in the scripts would put the checkout (and its
           # package without _cuda) first; on the device it is the package they should import
           "PYTHONSAFEPATH": "1", "PYTHON": sys.executable,
           # as on the device, where ../shared does not exist: only a script that reads
           # .device/shared finds the data
           "NEPZBL_SHARED": str(no_shared)}
    env.pop("PYTHONPATH", None)
    peer_env = {**env, "PYTHON": args.peer_python, "PEER_DEVICE": "cpu"}
    probe = subprocess.run([args.peer_python, "-c", "import nepzbl_plugin._cuda, ase, neppo, "
                            "torchnep, torch"], env={**peer_env, "PYTHONPATH": str(pkg)},
                           capture_output=True, text=True) if Path(args.peer_python).exists() \
        else None
    if probe is None or probe.returncode != 0:
        print(f"part 2: {args.peer_python} cannot run nepzbl and the peers "
              f"({probe.stderr.strip().splitlines()[-1] if probe else 'absent'}); "
              f"{sys.executable} instead, without peers", flush=True)
        peer_env, peers = env, set()
    else:
        peers = {"neppo", "torchnep", "torchnep-eager"}

    had_gpu_out = (REPO / "gpu-out").exists()
    before = untracked_files()
    failures, timings = {}, {}
    for part in args.parts:
        out = Path(args.out) / part
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        start = time.monotonic()
        done = subprocess.run(command_of(part), cwd=REPO, env={
            **(peer_env if part == "2" else env), "OUT": str(out)}, capture_output=True,
            text=True, timeout=1800)
        timings[part] = time.monotonic() - start
        (out / "rehearsal-stdout.txt").write_text(done.stdout + done.stderr)
        problems = check_part(part, out, peers if part == "2" else set())
        if done.returncode != 0:
            problems.insert(0, f"{' '.join(command_of(part))} exited {done.returncode}")
        failures[part] = problems
        print(f"part {part}: {timings[part]:.0f} s, "
              + ("ok" if not problems else f"{len(problems)} problem(s)"), flush=True)
        for problem in problems:
            print(f"  - {problem}", flush=True)
    stray = sorted(path for path in untracked_files() - before
                   if not path.startswith(("build/", "gpu-out/")) and "__pycache__" not in path)
    if not had_gpu_out:
        shutil.rmtree(REPO / "gpu-out", ignore_errors=True)
    if stray:  # (or by another process working in this tree meanwhile)
        print(f"written outside $OUT: {', '.join(stray)}")
    bad = [part for part, problems in failures.items() if problems]
    print(f"rehearsal: {len(args.parts) - len(bad)} of {len(args.parts)} parts ok in "
          f"{time.monotonic() - t0:.0f} s" + (f"; failed: {', '.join(bad)}" if bad else "")
          + ("; files written outside $OUT" if stray else "") + f"; outputs in {args.out}")
    return 1 if bad or stray else 0


if __name__ == "__main__":
    sys.exit(main())
