"""The CUDA engine behind ``Evaluator(model, device="cuda")``.

>>> from nepzbl_plugin.engine import CudaEvaluator, cuda_available   # doctest: +SKIP
>>> ev = CudaEvaluator("nep.txt", precision="float32")              # doctest: +SKIP
>>> out = ev.evaluate(atoms, ("energy", "forces", "virial"))        # doctest: +SKIP

:class:`CudaEvaluator` implements the contract of
:class:`~nepzbl_plugin.engine.base.EvaluatorBase`, as the CPU
:class:`~nepzbl_plugin.engine.Evaluator` does: the same ``evaluate`` / ``evaluate_many`` /
``update_parameters`` methods, the same properties, the same return dict and the same default
precision (float64). float64
agrees with the CPU engine to rounding; float32 evaluates the descriptor, network and pair
maths in float32 and accumulates per-atom outputs and totals in float64, as GPUMD does.

Importing this module never needs a GPU or the compiled ``_cuda`` extension; constructing a
:class:`CudaEvaluator` without them raises :class:`CudaUnavailableError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import CudaUnavailableError, EngineError
from ..model import Model
from .base import (
    DEFAULT_PRECISION,
    PRECISIONS,
    EvaluatorBase,
    check_precision,
    load_model,
    model_spec,
)

__all__ = ["CudaEvaluator", "CudaUnavailableError", "cuda_available", "device_count"]


def _cuda_module():
    try:
        from .. import _cuda
    except ImportError as exc:
        raise CudaUnavailableError(
            "nepzbl's CUDA engine is not built in this installation (no nvcc at build time, "
            f"or NEPZBL_CUDA=0): {exc}"
        ) from exc
    return _cuda


def device_count() -> int:
    """Number of usable CUDA devices; 0 when the extension is missing or there is no GPU."""
    try:
        return int(_cuda_module().device_count())
    except CudaUnavailableError:
        return 0


def cuda_available() -> bool:
    """Whether :class:`CudaEvaluator` can run here (extension built and a GPU present)."""
    return device_count() > 0


class CudaEvaluator(EvaluatorBase):
    """Evaluate a NEP / NEP-ZBL model on a CUDA GPU.

    Parameters
    ----------
    model
        A :class:`Model` (copied) or the path of a ``nep.txt``.
    precision
        ``"float64"`` (default, as for :class:`~nepzbl_plugin.engine.Evaluator`: everything
        in float64, matching the CPU engine to rounding) or ``"float32"`` (GPUMD's choice:
        float32 maths, float64 accumulation of per-atom outputs and totals; faster).
    device_id
        The CUDA device to use.
    skin
        Verlet skin of the neighbour list in Angstrom; the list is rebuilt when an atom has
        moved more than half of it (or the cell, pbc, types or atom counts change).

    Raises
    ------
    CudaUnavailableError
        The extension is not built, or there is no CUDA device.
    MemoryError
        The device ran out of memory.
    """

    def __init__(self, model: Model | str | Path, precision: str = DEFAULT_PRECISION,
                 device_id: int = 0, skin: float = 1.0):
        self.precision = check_precision(precision)
        self.model = load_model(model)
        spec = model_spec(self.model)  # the one conversion and support check
        self.device_id = int(device_id)
        self.device = "cuda"
        self._type_index = {symbol: t for t, symbol in enumerate(self.model.types)}
        cuda = _cuda_module()
        count = cuda.device_count()
        if count == 0:
            raise CudaUnavailableError("no CUDA device is available (device_count() == 0)")
        if not 0 <= self.device_id < count:
            raise CudaUnavailableError(
                f"CUDA device {self.device_id} does not exist ({count} device(s) found)"
            )
        self._gpu = cuda.CudaModel(spec, PRECISIONS[precision], self.device_id)
        self.skin = float(skin)
        self._gpu.set_skin(self.skin)

    def __reduce__(self):
        """Copies and pickles are rebuilt from the model and the options (GPU memory cannot
        be pickled), as :meth:`nepzbl_plugin.engine.Evaluator.__reduce__`."""
        return (type(self), (self.model, self.precision, self.device_id, self.skin))

    # ------------------------------------------------------------------ information
    @property
    def device_bytes(self) -> int:
        """Device memory held by the model and its persistent buffers (bytes)."""
        return int(self._gpu.device_bytes)

    @property
    def num_builds(self) -> int:
        """Neighbour lists built so far (for checking the Verlet skin)."""
        return int(self._gpu.num_builds)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, structure, properties: Sequence[str] = ("energy", "forces", "virial")
                 ) -> dict:
        """Evaluate one structure; see :meth:`nepzbl_plugin.engine.Evaluator.evaluate`."""
        return self.evaluate_many([structure], properties)[0]

    def evaluate_many(self, structures: Sequence, properties: Sequence[str] = (
            "energy", "forces", "virial")) -> list[dict]:
        """Evaluate many structures in one launch sequence (their atoms concatenated).

        Raises :class:`EngineError` naming the first structure the engine refused.
        """
        if isinstance(properties, str):
            properties = (properties,)
        systems = self.systems(structures)
        arrays = [self._allocate(len(s), properties) for s in systems]
        if not systems:
            return []
        statuses = self._gpu.evaluate_batch(
            [(s.types, s.positions, s.cell, s.pbc, self.temperature_of(s)) for s in systems],
            arrays,
        )
        for k, status in enumerate(statuses):
            if status != 0:
                from .._cuda import strerror

                where = f"structure {k}" if len(systems) > 1 else "CUDA evaluation"
                raise EngineError(f"{where}: {strerror(status)}", structure=k)
        return [self._finish(a) for a in arrays]

    def _set_parameters(self, parameters: np.ndarray) -> None:
        self._gpu.set_parameters(parameters)
