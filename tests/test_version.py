"""One version string: pyproject.toml, meson.build and nepzbl_plugin.__version__ agree."""

import re
from pathlib import Path

import nepzbl_plugin

REPO = Path(__file__).resolve().parents[1]


def test_one_version_string():
    pyproject = (REPO / "pyproject.toml").read_text()
    meson = (REPO / "meson.build").read_text()
    in_pyproject = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    in_meson = re.search(r"version: '([^']+)'", meson).group(1)
    assert in_pyproject == in_meson == nepzbl_plugin.__version__
