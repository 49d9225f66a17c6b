"""Learning curves: train on growing subsets of a data set and measure each model on a held-out
set (the perspective's data-set-size test, issue 15 item 4).

For every subset size and every repeat, a model is trained with :func:`~.trainer.train` on a
seeded random subset of the training pool and scored on the held-out set with GPUMD's
prediction mode (:func:`~.trainer.predict`, no shift): energy and virial RMSE in eV/atom, force
RMSE in eV/Angstrom. Subsets of one repeat are nested (the first ``n`` frames of one seeded
permutation of the pool), so a curve is not noisier than its data; repeats differ in the
permutation and in the training seed. Optionally each model runs a short MD and reports a
diffusivity (:class:`DiffusivityProbe`), because "force RMSE does not reliably predict
transport".

Nothing here prints: progress goes through the package's ``progress(done, total, label)``
callback (:mod:`nepzbl_plugin.progress`), once per trained model, label ``"learning curve"``;
``train_progress`` is passed to each :func:`~.trainer.train` unchanged.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import NepzblError

__all__ = ["LearningCurveError", "LearningCurvePoint", "LearningCurve", "DiffusivityProbe",
           "learning_curve", "plot_learning_curve", "split_held_out"]


class LearningCurveError(NepzblError, ValueError):
    """Sizes, repeats or a held-out split that cannot be honoured."""


@dataclass
class LearningCurvePoint:
    """One trained model: ``size`` training frames, ``repeat`` index, its seeds and scores."""

    size: int
    repeat: int
    seed: int
    rmse_energy_eV_per_atom: float
    rmse_force_eV_per_A: float
    rmse_virial_eV_per_atom: float | None
    wall_s: float
    diffusivity_cm2_per_s: float | None = None
    diffusivity_error_cm2_per_s: float | None = None


_METRICS = ("rmse_energy_eV_per_atom", "rmse_force_eV_per_A", "rmse_virial_eV_per_atom",
            "diffusivity_cm2_per_s")


@dataclass
class LearningCurve:
    """All points, with the held-out set's size and per-size summaries (mean, spread)."""

    points: list[LearningCurvePoint]
    held_out_frames: int
    pool_frames: int
    settings: dict = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        return sorted({p.size for p in self.points})

    def summary(self) -> list[dict]:
        """Per size: ``repeats`` and, per metric, ``<metric>_mean`` and ``<metric>_std`` (the
        sample standard deviation over repeats, 0 for one repeat; None when no point has it)."""
        rows = []
        for size in self.sizes:
            chosen = [p for p in self.points if p.size == size]
            row = {"size": size, "repeats": len(chosen)}
            for metric in _METRICS:
                values = np.array([getattr(p, metric) for p in chosen
                                   if getattr(p, metric) is not None], dtype=float)
                values = values[np.isfinite(values)]
                if values.size == 0:
                    row[f"{metric}_mean"] = row[f"{metric}_std"] = None
                else:
                    row[f"{metric}_mean"] = float(values.mean())
                    row[f"{metric}_std"] = (float(values.std(ddof=1)) if values.size > 1
                                            else 0.0)
            rows.append(row)
        return rows

    def as_dict(self) -> dict:
        return {"held_out_frames": self.held_out_frames, "pool_frames": self.pool_frames,
                "settings": self.settings, "points": [asdict(p) for p in self.points],
                "summary": self.summary()}


