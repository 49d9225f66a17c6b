"""Restart checkpoints: one ``.npz`` of arrays plus one JSON file of scalars, both plain data
(never pickle), each written atomically (temporary file in the same directory + os.replace).

The ``.npz`` gets a content-addressed name and the JSON, written last, names it with its
SHA-256; the previous ``.npz`` is removed only after that. A crash at any point leaves a
consistent pair readable.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from ..errors import FileError, NepFormatError
from ..io.atomic import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported)

__all__ = ["save_checkpoint", "load_checkpoint", "atomic_write_text", "CHECKPOINT_STEM"]

CHECKPOINT_STEM = "nepzbl_restart"
FORMAT_VERSION = 1


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def _arrays_file_pattern(stem: str) -> re.Pattern:
    """The only array file names :func:`save_checkpoint` writes: ``<stem>.<16 hex>.npz``."""
    return re.compile(rf"{re.escape(stem)}\.[0-9a-f]{{16}}\.npz\Z")


def save_checkpoint(directory, arrays: dict[str, np.ndarray], scalars: dict,
                    stem: str = CHECKPOINT_STEM) -> Path:
    """Write ``<stem>.npz`` and ``<stem>.json`` in ``directory``; returns the JSON path.

    The previous array file is deleted only when the old JSON names it by a name this function
    writes (``<stem>.<16 hex digits>.npz``, no folder part): whatever else an old or edited JSON
    says, no other file is ever removed.
    """
    directory = Path(directory)
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    # A new file name per content: the old pair stays valid until the JSON is replaced.
    npz_path = directory / f"{stem}.{digest[:16]}.npz"
    _atomic_write_bytes(npz_path, data)
    json_path = directory / f"{stem}.json"
    previous = None
    try:
        old = json.loads(json_path.read_bytes())
        previous = old.get("arrays_file") if isinstance(old, dict) else None
    except (OSError, ValueError):  # none yet, unreadable, not JSON: nothing to clean up
        previous = None
    meta = dict(scalars)
    meta["format_version"] = FORMAT_VERSION
    meta["arrays_file"] = npz_path.name
    meta["arrays_sha256"] = digest
    atomic_write_text(json_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    if (isinstance(previous, str) and previous != npz_path.name
            and _arrays_file_pattern(stem).match(previous)):
        try:
            (directory / previous).unlink()
        except FileNotFoundError:
            pass
    return json_path


# keys the trainer reads, with the JSON types they must have
_REQUIRED = {"step": int, "arrays_file": str, "arrays_sha256": str}


def load_checkpoint(directory, stem: str = CHECKPOINT_STEM) -> tuple[dict, dict] | None:
    """Read a checkpoint written by :func:`save_checkpoint`; ``None`` when there is none.

    Raises
    ------
    NepFormatError
        When the files exist but are not a checkpoint of this format version, do not belong
        together or are not readable (a ``ValueError``, naming the file and the problem).
    """
    directory = Path(directory)
    json_path = directory / f"{stem}.json"
    if not json_path.exists():
        return None
    try:
        raw = json_path.read_bytes()
    except OSError as err:
        raise FileError(json_path, f"cannot read ({err.strerror or err})") from None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise NepFormatError(json_path, line, "not UTF-8 text: not a nepzbl checkpoint") from None
    except json.JSONDecodeError as err:
        raise NepFormatError(json_path, err.lineno,
                             f"not a readable checkpoint ({err.msg})") from None
    if not isinstance(meta, dict):
        raise NepFormatError(json_path, None, "expected a JSON object (a nepzbl checkpoint), "
                             f"found {type(meta).__name__ if meta is not None else 'null'}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise NepFormatError(json_path, None, f"checkpoint format_version {version!r}; this "
                             f"nepzbl reads version {FORMAT_VERSION} only")
    for key, kind in _REQUIRED.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            found = "missing" if key not in meta else f"{value!r}"[:60]
            raise NepFormatError(json_path, None,
                                 f"checkpoint key {key!r}: expected {kind.__name__}, found {found}")
    if not _arrays_file_pattern(stem).match(meta["arrays_file"]):
        raise NepFormatError(json_path, None, f"arrays_file {meta['arrays_file'][:60]!r} is not "
                             f"a name this program writes ({stem}.<16 hex digits>.npz)")
    npz_path = directory / meta["arrays_file"]
    if not npz_path.exists():
        raise NepFormatError(json_path, None, f"its array file {npz_path.name} is missing")
    try:
        data = npz_path.read_bytes()
    except OSError as err:
        raise FileError(npz_path, f"cannot read ({err.strerror or err})") from None
    if hashlib.sha256(data).hexdigest() != meta["arrays_sha256"]:
        raise NepFormatError(npz_path, None,
                             f"does not match {json_path.name} (interrupted write?)")
    import io

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception:  # numpy's messages would suggest allow_pickle: never do that
        raise NepFormatError(npz_path, None, "not a .npz archive of plain numeric arrays") from None
    for key, value in arrays.items():
        if value.dtype.kind not in "biuf":
            raise NepFormatError(npz_path, None, f"array {key!r} is not numeric")
    return arrays, meta
