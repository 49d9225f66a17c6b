"""Item 8: the perspective's checks (arXiv 2603.07425) on LLZO.

(a) Learning curve: NEP-ZBL models trained on 5 to 25 of the 25 configurations (nested seeded
    subsets, the same budget each) scored on the 120 held-out frames
    (``nepzbl_plugin.train.learning_curve``), with the Li diffusivity each model gives in a
    short MD run (``DiffusivityProbe``) where that is affordable.
(b) Locality: the change of the force on a central atom when every atom beyond a radius R
    moves, against R (``nepzbl_plugin.analysis.locality.Locality``), for NEP25-ZBL: it must
    vanish from 2 x cutoff on.
(c) MD speed against the atom count: nepzbl's CPU engine, its GPU device loop when there is a
    GPU, and GPUMD when a ``gpumd`` executable is on PATH, in atom-steps per second.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import common
import numpy as np

NUMBER = 8
TITLE = "The perspective's checks: learning curve, locality, MD speed"

SETTINGS = {
    "smoke": {"sizes": [5, 25], "repeats": 1, "train_seconds": 2.0, "train_epochs": 2,
              "held_out_frames": 6, "diffusivity_steps": 0, "probe_threads": 1,
              "train_threads": 1, "locality_repeat": 1, "locality_radii": [2.0, 6.0],
              "locality_samples": 2,
              "speed_repeats": [1], "speed_atom_steps": {"cpu": 2e3, "cuda": 2e3}, "gpumd": False},
    # the same number of epochs (passes over the subset) per model, not the same wall time: a
    # shared CPU's load then changes how long it takes, not what is trained
    "cpu": {"sizes": [5, 10, 15, 20, 25], "repeats": 1, "train_seconds": None,
            "train_epochs": 150, "held_out_frames": 120, "diffusivity_steps": 4000,
            "diffusivity_atoms_repeat": 1, "probe_threads": 1, "train_threads": 1,
            "locality_repeat": 2,
            "locality_radii": list(np.arange(1.0, 14.01, 1.0)), "locality_samples": 4,
            "speed_repeats": [1, 2, 4], "speed_atom_steps": {"cpu": 2e5, "cuda": 2e7},
            "gpumd": True},
    "paper": {"sizes": [5, 10, 15, 20, 25], "repeats": 3, "train_seconds": 600.0,
              "train_epochs": 1000, "held_out_frames": 120, "diffusivity_steps": 50000,
              "diffusivity_atoms_repeat": 2, "probe_threads": None, "train_threads": None,
              "locality_repeat": 3,
              "locality_radii": list(np.arange(0.5, 16.01, 0.5)), "locality_samples": 8,
              "speed_repeats": [1, 2, 4, 8, 12, 16],
              "speed_atom_steps": {"cpu": 2e6, "cuda": 2e8}, "gpumd": True},
}
DIFFUSIVITY_TEMPERATURE = 1000.0  # K
PAPER_D_1000K = (9.1e-6, 9.7e-6)  # cm^2/s, every model of the paper (GPUMD, 12288 atoms)
PAPER_HELD_OUT_MEV = {"energy": 0.60, "force": 42.3, "virial": 5.6}  # NEP25-ZBL, item 2


def _model(ctx, name: str = "NEP25-ZBL") -> tuple[Path, str]:
    try:
        return ctx.model(name), name
    except common.ItemNotRun:
        ctx.log(f"[8] item 2 has not run: the paper's NEP802-ZBL instead of {name}")
        return ctx.model("NEP802-ZBL"), "NEP802-ZBL"


# -- (a) learning curve ---------------------------------------------------------------------
def learning(ctx, settings) -> dict:
    from nepzbl_plugin.io.nep_in import read_nep_in
    from nepzbl_plugin.io.xyz import read_train_xyz
    from nepzbl_plugin.train._backend import EngineBackend
    from nepzbl_plugin.train.learning_curve import (
        DiffusivityProbe,
        learning_curve,
        plot_learning_curve,
    )

    nep_in = read_nep_in(common.DATA / "NEP25-ZBL" / "nep.in")
    structures = read_train_xyz(common.DATA / "NEP25-ZBL" / "train.xyz", species=nep_in.types)
    held_out = []
    paths = sorted((common.DATA / "validation").glob("*.xyz"))
    per_file = max(1, settings["held_out_frames"] // len(paths))
    for path in paths:
        frames = read_train_xyz(path, species=nep_in.types)
        picks = np.linspace(0, len(frames) - 1, min(per_file, len(frames))).round().astype(int)
        held_out += [frames[i] for i in picks]
    probe = None
    if settings["diffusivity_steps"]:
        structure = common.start_structure().repeat(settings["diffusivity_atoms_repeat"])
        probe = DiffusivityProbe(structure, DIFFUSIVITY_TEMPERATURE,
                                 steps=settings["diffusivity_steps"], every=20,
                                 threads=settings["probe_threads"] or ctx.threads,
                                 seed=ctx.seed)
    options = {"max_time": settings["train_seconds"], "epochs": settings["train_epochs"]}
    if ctx.device == "cpu":
        threads = settings["train_threads"] or ctx.threads
        options["backend"] = lambda model, data: EngineBackend(model, data, num_threads=threads)
    else:
        options["device"] = ctx.device

    def progress(done, total, _label):
        if done:
            ctx.log(f"[8a] learning curve: {done}/{total} models trained")

    curve = learning_curve(structures, nep_in, settings["sizes"], repeats=settings["repeats"],
                           seed=ctx.seed, held_out=held_out,
                           output_dir=ctx.item_dir(NUMBER) / "learning_curve",
                           diffusivity=probe, progress=progress, **options)
    name = "item8_learning_curve.png"
    plot_learning_curve(curve, ctx.figure(name))
    out = curve.as_dict()
    out["settings"].pop("train_options", None)
    out["figure"] = name
    out["diffusivity_probe"] = None if probe is None else {
        "temperature_K": DIFFUSIVITY_TEMPERATURE, "steps": probe.steps,
        "atoms": len(probe.structure)}
    return out


# -- (b) locality ---------------------------------------------------------------------------
def locality(ctx, settings) -> dict:
    from nepzbl_plugin.analysis.locality import Locality, locality_radius
    from nepzbl_plugin.analysis.plots import plot_locality
    from nepzbl_plugin.calculators import NEP

    path, name = _model(ctx)
    calculator = NEP(str(path), num_threads=ctx.threads)
    atoms = common.start_structure().repeat(settings["locality_repeat"])
    cutoff = float(calculator.model.max_cutoff)
    reach = locality_radius(calculator.model)
    test = Locality(settings["locality_radii"], amplitude=0.1,
                    samples=settings["locality_samples"], seed=ctx.seed)
    t0 = time.monotonic()
    test.compute(atoms, calculator)
    figure = "item8_locality.png"
    plot_locality(test, ctx.figure(figure), {"cutoff": cutoff, "2 x cutoff": reach},
                  title=f"{name}: force on atom 0 of {len(atoms)}-atom LLZO, outer atoms "
                        "moved ≤ 0.1 Å")
    out = test.as_dict()
    out.update(model=name, atoms=len(atoms), cutoff_angstrom=cutoff,
               expected_radius_angstrom=reach, cell_angstrom=atoms.cell.lengths().tolist(),
               wall_s=time.monotonic() - t0, figure=figure)
    ctx.log(f"[8b] locality: spread vanishes from R = {out['apparent_radius_angstrom']} Å "
            f"(2 x cutoff = {reach:g} Å)")
    return out


# -- (c) MD speed ---------------------------------------------------------------------------
def _engine_speed(model, atoms, steps: int, device: str, threads: int, seed: int) -> dict:
    from nepzbl_plugin.engine import Evaluator
    from nepzbl_plugin.md import EngineForces, run_md

    kwargs = {"precision": "float32"} if device == "cuda" else {"num_threads": threads}
    evaluator = Evaluator(str(model), device=device, **kwargs)
    forces = EngineForces(evaluator, atoms)
    run_md(atoms, forces, 3, 1.0, ensemble="nvt", temperature=300.0, seed=seed)  # warm-up
    t0 = time.perf_counter()
    result = run_md(atoms, forces, steps, 1.0, ensemble="nvt", temperature=300.0, seed=seed)
    wall = time.perf_counter() - t0
    return {"steps": result.steps_done, "wall_s": wall,
            "atom_steps_per_s": len(atoms) * result.steps_done / wall,
            "stopped": result.stopped}


def _gpumd_speed(model, atoms, steps: int, folder: Path) -> dict:
    """GPUMD on the same run: its own 'Speed of this run' line (atom*step/second)."""
    from nepzbl_plugin.md.gpumd import write_gpumd_inputs

    write_gpumd_inputs(folder, str(model), atoms, ensemble="nvt", steps=steps, timestep=1.0,
                       temperature=300.0, every=max(steps, 1), rdf_cutoff=None)
    t0 = time.perf_counter()
    done = subprocess.run([shutil.which("gpumd")], cwd=folder, capture_output=True, text=True,
                          timeout=1800)
    wall = time.perf_counter() - t0
    match = re.findall(r"Speed of this run\s*=\s*([0-9.eE+-]+)", done.stdout)
    rate = float(match[-1]) if match else len(atoms) * steps / wall
    return {"steps": steps, "wall_s": wall, "atom_steps_per_s": rate,
            "returncode": done.returncode, "from": "GPUMD's own line" if match else "wall time"}


def speed(ctx, settings) -> dict:
    model = ctx.paper_model("NEP802-ZBL")  # the same architecture as every model here
    base = common.start_structure()
    # one core and every core: on a loaded machine OpenMP threads that wait for a busy core
    # cost more than they bring, which the one-core row shows
    engines = {"nepzbl CPU, 1 core": ("cpu", 1)}
    if ctx.threads > 1:
        engines[f"nepzbl CPU, {ctx.threads} cores"] = ("cpu", ctx.threads)
    if ctx.device == "cuda":
        engines["nepzbl GPU (device loop, float32)"] = ("cuda", ctx.threads)
    load_before = os.getloadavg()[0]
    gpumd = shutil.which("gpumd") if settings["gpumd"] else None
    rows = []
    for repeat in settings["speed_repeats"]:
        atoms = base.repeat(repeat)
        n = len(atoms)
        for label, (device, threads) in engines.items():
            budget = settings["speed_atom_steps"][device]
            if device == "cpu" and ctx.size == "paper" and n > 2e5:
                continue  # minutes per step on a CPU say nothing more
            steps = int(max(5, min(20000, budget / n)))
            r = _engine_speed(model, atoms, steps, device, threads, ctx.seed)
            rows.append({"engine": label, "atoms": n, **r})
            ctx.log(f"[8c] {label}, {n} atoms: {r['atom_steps_per_s']:.3g} atom-steps/s "
                    f"({steps} steps in {r['wall_s']:.1f} s)")
        if gpumd:
            steps = int(max(100, min(100000, settings["speed_atom_steps"]["cuda"] / n)))
            r = _gpumd_speed(model, atoms, steps, ctx.item_dir(NUMBER) / f"gpumd_{n}")
            rows.append({"engine": "GPUMD", "atoms": n, **r})
            ctx.log(f"[8c] GPUMD, {n} atoms: {r['atom_steps_per_s']:.3g} atom-steps/s")
    figure = "item8_md_speed.png"
    _plot_speed(ctx, rows, figure)
    return {"rows": rows, "threads": ctx.threads, "machine": common.machine(),
            "gpumd": gpumd, "figure": figure,
            "load_average": [load_before, os.getloadavg()[0]], "cores": os.cpu_count()}


def _plot_speed(ctx, rows, name) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for engine in dict.fromkeys(r["engine"] for r in rows):
        mine = [r for r in rows if r["engine"] == engine]
        ax.plot([r["atoms"] for r in mine], [r["atom_steps_per_s"] for r in mine], "o-",
                label=engine)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms (LLZO)")
    ax.set_ylabel("MD speed (atom-steps/s)")
    ax.set_title("NVT MD of LLZO with NEP802-ZBL", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, name)
    plt.close(fig)


def run(ctx) -> dict:
    settings = ctx.settings(SETTINGS)
    out = {"device": ctx.device}
    for key, part in (("learning_curve", learning), ("locality", locality), ("speed", speed)):
        t0 = time.monotonic()
        out[key] = part(ctx, settings)
        out[key]["part_wall_s"] = time.monotonic() - t0
        ctx.log(f"[8] {key} done in {out[key]['part_wall_s']:.0f} s")
    return out


# -- report ---------------------------------------------------------------------------------
def _learning_reading(summary: dict, probe) -> str:
    sizes = sorted(summary)
    force = [summary[s]["rmse_force_eV_per_A_mean"] for s in sizes]
    falling = all(a >= b for a, b in zip(force, force[1:], strict=False))
    text = (f"The held-out force RMSE goes from {1e3 * force[0]:.0f} meV/Å ({sizes[0]} "
            f"configurations) to {1e3 * force[-1]:.0f} meV/Å ({sizes[-1]}), "
            + ("falling with every step in size" if falling else "not monotonically") + ".")
    if probe:
        d = [summary[s]["diffusivity_cm2_per_s_mean"] for s in sizes]
        finite = [x for x in d if x is not None and np.isfinite(x)]
        if finite:
            text += (f" The diffusivity moves between {min(finite):.1e} and {max(finite):.1e} "
                     "cm²/s with no trend that follows the force RMSE; a run this short gives D "
                     "to up to tens of per cent (the block errors), so at this size it tells "
                     "only that the models diffuse Li at the paper's order of magnitude")
            text += (" and none collapsed." if len(finite) == len(d) else
                     f"; {len(d) - len(finite)} run(s) stopped early (D not a number).")
    return text


def _threads_reading(rows: list[dict]) -> str:
    by = {}
    for r in rows:
        if r["engine"].startswith("nepzbl CPU"):
            by.setdefault(r["atoms"], {})[r["engine"]] = r["atom_steps_per_s"]
    slower = [n for n, engines in by.items() if len(engines) > 1
              and min(engines, key=engines.get).endswith("cores")]
    if not slower:
        return ("More cores were faster at every size, as they should be on an idle "
                "machine.")
    return ("On this loaded machine the run on every core was *slower* than on one core at "
            f"{', '.join(str(n) for n in sorted(slower))} atoms: OpenMP threads that wait for "
            "a core another job holds cost more than they bring, the more so the less work a "
            "step has (192 atoms). This is why items 6 and 8 train and run MD with one engine "
            "thread per process on the CPU; the one-core rows are this machine's real speed.")


def _budget(settings) -> str:
    parts = []
    if settings.get("train_epochs"):
        parts.append(f"{settings['train_epochs']} epochs")
    if settings.get("train_seconds"):
        parts.append(f"{settings['train_seconds']:g} s")
    return " or ".join(parts) + " of training"


def _summary_by_size(result) -> dict:
    return {row["size"]: row for row in result["learning_curve"]["summary"]}


def rows(result, ctx) -> list[dict]:
    lc = result["learning_curve"]
    summary = _summary_by_size(result)
    first, last = min(summary), max(summary)
    force = " → ".join(f"{1e3 * summary[s]['rmse_force_eV_per_A_mean']:.0f}" for s in summary)
    loc = result["locality"]
    speed = result["speed"]["rows"]
    cpu = [r for r in speed if r["engine"].startswith("nepzbl CPU")]
    best = max(speed, key=lambda r: r["atom_steps_per_s"])
    out = [
        {"quantity": f"held-out force RMSE against training frames ({first} → {last})",
         "paper": "– (the perspective's check; no LLZO number)",
         "ours": f"{force} meV/Å",
         "run": f"{lc['settings']['repeats']} repeat(s), {_budget(ctx.settings(SETTINGS))}"
                f" each, {lc['held_out_frames']} held-out frames"},
        {"quantity": "locality: force on an atom independent of atoms beyond R",
         "paper": "2 x cutoff, for any local many-body model",
         "ours": f"from R = {common.fmt(loc['apparent_radius_angstrom'], '.1f', 'Å')} "
                 f"(2 x cutoff = {loc['expected_radius_angstrom']:g} Å)",
         "run": f"{loc['model']}, {loc['atoms']} atoms, {loc['samples']} samples per radius"},
        {"quantity": "MD speed (NEP, LLZO)",
         "paper": "perspective Fig. 4: GPUMD on a V100 (compared qualitatively)",
         "ours": f"CPU {min(r['atom_steps_per_s'] for r in cpu):.2g}-"
                 f"{max(r['atom_steps_per_s'] for r in cpu):.2g} atom-steps/s; best "
                 f"{best['atom_steps_per_s']:.2g} ({best['engine']}, {best['atoms']} atoms)",
         "run": f"{', '.join(str(n) for n in dict.fromkeys(r['atoms'] for r in cpu))} atoms, "
                f"1 and {result['speed']['threads']} cores, load average "
                f"{result['speed'].get('load_average', [0])[0]:.1f}"},
    ]
    probe = lc.get("diffusivity_probe")
    if probe:
        d = " → ".join(common.fmt(summary[s]["diffusivity_cm2_per_s_mean"], ".2g")
                       for s in summary)
        out.append({"quantity": f"Li diffusivity at {probe['temperature_K']:g} K against "
                                "training frames",
                    "paper": f"{PAPER_D_1000K[0]:.1e}-{PAPER_D_1000K[1]:.1e} cm²/s (every "
                             "model, 12288 atoms)",
                    "ours": f"{d} cm²/s",
                    "run": f"{probe['atoms']} atoms, {probe['steps'] / 1000:g} ps per model"})
    return out


def section(result, ctx) -> str:
    settings = ctx.settings(SETTINGS)
    lc = result["learning_curve"]
    summary = _summary_by_size(result)
    errors = {}
    for point in lc["points"]:
        if point.get("diffusivity_error_cm2_per_s") is not None:
            errors.setdefault(point["size"], []).append(point["diffusivity_error_cm2_per_s"])
    table = []
    for size, row in summary.items():
        v = row["rmse_virial_eV_per_atom_mean"]
        d_error = np.mean(errors[size]) if size in errors else None
        table.append([size, row["repeats"],
                      f"{1e3 * row['rmse_energy_eV_per_atom_mean']:.2f}",
                      f"{1e3 * row['rmse_force_eV_per_A_mean']:.1f}",
                      common.fmt(None if v is None else 1e3 * v, ".2f"),
                      common.fmt(row["diffusivity_cm2_per_s_mean"], ".2e")
                      + ("" if d_error is None else f" ± {d_error:.1e}")])
    probe = lc.get("diffusivity_probe")
    loc = result["locality"]
    radii = loc["radii_angstrom"]
    loc_table = [[f"{r:g}", m, f"{s:.2e}", f"{x:.2e}"] for r, m, s, x in
                 zip(radii, loc["moved_atoms"], loc["force_std_eV_per_angstrom"],
                     loc["force_max_eV_per_angstrom"], strict=True)]
    speed_rows = result["speed"]["rows"]
    speed_table = [[r["engine"], r["atoms"], r["steps"], f"{r['wall_s']:.1f}",
                    f"{r['atom_steps_per_s']:.3g}"] for r in speed_rows]
    apparent = loc["apparent_radius_angstrom"]
    local_ok = apparent is not None and apparent <= loc["expected_radius_angstrom"] + 1.0
    lines = [
        "### (a) Learning curve",
        "",
        f"NEP-ZBL models (the paper's nep.in, `zbl 1.8`) trained on {settings['sizes']} of "
        "the 25 "
        f"configurations (nested seeded subsets; {lc['settings']['repeats']} repeat(s); "
        f"{_budget(settings)} each, on {result['device']}), scored on "
        f"{lc['held_out_frames']} held-out frames "
        "(600/900/1200 K). RMSE in meV/atom (energy, virial) and meV/Å (force)"
        + (f"; D is the Li diffusivity of a {probe['steps'] / 1000:g} ps Bussi NVT run of "
           f"{probe['atoms']} atoms at {probe['temperature_K']:g} K with each model (cm²/s; "
           f"the paper: {PAPER_D_1000K[0]:.1e} to {PAPER_D_1000K[1]:.1e} on 12288 atoms over "
           "50 ps)." if probe else "; the diffusivity probe was not run at this size."),
        "",
        common.md_table(["frames", "repeats", "energy", "force", "virial",
                         "D ± block error (cm²/s)"], table),
        "",
        ctx.figure_link(lc["figure"], "held-out RMSE against training frames"),
        "",
        _learning_reading(summary, probe),
        "",
        "The perspective's point is that a data set is judged by how its errors fall with its "
        "size, and that force RMSE alone does not predict transport. Item 2's NEP25-ZBL (the "
        "same 25 frames, a longer budget) and the paper's own held-out numbers "
        f"({PAPER_HELD_OUT_MEV['energy']} meV/atom, {PAPER_HELD_OUT_MEV['force']} meV/Å) are "
        "the end point of this curve. "
        + ("Every model gets the same number of epochs (passes over its subset), so a larger "
           "subset also gets proportionally more optimiser steps; "
           if settings.get("train_epochs") else
           "Every model gets the same wall time, so a larger subset gets fewer passes over "
           "its data; ")
        + "at a short budget the curve mixes data size and convergence.",
        "",
        "### (b) Locality",
        "",
        f"{loc['model']} on {loc['atoms']} atoms (cell "
        f"{' x '.join(f'{x:.1f}' for x in loc['cell_angstrom'])} Å): every atom farther than R "
        f"from atom 0 moved by up to {loc['amplitude_angstrom']:g} Å ({loc['samples']} random "
        f"configurations per R); the change of the force on atom 0. Cutoff "
        f"{loc['cutoff_angstrom']:g} Å, so a NEP site-energy model is local within 2 x cutoff "
        f"= {loc['expected_radius_angstrom']:g} Å (plus the displacement).",
        "",
        common.md_table(["R (Å)", "atoms moved", "RMS spread (eV/Å)", "largest change (eV/Å)"],
                        loc_table),
        "",
        ctx.figure_link(loc["figure"], "locality test"),
        "",
        (f"The force is exactly independent of the moved atoms from R = {apparent:g} Å on, "
         f"as 2 x cutoff = {loc['expected_radius_angstrom']:g} Å predicts: NEP (ZBL included, a "
         "pair term inside the angular cutoff) is strictly local, the perspective's premise "
         "for linear scaling." if local_ok else
         "The spread did not vanish where 2 x cutoff predicts "
         f"({common.fmt(apparent, '.1f', 'Å')}); the cell may be too small for the radii tested."),
        "",
        "### (c) MD speed",
        "",
        f"NVT (Bussi, 300 K, 1 fs) MD of LLZO supercells with NEP802-ZBL; nepzbl's CPU engine on "
        f"1 and {result['speed']['threads']} cores"
        + (", its GPU device loop (float32, as GPUMD)" if result["device"] == "cuda" else "")
        + ("" if result["speed"]["gpumd"] else "; no `gpumd` executable on PATH, so GPUMD was "
           "not run") + f". Machine: {result['speed']['machine']}; load average "
        + " → ".join(f"{x:.1f}" for x in result["speed"].get("load_average", []))
        + f" on {result['speed'].get('cores', '?')} cores during the measurement (other jobs "
        "shared the machine: the absolute numbers are lower bounds).",
        "",
        common.md_table(["engine", "atoms", "steps", "wall (s)", "atom-steps/s"], speed_table),
        "",
        _threads_reading(speed_rows),
        "",
        ctx.figure_link(result["speed"]["figure"], "MD speed against the atom count"),
        "",
        "Against the perspective's Figure 4 (GPUMD on a V100), qualitatively (its numbers are "
        "not among this repository's data): NEP is local (part b), so its cost is linear in N "
        "and a CPU engine's atom-steps/s stay about constant in N, set by the cores; a GPU's "
        "rise with N until the device is busy (typically from 10^4-10^5 atoms), which is the "
        "regime a GPU code like GPUMD is built for. "
        + ("The GPU rows above show that rise for nepzbl's device loop." if
           result["device"] == "cuda" else
           "This machine has no GPU, so only the CPU side was measured here; `--size paper` on "
           "a GPU adds the device loop (and GPUMD, when installed) up to about 10^6 atoms."),
    ]
    return "\n".join(lines)


def verdict(result, ctx) -> str:
    points = result["learning_curve"]["summary"]
    forces = [1e3 * p["rmse_force_eV_per_A_mean"] for p in points]
    locality = result["locality"]
    radius, cutoff = locality["apparent_radius_angstrom"], locality["cutoff_angstrom"]
    best = max(result["speed"]["rows"], key=lambda r: r["atom_steps_per_s"] or 0.0)
    independent = (f"forces independent of atoms beyond {radius:g} Å" if radius is not None
                   else "forces still depend on the farthest atoms moved")
    return ("**Checked.** Held-out force RMSE " + " → ".join(f"{f:.0f}" for f in forces)
            + f" meV/Å from {points[0]['size']} to {points[-1]['size']} configurations; "
            f"{independent} (2 x cutoff = {2 * cutoff:g} Å); MD up to "
            f"{best['atom_steps_per_s']:.2g} atom-steps/s ({best['engine']}, "
            f"{best['atoms']} atoms).")
