"""Training a NEP(-ZBL) model on GPUMD's objective.

:func:`train` is the Python API and the engine of ``nepzbl train``. It minimises GPUMD's loss
(:mod:`~nepzbl_plugin.train.loss`, section 4.5 of ``nep-reference.md``) of the model
*NEP + ZBL*, so the network learns the residual of the labels with respect to ZBL, with one of

* ``adam`` (default): Adam/AdamW on mini-batches of structures with the analytic gradient and a
  plateau learning-rate schedule; after three halvings of the learning rate it continues with
  full-batch L-BFGS, which stops when the loss stops falling (the stopping rule);
* ``lbfgs``: full-batch L-BFGS with the analytic gradient;
* ``snes``: GPUMD's own SNES (population, batch, generation, per-type ranking).

Outputs (when ``output_dir`` is given) are GPUMD's: ``nep.txt``, ``loss.out``,
``energy/force/virial/stress_train.out`` (and ``_test`` with a test set), plus a restart
checkpoint (``nepzbl_restart.npz`` + ``.json``) written atomically at every report, from which an
interrupted run resumes, and ``parity_*.png`` at the end.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checks import whole_number
from ..errors import FileError, InputError, NepzblError
from ..model import Model
from .checkpoint import load_checkpoint, save_checkpoint
from .loss import (
    Labels,
    Loss,
    LossValue,
    LossWeights,
    Predictions,
    combine_full_batch,
    virial_six,
)
from .optimizers import Adam, PlateauSchedule, lbfgs_minimize
from .snes import SNES

__all__ = ["train", "TrainingHistory", "TrainingSettings", "TrainingDiverged", "predict"]

OPTIMIZERS = ("adam", "adamw", "lbfgs", "snes")
LOSS_COLUMNS = ("loss", "l1", "l2", "rmse_energy_train", "rmse_force_train", "rmse_virial_train",
                "rmse_energy_test", "rmse_force_test", "rmse_virial_test")


class TrainingDiverged(NepzblError, RuntimeError):
    """The loss became NaN or infinite. The last good checkpoint and nep.txt are kept."""


@dataclass
class TrainingSettings:
    """Everything the trainer needs besides the data (resolved from nep.in and arguments)."""

    optimizer: str = "adam"
    seed: int = 0
    max_time: float | None = None  # seconds of training (summed over resumed runs)
    epochs: int | None = None  # gradient optimisers: epochs; SNES: generations
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    batch_size: int | None = None  # structures per mini-batch (gradient) / per batch (SNES)
    target_force_rmse: float | None = None  # eV/Å: stop once the train force RMSE is below
    report_interval: int = 10  # epochs (or generations) between reports/checkpoints
    patience: int = 25  # epochs without improvement before the learning rate is halved
    # Adam, then full-batch L-BFGS once the learning rate has been halved this many times
    # (0: Adam only). L-BFGS converges much faster than small-step Adam near a minimum.
    polish_after: int = 3
    lbfgs_patience: int = 100  # L-BFGS stops when the loss fell < min_delta in this many its
    min_delta: float = 1e-3
    min_learning_rate: float | None = None
    population: int = 50
    sigma0: float = 0.1
    full_batch: bool = False  # SNES: GPUMD's `batch N 1`
    initial_para: float = 1.0
    notes: list[str] = field(default_factory=list)  # how the settings were chosen
    optimizer_is_default: bool = False  # neither nep.in nor the caller chose it
    # the GPU's per-atom kernels: "auto" (timed at the start of each phase), a name of
    # cuda_backend.KERNELS, or None (as the backend has them)
    gpu_kernels: str | None = "auto"


@dataclass
class TrainingHistory:
    """One record per report: ``step`` (epoch or generation, 1-based), ``time`` (s),
    ``updates`` (parameter updates so far: Adam one per batch, L-BFGS one per iteration, SNES
    one per generation), ``evaluations`` (losses evaluated on a batch so far, with their
    gradient; SNES: one per candidate), the loss terms of L(T) and the train/test RMSEs
    (eV/atom, eV/Å, eV/atom); ``device``: where the training ran ("cpu" or "cuda");
    ``kernel_tunings``: on the GPU, what choosing its kernels measured
    (:class:`~nepzbl_plugin.train.cuda_backend.KernelTuning`, one per phase)."""

    records: list[dict] = field(default_factory=list)
    stop_reason: str = ""
    device: str = "cpu"
    # on the GPU, one KernelTuning per phase whose kernels were timed (gpu_kernels "auto")
    kernel_tunings: list = field(default_factory=list)

    def column(self, name: str) -> np.ndarray:
        """One quantity per record, e.g. ``column("test_force")``; an unknown name raises
        :class:`~nepzbl_plugin.errors.InputError` listing the known ones (a record without
        it, from an older checkpoint, gives NaN)."""
        known = list(dict.fromkeys(key for r in self.records for key in r))
        if self.records and name not in known:
            raise InputError(f"TrainingHistory.column({name!r}): no such column; "
                             f"known: {', '.join(known)}")
        return np.array([r.get(name, np.nan) for r in self.records], dtype=np.float64)

    def __iter__(self):
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


# ------------------------------------------------------------------------------------ helpers
def _nep_in_value(nep_in, name, default=None):
    value = getattr(nep_in, name, None)
    return default if value is None else value


# One evaluation of the GPU's training kernels takes about as long for a whole small set as
# for a mini-batch of it: the gradient kernel runs one thread per atom at 255 registers, 8
# warps (256 atoms) per SM, 33,792 atoms at once on an H200's 132 SMs, and a batch of 4 LLZO
# structures (768 atoms) leaves most of it idle. Full-batch L-BFGS reaches LLZO's held-out
# targets in 918 evaluations against 2998 for Adam on batches of 4 then L-BFGS
# (bench_train.py schedules), so it is the default on the GPU for sets up to this size.
GPU_FULL_BATCH_ATOMS = 32768
# The GPU's kernels are timed on a call of at most this many atoms (the first structures of
# a larger call): more than one wave of any thread-per-atom kernel on an H200 (50,688 atoms
# at 12 warps per SM), so that a call that fills the GPU is timed as one, at about 0.07 s a
# call at the first H200 run's 1.0e6 atoms/s.
GPU_TUNING_ATOMS = 2 * GPU_FULL_BATCH_ATOMS


def settings_from_nep_in(nep_in, num_structures: int, *, gpu_atoms: int | None = None,
                         **overrides) -> TrainingSettings:
    """Resolve :class:`TrainingSettings` from a NepIn and explicit overrides.

    A plain GPUMD nep.in (no ``optimizer`` line) trains with the default gradient optimiser
    (Adam + plateau stopping rule, then full-batch L-BFGS); ``population``/``generation`` are
    then not used, which ``notes`` says. ``gpu_atoms``: the training set's atom count when it
    trains on a GPU; a set of at most :data:`GPU_FULL_BATCH_ATOMS` then trains with
    full-batch L-BFGS by default.
    """
    s = TrainingSettings()
    chosen = overrides.get("optimizer") or _nep_in_value(nep_in, "optimizer")
    if chosen is None:
        s.optimizer_is_default = True
        if gpu_atoms is not None and gpu_atoms <= GPU_FULL_BATCH_ATOMS:
            s.optimizer = "lbfgs"
            s.notes.append(
                f"nep.in names no optimizer: the GPU evaluates all {gpu_atoms} atoms of the "
                "training set in about the time of a mini-batch, so training with full-batch "
                "L-BFGS on GPUMD's loss with analytic gradients, which needs fewer evaluations "
                "than Adam on mini-batches (docs/gpu-training.md); add `optimizer adam` for the "
                "CPU's default, `optimizer snes` for GPUMD's SNES."
            )
        else:
            s.optimizer = "adam"
            s.notes.append(
                "nep.in names no optimizer: training with the default gradient optimiser (Adam "
                "on GPUMD's loss with analytic gradients, then full-batch L-BFGS); add "
                "`optimizer snes` for GPUMD's SNES."
            )
    else:
        s.optimizer = str(chosen).lower()
    if s.optimizer not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {s.optimizer!r}; choose one of {OPTIMIZERS}")
    if s.optimizer == "adamw":
        s.weight_decay = 1e-4
    for name in ("seed", "max_time", "learning_rate", "epochs", "batch_size",
                 "target_force_rmse", "weight_decay"):
        value = overrides.get(name)
        if value is None:
            value = _nep_in_value(nep_in, name)
            if name == "max_time" and value is not None:
                value = 60.0 * float(value)  # nep.in gives minutes
        if value is not None:
            setattr(s, name, value)
    s.population = int(_nep_in_value(nep_in, "population", 50))
    s.sigma0 = float(_nep_in_value(nep_in, "sigma0", 0.1))
    s.initial_para = float(_nep_in_value(nep_in, "initial_para", 1.0))
    batch = _nep_in_value(nep_in, "batch", 1000)
    full = _nep_in_value(nep_in, "use_full_batch", None)
    if isinstance(batch, (tuple, list)):
        batch, full = batch[0], (batch[1] if len(batch) > 1 else full)
    s.full_batch = bool(full)
    interval = int(_nep_in_value(nep_in, "output_interval", 100))
    if s.optimizer == "snes":
        s.report_interval = max(1, interval)
        if s.batch_size is None:
            s.batch_size = int(batch)
        if s.epochs is None:
            s.epochs = int(_nep_in_value(nep_in, "generation", 100000))
    else:
        # Epochs are much larger steps than generations: report 10x more often.
        s.report_interval = max(1, interval // 10)
        if s.epochs is None:
            generation = int(_nep_in_value(nep_in, "generation", 100000))
            s.epochs = generation
            unit, what = (("iterations", "L-BFGS iterations (one full-batch step each")
                          if s.optimizer == "lbfgs" else
                          ("epochs", f"epochs (an epoch is one pass over all {num_structures} "
                           "structures"))
            s.notes.append(
                f"{s.optimizer}: nep.in's generation {generation} becomes at most {generation} "
                f"{what}; a GPUMD generation is one SNES step on one batch); population is not "
                f"used, loss.out is written every {s.report_interval} {unit} "
                "(output_interval / 10)"
            )
        if s.batch_size is None:
            s.batch_size = min(num_structures, 4)
    for name in ("report_interval", "patience", "polish_after"):
        if overrides.get(name) is not None:
            setattr(s, name, int(overrides[name]))
    s.batch_size = max(1, min(int(s.batch_size), max(1, num_structures)))
    s.seed = int(s.seed)
    return s


# train()'s numeric overrides: (whole number?, smallest allowed, is the smallest excluded?)
_OVERRIDE_RULES = {
    "seed": (True, 0, False), "epochs": (True, 0, False), "batch_size": (True, 1, False),
    "report_interval": (True, 1, False), "patience": (True, 1, False),
    "polish_after": (True, 0, False), "max_time": (False, 0.0, True),
    "learning_rate": (False, 0.0, True), "target_force_rmse": (False, 0.0, True),
}


def check_overrides(overrides: dict) -> None:
    """One InputError naming the argument for a train() override that cannot be used: a
    fraction, a string, NaN, a negative count, batch_size or report_interval 0 (were clamped,
    ignored, or failed later with ZeroDivisionError or 'parameters must be finite')."""
    for name, (whole, low, exclusive) in _OVERRIDE_RULES.items():
        value = overrides.get(name)
        if value is None:
            continue
        kind = "a whole number" if whole else "a finite number"
        ok = isinstance(value, (int, float, np.integer, np.floating)) and \
            not isinstance(value, bool) and math.isfinite(value) and \
            (not whole or whole_number(value) is not None)
        if ok and (value <= low if exclusive else value < low):
            ok = False
        if not ok:
            bound = f"> {low:g}" if exclusive else f">= {low:g}"
            raise InputError(f"train: {name} must be {kind} {bound}, got {value!r}")


def check_gpu_kernels(gpu_kernels) -> None:
    """One InputError for a ``gpu_kernels`` that is neither "auto", None nor a name of
    :data:`~nepzbl_plugin.train.cuda_backend.KERNELS`."""
    from .cuda_backend import KERNELS

    if gpu_kernels is not None and gpu_kernels != "auto" and gpu_kernels not in KERNELS:
        raise InputError(f"train: gpu_kernels must be 'auto' or one of {', '.join(KERNELS)}, "
                         f"not {gpu_kernels!r}")


def loss_weights_from_nep_in(nep_in, num_types: int) -> LossWeights:
    type_weight = _nep_in_value(nep_in, "type_weight")
    return LossWeights(
        num_types=num_types,
        lambda_e=float(_nep_in_value(nep_in, "lambda_e", 1.0)),
        lambda_f=float(_nep_in_value(nep_in, "lambda_f", 1.0)),
        lambda_v=float(_nep_in_value(nep_in, "lambda_v", 0.1)),
        lambda_shear=float(_nep_in_value(nep_in, "lambda_shear", 1.0)),
        lambda_1=_nep_in_value(nep_in, "lambda_1"),
        lambda_2=_nep_in_value(nep_in, "lambda_2"),
        force_delta=float(_nep_in_value(nep_in, "force_delta", 0.0)),
        type_weight=None if type_weight is None else np.asarray(type_weight, dtype=np.float64),
    )


def check_temperatures(structures, which: str) -> None:
    """A temperature model (nep.in ``model_type 3``) reads every frame's temperature, as
    GPUMD's trainer does: refuse a frame without ``temperature=``."""
    for k, st in enumerate(structures):
        if getattr(st, "temperature", None) is None:
            raise ValueError(
                f"{which} structure {k} has no temperature: model_type 3 trains a temperature "
                "model, and every frame needs temperature=<K> on its comment line"
            )


