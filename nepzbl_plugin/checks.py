"""Checks of plain values that several parts share, below everything that raises for them.

Each caller keeps its own error (type and message); these only answer the question.
"""

from __future__ import annotations

import numpy as np

__all__ = ["whole_number"]


def whole_number(value, *, floats: bool = True) -> int | None:
    """``value`` as an ``int`` when it is a whole number, else None.

    A whole number is an int or a numpy integer, or (``floats``) any other number equal to its
    ``int()``: 3.0, ``np.float32(3)``, a 0-d array. Never a bool (True is no count), a fraction,
    NaN, an infinity or a string. ``floats=False`` is for values handed on to something that
    refuses floats (numpy's seeds) or that name an index.
    """
    if isinstance(value, bool):
        return None
    if not floats and not isinstance(value, (int, np.integer)):
        return None
    try:
        number = int(value)
        return number if number == value else None
    except (TypeError, ValueError, OverflowError):
        return None
