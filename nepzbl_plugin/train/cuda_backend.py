"""Training on a CUDA GPU: the same predictions and exact gradients as
:class:`~nepzbl_plugin.train._backend.EngineBackend`, from kernels on the device
(``cext/nep_train_cuda.h``).

The training set is uploaded once, with its neighbour lists and pair vectors (they do not
depend on the parameters); a call uploads the parameter vector and the adjoints of the
structures it names. float32 (the default) computes every per-atom product in float and sums
energies, forces, virials and the gradient in float64 in a fixed order, so a call is
reproducible bit for bit; ``precision="float64"`` is for checks.

With the labels attached (:meth:`CudaBackend.attach_loss`), GPUMD's loss and its adjoints are
computed on the device too (``cext/nep_train_loss.h``): :meth:`~CudaBackend.loss_and_gradient`
is one call per L-BFGS step, :meth:`~CudaBackend.population_losses` brings back only the SNES
population's losses, and :class:`DeviceAdam` keeps the parameters and Adam's moments on the
device, so that an Adam step moves a selection and a loss record, nothing else.

:func:`make_backend` picks the backend for ``train(device=...)``: ``"cpu"``, ``"cuda"`` (a
clear error without a GPU) or ``"auto"`` (the GPU when one is present).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import CudaUnavailableError
from ._backend import EngineBackend, _Flat, located_errors, selection_array
from .loss import Adjoints, Labels, Loss, LossValue, Predictions, c_loss_arguments

__all__ = ["CudaBackend", "DeviceAdam", "KernelTuning", "cuda_training_available",
           "make_backend", "training_device", "DEVICES", "KERNELS"]

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("float32", "float64")
# the gradient kernels CudaBackend.set_kernels chooses from, in nep_train_cuda.h's order
GRADIENT_KERNELS = ("default", "wide", "unbounded", "warp")
# The per-atom kernels a training call can run, by name: (predictions in their own kernel,
# gradient kernel), as CudaBackend.set_kernels takes them. "thread" is what a CudaBackend
# starts with. Which is fastest depends on the batch (a thread an atom needs some 50,000
# atoms to fill an H200, a warp an atom a few thousand), on the model and on the GPU, so the
# trainer times them (CudaBackend.tune_kernels) rather than guess.
KERNELS = {
    "thread": (True, "default"),
    "thread-wide": (True, "wide"),
    "thread-unbounded": (True, "unbounded"),
    "warp-gradient": (True, "warp"),
    "warp": (False, "warp"),
}
# another choice replaces the best so far only when it is this much faster: between kernels
# that time alike (the warp kernels of a two-hidden-layer model run the thread kernel), runs
# on one machine then keep the earlier, the default first, rather than the noise's pick
TUNING_MARGIN = 0.05


@dataclass(frozen=True)
class KernelTuning:
    """What :meth:`CudaBackend.tune_kernels` measured: ``chosen`` (a name of :data:`KERNELS`,
    now in use), ``ms_per_call`` (each choice's fastest call, ms), the call's ``structures``
    and ``atoms``, and ``seconds``, the tuning's own wall time."""

    chosen: str
    ms_per_call: dict
    structures: int
    atoms: int
    seconds: float

    def describe(self) -> str:
        """One line for a log: the choice, its time a call and the default's."""
        line = (f"GPU kernels for calls of {self.structures} structures ({self.atoms} atoms): "
                f"{self.chosen}, {self.ms_per_call[self.chosen]:.3g} ms a call")
        if self.chosen != "thread":  # tune_kernels times every choice, the default too
            line += f" (thread kernels {self.ms_per_call['thread']:.3g} ms)"
        return line + f"; timed {len(self.ms_per_call)} choices in {self.seconds:.2g} s"


def _cuda_module():
    try:
        from .. import _cuda
    except ImportError as err:
        raise CudaUnavailableError("GPU training needs the CUDA extension "
                                   f"(nepzbl_plugin._cuda), which is not built: {err}") from None
    if not hasattr(_cuda, "CudaTrainingSet"):
        raise CudaUnavailableError("the CUDA extension was built without the training "
                                   "kernels; rebuild nepzbl")
    return _cuda


def cuda_training_available() -> bool:
    """True when the CUDA extension has the training kernels and sees a device."""
    try:
        return _cuda_module().device_count() > 0
    except CudaUnavailableError:
        return False


class CudaBackend:
    """Predictions and gradients for one model and one list of structures, on the GPU.

    Parameters
    ----------
    model
        The :class:`~nepzbl_plugin.model.Model` (header, q_scaler and ZBL); its parameters are
        replaced by each call's vector.
    structures
        Training structures (``symbols``, ``positions``, ``cell``), periodic in every
        direction as in GPUMD's trainer.
    precision
        ``"float32"`` (float products, float64 sums) or ``"float64"``.
    pair_order
        Each atom's pairs on the device (angular ones first): ``"type"`` (the default) in
        the neighbours' type order, so that the kernels' coefficient-gradient accesses
        coalesce; ``"list"`` in the neighbour list's own order, for timing the two. The same
        numbers up to the order of the sums over an atom's pairs.
    """

    device = "cuda"

    def __init__(self, model, structures, precision: str = "float32", pair_order: str = "type"):
        from .gradient import TrainingBatch

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        cuda = _cuda_module()
        self.model = model.copy()
        self.structures = list(structures)
        self.precision = precision
        flat = TrainingBatch.from_structures(
            [_Flat(st, self.model.types, k) for k, st in enumerate(self.structures)]
        )
        self._offsets = flat.atom_offsets
        from ..engine.base import model_spec

        with located_errors(self.structures):  # neighbour lists are built here, once
            self._set = cuda.CudaTrainingSet(model_spec(self.model), flat.types,
                                             flat.positions, flat.cells, flat.pbc,
                                             flat.atom_offsets, float64=precision == "float64",
                                             temperatures=flat.temperatures,
                                             pair_order=pair_order)
        self._cpu = None
        self._kernels = KERNELS["thread"]

    @property
    def device_bytes(self) -> int:
        """Device memory the training set and the work buffers hold, in bytes."""
        return int(self._set.device_bytes)

    def set_interleaved(self, interleaved: bool) -> None:
        """The kernels' per-atom work arrays and gradient rows interleaved across the
        threads (True, the default: coalesced) or contiguous per thread (False, the earlier
        layout). The numbers are the same up to the order of the gradient's sums; this is
        for timing the two (``benchmarks/bench_train.py gpu-steps``)."""
        self._set.set_interleaved(bool(interleaved))

    def set_kernels(self, predict_kernel: bool = True, gradient: str = "default") -> None:
        """Which per-atom kernel runs which pass: predictions in a kernel specialised for
        them (True, the default: no gradient path, so fewer registers and more warps per SM)
        or in the gradient kernel; the gradient in the kernel bounded to 12 warps per SM in
        float32 (``"default"``), to 16 (``"wide"``: 128 registers), in the one with the
        registers the compiler chooses (``"unbounded"``: 8 warps) or in the warp kernel
        (``"warp"``: a warp an atom, its state in shared memory; one-hidden-layer models, the
        default kernel for others), where with ``predict_kernel=False`` the predictions run
        a warp an atom too (in the warp kernel's body without the gradient path). The
        numbers are the same up to round-off;
        this is for timing them (``benchmarks/bench_train.py gpu-steps``, ``gpu-epoch``,
        ``benchmarks/bench_profile_train.py``)."""
        if gradient not in GRADIENT_KERNELS:
            raise ValueError(f"gradient kernel {gradient!r}: one of {', '.join(GRADIENT_KERNELS)}")
        self._set.set_kernels(bool(predict_kernel), GRADIENT_KERNELS.index(gradient))
        self._kernels = (bool(predict_kernel), gradient)

    @property
    def kernels(self) -> str | None:
        """The name in :data:`KERNELS` of the kernels in use (None for a combination
        :meth:`set_kernels` made that has no name)."""
        return next((name for name, choice in KERNELS.items() if choice == self._kernels),
                    None)

    def use_kernels(self, name: str) -> None:
        """Run the choice ``name`` of :data:`KERNELS` (see :meth:`set_kernels`)."""
        if name not in KERNELS:
            raise ValueError(f"GPU kernels {name!r}: one of {', '.join(KERNELS)}")
        self.set_kernels(*KERNELS[name])

    def tune_kernels(self, params: np.ndarray, indices, repeats: int = 3,
                     clock=time.perf_counter) -> KernelTuning:
        """Times the trainer's call (loss and gradient of ``params`` on structures
        ``indices``, the labels attached) with each choice of :data:`KERNELS`, and keeps the
        fastest: after one call to warm up, the fastest of ``repeats`` calls (one, when a
        call takes over 0.2 s). The choices give the same numbers up to the order of float64
        sums (about 1e-16 of the gradient), so the choice changes speed only."""
        if not self.has_loss:
            raise ValueError("tune_kernels times the loss and its gradient: attach_loss first")
        indices = selection_array(indices)
        params = np.ascontiguousarray(params, dtype=np.float64)
        start = clock()
        ms = {}
        for name in KERNELS:
            self.use_kernels(name)
            t0 = clock()
            self.loss_and_gradient(params, indices)  # warm-up: the kernels' first launch
            calls = repeats if clock() - t0 < 0.2 else 1
            best = float("inf")
            for _ in range(max(1, calls)):
                t0 = clock()
                self.loss_and_gradient(params, indices)
                best = min(best, clock() - t0)
            ms[name] = 1e3 * best
        chosen = "thread"
        for name, value in ms.items():
            if value < ms[chosen] * (1 - TUNING_MARGIN):
                chosen = name
        self.use_kernels(chosen)
        atoms = int(np.diff(self._offsets)[indices].sum())
        return KernelTuning(chosen, ms, len(indices), atoms, clock() - start)

    def predict(self, params: np.ndarray, indices) -> Predictions:
        """Energies, forces and virials of structures ``indices`` (in that order)."""
        _, energy, forces, virial = self._set.run(
            np.ascontiguousarray(params, dtype=np.float64), selection_array(indices),
            want_gradient=False)
        return Predictions(energy, forces, virial)

    def predict_population(self, population, indices) -> list[Predictions]:
        """Predictions of structures ``indices`` for every row of ``population`` (SNES), in
        one launch sequence on the device."""
        energy, forces, virial = self._set.predict_population(
            np.ascontiguousarray(population, dtype=np.float64), selection_array(indices))
        return [Predictions(energy[k], forces[k], virial[k]) for k in range(len(energy))]

    def gradient(self, params: np.ndarray, indices, adjoints: Adjoints) -> np.ndarray:
        """dL/dz = Σ α_s dE_s/dz + Σ a_si·dF_si/dz + Σ B_s:dW_s/dz + the regularisation."""

        def flat(value):
            if value is None:
                return None
            return np.ascontiguousarray(value, dtype=np.float64).ravel()

        g, _, _, _ = self._set.run(
            np.ascontiguousarray(params, dtype=np.float64), selection_array(indices),
            flat(adjoints.energy), flat(adjoints.forces), flat(adjoints.virial),
            want_gradient=True, want_predictions=False)
        return g + adjoints.regularisation

    def value_and_predictions(self, params, indices, adjoints: Adjoints):
        """The gradient and the predictions of the same call (for checks)."""
        g, energy, forces, virial = self._set.run(
            np.ascontiguousarray(params, dtype=np.float64), selection_array(indices),
            np.ascontiguousarray(adjoints.energy, dtype=np.float64).ravel(),
            np.ascontiguousarray(adjoints.forces, dtype=np.float64).ravel(),
            np.ascontiguousarray(adjoints.virial, dtype=np.float64).ravel())
        return g, Predictions(energy, forces, virial)

    # ------------------------------------------------------------ the loss on the device
    def attach_loss(self, labels: Labels, loss: Loss) -> None:
        """Uploads the labels of every structure (in the order of ``structures``) and the
        loss's weights, once; then the loss is computed on the device."""
        if labels.num_structures != len(self.structures):
            raise ValueError("the labels do not belong to this backend's structures")
        arguments = c_loss_arguments(labels, loss)
        for known in ("structure_offset", "types"):  # the device has the set's own
            del arguments[known]
        self._set.set_loss(**arguments)
        self._num_types = loss.num_types
        self.has_loss = True

    has_loss = False

    def loss_and_gradient(self, params: np.ndarray, indices, want_gradient: bool = True
                          ) -> tuple[LossValue, np.ndarray | None]:
        """GPUMD's loss of ``params`` on structures ``indices`` and its exact gradient
        dL(T)/dz (regularisation included), in one call to the device."""
        record, grad = self._set.loss_gradient(np.ascontiguousarray(params, dtype=np.float64),
                                               selection_array(indices), want_gradient)
        return LossValue.from_record(record, self._num_types), grad

    def population_losses(self, population, indices) -> list[LossValue]:
        """The loss of every row of ``population`` on structures ``indices``: predictions and
        losses on the device in one launch sequence, only the losses come back."""
        records = self._set.population_loss(np.ascontiguousarray(population, dtype=np.float64),
                                            selection_array(indices))
        return [LossValue.from_record(r, self._num_types) for r in records]

    def device_adam(self, adam, params: np.ndarray) -> DeviceAdam:
        """Adam's state and ``params`` moved to the device (see :class:`DeviceAdam`)."""
        return DeviceAdam(self, adam, params)

    def descriptors(self, indices, model=None) -> list[np.ndarray]:
        """Per-atom descriptors (scaled by the model's q_scaler), from the CPU engine: they
        are needed once, for the q_scaler and the initial parameters."""
        if self._cpu is None:
            self._cpu = EngineBackend(self.model, self.structures)
        return self._cpu.descriptors(indices, model)


class DeviceAdam:
    """An :class:`~nepzbl_plugin.train.optimizers.Adam` whose parameters and moments live on
    the device while it steps: each :meth:`step` runs predictions, loss, adjoints, gradient and
    the update there and brings back one loss record. :meth:`pull` copies the parameters into
    the host array and the moments into the host optimiser (before a report, a checkpoint or
    the end), which then continues as if it had made every step itself.

    The update is the host optimiser's formula in its order of operations, in float64.
    """

    def __init__(self, backend: CudaBackend, adam, params: np.ndarray):
        self.backend = backend
        self.adam = adam
        self.params = params
        decay = np.asarray(adam.decay_mask, dtype=np.uint8)
        backend._set.adam_start(np.ascontiguousarray(params, dtype=np.float64),
                                np.ascontiguousarray(adam.m, dtype=np.float64),
                                np.ascontiguousarray(adam.v, dtype=np.float64),
                                np.ascontiguousarray(decay))
        self._host_current = True  # the host holds what the device holds

    def step(self, indices) -> tuple[LossValue, bool]:
        """One step on structures ``indices`` with the host optimiser's current learning rate:
        (the loss before the update, whether it was made). A non-finite loss or gradient makes
        no update."""
        a = self.adam
        step = a.step_count + 1
        record, updated = self.backend._set.adam_step(
            selection_array(indices), a.learning_rate, a.beta1, a.beta2, a.eps,
            a.weight_decay, 1 - a.beta1**step, 1 - a.beta2**step)
        if updated:
            a.step_count = step
            self._host_current = False
        return LossValue.from_record(record, self.backend._num_types), updated

    def pull(self) -> None:
        """The device's parameters into ``params`` (in place) and its moments into the host
        optimiser (nothing to copy when no step was made since the last pull)."""
        if self._host_current:
            return
        z, m, v = self.backend._set.adam_state()
        self.params[:] = z
        self.adam.m = m
        self.adam.v = v
        self._host_current = True


def training_device(device: str | None) -> str:
    """Where training on ``device`` ("auto", "cpu", "cuda"; "gpu" means "cuda") runs: "cpu"
    or "cuda" ("auto": the GPU when the extension sees one). ValueError for another name."""
    device = (device or "auto").lower()
    if device == "gpu":
        device = "cuda"
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
    if device == "cpu" or (device == "auto" and not cuda_training_available()):
        return "cpu"
    return "cuda"


def make_backend(device: str, model, structures, precision: str = "float32"):
    """The training backend for ``device`` ("auto", "cpu" or "cuda")."""
    if training_device(device) == "cpu":
        return EngineBackend(model, structures)
    if _cuda_module().device_count() < 1:  # "cuda" named on a machine without a GPU
        raise CudaUnavailableError("device cuda: no CUDA device is available")
    return CudaBackend(model, structures, precision=precision)
