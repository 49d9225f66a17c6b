"""Bad input and faults: nothing lost, nothing silently wrong (issue 11).

Each test reproduces one defect found by a reliability pass: files that are not ours destroyed,
a crash, silently wrong numbers, leftovers after a kill, tracebacks instead of one error."""

from __future__ import annotations

import copy
import errno
import os
import pickle
import re
import stat
import threading

import numpy as np
import pytest

from nepzbl_plugin.errors import FileError
from nepzbl_plugin.io.atomic import atomic_temporary_path, atomic_write_text


# ---------------------------------------------------------------- 1. non-regular targets
def test_atomic_write_through_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "models" / "nep.txt"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "nep.txt"
    link.symlink_to(real)
    atomic_write_text(link, "new\n")
    assert link.is_symlink()
    assert real.read_text() == "new\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_to_dangling_symlink_creates_the_target(tmp_path):
    link = tmp_path / "out.txt"
    link.symlink_to(tmp_path / "target.txt")
    atomic_write_text(link, "x\n")
    assert link.is_symlink() and (tmp_path / "target.txt").read_text() == "x\n"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="only root can give a file to another user")
def test_atomic_write_refuses_another_user_s_file(tmp_path):
    """Root could replace it, but a file of another user in a shared folder is not ours to take
    over, directly or through a symlink; it is left as it was."""
    tmp_path = tmp_path / "shared"
    tmp_path.mkdir()
    os.chmod(tmp_path, 0o2775)
    theirs = tmp_path / "their_nep.txt"
    theirs.write_text("theirs\n")
    os.chown(theirs, 4242, 4242)
    link = tmp_path / "nep.txt"
    link.symlink_to(theirs)
    for target in (theirs, link):
        with pytest.raises(FileError, match=r"belongs to another user \(uid 4242\)") as err:
            atomic_write_text(target, "ours\n")
        assert str(target) in str(err.value)
    assert theirs.read_text() == "theirs\n" and os.stat(theirs).st_uid == 4242
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="only root can give a file to another user")
def test_atomic_write_replaces_a_mapped_owner_s_file_in_a_private_folder(tmp_path):
    """In a folder only its owner can write, a file of another uid is the same user's under a
    mapped owner (NFS root_squash makes root's files nobody's, sshfs shows the remote uid, a
    container's root writes into a bind mount): the same run writes nep.txt or loss.out again,
    which must not fail at the second write."""
    private = tmp_path / "run"
    private.mkdir()
    os.chmod(private, 0o755)
    nep = private / "nep.txt"
    atomic_write_text(nep, "first\n")
    os.chown(nep, 65534, 65534)  # as root_squash shows the file root wrote
    atomic_write_text(nep, "second\n")
    assert nep.read_text() == "second\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_atomic_write_to_fifo_writes_into_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []

    def read():
        with open(fifo, "rb") as handle:
            received.append(handle.read())

    reader = threading.Thread(target=read)
    reader.start()
    atomic_write_text(fifo, "model\n")
    reader.join(timeout=10)
    assert received == [b"model\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not replaced by a file


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_atomic_temporary_path_to_fifo(tmp_path):
    fifo = tmp_path / "plot.png"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()))
    reader.start()
    with atomic_temporary_path(fifo) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(b"png")
    reader.join(timeout=10)
    assert received == [b"png"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="no /dev/stdout here")
def test_atomic_write_to_dev_stdout_when_it_is_a_pipe():
    """`-o /dev/stdout | next-tool`: the link ends in a pipe that realpath cannot name
    (/proc/self/fd/1 -> 'pipe:[...]'); it was 'No such file or directory'."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    script = ("import sys; sys.path.insert(0, sys.argv[1]); "
              "from nepzbl_plugin.io.atomic import atomic_write_text; "
              "atomic_write_text('/dev/stdout', 'model\\n')")
    result = subprocess.run([sys.executable, "-c", script, str(repo)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "model\n"


def test_atomic_write_refuses_a_folder(tmp_path):
    with pytest.raises(FileError, match="folder"):
        atomic_write_text(tmp_path, "x")


def test_atomic_write_read_only_folder_is_one_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(FileError, match="ro/nep.txt: cannot write"):
            atomic_write_text(folder / "nep.txt", "x")
    finally:
        folder.chmod(0o700)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_disk_full_is_one_error_and_cli_exit_2(tmp_path, capsys):
    # /dev/full is only opened for writing (a character device: written directly, never
    # replaced), and every write fails with ENOSPC.
    with pytest.raises(FileError, match="No space left"):
        atomic_write_text("/dev/full", "x")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


# ---------------------------------------------------------------- 8. stale temporaries
def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead_pid = 2**22 + 12345  # above Linux's default pid_max: never running
    stale = tmp_path / f".nep.txt.{dead_pid}.abc123.tmp"
    stale.write_text("half")
    alive = tmp_path / f".nep.txt.{os.getppid()}.abc123.tmp"  # a running writer's
    alive.write_text("busy")
    other = tmp_path / f".loss.out.{dead_pid}.abc123.tmp"  # not this name: left alone
    other.write_text("x")
    atomic_write_text(tmp_path / "nep.txt", "done\n")
    assert not stale.exists()
    assert alive.exists() and other.exists()
    assert (tmp_path / "nep.txt").read_text() == "done\n"


# ---------------------------------------------------------------- 2, 7, 9. checkpoints
def _checkpoint(tmp_path):
    import numpy as np

    from nepzbl_plugin.train.checkpoint import save_checkpoint

    save_checkpoint(tmp_path, {"parameters": np.arange(3.0)}, {"step": 5})
    return tmp_path / "nepzbl_restart.json"


@pytest.mark.parametrize("name", ["../victim.npz", "ABSOLUTE", "victim.npz"])
def test_checkpoint_never_deletes_files_it_did_not_write(tmp_path, name):
    import json

    import numpy as np

    from nepzbl_plugin.train.checkpoint import save_checkpoint

    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim.npz" if name != "victim.npz" else run / "victim.npz"
    victim.write_bytes(b"precious")
    json_path = _checkpoint(run)
    meta = json.loads(json_path.read_text())
    meta["arrays_file"] = str(victim) if name == "ABSOLUTE" else name
    json_path.write_text(json.dumps(meta))
    save_checkpoint(run, {"parameters": np.arange(4.0)}, {"step": 6})
    assert victim.read_bytes() == b"precious"


def test_checkpoint_replaces_its_own_previous_array_file(tmp_path):
    import numpy as np

    from nepzbl_plugin.train.checkpoint import save_checkpoint

    _checkpoint(tmp_path)
    save_checkpoint(tmp_path, {"parameters": np.arange(4.0)}, {"step": 6})
    assert len(list(tmp_path.glob("*.npz"))) == 1


@pytest.mark.parametrize("edit, message", [
    (lambda meta: [1, 2], "expected a JSON object"),
    (lambda meta: None, "found null"),
    (lambda meta: {k: v for k, v in meta.items() if k != "step"}, "'step'.*missing"),
    (lambda meta: {**meta, "format_version": 99}, "format_version 99"),
    (lambda meta: {k: v for k, v in meta.items() if k != "format_version"}, "format_version"),
    (lambda meta: {**meta, "arrays_file": "../x.npz"}, "not a name this program writes"),
    (lambda meta: {**meta, "arrays_sha256": 7}, "'arrays_sha256'"),
])
def test_checkpoint_json_valid_but_wrong_is_one_error(tmp_path, edit, message):
    import json

    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.train.checkpoint import load_checkpoint

    json_path = _checkpoint(tmp_path)
    json_path.write_text(json.dumps(edit(json.loads(json_path.read_text()))))
    with pytest.raises(NepFormatError, match=message) as info:
        load_checkpoint(tmp_path)
    assert "nepzbl_restart" in str(info.value)


def test_checkpoint_not_utf8(tmp_path):
    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.train.checkpoint import load_checkpoint

    json_path = _checkpoint(tmp_path)
    json_path.write_bytes(b'{"step": "\xff\xfe"}')
    with pytest.raises(NepFormatError, match="nepzbl_restart.json.*not UTF-8"):
        load_checkpoint(tmp_path)


def test_checkpoint_garbage_npz_with_matching_hash_never_suggests_pickle(tmp_path):
    import hashlib
    import json

    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.train.checkpoint import load_checkpoint

    json_path = _checkpoint(tmp_path)
    meta = json.loads(json_path.read_text())
    garbage = b"\x93NUMPY\x01\x00" + b"garbage" * 10
    (tmp_path / meta["arrays_file"]).write_bytes(garbage)
    meta["arrays_sha256"] = hashlib.sha256(garbage).hexdigest()
    json_path.write_text(json.dumps(meta))
    with pytest.raises(NepFormatError, match="not a .npz archive") as info:
        load_checkpoint(tmp_path)
    assert "pickle" not in str(info.value)


# ---------------------------------------------------------------- 7, 8, 9. training inputs
def test_negative_energy_weight_is_refused(tmp_path):
    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.io.xyz import parse_train_xyz

    text = ('1\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3:forces:R:3 '
            'energy=-1.0 energy_weight=-1 pbc="T T T"\nTe 0 0 0 0 0 0\n')
    with pytest.raises(NepFormatError, match="line 2: energy_weight"):
        parse_train_xyz(text)


@pytest.mark.parametrize("reader", ["read_train_xyz", "read_loss_out"])
def test_readers_on_a_folder_are_one_error(tmp_path, reader):
    from nepzbl_plugin.io import gpumd_outputs, xyz

    function = getattr(xyz, reader, None) or getattr(gpumd_outputs, reader)
    with pytest.raises(FileError, match="is a folder"):
        function(tmp_path)


def _tiny_run(tmp_path):
    import numpy as np

    from nepzbl_plugin.io.nep_in import parse_nep_in
    from nepzbl_plugin.io.xyz import TrainingStructure

    rng = np.random.default_rng(0)
    structures = []
    for _ in range(3):
        grid = np.stack(np.meshgrid(*[np.arange(2)] * 3), -1).reshape(-1, 3) * 2.5
        positions = grid + rng.normal(0, 0.1, grid.shape)
        structures.append(TrainingStructure(
            symbols=["Li", "O"] * 4, positions=positions, cell=np.eye(3) * 5.0,
            energy=float(rng.normal()), forces=rng.normal(0, 0.1, (8, 3))))
    nep_in = parse_nep_in("type 2 Li O\ncutoff 4 3\nn_max 2 2\nbasis_size 2 2\n"
                          "l_max 4 0 0\nneuron 3\n")
    return structures, nep_in


def test_resume_never_repeats_a_loss_out_row(tmp_path):
    """A kill after the loss.out append but before the checkpoint: the resumed run starts from
    the older checkpoint and must not write that step's row twice."""

    import shutil

    from nepzbl_plugin.io.gpumd_outputs import read_loss_out
    from nepzbl_plugin.train import train

    structures, nep_in = _tiny_run(tmp_path)
    out = tmp_path / "run"
    train(structures, nep_in, output_dir=out, epochs=2, seed=0, report_interval=2, log=None)
    saved = tmp_path / "step2"
    saved.mkdir()
    for path in out.glob("nepzbl_restart.*"):
        shutil.copy(path, saved / path.name)
    _, history = train(structures, nep_in, output_dir=out, epochs=4, seed=0,
                       report_interval=2, log=None)
    # simulate the kill: the checkpoint of step 2 is back, loss.out already has step 4
    for path in out.glob("nepzbl_restart.*"):
        path.unlink()
    for path in saved.iterdir():
        shutil.copy(path, out / path.name)
    _, again = train(structures, nep_in, output_dir=out, epochs=4, seed=0, report_interval=2,
                     log=None)
    steps = read_loss_out(out / "loss.out").generation
    assert list(steps) == [2, 4]
    # the history (kept in the checkpoint's arrays) goes on from step 2, types and all
    assert [r["step"] for r in again.records] == [2, 4]
    def without_time(records):  # the wall time of step 4 is the second run's own
        return [{k: v for k, v in r.items() if k != "time"} for r in records]
    assert again.records[0] == history.records[0]
    assert without_time(again.records) == without_time(history.records)
    assert all(type(r["step"]) is int and type(r["has_virial_train"]) is bool
               and type(r["loss"]) is float for r in again.records)


