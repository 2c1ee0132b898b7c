"""BAIR robot pushing, action-free (docs/design.md section 5.2), read straight from the TFRecords.

Source: ``bair_robot_pushing_dataset_v0.tar`` or its extracted folder,
``softmotion30_44k/{train,test}/*.tfrecords``. Each record is a ``tf.train.Example`` holding, for
``i`` in 0..29, the feature ``<i>/image_aux1/encoded``: the raw bytes of a 64 x 64 x 3 uint8 RGB
frame (not an encoded image). Actions and end-effector states are ignored.

No TensorFlow is needed: :func:`read_tfrecord` reads the record framing (length, masked CRC-32C of
the length, payload, masked CRC-32C of the payload; the CRCs are checked when the ``crc32c``
module is available) and :func:`parse_example` decodes the few protobuf fields of an ``Example``.

Clip order: files in natural filename order (``traj_256_to_511`` after ``traj_0_to_255``, i.e. by
first trajectory number, as the official converter's numbering implies), then records in file
order. Output: ``train.npy`` and ``test.npy``, uint8 ``(N, 30, 64, 64, 3)`` (43,264 and 256 clips
for the full dataset), and ``manifest.json``.
"""

from __future__ import annotations

import gzip
import lzma
import re
import struct
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from hvrnn.data.base import register_prepared
from hvrnn.data.manifest import ArrayWriter, begin_preparation, command_args
from hvrnn.data.transforms import natural_key
from hvrnn.errors import DataError
from hvrnn.io.files import reason
from hvrnn.log import progress

FRAMES = 30
SIZE = 64
FRAME_KEY = "{}/image_aux1/encoded"
SPLITS = ("train", "test")
_MASK_DELTA = 0xA282EAD8

try:  # the C implementation shipped with the `tfrecord` package; without it CRCs are skipped
    from crc32c import crc32c as _crc32c
except ImportError:  # pragma: no cover
    _crc32c = None


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data`` (needs the ``crc32c`` module)."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# ---- TFRecord framing -----------------------------------------------------------------------


def read_tfrecord(fh: IO[bytes], where: str, check_crc: bool = True) -> Iterator[bytes]:
    """Yield the payloads of a TFRecord stream.

    Raises:
        DataError: a truncated record or a CRC mismatch, naming ``where`` and the record number.
    """
    check = check_crc and _crc32c is not None
    index = 0
    while True:
        header = fh.read(12)
        if not header:
            return
        if len(header) < 12:
            raise DataError(f"'{where}': record {index} is truncated (incomplete header)")
        length_bytes, length_crc = header[:8], struct.unpack("<I", header[8:])[0]
        if check and masked_crc(length_bytes) != length_crc:
            raise DataError(f"'{where}': record {index} has a bad length checksum (corrupt file)")
        (length,) = struct.unpack("<Q", length_bytes)
        payload = fh.read(length)
        footer = fh.read(4)
        if len(payload) < length or len(footer) < 4:
            raise DataError(f"'{where}': record {index} is truncated")
        if check and masked_crc(payload) != struct.unpack("<I", footer)[0]:
            raise DataError(f"'{where}': record {index} has a bad data checksum (corrupt file)")
        yield payload
        index += 1


def count_tfrecords(fh: IO[bytes], where: str) -> int:
    """Number of records in a seekable TFRecord stream (reads only the headers)."""
    n = 0
    while True:
        header = fh.read(12)
        if not header:
            return n
        if len(header) < 12:
            raise DataError(f"'{where}': record {n} is truncated (incomplete header)")
        (length,) = struct.unpack("<Q", header[:8])
        fh.seek(length + 4, 1)
        n += 1