def check_header(model: Model, reference: Model, what: str) -> None:
    """Raise ValueError naming every header field where ``model`` differs from nep.in."""
    problems = []

    def cmp(name, a, b):
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            a, b = np.asarray(a, float), np.asarray(b, float)
            same = a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=0)
        else:
            same = a == b
        if not same:
            problems.append(f"{name}: {a} (model) vs {b} (nep.in)")

    cmp("version", model.version, reference.version)
    cmp("types", list(model.types), list(reference.types))
    if not problems:
        cmp("radial cutoffs", model.radial_cutoffs, reference.radial_cutoffs)
        cmp("angular cutoffs", model.angular_cutoffs, reference.angular_cutoffs)
    cmp("n_max", (model.n_max_radial, model.n_max_angular),
        (reference.n_max_radial, reference.n_max_angular))
    cmp("basis_size", (model.basis_size_radial, model.basis_size_angular),
        (reference.basis_size_radial, reference.basis_size_angular))
    cmp("l_max", (model.l_max, tuple(f != 0 for f in model.l_max_flags)),
        (reference.l_max, tuple(f != 0 for f in reference.l_max_flags)))
    cmp("neuron", (model.n_neurons, model.n_neurons_second),
        (reference.n_neurons, reference.n_neurons_second))
    cmp("zbl", None if model.zbl is None else model.zbl.mode,
        None if reference.zbl is None else reference.zbl.mode)
    if model.zbl is not None and reference.zbl is not None and model.zbl.mode != "flexible":
        cmp("zbl outer radius", model.zbl.outer, reference.zbl.outer)
    if problems:
        raise ValueError(f"{what} does not match nep.in: " + "; ".join(problems))


