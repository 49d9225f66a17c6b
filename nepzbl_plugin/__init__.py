"""nepzbl: NEP-ZBL machine-learned potentials for the GPUMD / calorine ecosystem."""

from .errors import EngineError, NepFormatError, NepzblError, UnsupportedModelError
from .model import Model, ZBLSettings, read_model

# The engine front end and the calculators import the compiled extension lazily, so that a
# missing build still lets the pure-Python parts (I/O, model) import.
_LAZY = {
    "Evaluator": ("engine", "Evaluator"),
    "System": ("engine", "System"),
    "NEP": ("calculators", "NEP"),
    "CPUNEP": ("calculators", "CPUNEP"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"  # also in pyproject.toml and meson.build (tests/test_version.py)

__all__ = [
    "Model",
    "ZBLSettings",
    "read_model",
    "NepFormatError",
    "NepzblError",
    "UnsupportedModelError",
    "EngineError",
    "Evaluator",
    "System",
    "NEP",
    "CPUNEP",
    "__version__",
]