@dataclass
class DiffusivityProbe:
    """A short Bussi NVT run of each trained model from ``structure`` (an ``ase.Atoms``) and
    the MSD diffusivity of ``species`` (D = slope / 6 over the first half of ``window_fs``,
    error from ``blocks`` blocks). Times in fs, temperature in K."""

    structure: object
    temperature: float
    steps: int = 2000
    timestep_fs: float = 1.0
    every: int = 10
    species: str = "Li"
    window_fs: float | None = None
    blocks: int = 2
    threads: int | None = None
    seed: int = 0

    def __call__(self, model) -> tuple[float, float, str | None]:
        """(D, D error) in cm^2/s of ``model`` (a Model or a nep.txt path) and the reason the
        run stopped early (None when it ran; D is NaN then)."""
        from ..analysis.msd import MSD
        from ..engine import Evaluator
        from ..md import EngineForces, run_md

        atoms = self.structure.copy()
        evaluator = Evaluator(model, num_threads=self.threads)
        positions = []

        class _Collect:
            every = self.every

            def __call__(self, frame):
                positions.append(np.array(frame.positions, dtype=float))

        result = run_md(atoms, EngineForces(evaluator, atoms), self.steps, self.timestep_fs,
                        ensemble="nvt", temperature=self.temperature, seed=self.seed,
                        observers=[_Collect()])
        if result.stopped:
            return float("nan"), float("nan"), str(result.stopped)
        msd = MSD(window_fs=self.window_fs, blocks=self.blocks, species=[self.species])
        msd.compute_arrays(np.array(positions), atoms.get_chemical_symbols(),
                           self.every * self.timestep_fs)
        return (float(msd.diffusion[self.species]), float(msd.diffusion_error[self.species]),
                None)


def split_held_out(structures, fraction: float, seed: int = 0):
    """(pool, held_out): a seeded random ``fraction`` of the frames held out (at least one)."""
    count = len(structures)
    if not 0.0 < fraction < 1.0:
        raise LearningCurveError(f"the held-out fraction must be between 0 and 1, not {fraction}")
    n_held = max(1, int(round(fraction * count)))
    if n_held >= count:
        raise LearningCurveError(f"{count} frames leave nothing to train on after holding out "
                                 f"{n_held}")
    order = np.random.default_rng([int(seed), 7919]).permutation(count)
    held = sorted(order[:n_held].tolist())
    pool = sorted(order[n_held:].tolist())
    return [structures[i] for i in pool], [structures[i] for i in held]


def _checked_sizes(sizes, pool_count: int) -> list[int]:
    checked = sorted({int(s) for s in sizes})
    if not checked:
        raise LearningCurveError("give at least one subset size")
    if checked[0] < 1:
        raise LearningCurveError(f"subset sizes must be positive, not {checked[0]}")
    if checked[-1] > pool_count:
        raise LearningCurveError(f"subset size {checked[-1]} is larger than the {pool_count} "
                                 "frames left for training")
    return checked


def _nothing(*_args, **_kwargs) -> None:
    return None


