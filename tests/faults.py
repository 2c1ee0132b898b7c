"""Fault injection and folder fingerprints for the reliability tests.

:func:`fingerprint` lists every file and folder under some roots with the SHA-256 of each file,
so a test can assert that a failed command left them exactly as they were. :class:`Faults`
patches the low-level file-system calls of this process (``open`` and ``io.open`` in a writing
mode, ``os.open`` with a writing flag, ``os.mkdir``, ``os.replace``, ``os.rename``, ``os.link``,
``os.unlink``) for paths under one folder:

- ``Faults(root, errno.ENOSPC, match="*.npz")``: files matching ``match`` open, and their first
  ``write`` after ``after`` bytes raises ``OSError(ENOSPC)`` (a disk that fills up mid-file);
- ``Faults(root, errno.EROFS)`` (or any other code, such as ``EACCES``): every call that would
  change the file system under ``root`` raises ``OSError(code)`` at once (a read-only mount, a
  folder without write permission).
"""

from __future__ import annotations

import builtins
import errno as errno_module
import fnmatch
import hashlib
import io
import os
from pathlib import Path
from typing import Any

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def fingerprint(*roots: Path) -> dict[str, str]:
    """``{path: sha256 | "<dir>"}`` of everything under ``roots`` (hidden files included)."""
    out: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            out[str(root)] = "<absent>"
            continue
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        for p in sorted(root.rglob("*")):
            out[str(p)] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        out[str(root)] = "<dir>"
    return out


class _FailingFile:
    """A real file whose writes fail with ``code`` once ``budget`` bytes have been written."""

    def __init__(self, real: Any, code: int, budget: int, path: str) -> None:
        self._real, self._code, self._budget, self._path = real, code, budget, path

    def write(self, data: Any) -> int:
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        if size > self._budget:
            raise OSError(self._code, os.strerror(self._code))  # a write names no file
        self._budget -= size
        return self._real.write(data)

    def __enter__(self) -> _FailingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._real.close()

    def __iter__(self) -> Any:
        return iter(self._real)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class Faults:
    """The file-system faults described in the module docstring (use with ``monkeypatch``)."""

    def __init__(self, root: Path, code: int, match: str = "*", after: int = 0) -> None:
        self.root, self.code, self.match, self.after = str(Path(root).resolve()), code, match, after
        self.hits = 0

    def _ours(self, path: Any) -> bool:
        try:
            p = os.path.abspath(os.fsdecode(os.fspath(path)))
        except TypeError:  # a file descriptor
            return False
        return p.startswith(self.root) and fnmatch.fnmatch(os.path.basename(p), self.match)

    def _refuse(self, path: Any) -> None:
        self.hits += 1
        raise OSError(self.code, os.strerror(self.code), os.fspath(path))

    def install(self, monkeypatch: Any) -> Faults:
        real_open, real_os_open = builtins.open, os.open
        real = {name: getattr(os, name) for name in ("mkdir", "replace", "rename", "link",
                                                    "unlink")}
        read_only = self.code not in (errno_module.ENOSPC, errno_module.EDQUOT,
                                      errno_module.EFBIG)

        def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            writing = any(c in mode for c in "wax+")
            if writing and self._ours(file):
                if read_only:
                    self._refuse(file)
                self.hits += 1
                return _FailingFile(real_open(file, mode, *args, **kwargs), self.code,
                                    self.after, os.fspath(file))
            return real_open(file, mode, *args, **kwargs)

        def fake_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if read_only and flags & WRITE_FLAGS and self._ours(path):
                self._refuse(path)
            return real_os_open(path, flags, *args, **kwargs)

        def changing(name: str) -> Any:
            def call(path: Any, *args: Any, **kwargs: Any) -> Any:
                if read_only and self._ours(path):
                    self._refuse(path)
                return real[name](path, *args, **kwargs)
            return call

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
        for name in real:
            monkeypatch.setattr(os, name, changing(name))
        return self
