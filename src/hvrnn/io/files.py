"""File hashing and the check that keeps outputs from being overwritten."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from hvrnn.errors import UserError


def sha256_file(path: str | Path, chunk_size: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in blocks of ``chunk_size`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


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
            folder may hold other files); otherwise any entry does.
        error: the exception class raised (a :class:`UserError`).
        create: create the folder and check that it is writable.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ``error``: the path is a file, or an occupied folder without ``force``; or the folder
            cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise error(f"{what} {str(path)!r} exists and is not a folder")
    if not force and path.is_dir():
        if watched:
            taken = [path / name for name in watched if (path / name).exists()]
            if taken:
                raise error(f"{str(taken[0])!r} already exists; {advice}")
        elif any(path.iterdir()):
            raise error(f"{what} {str(path)!r} already exists and is not empty; {advice}")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".hvrnn-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise error(f"cannot write to {what} {str(path)!r}: {exc.strerror or exc}") from None
    return path


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over ``path``:
    a reader sees the old file or the complete new one, never a torn one. The temporary file
    keeps the suffix of ``path`` (writers that pick the format from it, such as image
    libraries, still work)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
