"""Exceptions raised by nepzbl.

Every problem with an input file (``nep.txt``, ``nep.in``, ``train.xyz``, GPUMD output files)
raises :class:`NepFormatError`, which names the file, the 1-based line and the problem.
"""

from __future__ import annotations

import errno

__all__ = [
    "NepzblError", "NepFormatError", "UnsupportedModelError", "EngineError",
    "CudaUnavailableError", "FileError", "InputError", "MissingFileError", "IndexInputError",
    "InputTypeError",
]


class NepzblError(Exception):
    """Base class of every nepzbl error."""


class NepFormatError(NepzblError, ValueError):
    """A malformed or inconsistent input file.

    Parameters
    ----------
    path
        The file (or a description such as ``"<string>"``).
    line
        1-based line number, or ``None`` when the problem is not tied to one line.
    problem
        What is wrong, ideally "expected X, found Y".
    """

    def __init__(self, path, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # keep the three fields through pickling (multiprocessing)
        return (type(self), (self.path, self.line, self.problem))


class MissingFileError(NepFormatError, FileNotFoundError):
    """An input file that does not exist.

    A :class:`NepFormatError` (line ``None``) as every input file nepzbl cannot read, and a
    :class:`FileNotFoundError` (``errno`` ENOENT, ``filename`` the path) as ``open`` and
    calorine's ``CPUNEP`` raise, so that code catching either keeps working.
    """

    def __init__(self, path):
        super().__init__(path, None, "cannot read the file: no such file")
        self.errno = errno.ENOENT
        self.strerror = "No such file or directory"
        self.filename = self.path

    def __str__(self) -> str:  # OSError's would be "[Errno 2] ...: 'path'"
        return f"{self.path}: {self.problem}"

    def __reduce__(self):
        return (type(self), (self.path,))


class UnsupportedModelError(NepFormatError):
    """A valid GPUMD model of a kind nepzbl does not evaluate (dipole, charge, vdW, ...)."""


class EngineError(NepzblError, RuntimeError):
    """The C or CUDA engine refused an input (overlapping atoms, bad cell, ...).

    ``structure`` is the index of the structure it refused in the set the caller passed, when
    the engine says which; the training code turns it into the frame's file and line.
    """

    def __init__(self, message: str = "", structure: int | None = None):
        super().__init__(message)
        self.structure = structure

    def __reduce__(self):
        return (type(self), (str(self), self.structure))


class CudaUnavailableError(EngineError):
    """The CUDA engine was asked for, but it is not built or there is no usable GPU."""


class FileError(NepzblError, OSError):
    """A file or folder that cannot be read or written: missing, a folder where a file is
    expected, read-only, disk full. The message names the path and the reason."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


class InputError(NepzblError, ValueError):
    """A value given by the user (a command-line option, a function argument) that cannot be
    used; the message names the option and what is wrong."""


class IndexInputError(InputError, IndexError):
    """An index argument out of its range (``Model.network(5)`` of a two-species model); the
    message names the valid range. An :class:`IndexError` too, as Python's own."""


class InputTypeError(InputError, TypeError):
    """An argument of the wrong kind (``Evaluator(None)``, ``read_model(3)``); the message names
    the argument and what it takes. A :class:`TypeError` too, as Python's own."""