# ---- tf.train.Example protobuf ----------------------------------------------------------------


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, memoryview | int]]:
    """(field number, wire type, value) of a protobuf message; LEN values as memoryviews."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated protobuf message")
        yield number, wire, value


def parse_example(payload: bytes) -> dict[str, list[bytes]]:
    """Bytes features of a serialized ``tf.train.Example`` (float and int64 lists are skipped).

    ``Example.features`` (1) -> ``Features.feature`` (1, map entries: key 1, value 2) ->
    ``Feature.bytes_list`` (1) -> ``BytesList.value`` (1, repeated).
    """
    out: dict[str, list[bytes]] = {}
    for number, wire, features in _fields(memoryview(payload)):
        if number != 1 or wire != 2:
            continue
        for fnum, fwire, entry in _fields(features):
            if fnum != 1 or fwire != 2:
                continue
            key, feature = None, None
            for enum, _, val in _fields(entry):
                if enum == 1:
                    key = bytes(val).decode("utf-8")
                elif enum == 2:
                    feature = val
            if key is None or feature is None:
                continue
            for knd, kwire, lst in _fields(feature):
                if knd == 1 and kwire == 2:  # bytes_list
                    out[key] = [bytes(v) for n, _, v in _fields(lst) if n == 1]
    return out


def example_frames(payload: bytes, where: str) -> np.ndarray:
    """The 30 frames of one BAIR record: uint8 ``(30, 64, 64, 3)``."""
    try:
        feats = parse_example(payload)
    except (ValueError, IndexError) as exc:
        raise DataError(f"{where}: not a tf.train.Example ({exc})") from None
    frames = np.empty((FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    for i in range(FRAMES):
        key = FRAME_KEY.format(i)
        values = feats.get(key)
        if not values or len(values[0]) != SIZE * SIZE * 3:
            got = "missing" if not values else f"{len(values[0])} bytes"
            raise DataError(f"{where}: feature {key!r} is {got}; expected {SIZE * SIZE * 3} raw "
                            f"bytes")
        frames[i] = np.frombuffer(values[0], dtype=np.uint8).reshape(SIZE, SIZE, 3)
    return frames


# ---- sources ---------------------------------------------------------------------------------

_SPLIT_RE = re.compile(r"(?:^|/)(train|test)/[^/]+\.tfrecords?$")


# What reading a damaged or cut compressed archive raises besides tarfile.TarError.
_ARCHIVE_ERRORS = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)


@contextmanager
def _member(src: str | Path, name: str) -> Iterator[None]:
    """Reading the member ``name`` of ``src``: a cut or damaged archive is one DataError."""
    try:
        yield
    except (tarfile.TarError, *_ARCHIVE_ERRORS) as exc:
        raise DataError(f"cannot read '{src}:{name}': {reason(exc)} (a cut or damaged "
                        "archive)") from None
    except OSError as exc:
        if exc.errno is not None:  # the disk: a full output disk, a missing file
            raise
        raise DataError(f"cannot read '{src}:{name}': {reason(exc)} (a cut or damaged "
                        "archive)") from None


class _Source:
    """Lists and opens the ``{train,test}/*.tfrecords`` of a folder or a tar archive."""

    def __init__(self, src: str | Path, stack: ExitStack):
        self.src = Path(src)
        self.tar: tarfile.TarFile | None = None
        self.files: dict[str, list[tuple[str, object]]] = {s: [] for s in SPLITS}
        if self.src.is_file():
            try:
                self.tar = stack.enter_context(tarfile.open(self.src))
                members = self.tar.getmembers()  # reads the whole archive: a cut one fails
            except (tarfile.TarError, OSError, *_ARCHIVE_ERRORS) as exc:
                raise DataError(f"BAIR source '{self.src}' is not a readable tar: "
                                f"{reason(exc)}") from None
            for m in members:
                match = _SPLIT_RE.search(m.name)
                if m.isfile() and match:
                    self.files[match.group(1)].append((m.name, m))
        elif self.src.is_dir():
            for p in self.src.rglob("*.tfrecord*"):
                match = _SPLIT_RE.search(p.relative_to(self.src).as_posix())
                if match and not p.is_file():  # a link to a folder, a device or nothing
                    raise DataError(f"'{p}' is not a file (a link to a folder, a device or a "
                                    "missing file?); the BAIR source holds .tfrecords files")
                if match:
                    self.files[match.group(1)].append((p.relative_to(self.src).as_posix(), p))
        else:
            raise DataError(f"BAIR source '{self.src}' does not exist (expected "
                            f"bair_robot_pushing_dataset_v0.tar or its extracted folder)")
        for split in SPLITS:
            self.files[split].sort(key=lambda item: natural_key(Path(item[0]).name))
        if not any(self.files.values()):
            raise DataError(f"BAIR source '{self.src}' holds no train/*.tfrecords or "
                            f"test/*.tfrecords")

    def open(self, handle: object) -> IO[bytes]:
        if self.tar is not None:
            return self.tar.extractfile(handle)  # type: ignore[arg-type, return-value]
        return open(handle, "rb")  # type: ignore[arg-type]


def prepare_bair(src: str | Path, out: str | Path, force: bool = False) -> Path:
    """Convert the BAIR TFRecords into ``train.npy`` / ``test.npy`` plus a manifest.

    Args:
        src: ``bair_robot_pushing_dataset_v0.tar`` or a folder containing
            ``softmotion30_44k/{train,test}/*.tfrecords`` (any depth).
        out: output folder (must be empty or absent unless ``force``).
        force: replace the files of an existing preparation.

    Returns:
        The output folder. Arrays are uint8 ``(N, 30, 64, 64, 3)``, byte-identical to the
        ``image_aux1`` payloads.
    """
    with ExitStack() as stack:
        source = _Source(src, stack)  # a missing or unreadable source is refused first
        prep = stack.enter_context(begin_preparation(out, force, command_args("bair", src)))
        splits, files, records = {}, [], {}
        for split in SPLITS:
            entries = source.files[split]
            if not entries:
                continue
            counts = []
            for name, handle in entries:
                with _member(src, name), source.open(handle) as fh:
                    counts.append(count_tfrecords(fh, f"{src}:{name}"))
            total = sum(counts)
            shape = (total, FRAMES, SIZE, SIZE, 3)
            with ArrayWriter(prep.temp(f"{split}.npy"), shape) as writer:
                _convert(source, entries, writer, total, split, src)
            splits[split] = {"file": f"{split}.npy", "layout": "clips", "count": total,
                             "shape": list(shape)}
            files.append(f"{split}.npy")
            records[split] = [[Path(n).name, c] for (n, _), c in zip(entries, counts, strict=True)]
        params = {"image_size": SIZE, "channels": 3, "frames": FRAMES,
                  "feature": FRAME_KEY.format("<i>"),
                  "order": "files in natural filename order, then records in file order",
                  "records": records}
        prep.write_manifest(dataset="bair", source=str(src), parameters=params, splits=splits,
                            files=files)
    return prep.path


def _convert(source: _Source, entries: list[tuple[str, object]], writer: ArrayWriter,
             total: int, split: str, src: str | Path) -> None:
    """Every record of ``entries`` into ``writer``, in order."""
    i = 0
    with progress(total=total, desc=f"bair {split}") as bar:
        for name, handle in entries:
            with _member(src, name), source.open(handle) as fh:
                for k, payload in enumerate(read_tfrecord(fh, f"{src}:{name}")):
                    writer[i] = example_frames(payload, f"'{src}:{name}' record {k}")
                    i += 1
                    bar.update()
    writer.close()


# Train: random windows in the 30 frames; test: the windows from frame 0.
register_prepared("bair", "hvrnn data bair SRC --out {root}", {"train": "train", "test": "test"})
