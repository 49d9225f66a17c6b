"""What several command modules share: option types and the tqdm progress bars they pass to
the features (which report through a plain callback, :mod:`nepzbl_plugin.progress`)."""

from __future__ import annotations

import argparse
import math
import sys

__all__ = ["positive_float", "positive_int", "non_negative_float", "non_negative_int", "seed",
           "weight", "check_species", "ProgressBars"]


def _number(text: str, positive: bool) -> float:
    """A finite float, > 0 (``positive``) or >= 0, or argparse's usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
        bound = "a positive number" if positive else "a number >= 0"
        raise argparse.ArgumentTypeError(f"expected {bound}, got {text!r}")
    return value


def _whole(text: str, low: int) -> int:
    """A whole number >= ``low`` (0 or 1), or argparse's usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(
            f"must be at least 1, got {value}" if low == 1 else f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    return _number(text, positive=True)


def non_negative_float(text: str) -> float:
    return _number(text, positive=False)


def weight(text: str) -> float:
    value = positive_float(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"GPUMD needs 0 < weight <= 100, got {text}")
    return value


def positive_int(text: str) -> int:
    return _whole(text, 1)


def non_negative_int(text: str) -> int:
    return _whole(text, 0)


def seed(text: str) -> int:
    """A random seed: a whole number 0 <= seed < 2**63 (numpy refuses negative seeds)."""
    value = non_negative_int(text)
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"must be below 2**63, got {value}")
    return value


def check_species(path, frames, types, owner: str) -> None:
    """Every species of ``frames`` (``ase.Atoms`` read from ``path``) must be one of ``types``
    (``owner`` names where they come from); checked before any work, it was an engine
    traceback, for learning-curve only after a first model had trained."""
    from ..errors import NepFormatError

    present = {s for atoms in frames for s in atoms.get_chemical_symbols()}
    missing = sorted(present - set(types))
    if missing:
        raise NepFormatError(path, None, f"species {', '.join(missing)} not in {owner}")


class ProgressBars:
    """A ``progress(done, total, label)`` callback drawing one tqdm bar per label on stderr
    (the bar of a label closes when the next label starts or when it is complete)."""

    def __init__(self, file=None, unit: str = "it"):
        self.file = sys.stderr if file is None else file
        self.unit = unit
        self.label = None
        self.bar = None

    def __call__(self, done: int, total: int | None, label: str = "") -> None:
        from tqdm import tqdm

        if label != self.label or self.bar is None:
            self.close()
            self.label = label
            self.bar = tqdm(total=total, desc=label, unit=self.unit, leave=False,
                            file=self.file)
        self.bar.update(done - self.bar.n)
        if total is not None and done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.label = None
