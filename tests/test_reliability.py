"""Bad input and faults: nothing lost, nothing silently wrong (issue 11).

Each test reproduces one defect found by a reliability pass: files that are not ours destroyed,
a crash, silently wrong numbers, leftovers after a kill, tracebacks instead of one error."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from nepzbl_plugin.errors import FileError, NepzblError
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
