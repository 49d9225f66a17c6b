"""Atomic file writing: a temporary file in the target's folder, then ``os.replace``.

A reader (or GPUMD) never sees a half-written model, checkpoint or output file, and an
interrupted write leaves the previous file intact.

Only our own regular files are replaced in a shared (group- or world-writable) folder: a
regular file there that belongs to another user is refused (even for root, who could replace
it), so a shared folder's files are never taken over. In a folder only its owner can write,
a file of another uid is replaced as before: there it is the same user's under a mapped owner
(NFS root_squash, sshfs, a container's bind mount), often written by the same run.
A symbolic link is followed and the file it points to is replaced (the link stays a link); a
character device or a FIFO (``/dev/null``, ``/dev/stdout``, a named pipe) is written directly,
since renaming over it would destroy the node; anything else that is not a regular file (a
folder, a block device, a socket) is refused.

Temporary files are named ``.NAME.PID.RANDOM.tmp``. One left behind by a killed process (its
PID no longer runs) is removed the next time NAME is written.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from ..errors import FileError

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_temporary_path", "AtomicStream"]


def _default_mode() -> int:
    """0o666 less the process umask: what ``open(path, "w")`` would give (mkstemp gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists but not ours, or cannot tell: keep its files
    return True


def _remove_stale_temporaries(folder: Path, name: str) -> None:
    """Delete ``.NAME.PID.*`` temporaries of processes that no longer run (killed writers)."""
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)\.[A-Za-z0-9_]+\.[A-Za-z0-9_.]+\Z")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or _pid_running(int(match.group(1))):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
        except OSError:
            pass


def _resolve_target(path: Path) -> tuple[Path, bool]:
    """The file to write (a symlink's target) and whether it must be written directly.

    Raises :class:`FileError` for a target that is neither a regular file, a character
    device nor a FIFO, and for a regular file of another user in a shared folder.
    """
    real = Path(os.path.realpath(path)) if os.path.islink(path) else path
    try:
        # the node a write through the link reaches: realpath cannot name a pipe or socket
        # behind /dev/stdout (/proc/self/fd/1 -> "pipe:[...]"), os.stat of the link can
        info = os.stat(path)
    except FileNotFoundError:
        return real, False
    except OSError as error:
        raise FileError(path, f"cannot write ({error.strerror or error})") from None
    mode = info.st_mode
    if stat.S_ISREG(mode):
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid() and _shared(_folder(real)):
            raise FileError(path, f"cannot write: it belongs to another user (uid {info.st_uid}) "
                                  "in a shared folder; nepzbl only replaces its user's own files "
                                  "there")
        return real, False
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return Path(path), True  # opened through the link, as the shell's redirection is
    kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
    raise FileError(path, f"cannot write: it is {kind}")


def _shared(folder: Path) -> bool:
    """Whether other users can write into ``folder`` (group- or world-writable). Only there is
    another user's file theirs to keep: in a folder of one user, files of another uid are that
    user's own under a mapped owner (NFS root_squash, sshfs, a container's bind mount), which
    the same run writes again (nep.txt, loss.out, the checkpoint)."""
    try:
        return bool(os.stat(folder).st_mode & (stat.S_IWGRP | stat.S_IWOTH))
    except OSError:
        return True


def _temporary(folder: Path, name: str, suffix: str) -> tuple[int, str]:
    _remove_stale_temporaries(folder, name)
    return tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=suffix, dir=folder)


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, flushed to disk, with the usual permissions.

    Raises
    ------
    FileError
        When the file cannot be written (read-only folder, disk full, not a regular file);
        the previous file, if any, is left as it was.
    """
    stream = AtomicStream(path, binary=True)
    try:
        stream.handle.write(data)
    except BaseException as error:
        stream.discard()
        if isinstance(error, OSError):
            raise FileError(stream.path, f"cannot write ({error.strerror or error})") from None
        raise
    stream.commit()


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


class atomic_temporary_path:
    """Context manager for writers that need a file name (matplotlib's ``savefig``)::

        with atomic_temporary_path("plot.png") as tmp:
            fig.savefig(tmp)

    The file appears at its final name only when the block succeeds. A symlink is followed;
    a character device or FIFO receives the finished file's bytes.
    """

    def __init__(self, path, suffix: str = ".tmp"):
        self.path = Path(path)
        self.suffix = suffix

    def __enter__(self) -> str:
        self.target, self.direct = _resolve_target(self.path)
        folder = Path(tempfile.gettempdir()) if self.direct else _folder(self.target)
        try:
            fd, self.tmp = _temporary(folder, self.target.name, self.suffix)
        except OSError as error:
            raise FileError(self.path, f"cannot write ({error.strerror or error})") from None
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                if self.direct:
                    with open(self.tmp, "rb") as source, open(self.target, "wb") as sink:
                        sink.write(source.read())
                    os.unlink(self.tmp)
                else:
                    os.chmod(self.tmp, _default_mode())
                    os.replace(self.tmp, self.target)
                return
            except OSError as error:
                self._discard()
                raise FileError(self.path, f"cannot write ({error.strerror or error})") from None
        self._discard()

    def _discard(self) -> None:
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


class AtomicStream:
    """A file written piece by piece (a trajectory; ``binary`` for bytes, else text) that
    takes its name only at :meth:`commit`, flushed to disk with the usual permissions;
    :meth:`discard` drops it; :func:`atomic_write_bytes` is one write through it. A FIFO or
    character device is written directly, a folder or another user's file in a shared folder
    is refused here, before anything is written.
    """

    def __init__(self, path, binary: bool = False):
        self.path = Path(path)
        self.target, self.direct = _resolve_target(self.path)
        self._tmp = None
        mode = "wb" if binary else "w"
        try:
            if self.direct:
                self.handle = open(self.target, mode)
            else:
                fd, self._tmp = _temporary(_folder(self.target), self.target.name, ".tmp")
                self.handle = os.fdopen(fd, mode)
        except OSError as error:
            raise FileError(self.path, f"cannot write ({error.strerror or error})") from None

    def commit(self) -> None:
        """Flush the file to disk and give it its name."""
        try:
            self.handle.flush()
            if self._tmp is not None:
                os.fsync(self.handle.fileno())
            self.handle.close()
            if self._tmp is not None:
                os.chmod(self._tmp, _default_mode())
                os.replace(self._tmp, self.target)
                self._tmp = None
        except OSError as error:
            self.discard()
            raise FileError(self.path, f"cannot write ({error.strerror or error})") from None

    def discard(self) -> None:
        """Close and delete the unfinished file (the previous one, if any, stays)."""
        try:
            self.handle.close()
        except OSError:
            pass
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None