def _gpumd_batches(labels: Labels, batch_size: int, training: bool) -> list[np.ndarray]:
    """GPUMD's batches (4.2): with N_bat < N_c, structures stably sorted by per-atom energy
    and dealt round-robin; otherwise one batch in file order."""
    n = labels.num_structures
    num_batches = math.ceil(n / batch_size)
    if num_batches <= 1 or not training:
        return [np.arange(n)]
    order = np.argsort(labels.energy / labels.num_atoms, kind="stable")
    return [order[b::num_batches] for b in range(num_batches)]


# ------------------------------------------------------------------------------------ state
class _Run:
    """Shared machinery of the three optimisers: evaluation, reports, checkpoints, outputs."""

    def __init__(self, model, train_structures, test_structures, settings, loss, output_dir,
                 progress, log, backend=None, device="cpu"):
        if backend is None:
            from .cuda_backend import make_backend

            def backend(model, structures):
                return make_backend(device, model, structures)

        self.model = model
        self.settings = settings
        self.loss = loss
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.log = log
        self.progress = progress
        species = model.types
        self.train_labels = Labels.from_structures(train_structures, species)
        self.train_structures = train_structures
        self.backend = backend(model, train_structures)
        self.device = getattr(self.backend, "device", "cpu")
        # a backend that computes the loss itself gets the labels once: the C loss on the CPU,
        # and on the GPU a training step that never leaves the device
        if hasattr(self.backend, "attach_loss"):
            self.backend.attach_loss(self.train_labels, loss)
        self.loss_on_backend = bool(getattr(self.backend, "has_loss", False))
        self.test_structures = test_structures or []
        self.test_labels = (
            Labels.from_structures(self.test_structures, species) if self.test_structures
            else None
        )
        self.test_backend = (
            backend(model, self.test_structures) if self.test_structures else None
        )
        self.history = TrainingHistory(device=self.device)
        self._history_columns = _HistoryColumns()
        self.elapsed_before = 0.0
        self.start_time = time.monotonic()
        self.last_good_params = model.parameters.copy()
        self.callback = None
        # work done so far, for steps per second on any device: parameter updates (Adam: one
        # per batch, L-BFGS: one per iteration, SNES: one per generation) and evaluations of
        # the loss on a batch (with its gradient; SNES: one per candidate)
        self.updates = 0
        self.evaluations = 0

    def choose_gpu_kernels(self, params, indices) -> None:
        """The GPU's per-atom kernels for this phase's calls, which are on structures like
        ``indices``: timed (``gpu_kernels`` "auto", on at most :data:`GPU_TUNING_ATOMS`
        atoms of them) or as named. Nothing on the CPU or for SNES, whose population has a
        kernel of its own."""
        choice = self.settings.gpu_kernels
        if (choice is None or not self.loss_on_backend
                or not hasattr(self.backend, "tune_kernels")):
            return
        if choice == "auto":
            indices = np.asarray(indices)
            atoms = np.cumsum(self.train_labels.num_atoms[indices])
            indices = indices[: max(1, int(np.searchsorted(atoms, GPU_TUNING_ATOMS, "right")))]
            tuning = self.backend.tune_kernels(params, indices)
            self.history.kernel_tunings.append(tuning)
            self.log(tuning.describe())
            choice = tuning.chosen
        else:
            self.backend.use_kernels(choice)
        # the test set's reports: its predictions in the training calls' choice
        if hasattr(self.test_backend, "use_kernels"):
            self.test_backend.use_kernels(choice)

    # ---------------------------------------------------------------- evaluation
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.start_time

    def predict_all(self, params, backend, labels, chunk=64) -> Predictions:
        parts = [backend.predict(params, range(i, min(labels.num_structures, i + chunk)))
                 for i in range(0, labels.num_structures, chunk)]
        return Predictions(
            np.concatenate([p.energy for p in parts]),
            np.concatenate([p.forces for p in parts]),
            np.concatenate([p.virial for p in parts]),
        )

    def value_and_gradient(self, params, indices):
        self.evaluations += 1
        if self.loss_on_backend:
            value, grad = self.backend.loss_and_gradient(params, indices)
            return (value, grad) if value.is_finite() else (value, None)
        labels = self.train_labels.subset(indices)
        pred = self.backend.predict(params, indices)
        value = self.loss.evaluate(labels, pred, params)
        if not value.is_finite():
            return value, None
        adj = self.loss.adjoints(labels, pred, params)
        grad = self.backend.gradient(params, indices, adj)
        return value, grad

    def full_report(self, params) -> tuple[dict, float, Predictions, Predictions | None]:
        """Loss and RMSEs on the whole training set (with the shift) and the test set (after
        the bias correction, no shift)."""
        pred = self.predict_all(params, self.backend, self.train_labels)
        value = self.loss.evaluate(self.train_labels, pred, params)
        record = {
            "loss": value.value,
            "l1": float(value.l1[-1]),
            "l2": float(value.l2[-1]),
            "rmse_energy_train": value.rmse_energy,
            "rmse_force_train": value.rmse_force,
            "rmse_virial_train": value.rmse_virial,
            "rmse_energy_test": 0.0,
            "rmse_force_test": 0.0,
            "rmse_virial_test": 0.0,
            "has_virial_train": bool(np.any(self.train_labels.has_virial)),
            "has_virial_test": bool(self.test_labels is not None
                                    and np.any(self.test_labels.has_virial)),
        }
        test_pred = None
        if self.test_labels is not None:
            test_pred = self.predict_all(params, self.test_backend, self.test_labels)
            # Bias correction b1 += s lowers every site energy by s.
            shifted = Predictions(
                test_pred.energy - value.shift * self.test_labels.num_atoms,
                test_pred.forces,
                test_pred.virial,
            )
            tv = self.loss.evaluate(self.test_labels, shifted, None, use_shift=False)
            record.update(
                rmse_energy_test=tv.rmse_energy,
                rmse_force_test=tv.rmse_force,
                rmse_virial_test=tv.rmse_virial,
            )
            test_pred = shifted
        return record, value.shift, pred, test_pred

    # ---------------------------------------------------------------- outputs
    def corrected_model(self, params, shift) -> Model:
        out = self.model.copy()
        out.parameters[:] = params
        out.shared_bias = out.shared_bias + shift
        return out

    def report(self, step, params, extra_arrays, extra_scalars, write_model=True):
        """Evaluate, append loss.out and the history, write nep.txt and the checkpoint."""
        record, shift, _, _ = self.full_report(params)
        record["step"] = int(step)
        record["time"] = self.elapsed()
        record["updates"] = self.updates
        record["evaluations"] = self.evaluations
        if not np.isfinite(record["loss"]):
            raise TrainingDiverged(
                f"the loss is {record['loss']} at step {step}; the last good checkpoint is kept"
            )
        self.history.records.append(record)
        self.last_good_params = np.array(params, copy=True)
        if self.callback is not None:
            self.callback(dict(record), self.corrected_model(params, shift))
        if self.output_dir is not None:
            from ..io.gpumd_outputs import write_loss_out

            row = [step] + [record[k] for k in LOSS_COLUMNS]
            write_loss_out(self.output_dir / "loss.out", np.array([row], dtype=np.float64),
                           append=True)
            if write_model:
                self.corrected_model(params, shift).write(self.output_dir / "nep.txt")
            self.save(step, params, extra_arrays, extra_scalars)
        return record

    def save(self, step, params, extra_arrays, extra_scalars, finished=False, reason=""):
        if self.output_dir is None:
            return
        arrays = {"parameters": np.asarray(params), "q_scaler": self.model.q_scaler}
        arrays.update(extra_arrays)
        self._history_columns.update(self.history.records)
        arrays.update(self._history_columns.arrays())
        scalars = {
            "step": int(step),
            "elapsed": self.elapsed(),
            "updates": self.updates,
            "evaluations": self.evaluations,
            "optimizer": self.settings.optimizer,
            "types": list(self.model.types),
            "num_parameters": int(self.model.num_parameters),
            "history_types": self._history_columns.types(),
            "finished": bool(finished),
            "stop_reason": reason,
        }
        scalars.update(extra_scalars)
        save_checkpoint(self.output_dir, arrays, scalars)

    def write_final(self, params):
        """nep.txt (bias corrected), *_train.out / *_test.out and the parity plots."""
        record, shift, pred, test_pred = self.full_report(params)
        final = self.corrected_model(params, shift)
        if self.output_dir is None:
            return final, record
        from ..io import gpumd_outputs as go

        final.write(self.output_dir / "nep.txt")
        shifted = Predictions(
            pred.energy - shift * self.train_labels.num_atoms, pred.forces, pred.virial
        )
        write_prediction_files(self.output_dir, "train", self.train_structures, shifted, go)
        if test_pred is not None:
            write_prediction_files(self.output_dir, "test", self.test_structures, test_pred, go)
        try:
            from .plots import parity_plots

            parity_plots(self.output_dir, self.train_structures, shifted,
                         self.test_structures, test_pred)
        except Exception as err:  # plotting must never lose a trained model
            self.log(f"parity plots not written: {err}")
        return final, record