def test_checkpoint_history_is_read_back_from_either_form(tmp_path):
    """A checkpoint before 2026-11-30 kept the history as a JSON list; both forms resume,
    and a malformed history is one error naming the file."""
    import json

    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.train import train

    structures, nep_in = _tiny_run(tmp_path)
    _, history = train(structures, nep_in, output_dir=tmp_path, epochs=4, seed=0,
                       report_interval=2, log=None)
    json_path = tmp_path / "nepzbl_restart.json"
    meta = json.loads(json_path.read_text())
    assert "history" not in meta and meta["history_types"]["step"] == "int"
    # the older form: the list in the JSON (the arrays' columns are then not read)
    old = dict(meta, history=history.records, finished=False, step=4)
    json_path.write_text(json.dumps(old))
    _, resumed = train(structures, nep_in, output_dir=tmp_path, epochs=6, seed=0,
                       report_interval=2, log=None)
    assert [r["step"] for r in resumed.records] == [2, 4, 6]
    assert resumed.records[:2] == history.records
    meta = json.loads(json_path.read_text())
    for bad in ({"history_types": {"step": "complex"}}, {"history_types": {"nope": "int"}},
                {"history": "not a list"}, {"history_types": {"time": "int"}},
                {"history_types": {"step": "bool"}}):
        json_path.write_text(json.dumps(dict(meta, **bad, finished=False)))
        with pytest.raises(NepFormatError, match="nepzbl_restart"):
            train(structures, nep_in, output_dir=tmp_path, epochs=8, seed=0,
                  report_interval=2, log=None)


def test_short_parameter_array_in_checkpoint_is_one_error(tmp_path):
    import hashlib
    import io
    import json

    import numpy as np

    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.train import train

    structures, nep_in = _tiny_run(tmp_path)
    train(structures, nep_in, output_dir=tmp_path, epochs=2, seed=0, report_interval=2,
          log=None)
    json_path = tmp_path / "nepzbl_restart.json"
    meta = json.loads(json_path.read_text())
    meta["finished"] = False
    with np.load(tmp_path / meta["arrays_file"]) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["parameters"] = arrays["parameters"][:-3]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (tmp_path / meta["arrays_file"]).write_bytes(buffer.getvalue())
    meta["arrays_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    json_path.write_text(json.dumps(meta))
    with pytest.raises(NepFormatError, match="'parameters' has shape"):
        train(structures, nep_in, output_dir=tmp_path, epochs=4, seed=0, report_interval=2,
              log=None)


# ---------------------------------------------------------------- 3, 6. engine inputs, outputs
def _evaluator(**kwargs):
    from nepzbl_plugin.engine import Evaluator
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Te", "Pb"), zbl="universal", n_max=(2, 2), basis=(2, 2),
                         neurons=3, l_max=2, seed=4)
    for key, value in kwargs.items():
        getattr(model, key)[:] = value
    return Evaluator(model, num_threads=1)


@pytest.mark.parametrize("x", [1e308, 1e200, 1e11])
def test_huge_open_boundary_positions_are_one_error_not_a_crash(x):
    # Before: span inf, NaN bin index, negative array index, segfault (rc 139).
    from ase import Atoms

    from nepzbl_plugin.errors import EngineError

    atoms = Atoms("TePb", positions=[[-x, 0, 0], [x, 0, 0]], pbc=False)
    with pytest.raises(EngineError, match="huge"):
        _evaluator().evaluate(atoms)


def test_largest_accepted_positions_still_evaluate():
    from ase import Atoms

    atoms = Atoms("TePb", positions=[[-1e9, 0, 0], [1e9, 0, 0]], pbc=False)
    out = _evaluator().evaluate(atoms)
    assert out["forces"] == pytest.approx(0.0)  # far apart: no neighbours


@pytest.mark.parametrize("value", [1e308, -1.7e308])
def test_non_finite_results_from_finite_parameters_raise(value):
    from ase import Atoms

    from nepzbl_plugin.errors import EngineError

    atoms = Atoms("TePb", positions=[[0, 0, 0], [2.6, 0.3, 0]], pbc=False)
    evaluator = _evaluator(parameters=value)
    with pytest.raises(EngineError, match="non-finite energy"):
        evaluator.evaluate(atoms)
    with pytest.raises(EngineError, match="structure 0: .*non-finite"):
        evaluator.evaluate_many([atoms])


