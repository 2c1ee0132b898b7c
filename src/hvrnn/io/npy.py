"""``.npy`` arrays streamed a block of rows at a time, to and from files or ``.npz`` members.

:class:`NpyWriter` writes the header, then rows as they come. When the number of rows is known in
advance the header is final at once, so the target may be a member of a zip archive; otherwise
the header is written with room for any count and rewritten by :meth:`NpyWriter.close`, which
needs a seekable file (the frames of a videos-layout dataset). :class:`NpzWriter` is the
streaming ``.npz`` writer built on it (``predictions.npz``, sampled or converted from other
layouts), written atomically. :class:`NpyReader` reads an ``.npz`` member a block at a time.
Format: NumPy's ``.npy`` version 1.0 (``numpy.lib.format``), C order.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from hvrnn.errors import UserError
from hvrnn.io.files import named

_MAGIC = b"\x93NUMPY\x01\x00"
_ALIGN = 64
_UNKNOWN_ROWS = 10**15  # placeholder wide enough for any real count


def _header(shape: tuple[int, ...], dtype: np.dtype, length: int | None = None) -> bytes:
    """A version 1.0 header for a C-ordered array, padded to ``length`` bytes (default: the
    next multiple of 64)."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": tuple(int(s) for s in shape)}).encode("latin1")
    fixed = len(_MAGIC) + 2 + len(text) + 1  # magic, length field, text, newline
    total = length if length is not None else -(-fixed // _ALIGN) * _ALIGN
    if total < fixed:
        raise ValueError(f"an .npy header for shape {shape} does not fit in {total} bytes")
    body = text + b" " * (total - fixed) + b"\n"
    return _MAGIC + struct.pack("<H", len(body)) + body


class NpyWriter:
    """Writes an ``.npy`` array row block by row block.

    Args:
        file: an open binary file (or archive member) positioned where the array starts.
        row_shape: shape of one row (all axes but the first).
        dtype: element type.
        rows: total rows if known; ``None`` writes a provisional header that :meth:`close`
            rewrites (``file`` must then be seekable).
    """

    def __init__(self, file: BinaryIO, row_shape: tuple[int, ...], dtype: np.dtype | type,
                 rows: int | None = None) -> None:
        self.file, self.row_shape, self.dtype = file, tuple(row_shape), np.dtype(dtype)
        self.rows, self.written = rows, 0
        self.start = file.tell() if rows is None else 0
        header = _header((_UNKNOWN_ROWS if rows is None else rows, *self.row_shape), self.dtype)
        self.header_length = len(header)
        file.write(header)

    def write(self, block: np.ndarray) -> None:
        """Append rows: ``block`` of shape ``(n, *row_shape)`` (cast to the writer's dtype)."""
        if tuple(block.shape[1:]) != self.row_shape:
            raise ValueError(f"rows of shape {tuple(block.shape[1:])} do not match "
                             f"{self.row_shape}")
        self.file.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.written += block.shape[0]

    def close(self) -> int:
        """Finish the array (the caller closes the file). Returns the number of rows written.

        Raises:
            ValueError: fewer or more rows were written than announced.
        """
        if self.rows is None:
            end = self.file.tell()
            self.file.seek(self.start)
            self.file.write(_header((self.written, *self.row_shape), self.dtype,
                                    self.header_length))
            self.file.seek(end)
        elif self.written != self.rows:
            raise ValueError(f"{self.written} rows were written, {self.rows} announced")
        return self.written


class NpzWriter:
    """An ``.npz`` archive whose first array is streamed a block of rows at a time.

    The archive is written under ``<name>.part`` in the folder of ``path``: the array ``key``
    first (its shape announced, rows appended by :meth:`write`), then the whole arrays given to
    :meth:`close`, which renames the file into place (replacing ``path``). :meth:`abort`
    removes it, so ``path`` never names a half-written archive. Members are deflated (level 1)
    and may exceed 4 GiB (zip64).

    Args:
        path: the ``.npz`` file.
        key: name of the streamed array.
        shape: its full shape; the number of rows must be known, because a zip member cannot be
            rewritten.
        dtype: its element type.
    """

    def __init__(self, path: str | Path, key: str, shape: tuple[int, ...],
                 dtype: np.dtype | type) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".part")
        self.zip: zipfile.ZipFile | None = None
        self.member: BinaryIO | None = None
        try:
            self.zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_DEFLATED,
                                       compresslevel=1)
            self.member = self.zip.open(f"{key}.npy", "w", force_zip64=True)
            self.rows = NpyWriter(self.member, tuple(shape[1:]), dtype, rows=shape[0])
        except OSError as exc:
            self.abort()
            raise named(exc, self.path) from None

    @property
    def complete(self) -> bool:
        """Whether every announced row has been written."""
        return self.rows.written == self.rows.rows

    def write(self, block: np.ndarray) -> None:
        """Append rows of the streamed array (see :meth:`NpyWriter.write`); a failure drops
        the archive."""
        try:
            self.rows.write(block)
        except BaseException as exc:
            self.abort()
            raise named(exc, self.path) if isinstance(exc, OSError) else exc from None

    def close(self, arrays: dict[str, np.ndarray] | None = None) -> Path:
        """Finish the streamed array, add ``arrays`` whole, and move the file into place.

        Raises:
            ValueError: fewer or more rows were written than announced (nothing is installed).
        """
        try:
            self.rows.close()
            self.member.close()
            for key, array in (arrays or {}).items():
                with self.zip.open(f"{key}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.ascontiguousarray(array))
            self.zip.close()
            os.replace(self.tmp, self.path)
        except BaseException as exc:
            self.abort()
            raise named(exc, self.path) if isinstance(exc, OSError) else exc from None
        return self.path

    def abort(self) -> None:
        """Drop the archive: nothing is left at ``path`` or under the temporary name."""
        for part in (self.member, self.zip):
            try:
                if part is not None:
                    part.close()
            except (OSError, ValueError):  # a full disk fails the closing writes too
                pass
        self.tmp.unlink(missing_ok=True)


def check_not_empty(shape: tuple[int, ...], what: str) -> None:
    """Refuse an array with a 0-sized axis (no clips, no frames, no pixels): every reader of
    clips, targets, contexts, predictions and video arrays calls it before any work.

    Raises:
        UserError: naming ``what`` (the file and key) and the shape.
    """
    if any(int(n) == 0 for n in shape):
        raise UserError(f"{what} is empty: its shape {tuple(int(n) for n in shape)} has a "
                        "0-sized axis")


# What zipfile raises for a member it cannot read: a damaged archive, a bad compressed stream,
# a compression method Python does not implement (deflate64, AES encryption, ...).
ZIP_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
                   RuntimeError)


