"""Writers of prepared arrays: a clip array of known shape, frames of videos of any length.

Both stream rows to the file in order (never a memory map: on a full disk a write fails with
ENOSPC where a memory map would kill the process with SIGBUS), write under ``<name>.partial``
and rename to ``<name>`` on :meth:`close`; a failure (or :meth:`abort`) removes the partial file.
Inside a preparation (:func:`hvrnn.data.manifest.begin_preparation`) ``<name>`` is itself a
temporary name of the folder, renamed when the whole preparation is complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from hvrnn.errors import DataError
from hvrnn.io.files import named, write_atomically
from hvrnn.io.npy import NpyWriter


class _Streamed:
    """Common part: a ``.partial`` file opened for writing, renamed by close, removed by abort."""

    path: Path
    tmp: Path
    file: BinaryIO | None

    def _open(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".partial")
        try:
            self.file = open(self.tmp, "wb")  # noqa: SIM115  (closed by close() or abort())
        except OSError as exc:
            raise named(exc, self.path) from None

    def _finish(self) -> None:
        try:
            self.file.close()
            self.file = None
            os.replace(self.tmp, self.path)
        except BaseException as exc:
            self.abort()
            raise named(exc, self.path) if isinstance(exc, OSError) else exc from None

    def abort(self) -> None:
        """Drop the partial file (nothing is left under either name)."""
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
            self.file = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is not None:
            self.abort()

    def _write(self, write: Any, *args: Any) -> None:
        try:
            write(*args)
        except BaseException as exc:
            self.abort()
            raise named(exc, self.path) if isinstance(exc, OSError) else exc from None


class ArrayWriter(_Streamed):
    """Writes a uint8 ``.npy`` array of known ``shape`` row by row, in order (``writer[i] =
    row`` for i = 0, 1, ...), without holding it in memory."""

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: Any = np.uint8):
        self._open(path)
        self.shape, self.next = tuple(shape), 0
        self._write(self._start, dtype)

    def _start(self, dtype: Any) -> None:
        self.rows = NpyWriter(self.file, self.shape[1:], dtype, rows=self.shape[0])

    def __setitem__(self, index: int, value: np.ndarray) -> None:
        if index != self.next:
            raise ValueError(f"rows of '{self.path}' are written in order: expected row "
                             f"{self.next}, got {index}")
        self._write(self.rows.write, np.asarray(value)[None])
        self.next += 1

    def close(self) -> Path:
        self._write(self.rows.close)
        self._finish()
        return self.path


class FrameStreamWriter(_Streamed):
    """Writes videos of different lengths as one uint8 array ``(F, H, W, C)`` plus offsets.

    :meth:`close` also writes the int64 offsets ``(N + 1,)`` to ``offsets_path`` (default
    ``<name>_offsets.npy``).
    """

    def __init__(self, path: str | Path, frame_shape: tuple[int, int, int],
                 offsets_path: str | Path | None = None):
        self._open(path)
        self.offsets_path = Path(offsets_path) if offsets_path is not None else \
            self.path.with_name(self.path.stem + "_offsets.npy")
        self.frame_shape = tuple(frame_shape)
        self.lengths: list[int] = []
        self._write(self._start)

    def _start(self) -> None:
        self.writer = NpyWriter(self.file, self.frame_shape, np.uint8)

    def add(self, frames: np.ndarray) -> None:
        """Append one video, uint8 ``(T, H, W, C)``."""
        if frames.dtype != np.uint8 or tuple(frames.shape[1:]) != self.frame_shape:
            self.abort()
            raise DataError(f"video frames {frames.dtype} {frames.shape[1:]} do not match "
                            f"uint8 {self.frame_shape} of '{self.path}'")
        self._write(self.writer.write, frames)
        self.lengths.append(int(frames.shape[0]))

    def close(self) -> tuple[Path, Path]:
        self._write(self.writer.close)
        self._finish()
        offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        save_array(self.offsets_path, offsets)
        return self.path, self.offsets_path


def save_array(path: str | Path, array: np.ndarray) -> Path:
    """Save a small array atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)

    return write_atomically(path, write)


def save_json(path: str | Path, obj: Any) -> Path:
    """Save ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
