"""Shared fixtures: the public data in ../shared/data (tests skip when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"


def shared_file(*parts: str) -> Path:
    """Path of a file in ../shared/data, or skip the test when it is not there."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"public data not available: {path}")
    return path


@pytest.fixture
def data_dir() -> Path:
    if not DATA.exists():
        pytest.skip(f"public data not available: {DATA}")
    return DATA


def _gpu_available() -> bool:
    try:
        from nepzbl_plugin import _cuda  # noqa: F401
    except ImportError:
        return False
    try:
        return _cuda.device_count() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