def read_header(file: BinaryIO) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, header bytes)`` of the ``.npy`` array starting at the
    current position of ``file`` (left just after the header).

    Raises:
        ValueError: not an ``.npy`` array (bad magic or header).
    """
    start = file.tell() if file.seekable() else 0
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    length = (file.tell() - start) if file.seekable() else 0
    return tuple(int(n) for n in shape), np.dtype(dtype), bool(fortran), length


class NpyReader:
    """Reads an array stored in an ``.npz`` member sequentially, a block of rows at a time.

    Attributes:
        shape, dtype: of the whole stored array.
    """

    def __init__(self, path: str | Path, key: str) -> None:
        self.path, self.key = path, key
        self.zip = zipfile.ZipFile(path)
        try:
            self.file = self.zip.open(f"{key}.npy")
        except ZIP_READ_ERRORS as exc:  # an encrypted member, an unknown compression method
            self.zip.close()
            raise UserError(f"cannot read '{path}' ({key!r}): {exc}") from None
        try:
            shape, dtype, fortran, _ = read_header(self.file)
        except (ValueError, *ZIP_READ_ERRORS) as exc:
            self.close()
            raise UserError(f"'{path}': {key!r} is not an .npy array ({exc})") from None
        if dtype.hasobject:
            self.close()
            raise UserError(f"'{path}': {key!r} holds Python objects, not numbers; save it "
                            "from a uint8 array")
        if fortran:
            self.close()
            raise UserError(f"{str(path)!r}: {key!r} is stored in Fortran order; save it with "
                            "numpy.savez from a C-ordered array")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        try:
            check_not_empty(self.shape, f"{key!r} in '{path}'")
        except UserError:
            self.close()
            raise
        self.ndim = len(self.shape)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def read(self, rows: int) -> np.ndarray:
        """The next ``rows`` rows (fewer at the end of the array).

        Raises:
            UserError: the archive member is damaged (a bad CRC or compressed stream).
        """
        try:
            data = self.file.read(rows * self.row_bytes)
        except ZIP_READ_ERRORS as exc:
            raise UserError(f"cannot read '{self.path}' ({self.key!r}): {exc}") from None
        n = len(data) // self.row_bytes
        return np.frombuffer(data, dtype=self.dtype).reshape(n, *self.shape[1:])

    def close(self) -> None:
        self.file.close()
        self.zip.close()


def open_npz(path: str | Path, keys: tuple[str, ...], required: str, what: str = "file"
             ) -> dict[str, NpyReader]:
    """Readers for the members ``keys`` present in an ``.npz`` archive.

    Raises:
        UserError: the file is missing, is not an ``.npz`` archive, or lacks ``required``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {str(path)!r} does not exist")
    try:
        with zipfile.ZipFile(path) as z:
            names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"cannot read {what} '{path}': not an .npz archive "
                        f"({getattr(exc, 'strerror', None) or exc})") from None
    if required not in names:
        raise UserError(f"{what} {str(path)!r} has no {required!r} array (it holds: "
                        f"{', '.join(names) or 'nothing'})")
    readers: dict[str, NpyReader] = {}
    try:
        for k in keys:
            if k in names:
                readers[k] = NpyReader(path, k)
    except BaseException:
        for reader in readers.values():
            reader.close()
        raise
    return readers
