"""The GPU session's shell scripts call the benchmark and validation scripts with options their
parsers accept (a typo there would cost a lent device's minutes), each part of device_all.sh
fits one device call, and tools/rehearse_device.py checks the steps device_all.sh records.
Parsing only: nothing runs, no GPU needed."""

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
VALUES = {"$device": "cuda", "$wall": "190"}
# the device's per-command limit, s: every part of device_all.sh must end within it
COMMAND_LIMIT_S = 600


def _calls(script: str):
    """(benchmark or validation module, its arguments) of every such call in a shell script,
    command arrays (``cmd=("$py" script.py ...)`` used as ``"${cmd[@]}" ...``) expanded, the
    redirections and the array of optional arguments (``${gpumd_args[@]}``) left out."""
    text = (REPO / script).read_text().replace("\\\n", " ")
    arrays = {name: " ".join(body.split()) for name, body in
              re.findall(r"^\s*(\w+)=\(([^)]*)\)", text, flags=re.MULTILINE)}
    for line in text.splitlines():
        if line.lstrip().startswith("#") or re.match(r"^\s*\w+=\(", line):
            continue
        for name, body in arrays.items():
            line = line.replace(f'"${{{name}[@]}}"', body)
        found = re.search(r"((?:benchmarks/bench|validation/al)_\w+)\.py(.*)", line)
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
    folder, name = module.split("/")
    sys.path.insert(0, str(REPO / folder))
    try:
        return importlib.import_module(name).build_parser()
    finally:
        sys.path.remove(str(REPO / folder))


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
        _parser("benchmarks/bench_train").parse_args(["gpu", "--time", "20"])


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
            steps[steps.index("peers_"):steps.index("peers_") + 1] = [
                f"peers_{code}" for code in _loop_peers(body)]
        assert tuple(steps) == rehearse.STEPS[part], part


def _loop_peers(body: str) -> list[str]:
    """The peers part 2's loop runs by default (its peer_list="${PEERS:-...}")."""
    return re.search(r'peer_list="\$\{PEERS:-([\w -]+)\}"', body).group(1).split()


def _parts():
    """{part: its body} of device_all.sh's case statement."""
    text = (REPO / "benchmarks/device_all.sh").read_text()
    parts = re.split(r"^(\d)\)$", text, flags=re.MULTILINE)
    return {part: body.split(";;")[0] for part, body in zip(parts[1::2], parts[2::2],
                                                             strict=True)}


def test_contrast_part_calls_the_validation_script():  # the array expansion above works
    calls = [(module, args) for module, args in _calls("benchmarks/device_all.sh")
             if module == "validation/al_contrast_long"]
    assert len(calls) == 4
    runs = [args for _, args in calls if "--table-only" not in args]
    assert all(args[:2] == ["--device", "cuda"] and "--wall-seconds" in args for args in runs)
    parsed = _parser("validation/al_contrast_long").parse_args(runs[0])
    assert parsed.repeat == [4, 4, 4] and parsed.variants == ["nozbl"]


@pytest.mark.parametrize("part", sorted(_parts()))
def test_every_part_ends_within_one_device_call(part):
    """The steps' time limits, and the grace each has between SIGTERM and SIGKILL, add up to
    less than a device command may run, so a slow step never costs the part's other
    results."""
    limits = [int(s) for s in re.findall(r'^\s*step "?[\w$]+"? (\d+) ', _parts()[part],
                                         flags=re.MULTILINE)]
    body = _parts()[part]
    if "peers_$peer" in body:  # the loop's step runs once per peer
        limits += [int(re.search(r'step "peers_\$peer" (\d+)', body).group(1))] * (
            len(_loop_peers(body)) - 1)
    grace = int(re.search(r"timeout -k (\d+) ", (REPO / "benchmarks/device_all.sh").read_text())
                .group(1))
    assert limits and sum(limits) + grace * len(limits) < COMMAND_LIMIT_S - 15, (part, limits)


def test_part_5_trains_with_the_fastest_kernels_of_part_1s_epoch_table(tmp_path):
    """bench_train.py gpu --fastest-from picks the fastest known row of gpu-epoch's kernel
    table and maps it to the backend's settings; a missing table leaves the options' choice,
    and says so."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        bench = importlib.import_module("bench_train")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    default, warp = bench.KERNEL_CHOICES[0][0], bench.KERNEL_CHOICES[4][0]
    listed_warp = bench.PAIR_ORDER_AB[1][0]
    table = tmp_path / "gpu_epoch.json"
    times = {default: 0.40, warp: 0.21, listed_warp: 0.19, bench.LAYOUT_AB: 0.50,
             "a row from a later version": 0.01}
    table.write_text(bench.json.dumps({"gpu_epoch_s_by_kernels": times}))
    chosen = bench.fastest_epoch_kernels(table)
    assert (chosen["label"], chosen["gradient"], chosen["predict_kernel"],
            chosen["pair_order"], chosen["interleaved"]) == (listed_warp, "warp", True, "list",
                                                            True)
    assert "0.190 s" in chosen["why"] and "0.400 s" in chosen["why"]

    times.pop(listed_warp)
    table.write_text(bench.json.dumps({"gpu_epoch_s_by_kernels": times}))
    args = bench.build_parser().parse_args(["gpu", "--fastest-from",
                                            f"{tmp_path / 'absent.json'},{table}"])
    chosen = bench._kernels_from_args(args)
    assert (chosen["label"], chosen["gradient"], chosen["pair_order"]) == (warp, "warp", "type")

    args = bench.build_parser().parse_args(["gpu", "--fastest-from", str(tmp_path / "no.json")])
    chosen = bench._kernels_from_args(args)
    assert chosen["label"] == default and "none of" in chosen["why"]
    assert bench._kernels_from_args(bench.build_parser().parse_args(["gpu"])) is None
    chosen = bench._kernels_from_args(bench.build_parser().parse_args(
        ["gpu", "--gradient-kernel", "warp", "--predictions-in-gradient-kernel"]))
    assert (chosen["label"], chosen["predict_kernel"]) == (bench.KERNEL_CHOICES[5][0], False)