def write_prediction_files(directory, which, structures, pred: Predictions, go) -> None:
    """energy/force/virial/stress_<which>.out in GPUMD's formats (per-atom energies and
    virials; missing reference virials as -1e6)."""
    directory = Path(directory)
    n = np.array([len(s.symbols) for s in structures], dtype=np.float64)
    volume = np.array([abs(np.linalg.det(np.asarray(s.cell, dtype=np.float64)))
                       for s in structures])
    e_ref = np.array([s.energy for s in structures], dtype=np.float64) / n
    go.write_energy_out(directory / f"energy_{which}.out", pred.energy / n, e_ref)
    f_ref = np.concatenate([np.asarray(s.forces, dtype=np.float64).reshape(-1, 3)
                            for s in structures])
    go.write_force_out(directory / f"force_{which}.out", pred.forces, f_ref)
    v_pred = virial_six(pred.virial) / n[:, None]
    v_ref = np.array([
        virial_six(np.asarray(s.virial, dtype=np.float64)) if s.virial is not None
        else np.full(6, np.nan)
        for s in structures
    ]).reshape(-1, 6) / n[:, None]
    go.write_virial_out(directory / f"virial_{which}.out", v_pred, v_ref)
    go.write_stress_out(directory / f"stress_{which}.out",
                        go.virial_to_stress_gpa(v_pred, n, volume),
                        go.virial_to_stress_gpa(v_ref, n, volume))


# ------------------------------------------------------------------------------------ loops
PHASE_NAMES = {"adam": "Adam", "adamw": "AdamW", "lbfgs": "L-BFGS", "snes": "SNES"}


class _Progress:
    """Reports one optimiser phase to the ``progress`` callback (see :func:`train`):
    ``progress("start", phase=, unit=, initial=, total=, max_time=, elapsed=)``, then
    ``progress("step", step=, elapsed=)`` per epoch or generation,
    ``progress("report", step=, record=, elapsed=)`` per report and ``progress("end")``."""

    def __init__(self, run, phase: str, initial: int):
        self.run = run
        self.callback = run.progress
        self.step = int(initial)
        s = run.settings
        self.callback("start", phase=PHASE_NAMES.get(phase, phase),
                      unit="generation" if s.optimizer == "snes" else "epoch",
                      initial=self.step, total=s.epochs, max_time=s.max_time,
                      elapsed=run.elapsed())

    def update(self, n: int = 1) -> None:
        self.step += n
        self.callback("step", step=self.step, elapsed=self.run.elapsed())

    def report(self, record) -> None:
        self.callback("report", step=self.step, record=dict(record), elapsed=self.run.elapsed())

    def close(self) -> None:
        self.callback("end")


def _progress_bar(run, initial, phase=None):
    if run.progress is None:
        return None
    return _Progress(run, phase or run.settings.optimizer, initial)


def format_rmse(record, which: str = "train") -> str:
    """'energy 0.412 meV/atom, force 39.91 meV/Å, virial 3.210 meV/atom' for one record;
    a set without reference virials shows 'virial n/a' (its RMSE is not 0, it is absent)."""
    virial = record.get(f"rmse_virial_{which}")
    has_virial = record.get(f"has_virial_{which}", True)
    shown = (f"{virial * 1e3:.3f} meV/atom" if has_virial and virial is not None
             and np.isfinite(virial) else "n/a")
    return (f"energy {record[f'rmse_energy_{which}'] * 1e3:.3f} meV/atom, "
            f"force {record[f'rmse_force_{which}'] * 1e3:.2f} meV/Å, virial {shown}")


def describe_stopping(settings: TrainingSettings, phase: str | None = None) -> str:
    """One line: how a run with these settings will end."""
    limits = []
    unit = "generations" if settings.optimizer == "snes" else "epochs"
    if settings.epochs is not None:
        limits.append(f"{settings.epochs} {unit}")
    if settings.max_time is not None:
        limits.append(f"max_time {settings.max_time / 60:g} min")
    if settings.target_force_rmse is not None:
        limits.append(f"train force RMSE <= {settings.target_force_rmse * 1e3:g} meV/Å")
    if settings.optimizer in ("adam", "adamw") and phase != "lbfgs":
        if settings.polish_after > 0:
            limits.append(f"the loss stopping to fall (after {settings.polish_after} halvings of "
                          "the learning rate Adam hands over to full-batch L-BFGS, which stops "
                          f"when the loss falls by < {settings.min_delta:g} relative in "
                          f"{settings.lbfgs_patience} iterations)")
        else:
            limits.append("the learning rate falling below its minimum (plateau rule)")
    elif settings.optimizer != "snes":
        limits.append(f"L-BFGS converging (loss falls by < {settings.min_delta:g} relative in "
                      f"{settings.lbfgs_patience} iterations)")
    return "the run stops at the first of: " + "; ".join(limits)


def _should_stop_for_time(run: _Run) -> bool:
    return run.settings.max_time is not None and run.elapsed() >= run.settings.max_time


def _target_reached(run: _Run, record) -> bool:
    t = run.settings.target_force_rmse
    return t is not None and record["rmse_force_train"] <= t


