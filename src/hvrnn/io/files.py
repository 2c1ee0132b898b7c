"""File hashing, the check that keeps outputs from being overwritten, atomic writes and reads
that name the file they failed on."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hvrnn.errors import UserError

# Temporary files of a writer: ".<stem>.tmp-<pid><suffix>" (the suffix kept for writers that
# choose the format from it), plus whatever such a writer derives from that name.
_TEMPORARY = re.compile(r"^\..*\.tmp-\d+")
LOCK_NAME = ".hvrnn.lock"


def sha256_file(path: str | Path, chunk_size: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in blocks of ``chunk_size`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def temporary_name(path: str | Path) -> Path:
    """Where a writer of ``path`` writes before the rename: ``.<stem>.tmp-<pid><suffix>``."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def is_temporary(name: str) -> bool:
    """Whether a file name is a writer's temporary file (see :func:`temporary_name`)."""
    return bool(_TEMPORARY.match(name))


def named(exc: OSError, path: str | Path) -> OSError:
    """``exc`` with ``path`` as its file name when it has none (a failed ``write`` on an open
    file names no file), so that the message can say which file could not be written."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the platform allows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over ``path``.

    A reader sees the old file or the complete new one, never a torn one; on any failure the
    temporary file is removed and ``path`` is left as it was. The temporary name keeps the suffix
    of ``path`` (writers that pick the format from it, such as image libraries, still work).

    Raises:
        OSError: the write or the rename failed; its ``filename`` is ``path``.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise named(exc, path) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    """``data`` written to ``path`` with :func:`write_atomically`, fsynced before the rename."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return write_atomically(path, write)


def reason(exc: BaseException) -> str:
    """One line saying why a read failed."""
    if isinstance(exc, UnicodeDecodeError):
        return (f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
                f"{exc.start})")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, ValueError) and "allow_pickle" in str(exc):
        # numpy's advice to load it unsafely is wrong here: hvrnn never unpickles a file
        return ("not a NumPy array file (no .npy header; numpy takes such a file for pickled "
                "objects, which are never loaded)")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


# What reading a damaged or foreign file raises (besides OSError): a broken archive, a bad
# compressed stream, a short file, text that is not UTF-8, a pickled or malformed array, an
# archive member compressed or encrypted with a method Python does not implement
# (NotImplementedError, RuntimeError from zipfile).
READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error,
               pickle.UnpicklingError, UnicodeDecodeError, NotImplementedError)


@contextmanager
def reading(path: str | Path, what: str = "file", error: type[UserError] = UserError,
            hint: str = "") -> Iterator[None]:
    """Turn a failure to read ``path`` inside the block into one ``error`` naming it (with
    ``hint``, what to do about it)."""
    try:
        yield
    except UserError:
        raise
    except READ_ERRORS as exc:
        raise error(f"cannot read {what} '{path}': {reason(exc)}", hint=hint) from None


def read_text(path: str | Path, what: str = "file", error: type[UserError] = UserError) -> str:
    """The UTF-8 text of ``path``; a missing, unreadable or non-UTF-8 file raises ``error``."""
    with reading(path, what, error):
        return Path(path).read_text(encoding="utf-8")


def occupants(path: Path) -> list[Path]:
    """The entries of a folder other than a lock and writers' temporary files."""
    return [p for p in path.iterdir() if p.name != LOCK_NAME and not is_temporary(p.name)]


def prepare_output_dir(path: str | Path, *, force: bool = False, what: str = "output folder",
                       advice: str = "choose another --out or pass --force to replace its files",
                       watched: tuple[str, ...] = (), error: type[UserError] = UserError,
                       create: bool = True) -> Path:
    """Refuse to write into an occupied folder unless ``force``; then create it.

    Args:
        path: the folder.
        force: allow an occupied folder (its files are then replaced one by one).
        what: how messages name the folder ("run directory", ...).
        advice: the end of the refusal message: what the user can do instead.
        watched: if given, only these file names make the folder occupied (an evaluation
            folder may hold other files); otherwise any entry does (a lock or a writer's
            temporary file does not).
        error: the exception class raised (a :class:`UserError`).
        create: create the folder and check that it is writable.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ``error``: the path is a file, or an occupied folder without ``force``; or the folder
            cannot be created or written.
    """
    path = Path(path)
    check_output_dir(path, force=force, what=what, advice=advice, watched=watched, error=error)
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".hvrnn-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise error(f"cannot write to {what} '{path}': {exc.strerror or exc}") from None
    return path


def check_output_dir(path: Path, *, force: bool, what: str, advice: str,
                     watched: tuple[str, ...] = (), error: type[UserError] = UserError) -> None:
    """The refusals of :func:`prepare_output_dir`, without creating anything."""
    if path.exists() and not path.is_dir():
        raise error(f"{what} '{path}' exists and is not a folder", hint=advice)
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise error(f"cannot write to {what} '{path}': '{parent}' is a file, not a folder")
    if force or not path.is_dir():
        return
    if watched:
        taken = [path / name for name in watched if (path / name).exists()]
        if taken:
            raise error(f"'{taken[0]}' already exists", hint=advice)
    elif occupants(path):
        raise error(f"{what} '{path}' already exists and is not empty", hint=advice)
