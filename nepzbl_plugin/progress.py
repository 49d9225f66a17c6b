"""Progress reporting without output: features report, commands draw.

A feature that runs for a while takes ``progress``: ``None`` (the default: report nothing)
or a callable ``progress(done, total, label)`` (``total`` may be ``None``); the ``nepzbl``
commands pass one that draws tqdm bars (:class:`nepzbl_plugin.cli._common.ProgressBars`).
Nothing below the command line prints or draws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["Progress", "with_progress"]

Progress = Callable[[int, "int | None", str], None]
T = TypeVar("T")


def with_progress(items: Iterable[T], progress: Progress | None, label: str,
            total: int | None = None) -> Iterator[T]:
    """Yield ``items``, calling ``progress(k, total, label)`` after the k-th item's work is
    done (when the next one is asked for, or at the end). ``False`` is taken as ``None``."""
    if not progress:
        yield from items
        return
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    done = 0
    for item in items:
        yield item
        done += 1
        progress(done, total, label)