def _gradient_loop(run: _Run, params: np.ndarray, state) -> tuple[np.ndarray, str]:
    """Adam/AdamW on mini-batches, then (``polish_after``) full-batch L-BFGS."""
    s = run.settings
    if state is not None and state[1].get("phase") == "lbfgs":
        return _lbfgs_loop(run, params, state)
    rng = np.random.default_rng(s.seed)
    adam = Adam(params.size, learning_rate=s.learning_rate, weight_decay=s.weight_decay,
                decay_mask=run.loss.parameter_types < run.model.num_types)
    schedule = PlateauSchedule(s.learning_rate, patience=s.patience, min_delta=s.min_delta,
                               min_learning_rate=s.min_learning_rate)
    epoch = 0
    if state is not None:
        arrays, scalars = state
        adam.load_state(arrays, scalars)
        schedule.load_state(scalars)
        rng.bit_generator.state = scalars["rng"]
        epoch = int(scalars["step"])
    n = run.train_labels.num_structures
    max_epochs = s.epochs if s.epochs is not None else 10**9
    run.choose_gpu_kernels(params, np.arange(s.batch_size))
    bar = _progress_bar(run, epoch)
    reason = ""
    epoch_losses = []
    # on the GPU the parameters and Adam's moments stay on the device between reports
    device = (run.backend.device_adam(adam, params)
              if run.loss_on_backend and hasattr(run.backend, "device_adam") else None)

    def extras():
        if device is not None:
            device.pull()
        arrays, scalars = adam.state_dict()
        scalars.update(schedule.state())
        scalars["rng"] = rng.bit_generator.state
        scalars["phase"] = "adam"
        return arrays, scalars

    try:
        while True:
            if epoch >= max_epochs:
                reason = f"reached {max_epochs} epochs"
                break
            if _should_stop_for_time(run):
                reason = f"reached max_time {s.max_time:g} s"
                break
            perm = rng.permutation(n)
            epoch_losses.clear()
            for start in range(0, n, s.batch_size):
                idx = np.sort(perm[start : start + s.batch_size])
                adam.learning_rate = schedule.learning_rate
                if device is not None:
                    run.evaluations += 1
                    value, finite = device.step(idx)
                else:
                    value, grad = run.value_and_gradient(params, idx)
                    finite = grad is not None and bool(np.all(np.isfinite(grad)))
                    if finite:
                        adam.step(params, grad)
                if not finite:
                    raise TrainingDiverged(
                        f"the loss or its gradient became non-finite in epoch {epoch + 1} "
                        f"(loss {value.value}); stopped, keeping the last good checkpoint. "
                        "Try a smaller learning_rate."
                    )
                run.updates += 1
                epoch_losses.append(value.value)
            epoch += 1
            converged = schedule.update(float(np.mean(epoch_losses)))
            switch = 0 < s.polish_after <= schedule.reductions
            if bar is not None:
                bar.update(1)
            if epoch % s.report_interval == 0 or converged or switch:
                record = run.report(epoch, params, *extras())
                if bar is not None:
                    bar.report(record)
                if _target_reached(run, record):
                    reason = f"train force RMSE below target {s.target_force_rmse:g} eV/Å"
                    break
            if switch:
                reason = "switch"
                break
            if converged:
                reason = "converged (learning rate fell below its minimum)"
                break
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        if device is not None:
            device.pull()
        if bar is not None:
            bar.close()
    if reason == "switch":
        run.log(f"epoch {epoch}: Adam's learning rate was halved {schedule.reductions} times; "
                "continuing with full-batch L-BFGS")
        return _lbfgs_loop(run, params, None, start_step=epoch)
    if not run.history.records or run.history.records[-1]["step"] != epoch:
        run.report(epoch, params, *extras())
    run.save(epoch, params, *extras(), finished=reason != "interrupted", reason=reason)
    return params, reason


def _lbfgs_loop(run: _Run, params: np.ndarray, state, start_step: int = 0
                ) -> tuple[np.ndarray, str]:
    """Full-batch L-BFGS; stops at epochs/max_time/target, or when the loss has fallen by less
    than ``min_delta`` (relative) over ``lbfgs_patience`` iterations. A resumed run restarts
    L-BFGS (its curvature memory is not checkpointed) from the checkpoint's parameters."""
    s = run.settings
    iteration = start_step if state is None else int(state[1]["step"])
    max_iter = s.epochs if s.epochs is not None else 10**9
    all_idx = np.arange(run.train_labels.num_structures)
    run.choose_gpu_kernels(params, all_idx)
    bar = _progress_bar(run, iteration, "lbfgs")
    outcome = {"reason": "", "iteration": iteration, "losses": {}}
    phase = {"phase": "lbfgs"}

    def fun(x):
        value, grad = run.value_and_gradient(x, all_idx)
        if grad is None:
            return float("nan"), np.zeros_like(x)
        return value.value, grad

    def callback(x, loss):
        outcome["iteration"] += 1
        run.updates += 1
        it = outcome["iteration"]
        outcome["losses"][it] = loss
        if bar is not None:
            bar.update(1)
        if it % s.report_interval == 0:
            record = run.report(it, x, {}, phase)
            if bar is not None:
                bar.report(record)
            if _target_reached(run, record):
                outcome["reason"] = "train force RMSE below target"
                return True
        before = outcome["losses"].get(it - s.lbfgs_patience)
        if before is not None and outcome["losses"][it] > before * (1 - s.min_delta):
            outcome["reason"] = (f"converged (L-BFGS loss fell by less than {s.min_delta:g} in "
                                 f"{s.lbfgs_patience} iterations)")
            return True
        if _should_stop_for_time(run):
            outcome["reason"] = f"reached max_time {s.max_time:g} s"
            return True
        return False

    try:
        params = lbfgs_minimize(fun, params, max_iterations=max(0, max_iter - iteration),
                                callback=callback)
        if not outcome["reason"]:
            outcome["reason"] = (f"reached {max_iter} epochs" if outcome["iteration"] >= max_iter
                                 else "converged (L-BFGS finished)")
    except KeyboardInterrupt:
        outcome["reason"] = "interrupted"
    finally:
        if bar is not None:
            bar.close()
    if not run.history.records or run.history.records[-1]["step"] != outcome["iteration"]:
        run.report(outcome["iteration"], params, {}, phase)
    run.save(outcome["iteration"], params, {}, phase,
             finished=outcome["reason"] != "interrupted", reason=outcome["reason"])
    return params, outcome["reason"]


def _snes_loop(run: _Run, params: np.ndarray, state, mu0) -> tuple[np.ndarray, str]:
    s = run.settings
    ptypes = run.loss.parameter_types
    snes = SNES(ptypes, run.model.num_types, population=s.population, sigma0=s.sigma0,
                seed=s.seed, mu=mu0)
    generation = 0
    best = params.copy()
    if state is not None:
        arrays, scalars = state
        snes.load_state(arrays, scalars)
        generation = int(scalars["step"])
        best = np.array(arrays["parameters"], dtype=np.float64)
    batches = _gpumd_batches(run.train_labels, s.batch_size, training=True)
    labels_of = [run.train_labels.subset(b) for b in batches]
    bar = _progress_bar(run, generation)
    reason = ""

    def evaluate_population(population, b) -> list[LossValue]:
        # the GPU evaluates the whole population and its losses in one launch sequence
        if run.loss_on_backend:
            return run.backend.population_losses(population, batches[b])
        many = getattr(run.backend, "predict_population", None)
        predictions = (many(population, batches[b]) if many is not None
                       else [run.backend.predict(z, batches[b]) for z in population])
        return [run.loss.evaluate(labels_of[b], pred, z)
                for pred, z in zip(predictions, population, strict=True)]

    try:
        while True:
            if generation >= s.epochs:
                reason = f"reached {s.epochs} generations"
                break
            if _should_stop_for_time(run):
                reason = f"reached max_time {s.max_time:g} s"
                break
            population = snes.ask()
            losses = np.empty((s.population, run.model.num_types + 1))
            if s.full_batch:
                per_batch = [evaluate_population(population, b) for b in range(len(batches))]
                values = [combine_full_batch([vb[p] for vb in per_batch])
                          for p in range(len(population))]
            else:
                values = evaluate_population(population, generation % len(batches))
            for p, value in enumerate(values):
                losses[p] = value.total
            run.evaluations += len(values)
            best_index = snes.tell(losses)
            if np.isfinite(losses[best_index, -1]):
                best = population[best_index].copy()
            generation += 1
            run.updates += 1
            if bar is not None:
                bar.update(1)
            if generation % s.report_interval == 0:
                arrays, scalars = snes.state_dict()
                record = run.report(generation, best, arrays, scalars)
                if bar is not None:
                    bar.report(record)
                if _target_reached(run, record):
                    reason = "train force RMSE below target"
                    break
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        if bar is not None:
            bar.close()
    arrays, scalars = snes.state_dict()
    if not run.history.records or run.history.records[-1]["step"] != generation:
        run.report(generation, best, arrays, scalars)
    run.save(generation, best, arrays, scalars, finished=reason != "interrupted", reason=reason)
    return best, reason


