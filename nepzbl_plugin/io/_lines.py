"""Reading text files line by line with bounded memory, for the nep.txt and nep.in readers.

A file of any size is read one line at a time, each line capped in length, so that a huge or
binary file fails at its first impossible line instead of being read whole (a 2 GB sparse file
once took 4 GB of memory before a MemoryError, a 20 MB token made an 84 MB error message).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import FileError, MissingFileError, NepFormatError

__all__ = ["MAX_LINE_CHARS", "short_repr", "FileLines"]

# Far above any line GPUMD writes (a per-type cutoff line of 94 species is ~2000 characters).
MAX_LINE_CHARS = 10_000
# Tokens quoted in error messages are cut here (as the xyz reader does).
MAX_TOKEN_CHARS = 60


def short_repr(token: str, limit: int = MAX_TOKEN_CHARS) -> str:
    """``repr(token)``, cut to ``limit`` characters with '...' and the full length."""
    if len(token) <= limit:
        return repr(token)
    return f"{token[:limit]!r}... ({len(token)} characters)"


class FileLines:
    """The lines of a text file (without their newline), read on demand.

    Iterating yields ``str`` lines; a line longer than ``max_chars`` (None: no limit, for
    formats such as JSON whose lines can be of any length) or not UTF-8 raises
    :class:`NepFormatError` naming it. After the last line, :attr:`ends_with_newline` tells
    whether the file's last line was terminated (GPUMD always writes the final newline).
    """

    def __init__(self, path, max_chars: int | None = MAX_LINE_CHARS):
        self.path = Path(path)
        self.max_chars = max_chars
        self.ends_with_newline = True
        self.count = 0

    def __iter__(self):
        try:
            handle = open(self.path, "rb")
        except IsADirectoryError:
            raise FileError(self.path, "is a folder, not a file") from None
        except FileNotFoundError:
            raise MissingFileError(self.path) from None
        except OSError as exc:
            raise NepFormatError(self.path, None,
                                 f"cannot read the file: {exc.strerror or exc}") from None
        # bytes: up to 4 per UTF-8 character (-1: readline's whole line)
        limit = -1 if self.max_chars is None else 4 * self.max_chars + 1
        with handle:
            while True:
                try:
                    raw = handle.readline(limit)
                except OSError as exc:
                    raise NepFormatError(self.path, self.count + 1,
                                         f"cannot read the file: {exc.strerror or exc}") from None
                if not raw:
                    return
                self.count += 1
                terminated = raw.endswith(b"\n")
                if limit > 0 and len(raw) >= limit and not terminated:
                    start = raw[:40].decode("utf-8", "replace")
                    raise NepFormatError(self.path, self.count,
                                         f"line longer than {self.max_chars} characters "
                                         f"(starts {short_repr(start)})")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise NepFormatError(self.path, self.count,
                                         "not a text file (invalid UTF-8 byte)") from None
                if self.max_chars is not None and len(text) > self.max_chars + 1:
                    raise NepFormatError(self.path, self.count,
                                         f"line longer than {self.max_chars} characters")
                self.ends_with_newline = terminated or not text.strip()
                yield text[:-1] if terminated else text
