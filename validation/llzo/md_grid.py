"""The equilibrium MD runs items 3, 4 and 9 share: one model at one temperature.

:func:`md_run` does, for one (model, T):

1. anisotropic NPT (stochastic cell rescaling, Bussi thermostat) at T and 0 GPa from
   :func:`common.start_structure` (the nearly cubic 192-atom frame, or with
   ``start="tetragonal"`` the most tetragonal one, repeated to the size's supercell);
2. the last NPT frame scaled to the mean a, b, c of the second half of the NPT run;
3. NVT (Bussi) at T from fresh Maxwell-Boltzmann velocities: unwrapped positions every
   ``every`` steps (``trajectory.npz``), partial RDFs every ``rdf_every`` steps, the shortest
   distance of every species pair every ``check_every`` steps (NPT too);
4. the Li MSD in the paper's convention (all time origins, straight line over the first half of
   the window, D = slope/6; error: standard error over contiguous blocks).

A run in which two atoms come closer than ``COLLAPSE_A`` is *collapsed*: it is recorded as such
and goes on (the paper's RDFs show the collapsed pairs at 0.13 Å, so the run must not stop
there); it stops only below ``ABORT_A`` or when the engine fails, and the summary then holds what
was measured so far. Every run is cached in ``ctx.out/md/<model>_<T>K/summary.json``: a second
call with the same settings returns it without running.

:func:`md_runs` runs several (model, T) at once: ``ctx.threads`` worker processes (spawn, one
engine thread each) on the CPU, one after the other on the GPU. :func:`parallel` is the same
pool for any module-level function (item 5's ramps).

The run lengths are :data:`MD_SETTINGS` (per size, not per item), so that items 3 and 4 at the
same (model, T) share one run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import zlib
from pathlib import Path

import common
import numpy as np

#: run lengths per size, shared by every item (1 fs steps)
MD_SETTINGS = {
    # seconds: the plumbing only
    "smoke": {"supercell": [1, 1, 1], "npt_steps": 20, "nvt_steps": 40, "every": 5,
              "rdf_every": 10, "check_every": 5, "window_fs": 15.0, "blocks": 2,
              "rdf_r_max": 6.0, "rdf_bins": 300, "save_species": None},
    # 192 atoms, 2 ps NPT + 20 ps NVT (about 100 s per run on a free core)
    "cpu": {"supercell": [1, 1, 1], "npt_steps": 2000, "nvt_steps": 20000, "every": 50,
            "rdf_every": 100, "check_every": 50, "window_fs": 4000.0, "blocks": 5,
            "rdf_r_max": 6.0, "rdf_bins": 300, "save_species": None},
    # the paper: 12288 atoms (4x4x4), two 50 ps windows of NVT after 20 ps of NPT (GPU)
    "paper": {"supercell": [4, 4, 4], "npt_steps": 20000, "nvt_steps": 100000, "every": 100,
              "rdf_every": 500, "check_every": 100, "window_fs": 50000.0, "blocks": 2,
              "rdf_r_max": 6.0, "rdf_bins": 300, "save_species": ["Li"]},
}
TIMESTEP_FS = 1.0
COLLAPSE_A = 0.5  # two atoms closer than this: the run is collapsed (recorded, not stopped)
ABORT_A = 0.05  # closer than this: the run stops
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


STARTS = ("cubic", "tetragonal")  # which frame of common.start_structure a run starts from


def cost_text(runs: int, core_seconds: float | None) -> str:
    """One line for a report: what the MD runs of an item cost, cached or not."""
    if core_seconds is None:
        return ""
    return (f"*MD: {runs} runs, {core_seconds / 60:.0f} core-minutes when they ran (one core "
            "each, as many at a time as --threads; saved under out/, so that a rerun of the "
            "report, or another item at the same model and T, reuses them).*")


def run_folder(ctx, model_name: str, temperature_K: float, start: str = "cubic") -> Path:
    suffix = "" if start == "cubic" else f"_{start}"
    return Path(ctx.out) / "md" / f"{model_name}_{temperature_K:g}K{suffix}"


def run_seed(seed: int, *names) -> int:
    """A seed of its own for each run, fixed by ``ctx.seed`` and the run's names."""
    key = [int(seed)] + [zlib.crc32(str(name).encode()) for name in names]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def _cached(folder: Path, settings: dict) -> dict | None:
    path = folder / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary if summary.get("settings") == settings else None