# ------------------------------------------------------------------------------------ API
def _trains_on_gpu(device) -> bool:
    """Whether the trainer's own backend for ``device`` ("auto", "cpu", "cuda") is the GPU."""
    from .cuda_backend import training_device

    return training_device(device) == "cuda"


def make_output_dir(path: Path) -> None:
    """Create the output folder (and its parents), or one FileError naming it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FileError(path, "output_dir is a file, not a folder") from None
    except OSError as error:
        raise FileError(path, f"cannot create output_dir ({error.strerror or error})") from None


def predict(model: Model, structures, output_dir=None, *, which: str = "train", backend=None):
    """GPUMD's prediction mode: evaluate ``structures`` with ``model``, write
    ``*_<which>.out`` (no shift, no training), return the predictions and RMSEs.
    ``backend``: as for :func:`train`."""
    if isinstance(model, (str, Path)):
        from ..model import read_model

        model = read_model(model)
    if not isinstance(model, Model):
        raise InputError(f"predict: model must be a Model or the path of a nep.txt, not "
                         f"{type(model).__name__}")
    if not structures:
        raise InputError("predict: no structures to predict")
    if which not in ("train", "test"):  # GPUMD's file names: energy_train.out, force_test.out
        raise InputError(f"predict: which must be 'train' or 'test', not {which!r}")
    if backend is None:
        from ._backend import EngineBackend as backend

    labels = Labels.from_structures(structures, model.types)
    backend = backend(model, structures)
    run_pred = []
    for i in range(0, len(structures), 64):
        run_pred.append(backend.predict(model.parameters, range(i, min(len(structures), i + 64))))
    pred = Predictions(
        np.concatenate([p.energy for p in run_pred]),
        np.concatenate([p.forces for p in run_pred]),
        np.concatenate([p.virial for p in run_pred]),
    )
    weights = LossWeights(num_types=model.num_types, lambda_1=0.0, lambda_2=0.0)
    value = Loss(weights, model.parameter_types()).evaluate(labels, pred, None, use_shift=False)
    if output_dir is not None:
        from ..io import gpumd_outputs as go

        make_output_dir(Path(output_dir))  # as train() does
        write_prediction_files(Path(output_dir), which, structures, pred, go)
    rmse = {"energy": value.rmse_energy, "force": value.rmse_force, "virial": value.rmse_virial}
    return pred, rmse



# The history (one record per report) goes into the checkpoint's .npz, one float64 column per
# key ("history_" + key; NaN where a record lacks the key), with each key's type in the JSON
# (_HistoryColumns). As a JSON list it made every checkpoint encode and write every earlier
# record: 243 ms a checkpoint after 10,000 reports against 16 ms now, quadratic over a run (a
# GPU run reports several times a second).
HISTORY_PREFIX = "history_"
_HISTORY_TYPES = {"int": int, "bool": bool, "float": float}


class _HistoryColumns:
    """The history as columns for the checkpoint, kept up to date as records are appended (so
    a save costs the new records, not all of them): ``arrays()`` gives {"history_" + key:
    float64 column (NaN where a record lacks the key)} and ``types()`` {key: "int" | "bool" |
    "float"}."""

    def __init__(self):
        self._columns: dict[str, np.ndarray] = {}
        self._kinds: dict[str, set] = {}
        self._rows = 0
        self._records = None

    def update(self, records: list[dict]) -> None:
        if records is not self._records or len(records) < self._rows:  # replaced: rebuild
            self.__init__()
            self._records = records
        new = records[self._rows:]
        if not new:
            return
        rows = self._rows + len(new)
        capacity = max(64, 2 * rows)
        for key in dict.fromkeys(k for record in new for k in record):
            if key not in self._columns:
                self._columns[key] = np.full(capacity, np.nan)
                self._kinds[key] = set()
        for key, column in self._columns.items():
            if len(column) < rows:
                grown = np.full(capacity, np.nan)
                grown[:self._rows] = column[:self._rows]
                self._columns[key] = column = grown
            for row, record in enumerate(new, start=self._rows):
                value = record.get(key)
                if value is not None:
                    column[row] = float(value)
                    self._kinds[key].add(
                        "bool" if isinstance(value, (bool, np.bool_))
                        else "int" if isinstance(value, (int, np.integer)) else "float")
        self._rows = rows

    def arrays(self) -> dict[str, np.ndarray]:
        return {HISTORY_PREFIX + key: column[:self._rows]
                for key, column in self._columns.items()}

    def types(self) -> dict[str, str]:
        return {key: next(iter(kinds)) if len(kinds) == 1 else "float"
                for key, kinds in self._kinds.items()}


def _history_records(where: Path, arrays: dict, scalars: dict) -> list[dict]:
    """The records saved from :class:`_HistoryColumns` (or, in a checkpoint before 2026-11-30,
    the JSON list ``history``); a malformed history is one error naming the file."""
    from ..errors import NepFormatError

    json_path = where / "nepzbl_restart.json"
    if "history" in scalars:  # the older checkpoints' JSON list
        if not isinstance(scalars["history"], list) or not all(
                isinstance(r, dict) for r in scalars["history"]):
            raise NepFormatError(json_path, None, "checkpoint key 'history': expected a list "
                                                  "of records")
        return list(scalars["history"])
    types = scalars.get("history_types", {})
    if not isinstance(types, dict) or not all(
            isinstance(t, str) and t in _HISTORY_TYPES for t in types.values()):
        raise NepFormatError(json_path, None, "checkpoint key 'history_types': expected "
                             "{key: 'int' | 'bool' | 'float'}")
    npz = where / str(scalars.get("arrays_file"))
    columns = {}
    for key in types:
        column = arrays.get(HISTORY_PREFIX + key)
        if column is None or column.ndim != 1:
            raise NepFormatError(npz, None, f"the checkpoint's history has no column {key!r}")
        columns[key] = column
    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        raise NepFormatError(npz, None, "the checkpoint's history columns differ in length")
    records = [{} for _ in range(lengths.pop() if lengths else 0)]
    for key, column in columns.items():
        cast = _HISTORY_TYPES[types[key]]
        if cast is not float:  # counts and flags: whole numbers (flags 0 or 1) or missing
            given = column[~np.isnan(column)]
            if (not np.all(np.isfinite(given)) or np.any(given != np.round(given))
                    or (cast is bool and np.any((given != 0) & (given != 1)))):
                raise NepFormatError(npz, None, f"the checkpoint's history column {key!r} "
                                                f"holds values that are not {types[key]}s")
        for record, value in zip(records, column.tolist(), strict=True):
            if value == value:  # NaN: the record has no such key
                record[key] = cast(value)
    return records


def _check_checkpoint_arrays(output: Path, arrays: dict, scalars: dict, model: Model) -> None:
    """The restart arrays fit the model: one error naming the file, never numpy's broadcast."""
    from ..errors import NepFormatError

    where = output / str(scalars.get("arrays_file"))
    expected = {"parameters": (model.num_parameters,), "q_scaler": (model.descriptor_dim,)}
    for key, shape in expected.items():
        value = arrays.get(key)
        if value is None:
            raise NepFormatError(where, None, f"the checkpoint has no {key!r} array")
        if value.shape != shape:
            raise NepFormatError(where, None, f"{key!r} has shape {value.shape}, the model "
                                 f"needs {shape}")
        if not np.all(np.isfinite(value)):
            raise NepFormatError(where, None, f"{key!r} holds NaN or infinite values")
    for key in ("updates", "evaluations"):  # absent in checkpoints before 2026-11-30
        value = scalars.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise NepFormatError(output / "nepzbl_restart.json", None,
                                 f"checkpoint key {key!r}: expected a count >= 0, found "
                                 f"{value!r}"[:200])