def test_info_warns_about_parameters_far_outside_trained_range(tmp_path, capsys):
    from nepzbl_plugin.cli import main
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Te", "Pb"), seed=2)
    model.write(tmp_path / "ok.txt")
    assert main(["info", str(tmp_path / "ok.txt")]) == 0
    assert "warning" not in capsys.readouterr().err
    model.parameters[3] = -1.7e308
    model.write(tmp_path / "bad.txt")
    assert main(["info", str(tmp_path / "bad.txt")]) == 0
    err = capsys.readouterr().err
    assert "bad.txt: parameter 3 is -1.7e+308" in err


def test_output_arrays_of_the_wrong_size_are_refused_before_the_engine_writes():
    import numpy as np

    evaluator = _evaluator()
    core = evaluator._core
    types = np.array([0, 1], dtype=np.intc)
    positions = np.array([[0, 0, 0], [2.5, 0, 0]], dtype=np.float64)
    cell = np.eye(3) * 10
    with pytest.raises(ValueError, match="'forces' needs 6 values"):
        core.evaluate(types, positions, cell, (False,) * 3, {"forces": np.zeros((1, 3))})
    with pytest.raises(ValueError, match="'descriptors'"):
        core.evaluate_batch([(types, positions, cell, (True,) * 3, 0.0)],
                            [{"descriptors": np.zeros(3)}])


# ---------------------------------------------------------------- 4. huge files
def _model_text(**kwargs):
    from nepzbl_plugin.model import format_nep_txt
    from nepzbl_plugin.testing import random_model

    kwargs.setdefault("types", ("Te", "Pb"))
    return format_nep_txt(random_model(n_max=(1, 1), basis=(1, 1), neurons=2, l_max=2,
                                       flags=(0, 0), seed=3, **kwargs))


@pytest.mark.parametrize("reader", ["nep_txt", "nep_in"])
def test_huge_sparse_file_fails_at_line_one_with_a_short_message(tmp_path, reader):
    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.io.nep_in import read_nep_in
    from nepzbl_plugin.model import read_nep_txt

    path = tmp_path / "big"
    with open(path, "wb") as handle:  # 2 GB of NUL bytes, taking no disk space
        handle.truncate(2 * 1024**3)
    read = read_nep_txt if reader == "nep_txt" else read_nep_in
    with pytest.raises(NepFormatError, match="line 1: line longer than") as info:
        read(path)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("reader", ["nep_txt", "nep_in"])
def test_huge_token_is_cut_in_the_message(tmp_path, reader):
    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.io.nep_in import read_nep_in
    from nepzbl_plugin.model import read_nep_txt

    path = tmp_path / "file"
    path.write_text("x" * 5000 + "\n")
    read = read_nep_txt if reader == "nep_txt" else read_nep_in
    with pytest.raises(NepFormatError, match=r"\.\.\. \(5000 characters\)") as info:
        read(path)
    assert len(str(info.value)) < 300


def test_nep_txt_with_millions_of_extra_lines_stops_at_the_first(tmp_path):
    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.model import read_nep_txt

    text = _model_text()
    path = tmp_path / "nep.txt"
    with open(path, "w") as handle:
        handle.write(text)
        handle.write("1.0\n" * 2_000_000)
    first_extra = text.count("\n") + 1
    with pytest.raises(NepFormatError, match=f"line {first_extra}: extra values"):
        read_nep_txt(path)


# ---------------------------------------------------------------- 5. ZBL beyond the angular cutoff
def test_nep_in_zbl_beyond_angular_cutoff_is_refused(tmp_path):
    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.io.nep_in import parse_nep_in, read_nep_in

    with pytest.raises(NepFormatError, match="line 3: ZBL outer radius 4 A of Te-Te exceeds"):
        parse_nep_in("type 2 Te Pb\ncutoff 8 3\nzbl 4\n", "nep.in")
    parse_nep_in("type 2 Te Pb\ncutoff 8 3\nzbl 3\n")  # at the cutoff: fine
    # typewise: per-pair radii min(f (R_a + R_b), zbl) are what counts
    parse_nep_in("type 2 Te Pb\ncutoff 8 3\nzbl 4\nuse_typewise_cutoff_zbl 0.7\n")
    (tmp_path / "nep.in").write_text("type 1 Te\ncutoff 8 3\nzbl 2\n")
    (tmp_path / "zbl.in").write_text("1 3.5 " + "0.1 1 " * 4 + "\n")
    with pytest.raises(NepFormatError, match="zbl.in, line 1: ZBL outer radius 3.5"):
        read_nep_in(tmp_path / "nep.in")


def test_nep_txt_zbl_beyond_angular_cutoff_and_equal_radii_are_refused():
    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.model import parse_nep_txt

    text = _model_text(zbl="universal")
    lines = text.split("\n")
    assert lines[1].startswith("zbl ")
    for bad, message in [("zbl 1 20", "outer radius 20 A of Te-Te exceeds its angular"),
                         ("zbl 1 1", "0 <= inner < outer")]:
        with pytest.raises(NepFormatError, match=f"line 2: .*{message}"):
            parse_nep_txt("\n".join([lines[0], bad, *lines[2:]]))


# ---------------------------------------------------------------- 7. nep.txt cut in its last value
def test_nep_txt_cut_inside_its_last_value_is_detected(tmp_path):
    from nepzbl_plugin.errors import NepFormatError
    from nepzbl_plugin.model import read_nep_txt

    text = _model_text()
    path = tmp_path / "nep.txt"
    path.write_text(text)
    read_nep_txt(path)
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    assert last[-4] == "e" and last[-3] in "+-"  # GPUMD's %15.7e
    path.write_text(text[:-5])  # "4.8981425e-01\n" -> "4.8981425": a number, but the wrong one
    with pytest.raises(NepFormatError, match="final newline"):
        read_nep_txt(path)
    path.write_text(text + "\n\n")  # trailing blank lines stay fine
    read_nep_txt(path)


# ---------------------------------------------------------------- 7, 9. zbl suggest / fit
def _tepb_data(tmp_path):
    import numpy as np

    from nepzbl_plugin.io.xyz import TrainingStructure, write_train_xyz

    positions = np.array([[0, 0, 0], [3.2, 0, 0], [0, 3.2, 0], [3.2, 3.2, 0]], dtype=float)
    structure = TrainingStructure(symbols=["Te", "Pb", "Pb", "Te"], positions=positions,
                                  cell=np.diag([6.4, 6.4, 6.0]), energy=-1.0,
                                  forces=np.zeros((4, 3)))
    path = tmp_path / "train.xyz"
    write_train_xyz(path, [structure])
    return path