def learning_curve(
    structures,
    nep_in,
    sizes,
    *,
    repeats: int = 3,
    seed: int = 0,
    held_out=None,
    held_out_fraction: float = 0.2,
    output_dir=None,
    diffusivity: DiffusivityProbe | None = None,
    progress=None,
    train_progress=None,
    **train_options,
) -> LearningCurve:
    """Train ``repeats`` models per subset size and score them on a held-out set.

    Parameters
    ----------
    structures
        Training frames (``TrainingStructure`` list, as :func:`~nepzbl_plugin.io.xyz.read_train_xyz`
        gives). Without ``held_out``, a seeded ``held_out_fraction`` of them is held out first.
    nep_in
        The parsed nep.in every model is trained with.
    sizes
        Subset sizes in frames (each at most the pool's size).
    repeats, seed
        Models per size; repeat ``r`` uses the permutation and training seed ``seed + r``.
    output_dir
        When given, each model's files go to ``output_dir/n<size>_r<repeat>/`` (nep.txt,
        loss.out, ...); else the models are trained in memory.
    diffusivity
        A :class:`DiffusivityProbe` run with every trained model, or None.
    progress
        ``progress(done, total, "learning curve")`` before the first and after every model;
        the default (None) does nothing.
    train_options
        Passed to :func:`~.trainer.train` (``epochs``, ``max_time``, ``optimizer``,
        ``batch_size``, ...); ``seed``, ``output_dir``, ``resume``, ``log`` are set here.
    """
    from .trainer import predict, train

    progress = progress or _nothing
    label = "learning curve"
    repeats = int(repeats)
    if repeats < 1:
        raise LearningCurveError(f"repeats must be at least 1, not {repeats}")
    structures = list(structures)
    if held_out is None:
        pool, held = split_held_out(structures, held_out_fraction, seed)
    else:
        pool, held = structures, list(held_out)
        if not held:
            raise LearningCurveError("the held-out set is empty")
    sizes = _checked_sizes(sizes, len(pool))
    has_virial = any(s.virial is not None for s in held)
    output = None if output_dir is None else Path(output_dir)
    settings = {"sizes": sizes, "repeats": repeats, "seed": int(seed),
                "held_out": "given" if held_out is not None else
                f"random {held_out_fraction:g} of the data",
                "train_options": {k: v for k, v in train_options.items()
                                  if isinstance(v, (int, float, str, type(None)))}}
    if diffusivity is not None:
        settings["diffusivity"] = {"temperature_K": diffusivity.temperature,
                                   "steps": diffusivity.steps,
                                   "timestep_fs": diffusivity.timestep_fs,
                                   "species": diffusivity.species, "atoms":
                                   len(diffusivity.structure)}
    total = len(sizes) * repeats
    progress(0, total, label)
    points = []
    for repeat in range(repeats):
        run_seed = int(seed) + repeat
        order = np.random.default_rng([run_seed, 104729]).permutation(len(pool))
        for size in sizes:
            began = time.perf_counter()
            subset = [pool[i] for i in order[:size]]
            model_dir = None if output is None else output / f"n{size}_r{repeat}"
            model, _ = train(subset, nep_in, None, output_dir=model_dir, seed=run_seed,
                             resume=False, log=_nothing, progress=train_progress,
                             **train_options)
            _, rmse = predict(model, held)
            point = LearningCurvePoint(
                size=size, repeat=repeat, seed=run_seed,
                rmse_energy_eV_per_atom=float(rmse["energy"]),
                rmse_force_eV_per_A=float(rmse["force"]),
                rmse_virial_eV_per_atom=float(rmse["virial"]) if has_virial else None,
                wall_s=0.0)
            if diffusivity is not None:
                # a run that stops early (collapse, non-finite energy) scores NaN, no error
                d, d_error, _ = diffusivity(model)
                point.diffusivity_cm2_per_s = d
                point.diffusivity_error_cm2_per_s = d_error
            point.wall_s = time.perf_counter() - began
            points.append(point)
            progress(len(points), total, label)
    return LearningCurve(points=points, held_out_frames=len(held), pool_frames=len(pool),
                         settings=settings)


def plot_learning_curve(curve: LearningCurve, path) -> Path:
    """Held-out RMSE (meV/atom, meV/Angstrom) against training frames, log-log, error bars =
    standard deviation over repeats, every model as a faint dot; a diffusivity panel when the
    curve has one. Written atomically; returns the path."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_write_bytes

    panels = [("rmse_energy_eV_per_atom", 1e3, "energy RMSE (meV/atom)"),
              ("rmse_force_eV_per_A", 1e3, "force RMSE (meV/Å)"),
              ("rmse_virial_eV_per_atom", 1e3, "virial RMSE (meV/atom)"),
              ("diffusivity_cm2_per_s", 1.0, "diffusivity (cm²/s)")]
    rows = curve.summary()
    panels = [p for p in panels if any(r[f"{p[0]}_mean"] is not None for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (key, scale, label) in zip(axes[0], panels, strict=True):
        sizes = [r["size"] for r in rows if r[f"{key}_mean"] is not None]
        means = [r[f"{key}_mean"] * scale for r in rows if r[f"{key}_mean"] is not None]
        stds = [r[f"{key}_std"] * scale for r in rows if r[f"{key}_mean"] is not None]
        every = [(p.size, getattr(p, key) * scale) for p in curve.points
                 if getattr(p, key) is not None and np.isfinite(getattr(p, key))]
        if every:
            ax.plot(*zip(*every, strict=True), ".", color="0.6", label="each model")
        ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=3,
                    label="mean ± std over repeats")
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        if key != "diffusivity_cm2_per_s" and all(m > 0 for m in means):
            ax.set_yscale("log")
        ax.set_xlabel("training frames")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(f"held-out set: {curve.held_out_frames} frames", fontsize=10)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path
