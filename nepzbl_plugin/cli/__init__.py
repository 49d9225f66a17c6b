"""The ``nepzbl`` command line.

One module per command (``nepzbl_plugin.cli.<command>``), listed in :data:`_COMMAND_MODULES`.
A command module parses its options, calls the feature (``train``, ``audit``, ``md``, ...) and
prints; it is the only code of the package that prints or draws progress bars
(``docs/architecture.md``). Each provides
``register(subparsers)``, which adds its parsers with ``set_defaults(func=...)``; ``func(args)``
returns the exit status (``None`` means 0). A module that does not exist yet is skipped; any
other import error propagates, so a broken module is noticed at once.

User-facing errors (:class:`~nepzbl_plugin.errors.NepzblError`, any ``OSError``: a missing or
unreadable file, a read-only folder, a full disk) are printed as one line
``nepzbl: error: ...`` with exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import NepzblError

__all__ = ["main", "build_parser"]

_COMMAND_MODULES = (
    "nepzbl_plugin.cli.info",
    "nepzbl_plugin.cli.convert",
    "nepzbl_plugin.cli.model",
    "nepzbl_plugin.cli.example",
    "nepzbl_plugin.cli.train",
    "nepzbl_plugin.cli.residual",
    "nepzbl_plugin.cli.audit",
    "nepzbl_plugin.cli.zbl",
    "nepzbl_plugin.cli.md",
    "nepzbl_plugin.cli.al",
    "nepzbl_plugin.cli.demo",
    "nepzbl_plugin.cli.analyze",
    "nepzbl_plugin.cli.learning_curve",
    "nepzbl_plugin.cli.benchmark",  # not written yet: skipped while absent
)

_DESCRIPTION = """\
NEP-ZBL machine-learned potentials: GPUMD-compatible files, a C/CUDA evaluator,
training and robustness audits. Run 'nepzbl COMMAND --help' for one command."""


def _missing(error: ModuleNotFoundError, name: str) -> bool:
    """True when ``error`` says that the command module ``name`` itself (or its not yet
    created parent package inside nepzbl_plugin) is absent, not one of its imports."""
    missing = error.name or ""
    return missing == name or (
        missing.startswith("nepzbl_plugin.") and name.startswith(missing + ".")
    )


def _load_command_modules():
    modules = []
    for name in _COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as error:
            if not _missing(error, name):
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with the subcommands of every available command module."""
    parser = argparse.ArgumentParser(
        prog="nepzbl",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nepzbl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for module in _load_command_modules():
        module.register(subparsers)
    return parser


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nepzbl`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status = func(args)
    except NepzblError as error:
        print(f"nepzbl: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `nepzbl info --json m.txt | head`: not an error
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except OSError as error:  # missing file, read-only folder, disk full, ...
        where = f": {error.filename}" if error.filename else ""
        print(f"nepzbl: error: {_one_line(error.strerror or error)}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nepzbl: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
