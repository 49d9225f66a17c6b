"""The active-learning loop of the NEP-ZBL paper, resumable from its state folder.

Each iteration k (1-based) works in ``STATE/iter_k/`` (``k`` with three digits):

1. ``md_run_R.xyz`` + ``md_run_R.json``: MD run R from a training structure (chosen by the seed),
   its frames and which were too short (a pair below ``fraction`` x the shortest such pair of
   the start data, as the audit's collapse distances); with ``knock_on_horizon`` or
   ``knock_on_energy`` the run ends with head-on collisions between the species pairs the start
   data bring into contact, at the energy a long production run meets (the collisions in
   ``md_run_R.json``);
2. ``selection.json`` + ``selected.xyz``: farthest-point sampling on structure-averaged
   descriptors of the current model against the training set, or the MaxVol grade;
3. ``labelled.xyz``: the oracle's labels (or, for an external oracle, ``to_label.xyz`` is
   written and the run stops until ``--import``);
4. ``data.xyz``: the training set after this iteration;
5. ``nep.txt`` (+ ``train/``): fine-tuned from the last model when at least ``min_new_frames``
   frames came in since the last training;
6. ``audit.json``: the audit of the new model;
7. ``record.json``: the iteration's row of ``STATE/iterations.json`` (and ``iterations.png``).

Every file is written atomically and each step is skipped when its file exists, so a run killed
at any point continues where it stopped; all random numbers come from (seed, iteration, run),
and later steps read what earlier ones wrote back from disk, so a resumed run gives the same
files as an uninterrupted one. ``iter_000/`` holds the start data and the first model.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write_text
from .config import ALConfig, ConfigError
from .oracle import label_frames, load_oracle
from .sampling import run_md
from .selection import (
    farthest_point_sampling,
    species_active_sets,
    species_grades,
    structure_descriptors,
)

__all__ = ["run_active_learning", "ALResult", "collapse_limits", "contact_pairs", "read_iterations",
           "format_table", "export_selected", "import_labels"]

STATE_VERSION = 1


@dataclass
class ALResult:
    """What :func:`run_active_learning` did: the rows of ``iterations.json``, the state folder,
    and ``status``: ``"finished"``, or ``"awaiting_labels"`` with ``to_label`` the file to
    label externally (then rerun with ``--import``)."""

    records: list[dict]
    state: Path
    status: str
    model: Path
    to_label: Path | None = None


def _noop(event: str, info: dict) -> None:
    return None


def _iter_dir(config: ALConfig, k: int) -> Path:
    return config.state / f"iter_{k:03d}"


def _write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=1, sort_keys=True) + "\n")


def _read_json(path: Path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _write_xyz(path: Path, structures) -> None:
    from ..io.xyz import write_train_xyz

    write_train_xyz(path, list(structures))  # atomic, round-trip exact


def _read_xyz(path: Path, *, labelled: bool) -> list:
    from ..io.xyz import read_train_xyz

    if path.stat().st_size == 0:
        return []
    return read_train_xyz(path, require_forces=labelled, require_energy=labelled)


def _structure_from_atoms(atoms):
    from ..io.xyz import TrainingStructure

    info = {str(k): v for k, v in atoms.info.items()
            if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    return TrainingStructure(symbols=atoms.get_chemical_symbols(),
                             positions=atoms.get_positions(), cell=np.array(atoms.get_cell()),
                             pbc=np.array(atoms.pbc), info=info)


def _seed(config: ALConfig, *parts: int) -> int:
    return int(np.random.SeedSequence([config.seed, *parts]).generate_state(1)[0])


def collapse_limits(species, structures, fraction: float) -> dict[tuple[str, str], float]:
    """{(A, B): Å} with A <= B: ``fraction`` x the shortest A-B distance of ``structures`` (the
    audit's rule, :func:`~nepzbl_plugin.audit.stress_test.collapse_distances`; a pair the data
    never bring within 4 Å gets 0.35 x the covalent radii)."""
    from ..audit.distances import min_pair_distances
    from ..audit.stress_test import collapse_distances

    distances = min_pair_distances(structures, species)
    named = collapse_distances(species, distances, fraction)
    return {tuple(sorted(name.split("-"))): value for name, value in named.items()}


# ------------------------------------------------------------------------------ steps
def _train(config: ALConfig, data, initial_model, out_dir: Path, log, *,
           first: bool = False) -> Path:
    """Train (fine-tune from ``initial_model`` unless None) on ``data``; the model is written
    to ``out_dir/nep.txt`` and its path returned. ``first``: the budget of the first model."""
    from ..train import train

    epochs = config.initial_epochs if first else config.epochs
    max_time = config.initial_max_time if first else config.max_time
    model, history = train(
        data, str(config.nep_in), output_dir=out_dir / "train", seed=config.seed,
        epochs=epochs, max_time=max_time, optimizer=config.optimizer,
        batch_size=config.batch_size, initial_model=initial_model, resume=False, log=log)
    path = out_dir / "nep.txt"
    model.write(path)
    _write_json(out_dir / "train.json", {
        "structures": len(data), "fine_tuned": initial_model is not None,
        "stop_reason": history.stop_reason, "device": history.device,
        "rmse_energy_eV_per_atom": history.records[-1].get("rmse_energy_train")
        if history.records else None,
        "rmse_force_eV_per_A": history.records[-1].get("rmse_force_train")
        if history.records else None,
    })
    return path


def _audit(config: ALConfig, model_path: Path, data, out_dir: Path) -> dict:
    from ..audit import audit
    from ..audit.report import report_json

    report = audit(str(model_path), data=data, hot_md=config.audit_hot_md)
    text = report_json(report)
    atomic_write_text(out_dir / "audit.json", text + "\n")
    return json.loads(text)


def _model_for(config: ALConfig, k: int) -> Path:
    """The newest model of iterations < k."""
    for j in range(k - 1, -1, -1):
        path = _iter_dir(config, j) / "nep.txt"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no model in {config.state} before iteration {k}")


def _initial(config: ALConfig, callback) -> dict:
    """iter_000: the start data and the first model (copied, or trained on the start data)."""
    from ..model import read_model

    folder = _iter_dir(config, 0)
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "initial.json"
    if done.is_file():
        return _read_json(done)
    start = time.perf_counter()
    data_path = folder / "data.xyz"
    if not data_path.is_file():
        from ..io.xyz import read_train_xyz

        _write_xyz(data_path, read_train_xyz(config.train))
    data = _read_xyz(data_path, labelled=True)
    model_path = folder / "nep.txt"
    if not model_path.is_file():
        if config.model is not None:
            read_model(config.model).write(model_path, precision="full")
        else:
            callback("training", {"iteration": 0, "structures": len(data)})
            start_training = time.perf_counter()
            _train(config, data, None, folder, log=None, first=True)
            callback("trained", {"iteration": 0,
                                 "wall_s": time.perf_counter() - start_training})
    audit_summary = None
    if config.audit:
        audit_summary = _audit_summary(_audit(config, model_path, data, folder))
    info = {"structures": len(data), "model": str(model_path.relative_to(config.state)),
            "trained": config.model is None, "wall_s": time.perf_counter() - start,
            "audit": audit_summary}
    _write_json(done, info)
    return info


def _audit_summary(report: dict) -> dict:
    return {"safe": report.get("safe"),
            "checks": {k: v.get("status") for k, v in report.get("checks", {}).items()}}


def contact_pairs(species, structures) -> list[tuple[str, str]]:
    """The species pairs (A, B) the data bring into contact (closer than the audit's search
    distance, 4 Å), in the order of ``species`` (None: the data's order of appearance): the
    pairs knock-on collisions go to."""
    from ..audit.distances import min_pair_distances

    distances = min_pair_distances(structures, species)
    return [tuple(name.split("-")) for name, value in distances.items() if value is not None]


def _check_knock_ons_fit(config: ALConfig, k: int, pairs) -> None:
    """Every run's collisions must fit after some plain MD, for the pairs the data have."""
    for spec in config.iterations[k - 1].runs:
        problem = spec.knock_on_shortfall(len(pairs))
        if problem:
            raise ConfigError(config.path, f"iteration[{k}].steps", problem)


def _md_phase(config: ALConfig, k: int, model_path: Path, data, limits, callback,
              pairs=()) -> list[dict]:
    from ..engine import Evaluator

    folder = _iter_dir(config, k)
    spec = config.iterations[k - 1]
    evaluator = None  # the current model drives the MD, whatever the oracle is
    summaries = []
    for r, run_spec in enumerate(spec.runs):
        json_path = folder / f"md_run_{r:02d}.json"
        if json_path.is_file():
            summaries.append(_read_json(json_path))
            continue
        if evaluator is None:
            evaluator = Evaluator(model_path, device=config.device,
                                  num_threads=config.num_threads)
        start_index = int(np.random.default_rng(_seed(config, k, 1000 + r)).integers(len(data)))
        start = time.perf_counter()

        def progress(done, total, r=r):
            callback("md_progress", {"iteration": k, "run": r, "done": done, "total": total})

        result = run_md(data[start_index].to_atoms(), evaluator, run_spec, limits,
                        seed=_seed(config, k, r), callback=progress, knock_pairs=pairs)
        frames = [_structure_from_atoms(f) for f in result.frames]
        _write_xyz(folder / f"md_run_{r:02d}.xyz", frames)
        summary = {"run": r, "start_structure": start_index, "md": run_spec.as_dict(),
                   "frames": len(result.frames), "failed": result.failed,
                   "planned": result.planned, "num_failed": result.num_failed,
                   "failure_ratio": result.failure_ratio, "aborted": result.aborted,
                   "min_distance_A": result.min_distances,
                   "device": evaluator.device, "md_wall_s": result.wall_seconds,
                   "wall_s": time.perf_counter() - start}
        if result.knock_on_energy is not None:
            summary.update(knock_on_energy_eV=result.knock_on_energy,
                           knock_ons=result.knock_ons)
        _write_json(json_path, summary)
        summaries.append(summary)
        callback("md_run_done", {"iteration": k, "run": r, "failure_ratio": result.failure_ratio,
                                 "frames": len(result.frames)})
    return summaries


def _candidates(config: ALConfig, k: int, summaries) -> list:
    folder = _iter_dir(config, k)
    out = []
    for s in summaries:
        frames = _read_xyz(folder / f"md_run_{s['run']:02d}.xyz", labelled=False)
        out += [f for f, bad in zip(frames, s["failed"], strict=True) if not bad]
    return out


def _select_phase(config: ALConfig, k: int, model_path: Path, data, candidates,
                  callback) -> list:
    from ..model import read_model

    folder = _iter_dir(config, k)
    json_path = folder / "selection.json"
    if json_path.is_file():
        return _read_xyz(folder / "selected.xyz", labelled=False)
    start = time.perf_counter()
    model = read_model(model_path)
    info = {"method": config.selection_method, "candidates": len(candidates)}
    chosen: list[int] = []
    if candidates:
        candidate_atoms = [c.to_atoms() for c in candidates]
        train_atoms = [s.to_atoms() for s in data]
        descriptors = structure_descriptors(model, candidate_atoms)
        reference = structure_descriptors(model, train_atoms)
        pool = np.arange(len(candidates))
        if config.selection_method == "maxvol":
            sets = species_active_sets(model, train_atoms)
            grades = species_grades(model, sets, candidate_atoms)
            pool = np.flatnonzero(grades > config.grade_threshold)
            info.update(grade_max=float(np.max(grades)), grade_threshold=config.grade_threshold,
                        extrapolating=int(pool.size))
        picked = farthest_point_sampling(descriptors[pool], reference,
                                         min_distance=config.min_distance,
                                         max_count=config.max_frames)
        chosen = [int(pool[i]) for i in picked]
    selected = [candidates[i] for i in chosen]
    _write_xyz(folder / "selected.xyz", selected)
    info.update(chosen=chosen, selected=len(selected), wall_s=time.perf_counter() - start)
    _write_json(json_path, info)
    callback("selected", {"iteration": k, "selected": len(selected),
                          "candidates": len(candidates)})
    return _read_xyz(folder / "selected.xyz", labelled=False)


def _label_phase(config: ALConfig, k: int, selected, oracle_holder: dict, callback):
    """The labelled frames, or None when they must come from outside."""
    folder = _iter_dir(config, k)
    labelled_path = folder / "labelled.xyz"
    if labelled_path.is_file():
        return _read_xyz(labelled_path, labelled=True)
    if config.oracle == "external":
        _write_xyz(folder / "to_label.xyz", selected)
        return None
    start = time.perf_counter()
    if "calc" not in oracle_holder:
        oracle_holder["calc"] = load_oracle(config.oracle, num_threads=config.num_threads)
    labelled = label_frames([s.to_atoms() for s in selected], oracle_holder["calc"],
                            config_type=f"al_iter_{k:03d}")
    _write_xyz(labelled_path, labelled)
    _write_json(folder / "labelling.json", {"frames": len(labelled), "oracle": config.oracle,
                                             "wall_s": time.perf_counter() - start})
    callback("labelled", {"iteration": k, "frames": len(labelled)})
    return _read_xyz(labelled_path, labelled=True)


def _wall(folder: Path) -> float:
    total = 0.0
    for name in ("selection.json", "labelling.json", "train.json", "audit_wall.json"):
        path = folder / name
        if path.is_file():
            total += float(_read_json(path).get("wall_s", 0.0))
    for path in sorted(folder.glob("md_run_*.json")):
        total += float(_read_json(path).get("wall_s", 0.0))
    return total


def _iteration(config: ALConfig, k: int, limits, oracle_holder, previous: dict | None,
               callback, pairs=()):
    """Run or resume iteration k; returns its record, or None when waiting for labels."""
    from ..model import read_model

    folder = _iter_dir(config, k)
    record_path = folder / "record.json"
    if record_path.is_file():
        return _read_json(record_path)
    folder.mkdir(parents=True, exist_ok=True)
    callback("iteration_start", {"iteration": k})
    model_path = _model_for(config, k)
    data = _read_xyz(_iter_dir(config, k - 1) / "data.xyz", labelled=True)
    summaries = _md_phase(config, k, model_path, data, limits, callback, pairs)
    candidates = _candidates(config, k, summaries)
    selected = _select_phase(config, k, model_path, data, candidates, callback)
    labelled = _label_phase(config, k, selected, oracle_holder, callback)
    if labelled is None:
        return None
    data_path = folder / "data.xyz"
    if not data_path.is_file():
        _write_xyz(data_path, list(data) + list(labelled))
    data = _read_xyz(data_path, labelled=True)

    since = (0 if previous is None or previous["updated"]
             else int(previous["frames_since_training"])) + len(labelled)
    new_model = folder / "nep.txt"
    update = since >= config.min_new_frames
    if update and not new_model.is_file():
        callback("training", {"iteration": k, "structures": len(data)})
        start = time.perf_counter()
        initial = read_model(model_path) if config.fine_tune else None
        _train(config, data, initial, folder, log=None)
        train_json = _read_json(folder / "train.json")
        train_json["wall_s"] = time.perf_counter() - start
        _write_json(folder / "train.json", train_json)
    audit_summary = None
    if update and config.audit:
        if not (folder / "audit.json").is_file():
            start = time.perf_counter()
            _audit(config, new_model, data, folder)
            _write_json(folder / "audit_wall.json", {"wall_s": time.perf_counter() - start})
        audit_summary = _audit_summary(_read_json(folder / "audit.json"))
        callback("audited", {"iteration": k, "safe": audit_summary["safe"]})

    spec = config.iterations[k - 1]
    planned = sum(s["planned"] for s in summaries)
    failed = sum(s["num_failed"] for s in summaries)
    t_low, t_high = spec.temperature_range
    record = {
        "iteration": k,
        "wall_s": _wall(folder),
        "temperature_K": [t_low, t_high],
        "md_runs": len(spec.runs),
        "md_length_ps": spec.length_ps,
        "md_frames": planned,
        "failed_frames": failed,
        "failure_ratio": failed / planned if planned else 0.0,
        "failure_ratio_per_run": [s["failure_ratio"] for s in summaries],
        "aborted_runs": sum(1 for s in summaries if s["aborted"]),
        "knock_on_energy_eV": max((s.get("knock_on_energy_eV") or 0.0 for s in summaries),
                                  default=0.0) or None,
        "candidates": len(candidates),
        "new_frames": len(labelled),
        "training_size": len(data),
        "frames_since_training": 0 if update else since,
        "updated": bool(update),
        "model": str(_model_for(config, k + 1).relative_to(config.state)),
        "selection": config.selection_method,
        "audit": audit_summary,
    }
    _write_json(record_path, record)
    return record


def read_iterations(state) -> list[dict]:
    """The records of the finished iterations in a state folder, in order."""
    out = []
    for folder in sorted(Path(state).glob("iter_*")):
        path = folder / "record.json"
        if path.is_file():
            out.append(_read_json(path))
    return sorted(out, key=lambda r: r["iteration"])


def _publish(config: ALConfig, records: list[dict]) -> None:
    _write_json(config.state / "iterations.json", records)
    if records:
        from .plots import plot_iterations

        plot_iterations(records, config.state / "iterations.png")


def _state_header(config: ALConfig) -> None:
    path = config.state / "state.json"
    header = {"version": STATE_VERSION, "config": str(config.path), "seed": config.seed,
              "iterations": len(config.iterations)}
    if path.is_file():
        old = _read_json(path)
        if old.get("version") != STATE_VERSION:
            raise ConfigError(config.path, "state",
                              f"{config.state} holds state version {old.get('version')}, "
                              f"this nepzbl writes {STATE_VERSION}")
        return
    _write_json(path, header)
    shutil.copyfile(config.path, config.state / "config.toml")


def run_active_learning(config: ALConfig, *, callback=None) -> ALResult:
    """Run (or resume) every iteration of ``config``; see the module docstring.

    ``callback(event, info)`` reports progress (``iteration_start``, ``md_progress``,
    ``md_run_done``, ``selected``, ``labelled``, ``training``, ``trained`` (the first model),
    ``audited``, ``iteration_done``, ``awaiting_labels``), each with a dict of details;
    it defaults to doing nothing. An exception it raises stops the run, which the next call
    resumes.
    """
    callback = callback or _noop
    knocks = any(run.knocks_on for spec in config.iterations for run in spec.runs)
    if knocks:  # a run too short for its collisions is an error before any work
        from ..io.xyz import read_train_xyz

        pairs = contact_pairs(None, [s.to_atoms() for s in read_train_xyz(config.train)])
        for k in range(1, len(config.iterations) + 1):
            _check_knock_ons_fit(config, k, pairs)
    config.state.mkdir(parents=True, exist_ok=True)
    _state_header(config)
    _initial(config, callback)
    species = list(_read_model_types(_iter_dir(config, 0) / "nep.txt"))
    start_data = _read_xyz(_iter_dir(config, 0) / "data.xyz", labelled=True)
    limits = collapse_limits(species, start_data, config.filter_fraction)
    pairs = contact_pairs(species, start_data) if knocks else []
    oracle_holder: dict = {}
    records = read_iterations(config.state)
    previous = None
    for k in range(1, len(config.iterations) + 1):
        record = _iteration(config, k, limits, oracle_holder, previous, callback, pairs)
        if record is None:
            to_label = _iter_dir(config, k) / "to_label.xyz"
            _publish(config, read_iterations(config.state))
            callback("awaiting_labels", {"iteration": k, "file": str(to_label)})
            return ALResult(read_iterations(config.state), config.state, "awaiting_labels",
                            _model_for(config, k), to_label)
        previous = record
        records = read_iterations(config.state)
        _publish(config, records)
        callback("iteration_done", dict(record))
    _publish(config, records)
    return ALResult(records, config.state, "finished",
                    _model_for(config, len(config.iterations) + 1))


def _read_model_types(path: Path):
    from ..model import read_model

    return read_model(path).types


def _pending_iteration(config: ALConfig) -> int | None:
    """The first iteration without a record, or None when all are done."""
    for k in range(1, len(config.iterations) + 1):
        if not (_iter_dir(config, k) / "record.json").is_file():
            return k
    return None


def export_selected(config: ALConfig, path, *, callback=None) -> Path:
    """Run up to the labelling step of the next iteration and write its selected frames to
    ``path`` (extended XYZ, no labels) for an external oracle."""
    k = _pending_iteration(config)
    if k is None:
        from ..errors import NepzblError

        raise NepzblError(f"{config.state}: every iteration is finished; nothing to export")
    if config.oracle != "external":
        from ..errors import NepzblError

        raise NepzblError(f"{config.path}: oracle.calculator is {config.oracle!r}; set it to "
                          "\"external\" to label the selected frames outside nepzbl")
    result = run_active_learning(config, callback=callback)
    if result.status != "awaiting_labels":
        raise RuntimeError("the loop finished without waiting for labels")
    shutil.copyfile(result.to_label, path)
    return Path(path)


def import_labels(config: ALConfig, path) -> int:
    """Take the labelled frames in ``path`` (extended XYZ with energy and forces, the frames of
    ``to_label.xyz`` in the same order) as the labels of the pending iteration; returns their
    number. Positions must match the exported frames to 1e-4 Å."""
    from ..errors import NepzblError
    from ..io.xyz import read_train_xyz

    k = _pending_iteration(config)
    folder = None if k is None else _iter_dir(config, k)
    if folder is None or not (folder / "to_label.xyz").is_file():
        raise NepzblError(f"{config.state}: no iteration is waiting for labels (run "
                          f"'nepzbl al {config.path} --export FILE' first)")
    expected = _read_xyz(folder / "to_label.xyz", labelled=False)
    labelled = read_train_xyz(path)
    if len(labelled) != len(expected):
        raise NepzblError(f"{path}: {len(labelled)} frames, but {len(expected)} were exported "
                          f"for iteration {k}")
    for n, (got, want) in enumerate(zip(labelled, expected, strict=True)):
        if got.symbols != want.symbols or got.positions.shape != want.positions.shape or \
                np.max(np.abs(got.positions - want.positions), initial=0.0) > 1e-4:
            raise NepzblError(f"{path}: frame {n + 1} is not the exported frame {n + 1} of "
                              f"iteration {k} (species or positions differ)")
        got.config_type = got.config_type or f"al_iter_{k:03d}"
    _write_xyz(folder / "labelled.xyz", labelled)
    _write_json(folder / "labelling.json", {"frames": len(labelled), "oracle": "external",
                                             "source": str(Path(path).resolve()), "wall_s": 0.0})
    return len(labelled)


def format_table(records: list[dict]) -> str:
    """The paper's per-iteration table as text (with the knock-on energy when a run had
    collisions)."""
    kicks = any(r.get("knock_on_energy_eV") for r in records)
    head = (f"{'iter':>4} {'wall (s)':>9} {'T (K)':>11} {'MD (ps)':>8} {'runs':>4} "
            + (f"{'kicks (eV)':>10} " if kicks else "")
            + f"{'new frames':>10} {'train size':>10} {'failure (%)':>11} {'updated':>7} "
            f"{'audit':>6}")
    lines = [head, "-" * len(head)]
    for r in records:
        t_low, t_high = r["temperature_K"]
        temps = f"{t_low:.0f}-{t_high:.0f}" if t_low != t_high else f"{t_low:.0f}"
        audit = "-" if not r.get("audit") else ("safe" if r["audit"]["safe"] else "UNSAFE")
        energy = r.get("knock_on_energy_eV")
        lines.append(
            f"{r['iteration']:>4} {r['wall_s']:>9.1f} {temps:>11} {r['md_length_ps']:>8.3f} "
            f"{r['md_runs']:>4} "
            + (f"{'-' if not energy else f'{energy:.2f}':>10} " if kicks else "")
            + f"{r['new_frames']:>10} {r['training_size']:>10} "
            f"{100 * r['failure_ratio']:>11.1f} {'yes' if r['updated'] else 'no':>7} "
            f"{audit:>6}")
    return "\n".join(lines)
