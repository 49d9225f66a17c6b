"""The GPU session's shell scripts call the benchmark scripts with options their parsers accept
(a typo there would cost a lent device's minutes), and tools/rehearse_device.py checks the
steps device_all.sh records. Parsing only: nothing runs, no GPU needed."""

from __future__ import annotations

import importlib
import re
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("benchmarks/device_all.sh", "benchmarks/gpu_session.sh",
           "benchmarks/h200_training.sh")
# what the shell variables of those calls stand for on the device
VALUES = {"$device": "cuda"}


def _calls(script: str):
    """(benchmark module, its arguments) of every benchmark call in a shell script, the
    redirections and the array of optional arguments (``${gpumd_args[@]}``) left out."""
    text = (REPO / script).read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        found = re.search(r"benchmarks/(bench_\w+)\.py(.*)", line)
        if not found:
            continue
        args = []
        for token in shlex.split(found.group(2)):
            if token.startswith((">", "2>", "|", ";")):
                break
            if not token.startswith("${"):
                args.append(VALUES.get(token, token))
        yield found.group(1), args


def _parser(module: str):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return importlib.import_module(module).build_parser()
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_device_scripts_call_the_benchmarks_with_options_they_accept(script):
    calls = list(_calls(script))
    assert calls, f"no benchmark call found in {script}"
    for module, args in calls:
        try:
            _parser(module).parse_args(args)
        except SystemExit:
            pytest.fail(f"{script}: {module}.py does not accept {shlex.join(args)}")


def test_parsing_a_bad_option_fails():  # the test above would see a typo
    with pytest.raises(SystemExit):
        _parser("bench_train").parse_args(["gpu", "--time", "20"])


def test_rehearsal_checks_the_steps_device_all_records():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        rehearse = importlib.import_module("rehearse_device")
    finally:
        sys.path.remove(str(REPO / "tools"))
    text = (REPO / "benchmarks/device_all.sh").read_text()
    parts = re.split(r"^(\d)\)$", text, flags=re.MULTILINE)
    for part, body in zip(parts[1::2], parts[2::2], strict=True):
        body = body.split(";;")[0]
        steps = re.findall(r'^\s*step "?(\w+?)(?:\$peer)?"? \d+', body, flags=re.MULTILINE)
        if "peers_$peer" in body:
            steps[steps.index("peers_"):steps.index("peers_") + 1] = ["peers_neppo",
                                                                      "peers_torchnep"]
        assert tuple(steps) == rehearse.STEPS[part], part
