"""Evaluating NEP / NEP-ZBL models: one contract (:mod:`.base`), two engines.

* :class:`Evaluator` (:mod:`.cpu`): the front end; the C engine, or ``device="cuda"``.
* :class:`CudaEvaluator` (:mod:`.cuda`): the CUDA engine.
* :func:`model_spec` (:mod:`.base`): the one Model -> ``nep_model_spec`` conversion and support
  check, shared by both engines and the training gradient.
"""

from ..errors import CudaUnavailableError
from .base import (
    DEFAULT_PRECISION,
    PRECISIONS,
    PROPERTIES,
    EvaluatorBase,
    System,
    check_parameters,
    check_supported,
    load_model,
    model_spec,
)
from .cpu import Evaluator, _cuda_available, core_model_from  # noqa: F401 (tests patch it)
from .cuda import CudaEvaluator, cuda_available, device_count

__all__ = [
    "Evaluator", "System", "PROPERTIES", "core_model_from", "CudaEvaluator",
    "CudaUnavailableError", "cuda_available", "device_count", "EvaluatorBase", "model_spec",
    "check_supported", "check_parameters", "load_model", "PRECISIONS", "DEFAULT_PRECISION",
]
