"""nepzbl: NEP-ZBL machine-learned potentials for the GPUMD / calorine ecosystem."""

from .errors import EngineError, NepFormatError, NepzblError, UnsupportedModelError
from .model import Model, ZBLSettings, read_model

__version__ = "0.1.0"

__all__ = [
    "Model",
    "ZBLSettings",
    "read_model",
    "NepFormatError",
    "NepzblError",
    "UnsupportedModelError",
    "EngineError",
    "__version__",
]
