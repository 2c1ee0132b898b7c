"""An exclusive lock on a folder while one process writes it.

The lock is ``<folder>/.hvrnn.lock``, held with ``flock``: the kernel releases it when the holder
exits in any way (kill -9 included), so the lock of a dead process is never in the way. The file
records the holder's PID and command line, which a refused writer names. Where ``flock`` is not
available the PID alone decides: a lock whose process no longer runs is taken over.
"""

from __future__ import annotations

import errno
import os
import shlex
import sys
from pathlib import Path

from hvrnn.errors import LockedError
from hvrnn.io.files import LOCK_NAME

try:
    import fcntl
except ImportError:  # pragma: no cover  (not POSIX)
    fcntl = None  # type: ignore[assignment]


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(fd: int) -> tuple[int, str]:
    """(PID, command) recorded in an open lock file; (0, "") when unreadable."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return 0, ""
    first, _, command = text.partition("\n")
    try:
        return int(first.strip()), command.strip()
    except ValueError:
        return 0, ""


def holder(folder: str | Path) -> int | None:
    """The PID of the live process that holds the lock of ``folder``, else None (nothing is
    written)."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        pid, _ = _holder(fd)
        if fcntl is None:  # pragma: no cover
            return pid if _alive(pid) else None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return pid or -1
        except OSError:
            return pid if _alive(pid) else None
        return None
    finally:
        os.close(fd)


class FolderLock:
    """Exclusive lock on ``folder`` (which must exist).

    Args:
        folder: the folder written.
        what: how messages name it ("run directory", "output folder", ...).

    Use as a context manager, or call :meth:`acquire` and :meth:`release`.
    """

    def __init__(self, folder: str | Path, what: str = "folder") -> None:
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def _refuse(self, pid: int, command: str) -> LockedError:
        by = f"process {pid}" + (f" ({command})" if command else "") if pid else \
            "another process"
        return LockedError(f"{self.what} '{self.folder}' is in use by {by}",
                           hint="wait until it ends, or stop it, and run this again")

    def acquire(self) -> FolderLock:
        """Take the lock.

        Raises:
            LockedError: another live process holds it (its PID and command named).
            OSError: the lock file cannot be created (a read-only or full file system).
        """
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = self._lock(fd)
            except BaseException:
                os.close(fd)
                raise
            if locked:
                break
            os.close(fd)  # the file was removed or replaced meanwhile: lock the current one
        self.fd = fd
        record = f"{os.getpid()}\n{shlex.join(['hvrnn', *sys.argv[1:]])}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        return self

    def _lock(self, fd: int) -> bool:
        """Lock ``fd``; False when the path no longer names that file (retry)."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._refuse(*_holder(fd)) from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                self._lock_by_pid(fd)
        else:  # pragma: no cover
            self._lock_by_pid(fd)
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _lock_by_pid(self, fd: int) -> None:
        pid, command = _holder(fd)
        if pid != os.getpid() and _alive(pid):
            raise self._refuse(pid, command)

    def release(self) -> None:
        """Drop the lock and its file (nothing is left in the folder)."""
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