def model_digest(path) -> str:
    """The first 16 hex digits of the SHA-256 of a model file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _job(ctx, model_name: str, temperature_K: float, start: str = "cubic") -> dict:
    """What a worker needs for one run (plain data: a worker cannot take the context)."""
    if start not in STARTS:
        raise ValueError(f"start must be one of {', '.join(STARTS)}, not {start!r}")
    settings = dict(MD_SETTINGS[ctx.size])
    settings.update(temperature_K=float(temperature_K), timestep_fs=TIMESTEP_FS,
                    seed=run_seed(ctx.seed, model_name, temperature_K),
                    collapse_A=COLLAPSE_A, abort_A=ABORT_A)
    if start != "cubic":
        settings["start"] = start
    # the model's bytes are part of the key: a retrained NEP25-ZBL must not reuse old runs
    settings["model_sha256"] = model_digest(ctx.model(model_name))
    return {"model": model_name, "model_path": str(ctx.model(model_name)),
            "temperature_K": float(temperature_K), "start": start,
            "folder": str(run_folder(ctx, model_name, temperature_K, start)),
            "settings": settings, "device": ctx.device, "threads": 1}


def md_run(ctx, model_name: str, temperature_K: float, start: str = "cubic") -> dict:
    """The summary of the run of ``model_name`` at ``temperature_K`` from the ``start`` frame
    (nearly cubic, or the most tetragonal one) (run now unless cached);
    ``{"status": "not_run", "note": ...}`` when the model does not exist yet (item 2)."""
    try:
        job = _job(ctx, model_name, temperature_K, start)
    except common.ItemNotRun as error:
        return _not_run(model_name, temperature_K, error, start)
    job["threads"] = None if ctx.device == "cuda" else ctx.threads
    summary = run_job(job)
    _log_run(ctx, summary)
    return summary


def _not_run(model_name, temperature_K, error, start="cubic") -> dict:
    return {"model": model_name, "temperature_K": float(temperature_K), "start": start,
            "status": "not_run", "note": str(error)}


def _log_run(ctx, summary: dict) -> None:
    if summary.get("cached_now"):
        return
    d = summary.get("msd", {}).get("D_cm2_per_s")
    start = "" if summary.get("start", "cubic") == "cubic" else f" ({summary['start']} start)"
    text = (f"md {summary['model']} {summary['temperature_K']:g} K{start}: {summary['status']}, "
            f"min distance {summary.get('min_distance_A', float('nan')):.2f} Å")
    if d is not None:
        text += f", D_Li {d:.2e} ± {summary['msd']['D_error_cm2_per_s']:.1e} cm²/s"
    ctx.log(text + f", {summary['wall_s']:.0f} s wall, "
            f"{summary['atom_steps_per_s']:.3g} atom-steps/s")


def md_runs(ctx, pairs) -> list[dict]:
    """Summaries of the runs ``[(model, T), ...]`` or ``[(model, T, start), ...]`` (same
    order), the missing ones run with ``ctx.threads`` worker processes on the CPU, one after the
    other on the GPU."""
    pairs = [(p[0], float(p[1]), p[2] if len(p) > 2 else "cubic") for p in pairs]
    summaries: dict = {}
    jobs = []
    for model_name, temperature, start in dict.fromkeys(pairs):
        key = (model_name, temperature, start)
        try:
            job = _job(ctx, model_name, temperature, start)
        except common.ItemNotRun as error:
            summaries[key] = _not_run(model_name, temperature, error, start)
            continue
        cached = _cached(Path(job["folder"]), job["settings"])
        if cached is not None:
            summaries[key] = dict(cached, start=start)
        else:
            jobs.append(job)
    if jobs:
        ctx.log(f"md: {len(jobs)} run(s) of {len(pairs)} to do "
                f"({ctx.device}, {min(ctx.threads, len(jobs)) if ctx.device == 'cpu' else 1} "
                "at a time)")
    for summary in parallel(ctx, run_job, jobs):
        summaries[(summary["model"], summary["temperature_K"], summary["start"])] = summary
        _log_run(ctx, summary)
    return [summaries[pair] for pair in pairs]


def parallel(ctx, function, jobs: list):
    """Yield ``function(job)`` for each job (a dict) as it finishes: ``ctx.threads`` spawned
    worker processes on the CPU, each job with ``threads`` 1 (the engine threads it may use);
    in this process on the GPU (``threads`` None) or for a single job (``ctx.threads``).
    ``function`` must be a module-level function of an importable module."""
    if not jobs:
        return
    workers = min(ctx.threads, len(jobs))
    if ctx.device == "cuda" or workers <= 1:
        for job in jobs:
            yield function(dict(job, threads=None if ctx.device == "cuda" else ctx.threads))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})  # no BLAS threads per worker
    try:
        with ProcessPoolExecutor(max_workers=workers,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(function, dict(job, threads=1)) for job in jobs]
            for future in as_completed(futures):
                yield future.result()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- the run itself (in a worker process or here) ----------------------------------------------
class _Trajectory:
    """Unwrapped positions (of ``species``, all atoms when None), cells and steps every
    ``every`` steps, kept in memory."""

    def __init__(self, every: int, species=None):
        self.every = int(every)
        self.species = species
        self.index = None
        self.positions, self.cells, self.steps = [], [], []

    def __call__(self, frame):
        if self.index is None:
            symbols = np.array(frame.symbols)
            self.index = (np.arange(len(symbols)) if self.species is None
                          else np.flatnonzero(np.isin(symbols, self.species)))
            self.symbols = symbols[self.index]
        self.positions.append(np.asarray(frame.positions)[self.index].astype(np.float32))
        self.cells.append(np.asarray(frame.cell, dtype=float))
        self.steps.append(int(frame.step))
        return None

    def save(self, path: Path, timestep_fs: float) -> None:
        from nepzbl_plugin.io.atomic import atomic_write_bytes

        buffer = io.BytesIO()
        np.savez_compressed(buffer, positions=np.array(self.positions), cells=np.array(self.cells),
                            steps=np.array(self.steps), time_fs=np.array(self.steps) * timestep_fs,
                            symbols=np.array(self.symbols, dtype=str), atom_index=self.index,
                            unwrapped=True)
        atomic_write_bytes(path, buffer.getvalue())


def distance_recorder(check_every: int):
    """A DistanceMonitor that records every pair's shortest distance and stops the run only
    below ABORT_A (it subclasses DistanceMonitor so that the device loop measures on the GPU)."""
    from nepzbl_plugin.md import DistanceMonitor

    class Recorder(DistanceMonitor):
        def check(self, frame, distances):
            self.history.append((frame.step, distances))
            pair, shortest = min(distances.items(), key=lambda item: item[1])
            if shortest < COLLAPSE_A and self.collapse is None:
                self.collapse = (f"{pair} at {shortest:.3f} Å at step {frame.step} "
                                 f"({frame.time_fs:g} fs)")
            if shortest < ABORT_A:
                return f"stopped: {pair} at {shortest:.3f} Å, below {ABORT_A:g} Å"
            return None

    return Recorder(limits=COLLAPSE_A, every=check_every, search=3.0)


def evaluator_for(job):
    """The engine a job asks for: CUDA, or the CPU with ``threads`` threads."""
    from nepzbl_plugin.engine import Evaluator

    if job["device"] == "cuda":
        return Evaluator(job["model_path"], device="cuda")
    return Evaluator(job["model_path"], num_threads=job["threads"] or 1)


def run_job(job: dict) -> dict:
    """One run (see the module docstring); writes and returns its summary."""
    common.import_package()
    folder = Path(job["folder"])
    cached = _cached(folder, job["settings"])
    if cached is not None:
        return dict(cached, cached_now=True, start=job["settings"].get("start", "cubic"))
    folder.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    try:
        summary = _run(job, folder)
    except Exception as error:  # a model the engine refuses: record it, let the others run
        summary = {"status": "failed", "stopped": f"{type(error).__name__}: {error}",
                   "steps_done": 0, "atoms": 0}
    summary.update(model=job["model"], temperature_K=job["temperature_K"],
                   start=job["settings"].get("start", "cubic"),
                   settings=job["settings"], device=job["device"],
                   wall_s=time.perf_counter() - began)
    md_wall = sum(summary.get(part, {}).get("wall_s", 0.0) for part in ("npt", "nvt"))
    summary["atom_steps_per_s"] = (summary["atoms"] * summary["steps_done"] / md_wall
                                   if md_wall > 0 else 0.0)  # MD only, not the set-up
    common.write_json(folder / "summary.json", summary)
    return summary


def _run(job: dict, folder: Path) -> dict:
    from nepzbl_plugin.analysis import MSD, AnalysisError
    from nepzbl_plugin.md import DeviceRDF, EngineForces, ThermoLog, run_md

    s = job["settings"]
    T = job["temperature_K"]
    cubic = s.get("start", "cubic") == "cubic"
    atoms = common.start_structure(cubic=cubic).repeat(tuple(s["supercell"]))
    evaluator = evaluator_for(job)
    out = {"atoms": len(atoms), "steps_done": 0, "stopped": None}

    # 1. anisotropic NPT at T and 0 GPa
    npt_monitor = distance_recorder(s["check_every"])
    npt_log = ThermoLog(None, every=s["every"])
    npt = run_md(atoms, EngineForces(evaluator, atoms), s["npt_steps"], TIMESTEP_FS,
                 ensemble="npt-aniso", temperature=T, pressure=0.0, seed=s["seed"],
                 observers=[npt_log, npt_monitor])
    out["steps_done"] += npt.steps_done
    half = npt_log.rows[len(npt_log.rows) // 2:]
    lengths = half[:, [thermo_column(n) for n in ("a_A", "b_A", "c_A")]].mean(axis=0)
    out["npt"] = {"steps": npt.steps_done, "mean_T_K": npt.mean_temperature,
                  "mean_P_GPa": npt.mean_pressure, "wall_s": npt.wall_seconds,
                  "mean_cell_A": lengths.tolist(), "stopped": npt.stopped}
    monitors = [npt_monitor]
    rdf = DeviceRDF(r_max=s["rdf_r_max"], bins=s["rdf_bins"], every=s["rdf_every"])
    trajectory = _Trajectory(s["every"], s["save_species"])
    if npt.stopped is None:
        # 2. the mean cell; 3. NVT from fresh velocities
        start = npt.atoms.copy()
        start.wrap()
        start.set_cell(np.diag(lengths), scale_atoms=True)
        start.set_velocities(np.zeros((len(start), 3)))
        nvt_monitor = distance_recorder(s["check_every"])
        nvt_log = ThermoLog(None, every=s["every"])
        nvt = run_md(start, EngineForces(evaluator, start), s["nvt_steps"], TIMESTEP_FS,
                     ensemble="nvt", temperature=T, seed=s["seed"] + 1,
                     observers=[nvt_log, nvt_monitor, rdf, trajectory])
        out["steps_done"] += nvt.steps_done
        monitors.append(nvt_monitor)
        out["nvt"] = {"steps": nvt.steps_done, "mean_T_K": nvt.mean_temperature,
                      "mean_P_GPa": nvt.mean_pressure, "wall_s": nvt.wall_seconds,
                      "energy_drift_eV_per_atom": nvt.energy_drift_per_atom,
                      "stopped": nvt.stopped}
        out["stopped"] = nvt.stopped
    else:
        out["stopped"] = npt.stopped

    minimum: dict[str, float] = {}
    for monitor in monitors:
        for pair, d in monitor.minimum.items():
            minimum[pair] = min(minimum.get(pair, np.inf), d)
    out["min_distance_per_pair_A"] = minimum
    pair, shortest = min(minimum.items(), key=lambda item: item[1]) if minimum else (None, None)
    out["min_distance_A"], out["min_distance_pair"] = shortest, pair
    out["collapse"] = next((m.collapse for m in monitors if m.collapse), None)
    if out["stopped"] and not out["collapse"]:  # the engine gave up: a collapse too
        out["collapse"] = out["stopped"]
    out["status"] = "collapsed" if out["collapse"] else "ok"
    if rdf.frames:
        r = 0.5 * (rdf.edges[1:] + rdf.edges[:-1])
        out["rdf"] = {"r_A": r.tolist(), "frames": rdf.frames,
                      "g": {k: v.tolist() for k, v in rdf.rdf.items()}}
    if trajectory.steps:
        trajectory.save(folder / "trajectory.npz", TIMESTEP_FS)
        out["trajectory"] = "trajectory.npz"
        out["msd"] = _li_msd(trajectory, s, MSD, AnalysisError)
    return out


def thermo_column(name: str) -> int:
    """Index of ``name`` in a ThermoLog row."""
    from nepzbl_plugin.md import THERMO_COLUMNS

    return THERMO_COLUMNS.index(name)


def _li_msd(trajectory: _Trajectory, s: dict, MSD, AnalysisError) -> dict:
    """D of Li in the paper's convention, or why it cannot be had from this trajectory."""
    positions = np.array(trajectory.positions, dtype=np.float64)
    symbols = trajectory.symbols
    dt_frame = s["every"] * TIMESTEP_FS
    volumes = np.abs(np.linalg.det(np.array(trajectory.cells)))
    try:
        msd = MSD(dt_frame_fs=dt_frame, window_fs=s["window_fs"], blocks=s["blocks"],
                  species=["Li"]).compute_arrays(positions, symbols, dt_frame, volumes)
    except AnalysisError as error:
        return {"D_cm2_per_s": None, "note": str(error)}
    curve = msd.msd["Li"]
    return {"D_cm2_per_s": msd.diffusion["Li"], "D_error_cm2_per_s": msd.diffusion_error["Li"],
            "D_axis_cm2_per_s": msd.diffusion_axis["Li"].tolist(),
            "lag_fs": msd.lag_times_fs.tolist(), "msd_A2": curve.sum(axis=1).tolist(),
            "window_fs": float(msd.lag_times_fs[-1]), "fit_range_fs": list(msd.fit_range_fs),
            "blocks": msd.as_dict()["blocks"], "frames": len(positions),
            "production_fs": float((len(positions) - 1) * dt_frame)}