@pytest.mark.parametrize("options, message", [
    (["--types", "Te"], "the data contain Pb, not in the species list"),
    (["--angular-cutoff", "0"], "angular cutoff must be a positive length"),
    (["--margin", "-1"], "margin must be in"),
])
def test_zbl_suggest_bad_options_are_one_line(tmp_path, capsys, options, message):
    from nepzbl_plugin.cli import main

    data = _tepb_data(tmp_path)
    assert main(["zbl", "suggest", str(data), "--out", str(tmp_path), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("options, message", [
    (["--radius", "Te-Te=2,1"], "need 0 <= INNER < OUTER"),
    (["--radius", "Te-Xe=1,2"], "is not a pair of --types"),
    (["--oracle", "nosuchmod:fn"], "cannot import 'nosuchmod'"),
    (["--oracle", "os:nosuchattr"], "has no 'nosuchattr'"),
    (["--dimer", "Te-Te=BINARY"], "BINARY, line 1: not a text file"),
])
def test_zbl_fit_bad_options_are_one_line(tmp_path, capsys, options, message):
    from nepzbl_plugin.cli import main

    binary = tmp_path / "BINARY"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    options = [o.replace("BINARY", str(binary)) for o in options]
    if options[0] == "--radius":  # dimer energies present: only the radii are wrong
        dimer = tmp_path / "dimer.txt"
        dimer.write_text("".join(f"{0.1 * k:.1f} {100.0 / k:.3f}\n" for k in range(1, 20)))
        options += ["--dimer", f"Te-Te={dimer}"]
    assert main(["zbl", "fit", "--types", "Te", "--out", str(tmp_path), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "zbl.in").exists()  # nothing written that a reader would reject


def test_read_only_output_folder_is_exit_2(tmp_path, capsys, monkeypatch):
    """Disk full / read-only: the atomic writer's OSError becomes one line and exit 2."""
    import errno

    from nepzbl_plugin.cli import main
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Te", "Pb"), seed=2)
    model.write(tmp_path / "nep.txt")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("nepzbl_plugin.io.atomic.tempfile.mkstemp", full)
    status = main(["model", str(tmp_path / "nep.txt"), "--add-zbl", "2",
                   "-o", str(tmp_path / "out.txt")])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "out.txt: cannot write (No space left on device)" in err


def test_cli_model_output_through_a_symlink_keeps_the_link(tmp_path):
    from nepzbl_plugin.cli import main
    from nepzbl_plugin.model import read_model
    from nepzbl_plugin.testing import random_model

    random_model(types=("Te", "Pb"), seed=2).write(tmp_path / "in.txt")
    target = tmp_path / "store" / "nep.txt"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "nep.txt"
    link.symlink_to(target)
    assert main(["model", str(tmp_path / "in.txt"), "--add-zbl", "2", "-o", str(link)]) == 0
    assert link.is_symlink()
    assert read_model(target).zbl is not None


# ------------------------------------------------ bad input of every command (second pass)
def _usage_error(capsys, argv, message):
    """argparse refuses the value: exit 2, the option and the problem in the message."""
    from nepzbl_plugin.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert message in err and "Traceback" not in err
    return err


def _te_pb_model(tmp_path):
    from nepzbl_plugin.testing import random_model

    path = tmp_path / "nep.txt"
    random_model(types=("Te", "Pb"), seed=2).write(path)
    return path


def _rocksalt(tmp_path):
    from ase.build import bulk
    from ase.io import write

    path = tmp_path / "pbte.xyz"
    write(path, bulk("PbTe", "rocksalt", a=6.46), format="extxyz")
    return path


@pytest.mark.parametrize("command, message", [
    (["md", "MODEL", "STRUCTURE", "--out", "OUT", "--temperature", "300", "--seed", "-1"],
     "argument --seed: must be >= 0, got -1"),
    (["md", "MODEL", "STRUCTURE", "--out", "OUT", "--temperature", "300", "--min-distance", "nan"],
     "argument --min-distance: expected a number >= 0, got 'nan'"),
    (["md", "MODEL", "STRUCTURE", "--out", "OUT", "--temperature", "300", "--min-distance", "-1"],
     "argument --min-distance: expected a number >= 0, got '-1'"),
    (["write-example-model", "OUT", "--seed", "-1"], "argument --seed: must be >= 0"),
    (["audit", "MODEL", "--threads", "0"], "argument --threads: must be at least 1, got 0"),
    (["audit", "MODEL", "--seed", "-3"], "argument --seed: must be >= 0, got -3"),
    (["audit", "MODEL", "--rattle", "nan"], "argument --rattle: expected a number >= 0"),
    (["audit", "MODEL", "--steps", "-5"], "argument --steps: must be >= 0, got -5"),
    (["demo", "--structures", "0", "--out", "OUT"], "argument --structures: must be at least 1"),
    (["demo", "--md-steps", "-3", "--out", "OUT"], "argument --md-steps: must be >= 0, got -3"),
    (["demo", "--rattle", "nan", "--out", "OUT"], "argument --rattle: expected a number >= 0"),
    (["demo", "--seed", "-1", "--out", "OUT"], "argument --seed: must be >= 0"),
    (["learning-curve", "NEP_IN", "DATA", "--sizes", "1", "--seed", "-1"],
     "argument --seed: must be >= 0"),
    (["analyze", "locality", "MODEL", "STRUCTURE", "--seed", "-1"],
     "argument --seed: must be >= 0"),
])
def test_seeds_threads_and_counts_out_of_range_are_usage_errors(tmp_path, capsys, command,
                                                                message):
    """A negative seed was a numpy traceback (md, audit, demo, learning-curve, locality,
    write-example-model), --threads 0 an engine traceback, a NaN --min-distance or --rattle
    silently switched the check off or ran on."""
    names = {"MODEL": str(_te_pb_model(tmp_path)), "STRUCTURE": str(_rocksalt(tmp_path)),
             "OUT": str(tmp_path / "out"), "NEP_IN": str(tmp_path / "nep.in"),
             "DATA": str(tmp_path / "train.xyz")}
    _usage_error(capsys, [names.get(a, a) for a in command], message)
    assert not (tmp_path / "out").exists()


def test_stress_test_settings_refuse_nan_rattle_threads_and_seed():
    from nepzbl_plugin.audit.stress_test import StressTestSettings

    for options, message in (({"rattle": float("nan")}, "rattle must be a finite length"),
                             ({"num_threads": 0}, "num_threads must be at least 1"),
                             ({"seed": -1}, "seed must be >= 0")):
        with pytest.raises(ValueError, match=message):
            StressTestSettings(**options)


def _one_error_line(capsys, argv, message):
    """The command fails with exit 2 and exactly one 'nepzbl: error:' line holding message."""
    from nepzbl_plugin.cli import main

    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and "Warning" not in err, err
    assert err.count("\n") == 1 and err.startswith("nepzbl: error: "), err
    assert message in err, err
    return err


@pytest.mark.parametrize("options, message", [
    (["--tolerance", "nan"], "audit criterion: tolerance must be a finite energy >= 0 eV, not nan"),
    (["--tolerance", "-1"], "tolerance must be a finite energy >= 0 eV, not -1.0"),
    (["--relative-tolerance", "nan"], "relative tolerance must be in [0, 1), not nan"),
    (["--deep-distance", "nan"], "deep distance must be a finite length > 0 Å, not nan"),
    (["--wall-fraction", "-0.5"], "wall fraction must be finite and > 0, not -0.5"),
])
def test_audit_nan_or_negative_criteria_are_refused(tmp_path, capsys, options, message):
    """A NaN criterion compared False everywhere: the audit ran and gave a verdict."""
    model = _te_pb_model(tmp_path)
    _one_error_line(capsys, ["audit", str(model), "--no-md", "--png", "none", *options],
                    message)


@pytest.mark.parametrize("options, message", [
    (["--ensemble", "npt", "--pressure", "nan"],
     "the target pressure must be finite (GPa), not nan"),
    (["--ensemble", "npt-aniso", "--pressure", "0", "inf", "0"],
     "the target pressure must be finite (GPa)"),
    (["--ensemble", "npt", "--compressibility", "inf"],
     "NPT needs a positive, finite compressibility"),
    (["--tau-t", "inf"], "the temperature coupling time must be positive and finite, not inf"),
])
def test_md_non_finite_pressure_and_coupling_are_refused(tmp_path, capsys, options, message):
    """A NaN pressure reached the engine as a NaN cell (a numpy warning and an error about
    positions); an infinite coupling time silently switched the thermostat off."""
    out = tmp_path / "md"
    _one_error_line(capsys, ["md", str(_te_pb_model(tmp_path)), str(_rocksalt(tmp_path)),
                             "--temperature", "300", "--steps", "2", "--out", str(out),
                             "--no-progress", *options], message)
    assert not (out / "thermo.txt").exists()


def _cu_ni_frames(tmp_path, edit):
    """Two 4-atom Cu-Ni frames written by ASE, then one line changed by ``edit(lines)``."""
    from ase.build import bulk
    from ase.io import write

    frames = []
    for k in range(2):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.symbols[::2] = "Ni"
        atoms.rattle(0.02, seed=k)
        frames.append(atoms)
    path = tmp_path / "frames.xyz"
    write(path, frames, format="extxyz")
    lines = path.read_text().splitlines(keepends=True)
    edit(lines)
    path.write_text("".join(lines))
    return path


def _nan_position(lines):  # frame 1, atom 2: file line 6 + 2 + 2 + 1 = 11
    fields = lines[10].split()
    fields[1] = "nan"
    lines[10] = " ".join(fields) + "\n"


def _zero_lattice(lines):  # frame 1's comment line is line 8
    import re

    lines[7] = re.sub(r'Lattice="[^"]*"', 'Lattice="3.6 0 0 3.6 0 0 0 0 3.6"', lines[7])


def _on_top(lines):  # atom 1 of frame 0 onto atom 0
    first, second = lines[2].split(), lines[3].split()
    lines[3] = " ".join([second[0], *first[1:4], *second[4:]]) + "\n"


@pytest.mark.parametrize("command", [
    ["analyze", "rdf", "DATA", "--png", "none"],
    ["zbl", "suggest", "DATA", "--out", "OUT"],
    ["audit", "MODEL", "--data", "DATA", "--no-md", "--png", "none"],
])
@pytest.mark.parametrize("edit, message", [
    (_nan_position, "frames.xyz, line 11: frame 1, atom 2: the position is not finite (nan"),
    (_zero_lattice, "frames.xyz, line 8: frame 1: the periodic cell is singular"),
])
def test_frames_read_by_ase_with_nan_positions_or_singular_cells(tmp_path, capsys, command,
                                                                 edit, message):
    """ASE reads 'nan' and a zero Lattice: the RDF and the distances came out quietly wrong
    (NaN positions, with a numpy warning) or as a 'Singular matrix' traceback."""
    from nepzbl_plugin.testing import random_model

    model = tmp_path / "nep.txt"
    random_model(types=("Cu", "Ni"), seed=2).write(model)
    names = {"DATA": str(_cu_ni_frames(tmp_path, edit)), "OUT": str(tmp_path / "out"),
             "MODEL": str(model)}
    _one_error_line(capsys, [names.get(a, a) for a in command], message)


def test_md_start_structure_with_nan_position_names_the_file(tmp_path, capsys):
    """It was the engine's 'NaN, infinite or huge position' without the file, and the empty
    thermo.txt and trajectory.xyz left behind blocked the next run."""
    from ase.io import read, write

    source = _cu_ni_frames(tmp_path, _nan_position)
    one = tmp_path / "start.xyz"
    write(one, read(source, index=1), format="extxyz")
    from nepzbl_plugin.testing import random_model

    model = tmp_path / "nep.txt"
    random_model(types=("Cu", "Ni"), seed=2).write(model)
    out = tmp_path / "md"
    _one_error_line(capsys, ["md", str(model), str(one), "--temperature", "300", "--out",
                             str(out), "--no-progress"],
                    "start.xyz: the last frame, atom 2: the position is not finite")
    assert not out.exists()


def test_convert_nan_position_is_one_error(tmp_path, capsys):
    """ASE's NaN position reached the writer: a ValueError traceback."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read, write

    frames = read(_cu_ni_frames(tmp_path, lambda lines: None), index=":")
    for atoms in frames:
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((4, 3)))
    frames[1].positions[2, 0] = np.nan
    source = tmp_path / "labelled.xyz"
    write(source, frames, format="extxyz")
    _one_error_line(capsys, ["convert", str(source), "-o", str(tmp_path / "train.xyz")],
                    "labelled.xyz: frame 1: positions is not finite")
    assert not (tmp_path / "train.xyz").exists()


@pytest.mark.parametrize("edit, message", [
    (_on_top, "frames.xyz: a Ni-Cu pair only 0 Å apart (atoms on top of each other?)"),
])
def test_zbl_suggest_atoms_on_top_of_each_other(tmp_path, capsys, edit, message):
    """Two atoms at the same place gave a ZeroDivisionError traceback."""
    _one_error_line(capsys, ["zbl", "suggest", str(_cu_ni_frames(tmp_path, edit)), "--out",
                             str(tmp_path / "out")], message)


@pytest.mark.parametrize("analysis, content, message", [
    ("arrhenius", b"300 1e-7\n\x89\xff\n",
     "table.txt, line 2: not a text file (invalid UTF-8 byte)"),
    ("lattice", b"\x89PNG\r\n\x1a\n", "table.txt, line 1: not a text file (invalid UTF-8 byte)"),
    ("arrhenius", b"300 1e-7\n400 nan\n500 1e-5\n",
     "table.txt, line 2: T (K) and D must be finite and > 0"),
    ("arrhenius", b"300 1e-7\n400 -1e-6\n500 1e-5\n",
     "table.txt, line 2: T (K) and D must be finite and > 0"),
    ("arrhenius", b'{"temperature_K": NaN, "D_cm2_per_s": 1e-6}',
     "table.txt: expected the JSON of 'nepzbl analyze msd --temperature K --json' (T nan K"),
    ("lattice", b"300 5 5 5\n400 nan 5 5\n",
     "table.txt, line 2: T (K) and a b c (Å) must be finite and > 0"),
])
def test_analysis_tables_binary_or_non_finite(tmp_path, capsys, analysis, content, message):
    """A binary table was a UnicodeDecodeError traceback; NaN or negative values gave an error
    naming neither the file nor the line."""
    table = tmp_path / "table.txt"
    table.write_bytes(content)
    extra = ["--point", "600,1e-4", "--point", "700,1e-3"] if analysis == "arrhenius" else []
    _one_error_line(capsys, ["analyze", analysis, str(table), "--png", "none", *extra], message)


@pytest.mark.parametrize("command", [
    ["analyze", "locality", "MODEL", "DATA", "--png", "none"],
    ["analyze", "descriptors", "DATA", "--model", "MODEL", "--png", "none"],
])
def test_structures_with_species_the_model_lacks(tmp_path, capsys, command):
    """Was the engine's ValueError traceback."""
    names = {"MODEL": str(_te_pb_model(tmp_path)),
             "DATA": str(_cu_ni_frames(tmp_path, lambda lines: None))}
    _one_error_line(capsys, [names.get(a, a) for a in command],
                    "frames.xyz: species Cu, Ni not in the model")


def test_learning_curve_diffusivity_species_checked_before_training(tmp_path, capsys):
    """Was an engine traceback after the first model had been trained."""
    from nepzbl_plugin.io.xyz import TrainingStructure, write_train_xyz

    nep_in = tmp_path / "nep.in"
    nep_in.write_text("type 2 Cu Ni\ncutoff 4 3\nn_max 2 2\nbasis_size 4 4\nneuron 3\n")
    frames = []
    for k in range(3):
        rng = np.random.default_rng(k)
        frames.append(TrainingStructure(symbols=["Cu", "Ni"] * 2,
                                        positions=rng.uniform(0, 3.6, (4, 3)),
                                        cell=np.eye(3) * 3.6, energy=-1.0,
                                        forces=np.zeros((4, 3))))
    write_train_xyz(tmp_path / "train.xyz", frames)
    _one_error_line(capsys, ["learning-curve", str(nep_in), str(tmp_path / "train.xyz"),
                             "--sizes", "1", "--repeats", "1", "--epochs", "1", "--no-progress",
                             "--diffusivity", str(_rocksalt(tmp_path)),
                             "--out", str(tmp_path / "lc")],
                    "pbte.xyz: species Pb, Te not in")
    assert not (tmp_path / "lc").exists()


def test_nep_txt_cutoff_beyond_100_angstrom_is_refused(tmp_path, capsys):
    """A cutoff of 1e300 was read; MD then failed with the engine's 'singular cell, or a
    periodic cell too thin for its images', naming neither the model nor the cutoff."""
    model = _te_pb_model(tmp_path)
    lines = model.read_text().splitlines(keepends=True)
    index = next(k for k, line in enumerate(lines) if line.startswith("cutoff"))
    fields = lines[index].split()
    fields[1] = "1e300"
    lines[index] = " ".join(fields) + "\n"
    model.write_text("".join(lines))
    _one_error_line(capsys, ["info", str(model)],
                    f"nep.txt, line {index + 1}: cutoff 1e+300 A exceeds 100 A")


# ------------------------------------------------ a bad frame found by the engine, not the reader
def _overlapping_train_dir(tmp_path):
    """nep.in and a train.xyz of three frames whose second has atoms 4 and 5 at one place."""
    from nepzbl_plugin.io.xyz import write_train_xyz

    structures, _ = _tiny_run(tmp_path)
    structures[1].positions[5] = structures[1].positions[4]
    write_train_xyz(tmp_path / "train.xyz", structures)
    (tmp_path / "nep.in").write_text("type 2 Li O\ncutoff 4 3\nn_max 2 2\nbasis_size 2 2\n"
                                     "l_max 4 0 0\nneuron 3\n")
    return tmp_path / "train.xyz"


def test_train_names_the_frame_of_two_atoms_at_one_place(tmp_path, capsys):
    """The reader cannot see it (no numerics in io); the engine refuses the frame, and the
    error names the file and the frame's first line (frames of 8 atoms: 1, 11, 21)."""
    from nepzbl_plugin.cli import main
    from nepzbl_plugin.errors import EngineError
    from nepzbl_plugin.io.nep_in import read_nep_in
    from nepzbl_plugin.io.xyz import read_train_xyz
    from nepzbl_plugin.model import Model
    from nepzbl_plugin.train._backend import EngineBackend

    path = _overlapping_train_dir(tmp_path)
    assert main(["train", str(tmp_path), "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{path}, line 11: " in err and "same position" in err
    assert "Traceback" not in err and err.count("\n") == 1
    # the backend maps a batch's own index to the set's: structure 1 in a batch of (2, 1)
    structures = read_train_xyz(path)
    assert [s.source for s in structures] == [f"{path}, line {n}" for n in (1, 11, 21)]
    model = Model.from_nep_in(read_nep_in(tmp_path / "nep.in"))
    backend = EngineBackend(model, structures)
    with pytest.raises(EngineError, match=r"line 11: .*\(structure 1\)") as error:
        backend.predict(model.parameters, [2, 1])
    assert error.value.structure == 1


# ---------------------------------------------------------------- Python API: engine inputs
@pytest.mark.parametrize("types, message", [
    ([0, 0.7], "types must be whole numbers"),
    (np.array([0, 2**32]), "types must be type indices of the model, got 0..4294967296"),
    (["Te", "Pb"], "types must be whole numbers"),
    ([0, 2], "atom 1 has type 2: types must be 0..1 for this model (Te, Pb)"),
    ([-1, 0], "atom 0 has type -1"),
])
def test_system_types_are_never_truncated_or_wrapped(types, message):
    # Before: 0.7 became type 0 and 2**32 wrapped to 0 in the C int cast: a quietly wrong energy.
    from nepzbl_plugin.engine import System
    from nepzbl_plugin.errors import InputError

    with pytest.raises(InputError, match=re.escape(message)):
        _evaluator().evaluate(System(types, [[0, 0, 0], [2.5, 0, 0]], np.eye(3) * 10))


@pytest.mark.parametrize("positions, cell, pbc, message", [
    (np.zeros((3, 2)), np.eye(3) * 10, True, "positions must have shape (N, 3), got (3, 2)"),
    (np.zeros((2, 2)), np.eye(3) * 10, True, "positions must have shape (N, 3), got (2, 2)"),
    ([[0, 0, 0], [2.5, 0, 0]], [10, 10, 10], True, "cell must have shape (3, 3)"),
    ([[0, 0, 0], [2.5, 0, 0]], np.eye(3) * 10, (True, False), "pbc must be one flag or three"),
    ([[0, 0, 0], ["x", 0, 0]], np.eye(3) * 10, True, "positions must be numbers"),
    ([[0, 0, 0], [2.5, 0, 0]], np.zeros((3, 3)), (False, True, False),
     "periodic along b but its cell vector b is zero"),
])
def test_system_shapes_are_named_never_reshaped(positions, cell, pbc, message):
    # Before: (3, 2) positions of 2 atoms were silently reshaped to (2, 3); other shapes gave
    # numpy's "cannot reshape" or "operands could not be broadcast".
    from nepzbl_plugin.engine import System
    from nepzbl_plugin.errors import InputError

    with pytest.raises(InputError, match=re.escape(message)):
        _evaluator().evaluate(System([0, 1], positions, cell, pbc))


def test_atoms_periodic_without_cell_and_evaluate_many_name_the_problem():
    from ase import Atoms

    from nepzbl_plugin.errors import InputError

    evaluator = _evaluator()
    atoms = Atoms("TePb", positions=[[0, 0, 0], [2.5, 0, 0]], pbc=True)  # no cell
    with pytest.raises(InputError, match="periodic along a but its cell vector a is zero"):
        evaluator.evaluate(atoms)
    atoms.pbc = False
    with pytest.raises(InputError, match="evaluate_many takes a list of structures"):
        evaluator.evaluate_many(atoms)
    with pytest.raises(InputError, match="structure 1: species 'Cu' is not in the model"):
        evaluator.evaluate_many([atoms, Atoms("Cu")])
    with pytest.raises(InputError, match="properties must be a list of names"):
        evaluator.evaluate(atoms, None)


@pytest.mark.parametrize("threads, message", [
    (0, "num_threads must be 1 to 4096"), (-2, "num_threads must be 1 to 4096"),
    (2**40, "got 1099511627776"), (1.5, "must be a whole number, got 1.5"),
    ("a", "must be a whole number, got 'a'"),
])
def test_evaluator_num_threads_is_checked_once(threads, message):
    # Before: 2**40 passed and raised OverflowError at the first evaluation; 1.5 became 1.
    from nepzbl_plugin.engine import Evaluator
    from nepzbl_plugin.errors import InputError
    from nepzbl_plugin.testing import random_model

    with pytest.raises(InputError, match=message):
        Evaluator(random_model(types=("Te", "Pb"), seed=1), num_threads=threads)


def test_update_parameters_names_the_bad_value():
    from nepzbl_plugin.errors import InputError

    evaluator = _evaluator()
    p = evaluator.model.parameters.copy()
    p[7] = np.nan
    with pytest.raises(InputError, match="parameter 7 of .* is nan"):
        evaluator.update_parameters(p)
    with pytest.raises(InputError, match="must be a vector of .* numbers, got 'abc'"):
        evaluator.update_parameters("abc")


# ---------------------------------------------------------------- Python API: train, predict
@pytest.mark.parametrize("kwargs, message", [
    # Before: -3 and 1.5 "reached -3 epochs"; NaN/inf learning rates ended in "parameters must
    # be finite", a negative one climbed the loss; batch_size 0 became 1; report_interval 0
    # raised ZeroDivisionError; max_time NaN and target_force_rmse NaN were ignored.
    (dict(epochs=-3), "train: epochs must be a whole number >= 0, got -3"),
    (dict(epochs=1.5), "train: epochs must be a whole number >= 0, got 1.5"),
    (dict(epochs="5"), "train: epochs must be a whole number >= 0, got '5'"),
    (dict(learning_rate=float("nan")), "train: learning_rate must be a finite number > 0"),
    (dict(learning_rate=-1.0), "train: learning_rate must be a finite number > 0, got -1.0"),
    (dict(batch_size=0), "train: batch_size must be a whole number >= 1, got 0"),
    (dict(report_interval=0), "train: report_interval must be a whole number >= 1, got 0"),
    (dict(max_time=float("nan")), "train: max_time must be a finite number > 0"),
    (dict(target_force_rmse=float("nan")), "train: target_force_rmse must be a finite number"),
    (dict(patience=-1), "train: patience must be a whole number >= 1"),
    (dict(polish_after=-1), "train: polish_after must be a whole number >= 0"),
    (dict(seed="abc"), "train: seed must be a whole number >= 0, got 'abc'"),
    (dict(callback=3), "train: callback must be None or a callable"),
])
def test_train_bad_settings_are_one_input_error(tmp_path, kwargs, message):
    from nepzbl_plugin.errors import InputError
    from nepzbl_plugin.train import train

    structures, nep_in = _tiny_run(tmp_path)
    with pytest.raises(InputError, match=re.escape(message)):
        train(structures, nep_in, **{"epochs": 1, **kwargs})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("edit, message", [
    # Before: a NaN label ran and stopped as "diverged ... Try a smaller learning_rate"; a
    # frame without atoms did the same; 7 force rows for 8 atoms gave "the labels' arrays
    # disagree on the structures, atoms or parameters".
    (lambda s: setattr(s, "energy", float("nan")), "energy holds NaN or infinite values"),
    (lambda s: s.forces.__setitem__((0, 0), np.inf), "forces holds NaN or infinite values"),
    (lambda s: setattr(s, "forces", np.zeros((7, 3))), "forces has shape (7, 3), expected 8 x 3"),
    (lambda s: setattr(s, "virial", np.full((3, 3), np.nan)), "virial holds NaN"),
    (lambda s: (setattr(s, "symbols", []), setattr(s, "positions", np.zeros((0, 3))),
                setattr(s, "forces", np.zeros((0, 3)))), "has no atoms"),
])
def test_train_and_predict_refuse_bad_labels_naming_the_frame(tmp_path, edit, message):
    from nepzbl_plugin.errors import InputError
    from nepzbl_plugin.model import Model
    from nepzbl_plugin.train import predict, train

    structures, nep_in = _tiny_run(tmp_path)
    edit(structures[1])
    structures[1].source = "train.xyz, line 11"
    with pytest.raises(InputError, match=re.escape("structure 1 (train.xyz, line 11)")):
        train(structures, nep_in, epochs=1)
    with pytest.raises(InputError, match=re.escape(message)):
        predict(Model.from_nep_in(nep_in), structures)


def test_train_and_predict_output_dir_that_is_a_file_and_bad_arguments(tmp_path):
    from nepzbl_plugin.errors import FileError, InputError
    from nepzbl_plugin.model import Model
    from nepzbl_plugin.train import predict, train

    structures, nep_in = _tiny_run(tmp_path)
    (tmp_path / "file").write_text("x")
    # Before: FileExistsError [Errno 17] / NotADirectoryError from mkdir
    with pytest.raises(FileError, match="file: output_dir is a file, not a folder"):
        train(structures, nep_in, epochs=1, output_dir=tmp_path / "file")
    with pytest.raises(FileError, match="sub: cannot create output_dir"):
        train(structures, nep_in, epochs=1, output_dir=tmp_path / "file" / "sub")
    model = Model.from_nep_in(nep_in)
    with pytest.raises(FileError, match="output_dir is a file"):
        predict(model, structures, tmp_path / "file")
    # Before: numpy's "need at least one array to concatenate" and AttributeErrors
    with pytest.raises(InputError, match="predict: no structures to predict"):
        predict(model, [])
    model.write(tmp_path / "nep.txt")
    assert predict(tmp_path / "nep.txt", structures)[1]["force"] > 0
    with pytest.raises(InputError, match="train: nep_in must be a NepIn .* not int"):
        train(structures, 3, epochs=1)


# ---------------------------------------------------------------- Python API: objects in ASE use
@pytest.mark.parametrize("version, block, message", [
    (4, -1, "network(-1): block must be 0..1 (species 0=Te, 1=Pb)"),
    (4, 2, "network(2): block must be 0..1 (species 0=Te, 1=Pb)"),
    (5, np.int64(7), "network(7): block must be 0..1"),
    (3, 1, "network(1): block must be 0..0 (nep3: one network shared by every species)"),
])
def test_model_network_out_of_range_names_the_range(version, block, message):
    # Before: a bare IndexError "network block -1 out of range 0..1", no NepzblError. A block
    # is a species index, refused below 0 as System refuses type -1 (not counted from the end).
    from nepzbl_plugin.errors import IndexInputError, InputError
    from nepzbl_plugin.testing import random_model

    model = random_model(version=version, types=("Te", "Pb"), seed=1)
    with pytest.raises(IndexInputError, match=re.escape(message)) as error:
        model.network(block)
    assert isinstance(error.value, InputError) and isinstance(error.value, IndexError)
    assert model.network(model.num_networks - 1)["w0"].shape == (model.n_neurons,
                                                                  model.descriptor_dim)


def _missing_file_readers():
    from nepzbl_plugin import CPUNEP, NEP, read_model
    from nepzbl_plugin.engine import Evaluator
    from nepzbl_plugin.io.nep_in import read_nep_in, read_zbl_in
    from nepzbl_plugin.io.xyz import read_train_xyz

    return {"CPUNEP": CPUNEP, "NEP": NEP, "NEP cuda": lambda p: NEP(p, device="cuda"),
            "Evaluator": Evaluator, "read_model": read_model, "read_nep_in": read_nep_in,
            "read_train_xyz": read_train_xyz,
            "read_zbl_in": lambda p: read_zbl_in(p, 2)}


@pytest.mark.parametrize("reader", sorted(_missing_file_readers()))
def test_missing_model_file_is_one_error_naming_it(tmp_path, reader):
    # Before: CPUNEP raised a plain FileNotFoundError (no NepzblError), NEP and read_model a
    # NepFormatError that calorine users' `except FileNotFoundError` missed, and
    # read_train_xyz the FileNotFoundError of Path.read_bytes.
    from nepzbl_plugin.errors import MissingFileError, NepFormatError, NepzblError

    path = tmp_path / "models" / "missing.txt"
    with pytest.raises(MissingFileError) as error:
        _missing_file_readers()[reader](str(path))
    assert str(error.value) == f"{path}: cannot read the file: no such file"
    for kind in (NepzblError, NepFormatError, FileNotFoundError):
        assert isinstance(error.value, kind)
    assert error.value.errno == errno.ENOENT and error.value.filename == str(path)
    assert error.value.path == str(path) and error.value.line is None
    again = pickle.loads(pickle.dumps(error.value))  # errors cross multiprocessing pools
    assert type(again) is MissingFileError and str(again) == str(error.value)


def test_training_history_column_names_the_known_ones():
    # Before: a bare KeyError('nope'), and the history was not iterable.
    from nepzbl_plugin.errors import InputError
    from nepzbl_plugin.train.trainer import TrainingHistory

    history = TrainingHistory(records=[{"step": 0, "loss": 2.0}, {"step": 5, "loss": 1.5}])
    assert history.column("loss").tolist() == [2.0, 1.5]
    assert [r["step"] for r in history] == [0, 5]
    with pytest.raises(InputError, match=r"column\('nope'\): no such column; known: step, loss"):
        history.column("nope")
    assert TrainingHistory().column("loss").shape == (0,)


def _copy_methods():
    return {"copy": copy.copy, "deepcopy": copy.deepcopy,
            "pickle": lambda calc: pickle.loads(pickle.dumps(calc))}


def _calculators(tmp_path):
    from nepzbl_plugin import CPUNEP, NEP
    from nepzbl_plugin.testing import random_model

    plain = random_model(types=("Te", "Pb"), zbl="universal", n_max=(2, 2), basis=(2, 2),
                         neurons=3, l_max=2, seed=4)
    plain.write(tmp_path / "nep.txt", precision="full")
    hot = random_model(types=("Te", "Pb"), zbl="universal", n_max=(2, 2), basis=(2, 2),
                       neurons=3, l_max=2, seed=5, temperature=True)
    hot.q_scaler[-1] = 0.001
    return {"NEP": NEP(plain, num_threads=1), "CPUNEP": CPUNEP(str(tmp_path / "nep.txt")),
            "NEP temperature": NEP(hot, temperature=300.0)}


def _te_pb_atoms():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=4.6, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.1, seed=3)
    atoms.set_chemical_symbols(["Te", "Pb"] * 4)
    return atoms


def _results(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()


@pytest.mark.parametrize("method", sorted(_copy_methods()))
@pytest.mark.parametrize("kind", ["NEP", "CPUNEP", "NEP temperature"])
def test_calculators_copy_and_pickle_rebuild_an_independent_engine(tmp_path, kind, method):
    # Before: copy.deepcopy and pickle raised "no default __reduce__ due to non-trivial
    # __cinit__" (the C engine); copy.copy shared the engine and the parameter dict, so one
    # copy's set(temperature=...) changed the other's results.
    calc = _calculators(tmp_path)[kind]
    atoms = _te_pb_atoms()
    energy, forces, stress = _results(calc, atoms)  # the copy also carries results and atoms
    if kind == "CPUNEP":
        os.remove(tmp_path / "nep.txt")  # the copy is made from the model, not the file
    copied = _copy_methods()[method](calc)
    assert type(copied) is type(calc) and copied.evaluator is not calc.evaluator
    assert copied.parameters is not calc.parameters and copied.model is not calc.model
    assert copied.get_potential_energy() == pytest.approx(energy, abs=1e-12)  # stored results
    copied.reset()
    e, f, s = _results(copied, atoms)  # computed again by the rebuilt engine
    assert e == pytest.approx(energy, abs=1e-12)
    np.testing.assert_allclose(f, forces, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s, stress, rtol=0, atol=1e-12)
    assert repr(copied) == repr(calc)
    # independent: changing the copy leaves the original as it was
    if kind == "NEP temperature":
        copied.set(temperature=900.0)
        assert calc.parameters["temperature"] == 300.0
    else:
        p = copied.model.parameters.copy()
        p[0] += 0.5
        copied.evaluator.update_parameters(p)
        copied.reset()  # the engine changed under the calculator's stored results
    assert abs(_results(copied, atoms)[0] - energy) > 1e-6
    calc.reset()
    assert _results(calc, atoms)[0] == pytest.approx(energy, abs=1e-12)


def test_copies_follow_updated_parameters_and_evaluators_pickle():
    from nepzbl_plugin.engine import Evaluator

    evaluator = _evaluator()
    p = evaluator.model.parameters.copy()
    p[3] -= 0.25
    evaluator.update_parameters(p)  # a copy is made from the model as it is now
    atoms = _te_pb_atoms()
    want = evaluator.evaluate(atoms)
    for method in _copy_methods().values():
        copied = method(evaluator)
        assert type(copied) is Evaluator and copied.num_threads == 1
        np.testing.assert_array_equal(copied.model.parameters, p)
        got = copied.evaluate(atoms)
        assert got["energy"] == pytest.approx(want["energy"], abs=1e-12)
        np.testing.assert_allclose(got["forces"], want["forces"], rtol=0, atol=1e-12)
    assert repr(evaluator) == "Evaluator(nep4_zbl Te Pb, device='cpu', num_threads=1)"


def test_model_equality_compares_values():
    # Before: == was identity (dataclass eq=False): a model read back from its own
    # full-precision file was "different"; ZBLSettings == raised for a flexible table.
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Te", "Pb"), zbl="flexible", seed=2)
    assert model == model.copy() and model.zbl == model.copy().zbl
    changed = model.copy()
    changed.parameters[5] += 1e-12
    assert model != changed
    changed = model.copy()
    changed.zbl.flexible[0, 3] += 1e-9
    assert model != changed and model.zbl != changed.zbl
    assert model != model.without_zbl() and model != "nep.txt"
    with pytest.raises(TypeError):
        hash(model)  # compared by value and mutable, as a list


def test_model_read_back_from_full_precision_equals_the_original(tmp_path):
    from nepzbl_plugin.model import read_model
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Te", "Pb"), zbl="flexible", seed=2)
    model.write(tmp_path / "nep.txt", precision="full")
    back = read_model(tmp_path / "nep.txt")
    assert back.metadata and back == model  # where it was read from is not compared


def test_training_structure_has_a_length():
    from nepzbl_plugin.io.xyz import TrainingStructure

    frame = TrainingStructure(["Li", "O", "O"], np.zeros((3, 3)), np.eye(3) * 5)
    assert len(frame) == frame.num_atoms == 3


def _bad_model_calls(tmp_path):
    from nepzbl_plugin import NEP, ZBLSettings
    from nepzbl_plugin.interop.calorine import from_calorine, to_calorine
    from nepzbl_plugin.model import Model
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Te", "Pb"), seed=1)
    return {
        "at_temperature needs a temperature model": lambda: model.at_temperature(300),
        "only nep3 models can be upgraded to nep4, not nep5":
            lambda: random_model(version=5).to_nep4(),
        "precision must be 'gpumd' or 'full', not 'double'":
            lambda: model.write(tmp_path / "nep.txt", precision="double"),
        "expected 1101 parameters for this header, got 3":
            lambda: Model(**{**model.fields(), "parameters": [0.0] * 3}),
        "unknown ZBL mode 'screened'": lambda: ZBLSettings("screened", 1.0, 2.0),
        "no atoms: pass the structure": lambda: NEP(model).get_components(),
        "to_calorine takes a nepzbl Model, not str": lambda: to_calorine("nep.txt"),
        "from_calorine takes a calorine.nep.model.Model (calorine's read_model), not Model":
            lambda: from_calorine(model),
    }


@pytest.mark.parametrize("message", sorted(_bad_model_calls(None)))
def test_model_and_calculator_value_errors_are_input_errors(tmp_path, message):
    # Before: plain ValueErrors (no NepzblError), and AttributeErrors from deep inside the
    # calorine conversions. InputError is a ValueError, so `except ValueError` still works.
    from nepzbl_plugin.errors import InputError

    with pytest.raises(InputError, match=re.escape(message)):
        _bad_model_calls(tmp_path)[message]()
    assert not list(tmp_path.iterdir())


_CUDA_COPIES = """
import copy, pickle
import numpy as np
from ase.build import bulk
from nepzbl_plugin import NEP, _cuda
from nepzbl_plugin.engine.cuda import CudaEvaluator
from nepzbl_plugin.testing import random_model

assert _cuda.device_count() == 1, "not the emulated build"
model = random_model(types=("Te", "Pb"), zbl="universal", n_max=(2, 2), basis=(2, 2),
                     neurons=3, l_max=2, seed=4)
atoms = bulk("Cu", "fcc", a=4.6, cubic=True)
atoms.rattle(0.1, seed=3)
atoms.set_chemical_symbols(["Te", "Pb"] * 2)
calc = NEP(model, device="cuda", precision="float32")
atoms.calc = calc
energy, forces = atoms.get_potential_energy(), atoms.get_forces()
for method in (copy.copy, copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))):
    copied = method(calc)
    assert copied.evaluator.device == "cuda" and copied.evaluator.precision == "float32"
    assert copied.evaluator._cuda is not calc.evaluator._cuda
    other = atoms.copy()
    other.calc = copied
    assert abs(other.get_potential_energy() - energy) <= 1e-12
    assert np.abs(other.get_forces() - forces).max() <= 1e-12
gpu = CudaEvaluator(model, precision="float64", skin=0.5)
again = pickle.loads(pickle.dumps(gpu))
assert again.skin == 0.5 and again.precision == "float64" and again._gpu is not gpu._gpu
assert repr(again) == "CudaEvaluator(nep4_zbl Te Pb, device='cuda', precision='float64')"
assert repr(calc) == "NEP(nep4_zbl Te Pb, device='cuda', precision='float32')"
assert abs(again.evaluate(atoms)["energy"] - gpu.evaluate(atoms)["energy"]) <= 1e-12
print("copies ok")
"""


@pytest.mark.slow
def test_cuda_calculator_copies_in_host_emulation(tmp_path_factory, tmp_path):
    """The CUDA calculator copies and pickles as the CPU one: the GPU engine is rebuilt from
    the model, with the device and precision of the original (checked on the CUDA sources
    built for the host, tests/cuda_emulation.py, as test_cuda.py does)."""
    from cuda_emulation import run_emulated

    result = run_emulated(tmp_path_factory, _CUDA_COPIES, tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "copies ok" in result.stdout


def test_arguments_of_the_wrong_kind_are_input_type_errors():
    # Before: plain TypeErrors, read_model(None)'s from pathlib ("expected str, bytes or
    # os.PathLike object"), naming neither the function nor the argument.
    from nepzbl_plugin import NEP, read_model
    from nepzbl_plugin.engine import Evaluator
    from nepzbl_plugin.errors import InputError, InputTypeError

    calls = {"read_model takes the path of a nep.txt, not NoneType": lambda: read_model(None),
             "model must be a Model or the path of a nep.txt, not int": lambda: NEP(3),
             "model must be a Model or the path of a nep.txt, not list": lambda: Evaluator([]),
             "expected ase.Atoms or nepzbl System, got str":
                 lambda: _evaluator().evaluate("TePb")}
    for message, call in calls.items():
        with pytest.raises(InputTypeError, match=re.escape(message)) as error:
            call()
        assert isinstance(error.value, InputError) and isinstance(error.value, TypeError)
