"""An output folder written as one unit: all of its new files, or none of them.

::

    with OutputFolder(out, force=force) as folder:
        np.savez(folder.temp("samples.npz"), ...)
        folder.write_bytes("samples.json", text.encode())
    # both files appear here, renamed into place; on an exception neither does

Entering refuses an occupied folder (unless ``force``), creates the folder if needed and takes
its lock (:class:`~hvrnn.io.locks.FolderLock`: a second writer is refused with the holder's
PID). Files are written under temporary names (:func:`~hvrnn.io.files.temporary_name`) and
renamed into place when the block ends without an exception, the completion marker last. Any
exception (a full disk, a read-only file system, Ctrl-C, a bug) removes the temporaries and any
folder the block created, and leaves existing files as they were.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from hvrnn.errors import UserError
from hvrnn.io.files import (
    check_output_dir,
    fsync_dir,
    is_temporary,
    named,
    temporary_name,
    write_atomically,
    write_bytes_atomically,
)
from hvrnn.io.locks import FolderLock


class OutputFolder:
    """The folder ``path`` and the files written into it by one command.

    Args:
        path: the folder.
        force: write into a folder that already holds outputs (those named anew are replaced).
        what: how messages name the folder.
        advice: what the refusal of an occupied folder suggests.
        watched: names that make the folder occupied (default: any entry).
        error: the :class:`UserError` class of refusals.
    """

    def __init__(self, path: str | Path, *, force: bool = False, what: str = "output folder",
                 advice: str = "choose another --out or pass --force to replace its files",
                 watched: tuple[str, ...] = (), error: type[UserError] = UserError) -> None:
        self.path = Path(path)
        self.force, self.what, self.advice = force, what, advice
        self.watched, self.error = tuple(watched), error
        self.files: dict[str, Path] = {}
        self.marker: str | None = None
        self.created: Path | None = None
        self.lock = FolderLock(self.path, what)

    # ---- entering --------------------------------------------------------------------------
    def check(self) -> None:
        """The refusals of an existing file or an occupied folder, without creating anything."""
        check_output_dir(self.path, force=self.force, what=self.what, advice=self.advice,
                         watched=self.watched, error=self.error)

    def __enter__(self) -> OutputFolder:
        self.check()
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise named(exc, self.path) from None
        self.created = missing[-1] if missing else None
        try:
            self.lock.acquire()
            self.check()  # again, now that no other writer can change it
            for p in self.path.iterdir():
                if is_temporary(p.name) and p.is_file():  # left by a killed writer
                    p.unlink(missing_ok=True)
        except BaseException:
            self._cleanup()
            raise
        return self

    # ---- writing ---------------------------------------------------------------------------
    def temp(self, name: str, marker: bool = False) -> Path:
        """The path to write ``name`` to; renamed to ``self.path / name`` by :meth:`commit`.

        Args:
            name: a file name in the folder.
            marker: the file that says the folder is complete (renamed last; an existing one
                is removed before any other file is replaced).
        """
        if name not in self.files:
            self.files[name] = temporary_name(self.path / name)
        if marker:
            self.marker = name
        return self.files[name]

    def write(self, name: str, write: Callable[[Path], object], marker: bool = False) -> Path:
        """Call ``write(tmp)`` for ``name``; a failure names ``name``'s final path."""
        tmp = self.temp(name, marker)
        try:
            write(tmp)
        except OSError as exc:
            raise named(exc, self.path / name) from None
        return tmp

    def write_bytes(self, name: str, data: bytes, marker: bool = False) -> Path:
        """Write ``data`` as ``name`` (a temporary file until :meth:`commit`)."""
        tmp = self.temp(name, marker)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise named(exc, self.path / name) from None
        return tmp

    def write_text(self, name: str, text: str, marker: bool = False) -> Path:
        return self.write_bytes(name, text.encode("utf-8"), marker)

    # ---- leaving ---------------------------------------------------------------------------
    def commit(self) -> None:
        """Rename every file into place (the marker last) and flush the folder."""
        names = [n for n in self.files if n != self.marker]
        if self.marker is not None:
            (self.path / self.marker).unlink(missing_ok=True)
            names.append(self.marker)
        for name in names:
            try:
                os.replace(self.files[name], self.path / name)
            except OSError as exc:
                raise named(exc, self.path / name) from None
        self.files.clear()
        fsync_dir(self.path)

    def _cleanup(self) -> None:
        """Remove the temporaries, release the lock, and remove the folders this created."""
        for tmp in self.files.values():
            for p in tmp.parent.glob(tmp.name + "*"):  # with what writers derived from it
                p.unlink(missing_ok=True)
        self.files.clear()
        self.lock.release()
        if self.created is not None:
            for folder in (self.path, *self.path.parents):
                try:
                    folder.rmdir()
                except OSError:
                    break
                if folder == self.created:
                    break

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        final = {str(tmp): str(self.path / name) for name, tmp in self.files.items()}
        try:
            if kind is None:
                self.commit()
                self.created = None
        finally:
            self._cleanup()
        if isinstance(exc, OSError) and exc.filename is not None:
            shown = final.get(str(exc.filename).removesuffix(".part").removesuffix(".partial"))
            if shown is not None:  # name the file being written, not its temporary name
                raise type(exc)(exc.errno, exc.strerror, shown) from None


def put(out: OutputFolder | Path, name: str, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` for the file ``name`` of ``out``: it appears with the rest of the unit (an
    :class:`OutputFolder`) or is renamed into place at once (a plain folder,
    :func:`~hvrnn.io.files.write_atomically`). Returns the path written."""
    if isinstance(out, OutputFolder):
        return out.write(name, write)
    return write_atomically(Path(out) / name, write)


def put_bytes(out: OutputFolder | Path, name: str, data: bytes) -> Path:
    """``data`` as the file ``name`` of ``out``, as :func:`put` (fsynced in a plain folder)."""
    if isinstance(out, OutputFolder):
        return out.write_bytes(name, data)
    return write_bytes_atomically(Path(out) / name, data)

