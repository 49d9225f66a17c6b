"""Restart checkpoints: one ``.npz`` of arrays plus one JSON file of scalars, both plain data
(never pickle), each written atomically (temporary file in the same directory + os.replace).

The ``.npz`` gets a content-addressed name and the JSON, written last, names it with its
SHA-256; the previous ``.npz`` is removed only after that. A crash at any point leaves a
consistent pair readable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported)

__all__ = ["save_checkpoint", "load_checkpoint", "atomic_write_text", "CHECKPOINT_STEM"]

CHECKPOINT_STEM = "nepzbl_restart"
FORMAT_VERSION = 1


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def save_checkpoint(directory, arrays: dict[str, np.ndarray], scalars: dict,
                    stem: str = CHECKPOINT_STEM) -> Path:
    """Write ``<stem>.npz`` and ``<stem>.json`` in ``directory``; returns the JSON path."""
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
    if json_path.exists():
        try:
            previous = json.loads(json_path.read_text()).get("arrays_file")
        except (json.JSONDecodeError, AttributeError):
            previous = None
    meta = dict(scalars)
    meta["format_version"] = FORMAT_VERSION
    meta["arrays_file"] = npz_path.name
    meta["arrays_sha256"] = digest
    atomic_write_text(json_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    if previous and previous != npz_path.name and (directory / previous).exists():
        (directory / previous).unlink()
    return json_path


def load_checkpoint(directory, stem: str = CHECKPOINT_STEM) -> tuple[dict, dict] | None:
    """Read a checkpoint written by :func:`save_checkpoint`; ``None`` when there is none.

    Raises
    ------
    ValueError
        When the files exist but do not belong together or are not readable.
    """
    directory = Path(directory)
    json_path = directory / f"{stem}.json"
    if not json_path.exists():
        return None
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{json_path}: not a readable checkpoint ({err})") from err
    npz_path = directory / meta.get("arrays_file", f"{stem}.npz")
    if not npz_path.exists():
        raise ValueError(f"{json_path}: its array file {npz_path.name} is missing")
    data = npz_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("arrays_sha256"):
        raise ValueError(f"{npz_path}: does not match {json_path.name} (interrupted write?)")
    import io

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, meta