def _trim_loss_out(path: Path, step: int) -> None:
    """Drop loss.out rows after the checkpoint's step: a kill between the loss.out append and
    the checkpoint would otherwise repeat that step's row after the resume."""
    if not path.exists():
        return
    from ..io.gpumd_outputs import read_loss_out, write_loss_out

    table = read_loss_out(path)
    keep = table.generation <= step
    if not keep.all():
        write_loss_out(path, table.as_array()[keep])

def train(
    train_structures,
    nep_in,
    test_structures=None,
    *,
    output_dir=None,
    optimizer: str | None = None,
    seed: int | None = None,
    max_time: float | None = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    target_force_rmse: float | None = None,
    report_interval: int | None = None,
    patience: int | None = None,
    polish_after: int | None = None,
    initial_model: Model | None = None,
    callback=None,
    resume: bool = True,
    progress=None,
    log=None,
    backend=None,
    device: str | None = None,
    gpu_kernels: str | None = "auto",
) -> tuple[Model, TrainingHistory]:
    """Train a NEP(-ZBL) model on GPUMD's loss.

    Parameters
    ----------
    train_structures, test_structures
        Lists of :class:`~nepzbl_plugin.io.xyz.TrainingStructure` (energies and forces
        required; virials optional).
    nep_in
        A :class:`~nepzbl_plugin.io.nep_in.NepIn` (or a path to nep.in): the model header, the
        loss weights, and optionally ``optimizer``, ``max_time``, ``learning_rate``,
        ``epochs``, ``batch_size``, ``seed``, ``target_force_rmse``, ``fine_tune``.
    output_dir
        Where GPUMD's output files and the restart checkpoint go (``None``: nothing written,
        no resume).
    optimizer, seed, max_time, epochs, learning_rate, batch_size, target_force_rmse
        Override the nep.in values. ``max_time`` is in seconds.
    report_interval, patience
        Epochs between reports/checkpoints, and the plateau rule's patience (epochs).
    polish_after
        Adam switches to full-batch L-BFGS after this many learning-rate halvings (default 3;
        0 = Adam only until its own stopping rule).
    initial_model
        Start from this model's parameters and q_scaler (fine-tuning); its header must match.
    callback
        ``callback(record, model)`` after every report: the history record and a copy of the
        current model as it would be written (bias corrected); for benchmarks.
    resume
        Continue from the checkpoint in ``output_dir`` when there is one.
    progress
        ``None`` (default) or a callable ``progress(event, **info)`` that follows the run, for
        a progress bar (``nepzbl train`` passes one that draws a tqdm bar): events ``"start"``
        (``phase`` "Adam"/"L-BFGS"/"SNES", ``unit``, ``initial``, ``total`` epochs or
        generations or None, ``max_time`` s or None, ``elapsed`` s), ``"step"`` (``step``,
        ``elapsed``), ``"report"`` (``step``, ``record``, ``elapsed``) and ``"end"``; a
        run with two phases (Adam, then L-BFGS) starts twice.
    log
        Called with one-line messages (``None``, the default: silence; ``nepzbl train``
        passes ``print``).
    backend
        Where predictions and gradients are computed: a callable ``backend(model, structures)``
        returning an object with ``predict(params, indices)``, ``gradient(params, indices,
        adjoints)`` and ``descriptors(indices, model=None)`` (see
        :class:`~nepzbl_plugin.train._backend.EngineBackend`); one that also has
        ``attach_loss(labels, loss)``, ``loss_and_gradient`` and ``population_losses`` computes
        the loss itself (and with ``device_adam``, Adam's update too); otherwise the numpy
        loss of :mod:`nepzbl_plugin.train.loss` is used. ``None`` (default): chosen by
        ``device``.
    device
        Used when ``backend`` is None: ``"auto"`` (the GPU when one is present and the CUDA
        extension is built; :class:`~nepzbl_plugin.train.cuda_backend.CudaBackend`), ``"cpu"``
        or ``"cuda"``; overrides nep.in's ``device`` (default ``auto``). Both give the same
        outputs, checkpoints and resume; a run may resume on the other device.
    gpu_kernels
        On the GPU, which per-atom kernels compute the loss and its gradient: ``"auto"``
        (default) times each choice on the phase's first batch and keeps the fastest (the log
        says which, ``history.kernel_tunings`` what it measured); a name of
        :data:`~nepzbl_plugin.train.cuda_backend.KERNELS` (``"thread"``, ``"warp"``, ...)
        runs that one; ``None`` leaves a ``backend`` factory's choice. Every choice gives the
        same numbers up to the order of float64 sums.

    Returns
    -------
    (Model, TrainingHistory)
        The trained model (shared bias corrected as GPUMD writes it) and one record per report.

    Raises
    ------
    ValueError
        Bad input: no forces, species not in nep.in, a fine-tune model that does not match.
    TrainingDiverged
        The loss became non-finite; the last good checkpoint and nep.txt are kept.
    """
    log = log or (lambda *_: None)
    if progress is False:
        progress = None
    if progress is not None and not callable(progress):
        raise TypeError("progress must be None or a callable progress(event, **info), e.g. "
                        "nepzbl_plugin.cli.train.TrainingProgressBar()")
    if callback is not None and not callable(callback):
        raise InputError(f"train: callback must be None or a callable callback(record, model), "
                         f"not {type(callback).__name__}")
    from ..io.nep_in import nep_in_of

    nep_in = nep_in_of(nep_in, "train: nep_in must be")
    if not train_structures:
        raise InputError("train: the training set is empty")
    overrides = dict(optimizer=optimizer, seed=seed, max_time=max_time, epochs=epochs,
                     learning_rate=learning_rate, batch_size=batch_size,
                     target_force_rmse=target_force_rmse, report_interval=report_interval,
                     patience=patience, polish_after=polish_after)
    check_overrides(overrides)
    check_gpu_kernels(gpu_kernels)
    device = device or _nep_in_value(nep_in, "device") or "auto"
    gpu_atoms = (sum(len(st.symbols) for st in train_structures)
                 if backend is None and _trains_on_gpu(device) else None)
    settings = settings_from_nep_in(nep_in, len(train_structures), gpu_atoms=gpu_atoms,
                                    **overrides)
    settings.gpu_kernels = gpu_kernels
    for note in settings.notes:
        log(note)

    model = Model.from_nep_in(nep_in)
    if model.n_neurons_second > 0:
        log(f"neuron {model.n_neurons} {model.n_neurons_second}: two hidden layers, as GPUMD's "
            "nep trains them; GPUMD's MD and NEP_CPU/LAMMPS cannot read such a model, nepzbl's "
            "engines (nepzbl md, the calculators) and GPUMD's nep (prediction) can")
    species = list(model.types)
    # Fails early and clearly on species not in nep.in, missing forces or energies.
    Labels.from_structures(train_structures, species)
    if test_structures:
        Labels.from_structures(test_structures, species)
    if model.temperature:
        check_temperatures(train_structures, "training")
        check_temperatures(test_structures or [], "test")
    # GPUMD's cutoff line carries the data's largest neighbour counts; its MD sizes its
    # neighbour lists from them, so every nep.txt written below has them.
    from ..engine.cpu import neighbour_counts
    from ..neighbours import set_neighbour_counts

    set_neighbour_counts(model, train_structures, test_structures, count=neighbour_counts)

    if _nep_in_value(nep_in, "prediction"):
        # GPUMD's prediction mode: evaluate the existing nep.txt, train nothing.
        from ..model import read_model

        if output_dir is None:
            raise ValueError("prediction 1 needs output_dir, the folder holding nep.txt")
        existing = read_model(Path(output_dir) / "nep.txt")
        check_header(existing, model, str(Path(output_dir) / "nep.txt"))
        _, rmse = predict(existing, train_structures, output_dir, which="train",
                                 backend=backend)
        history = TrainingHistory(stop_reason="prediction")
        history.records.append({"step": 0, "time": 0.0, "rmse_energy_train": rmse["energy"],
                                "rmse_force_train": rmse["force"],
                                "rmse_virial_train": rmse["virial"]})
        log(f"prediction: RMSE energy {rmse['energy'] * 1e3:.3f} meV/atom, force "
            f"{rmse['force'] * 1e3:.2f} meV/Å, virial {rmse['virial'] * 1e3:.3f} meV/atom")
        return existing, history

    fine_tune = _nep_in_value(nep_in, "fine_tune")
    if initial_model is None and fine_tune:
        from ..model import read_model

        path = Path(fine_tune[0] if isinstance(fine_tune, (tuple, list)) else fine_tune)
        base = getattr(nep_in, "path", None)
        if not path.is_absolute() and base and base != "<string>":
            path = Path(base).parent / path
        initial_model = read_model(path)
    if initial_model is not None:
        check_header(initial_model, model, "the fine-tune model")
        model.q_scaler[:] = initial_model.q_scaler
        params0 = initial_model.parameters.copy()
        log(f"fine-tuning from a model with {initial_model.num_parameters} parameters "
            "(its q_scaler is kept)")
    else:
        params0 = None

    output = None if output_dir is None else Path(output_dir)
    if output is not None:
        make_output_dir(output)
    state = load_checkpoint(output) if (output is not None and resume) else None
    if state is not None:
        arrays, scalars = state
        made_by = scalars.get("optimizer")
        if (settings.optimizer_is_default and made_by != settings.optimizer
                and made_by in ("adam", "lbfgs")):
            # the default depends on the device: a run begun on the GPU goes on with its
            # optimiser on the CPU, and the other way round
            log(f"the checkpoint was made by {made_by}, the default where it began; going on "
                f"with {made_by} (name an optimizer in nep.in to choose)")
            settings.optimizer = made_by
        if (scalars.get("types") != species
                or int(scalars.get("num_parameters", -1)) != model.num_parameters
                or scalars.get("optimizer") != settings.optimizer):
            raise ValueError(
                f"{output}: the restart checkpoint is for another model or optimizer "
                f"({scalars.get('types')}, {scalars.get('num_parameters')} parameters, "
                f"{scalars.get('optimizer')}); remove nepzbl_restart.* to start afresh"
            )
        _check_checkpoint_arrays(output, arrays, scalars, model)
        model.q_scaler[:] = arrays["q_scaler"]
        params0 = np.array(arrays["parameters"], dtype=np.float64)
        _trim_loss_out(output / "loss.out", int(scalars["step"]))
        log(f"resuming from step {scalars['step']} of {output / 'nepzbl_restart.json'}")
    elif params0 is None:
        from .qscaler import compute_q_scaler

        if _nep_in_value(nep_in, "import_q_scaler") and output is not None:
            from ..model import read_model

            local = read_model(output / "nep.txt")
            check_header(local, model, "nep.txt (import_q_scaler)")
            model.q_scaler[:] = local.q_scaler
        else:
            model.q_scaler[:] = compute_q_scaler(model, train_structures,
                                                 initial_para=settings.initial_para)
        if settings.optimizer == "snes":
            params0 = None  # SNES draws μ ~ U(-1, 1) from its seed
        else:
            from .initialise import initialise_parameters

            params0 = initialise_parameters(model, train_structures, seed=settings.seed)
    if state is None and output is not None and (output / "loss.out").exists():
        (output / "loss.out").unlink()  # a fresh run starts a fresh loss.out

    weights = loss_weights_from_nep_in(nep_in, model.num_types).resolved(model.num_parameters)
    loss = Loss(weights, model.parameter_types(),
                global_mask=_global_mask(model))
    if params0 is not None:
        model.parameters[:] = params0
    run = _Run(model, train_structures, test_structures, settings, loss, output, progress, log,
               backend, device=device)
    run.callback = callback
    if state is not None:
        run.elapsed_before = float(state[1].get("elapsed", 0.0))
        run.history.records = _history_records(output, state[0], state[1])
        run.updates = int(state[1].get("updates", 0))
        run.evaluations = int(state[1].get("evaluations", 0))
        if state[1].get("finished") and str(state[1].get("stop_reason")).startswith(
            ("converged", "train force RMSE below")
        ):
            log(f"the checkpoint is of a finished run ({state[1].get('stop_reason')}); "
                "writing its outputs again")
            final, record = run.write_final(params0)
            run.history.stop_reason = state[1].get("stop_reason", "")
            return final, run.history
    phase = state[1].get("phase") if state is not None else None
    in_lbfgs = settings.optimizer in ("adam", "adamw") and phase == "lbfgs"
    log(f"training {model.num_parameters} parameters with {settings.optimizer} on "
        f"{len(train_structures)} structures"
        + (f" ({len(test_structures)} test)" if test_structures else "")
        + f" on the {'GPU' if run.device == 'cuda' else 'CPU'}"
        + (f", resuming in its L-BFGS phase at epoch {state[1]['step']}" if in_lbfgs else ""))
    log(describe_stopping(settings, "lbfgs" if in_lbfgs else None))

    try:
        if settings.optimizer in ("adam", "adamw"):
            params, reason = _gradient_loop(run, model.parameters.copy(), state)
        elif settings.optimizer == "lbfgs":
            params, reason = _lbfgs_loop(run, model.parameters.copy(), state)
        else:
            mu0 = None if params0 is None or state is not None else params0
            params, reason = _snes_loop(run, model.parameters.copy(), state, mu0)
    except TrainingDiverged as err:
        # nep.txt and the checkpoint on disk are those of the last good report.
        log(str(err))
        raise
    run.history.stop_reason = reason
    if reason == "interrupted" and output is not None:
        log(f"interrupted: checkpoint saved in {output}; run the same command to resume")
    final, record = run.write_final(params)
    log(f"stopped: {reason}; train RMSE {format_rmse(record, 'train')}"
        + (f"; test RMSE {format_rmse(record, 'test')}" if test_structures else ""))
    return final, run.history


def _global_mask(model: Model) -> np.ndarray:
    mask = np.zeros(model.num_parameters, dtype=bool)
    mask[model.parameter_groups()["shared_bias"]] = True
    return mask
