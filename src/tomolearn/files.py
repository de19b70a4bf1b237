"""Safe file writing shared by every part of tomolearn that writes files."""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    Readers see either the old file or the complete new one, never a half-written one; the
    temporary file is removed if anything fails.  The file gets the permissions of a normally
    created file (``0o666`` less the umask), or keeps those of the file it replaces.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes it private (0600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class LockedError(OSError):
    """Another process holds the lock on an output (a dataset file, a run directory)."""


@contextmanager
def exclusive_lock(lock_path, what: str):
    """Hold an exclusive, non-blocking lock on ``lock_path`` for the duration of the block.

    ``lock_path`` is a small side file (created if needed, removed on release) that stands
    for the output ``what`` names (e.g. ``"the dataset x.h5"``); the lock is an advisory
    ``flock``, released by the kernel if the process dies, so a killed run never leaves a
    stale lock behind.  Raises :class:`LockedError` at once when another process holds it.
    """
    lock_path = Path(lock_path)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"{what} is being written by another tomolearn process (lock "
                              f"{lock_path} is held); wait for it to finish or choose another "
                              f"output") from None
        # the holder we waited on may have removed the file: lock the file that is there now
        try:
            if os.fstat(fd).st_ino == os.stat(lock_path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock_path
    finally:
        try:
            os.unlink(lock_path)
        except FileNotFoundError:
            pass
        os.close(fd)
