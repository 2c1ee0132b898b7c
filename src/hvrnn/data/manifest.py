"""Prepared-dataset folders: safe output handling, ``manifest.json`` and integrity checks.

A prepared dataset is one folder holding uint8 ``.npy`` arrays and a ``manifest.json`` that records
where the data came from, the preparation parameters, the number of clips per split and the
SHA-256 and size of every data file. The manifest is written last, so a folder without one is an
interrupted or foreign preparation and is never read.

Manifest format (``format_version`` 1)::

    {
      "format_version": 1,
      "dataset": "bair",                     # registry name (data.name)
      "source": "...",                       # where the raw data came from
      "parameters": {"image_size": 64, "channels": 3, ...},
      "splits": {"test": {"file": "test.npy", "layout": "clips", "count": 256,
                          "frames": 7680, "shape": [256, 30, 64, 64, 3]}, ...},
      "counts": {"test": 256, ...},
      "files": {"test.npy": {"sha256": "...", "bytes": 94371968}, ...},
      "prepare_command": "hvrnn data bair SRC --out DIR",
      "library_version": "0.1.0"
    }

``layout`` is ``clips`` (one array ``(N, T, H, W, C)``) or ``videos`` (frames of all videos
concatenated, ``(F, H, W, C)``, plus ``offsets``: int64 ``(N + 1,)`` so that video ``i`` is
``frames[offsets[i]:offsets[i + 1]]``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hvrnn.errors import DataError
from hvrnn.io.files import prepare_output_dir, sha256_file
from hvrnn.io.npy import NpyWriter

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


def begin_preparation(out: str | Path, force: bool, command: str) -> Path:
    """Create ``out`` for a new preparation, refusing to reuse a non-empty folder.

    With ``force`` the old manifest is removed first (so a crash leaves the folder marked as
    unprepared); other files are overwritten one by one when the new ones are complete, never
    deleted wholesale.

    Raises:
        DataError: ``out`` is a file, or a non-empty folder and ``force`` is false.
    """
    out = prepare_output_dir(out, force=force, error=DataError,
                             advice=f"pass --force (force=True) to replace the prepared files "
                                    f"in it ({command})")
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    return out


class ArrayWriter:
    """Writes a uint8 ``.npy`` array of known shape in pieces, without holding it in memory.

    Data goes to ``<name>.partial`` and is renamed to ``<name>`` by :meth:`close`, so a crash
    never leaves a truncated file under the final name.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: Any = np.uint8):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".partial")
        self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=dtype, shape=shape)

    def __setitem__(self, index: Any, value: np.ndarray) -> None:
        self.array[index] = value

    def close(self) -> Path:
        self.array.flush()
        del self.array
        os.replace(self.tmp, self.path)
        return self.path


class FrameStreamWriter:
    """Writes videos of different lengths as one uint8 array ``(F, H, W, C)`` plus offsets.

    Frames are streamed into ``<name>.npy.partial`` (renamed by :meth:`close`); :meth:`close`
    also writes the int64 offsets ``(N + 1,)`` to ``<name>_offsets.npy``.
    """

    def __init__(self, path: str | Path, frame_shape: tuple[int, int, int]):
        self.path = Path(path)
        self.offsets_path = self.path.with_name(self.path.stem + "_offsets.npy")
        self.frame_shape = tuple(frame_shape)
        self.tmp = self.path.with_name(self.path.name + ".partial")
        self.file = open(self.tmp, "wb")  # noqa: SIM115  (closed by close())
        self.writer = NpyWriter(self.file, self.frame_shape, np.uint8)
        self.lengths: list[int] = []

    def add(self, frames: np.ndarray) -> None:
        """Append one video, uint8 ``(T, H, W, C)``."""
        if frames.dtype != np.uint8 or tuple(frames.shape[1:]) != self.frame_shape:
            raise DataError(f"video frames {frames.dtype} {frames.shape[1:]} do not match "
                            f"uint8 {self.frame_shape} of '{self.path}'")
        self.writer.write(frames)
        self.lengths.append(int(frames.shape[0]))

    def close(self) -> tuple[Path, Path]:
        self.writer.close()
        self.file.close()
        os.replace(self.tmp, self.path)
        offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        save_array(self.offsets_path, offsets)
        return self.path, self.offsets_path


def save_array(path: str | Path, array: np.ndarray) -> Path:
    """Save a small array atomically (``.partial`` then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)
    return path


def save_json(path: str | Path, obj: Any) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def write_manifest(out: str | Path, *, dataset: str, source: str,
                   parameters: Mapping[str, Any], splits: Mapping[str, Mapping[str, Any]],
                   files: Iterable[str], prepare_command: str) -> dict[str, Any]:
    """Hash ``files`` (names relative to ``out``) and write ``out/manifest.json``.

    Args:
        out: the prepared folder.
        dataset: registry name (``data.name``) of the dataset.
        source: description of the raw data (a path, a package, "generated").
        parameters: preparation parameters; must hold ``image_size`` and ``channels``.
        splits: per split, ``file``, ``layout`` and ``count`` (plus ``offsets`` for videos).
        files: every data file of the folder.
        prepare_command: the command line that prepares this folder (for error messages).

    Returns:
        The manifest as a dict.
    """
    from hvrnn import __version__

    out = Path(out)
    entries = {}
    for name in sorted(set(files)):
        p = out / name
        entries[name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "source": source,
        "parameters": dict(parameters),
        "splits": {k: dict(v) for k, v in splits.items()},
        "counts": {k: int(v["count"]) for k, v in splits.items()},
        "files": entries,
        "prepare_command": prepare_command,
        "library_version": __version__,
    }
    save_json(out / MANIFEST_NAME, manifest)
    return manifest


def read_manifest(root: str | Path, hint: str = "") -> dict[str, Any]:
    """Load ``root/manifest.json``.

    Args:
        root: a prepared dataset folder.
        hint: the command that prepares it, quoted in error messages.

    Raises:
        DataError: the folder or its manifest is missing, unreadable or of another format.
    """
    root = Path(root)
    how = f"; prepare it with: {hint}" if hint else ""
    if not root.exists():
        raise DataError(f"data root '{root}' does not exist{how}")
    if not root.is_dir():
        raise DataError(f"data root '{root}' is not a folder{how}")
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise DataError(f"data root '{root}' has no {MANIFEST_NAME} (not prepared, or the "
                        f"preparation was interrupted){how}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"manifest '{path}' cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise DataError(f"manifest '{path}' has format_version {version!r}; this library reads "
                        f"version {FORMAT_VERSION}{how}")
    for key in ("dataset", "parameters", "splits", "files"):
        if key not in manifest:
            raise DataError(f"manifest '{path}' lacks the key {key!r}{how}")
    return manifest


def check_file(root: str | Path, name: str, manifest: Mapping[str, Any],
               hash_check: bool = True) -> Path:
    """Check one data file against its manifest entry (existence, size, optionally SHA-256).

    Raises:
        DataError: naming the file, when it is missing, truncated, too long or corrupt.
    """
    root = Path(root)
    path = root / name
    redo = manifest.get("prepare_command", "")
    how = f"; prepare the folder again with: {redo} --force" if redo else ""
    entry = manifest["files"].get(name)
    if entry is None:
        raise DataError(f"data file '{path}' is not listed in {root / MANIFEST_NAME}{how}")
    if not path.is_file():
        raise DataError(f"data file '{path}' is missing{how}")
    size = path.stat().st_size
    if size != entry["bytes"]:
        state = "truncated" if size < entry["bytes"] else "longer than recorded"
        raise DataError(f"data file '{path}' is {state}: {size} bytes, the manifest records "
                        f"{entry['bytes']}{how}")
    if hash_check:
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise DataError(f"data file '{path}' is corrupt: SHA-256 {digest[:16]}... differs "
                            f"from the manifest's {entry['sha256'][:16]}...{how}")
    return path


def verify(root: str | Path) -> dict[str, Any]:
    """Check every file of a prepared dataset against its manifest (size and SHA-256).

    Args:
        root: a prepared dataset folder.

    Returns:
        The manifest, when everything matches.

    Raises:
        DataError: one message naming the first missing, truncated or corrupt file.
    """
    manifest = read_manifest(root)
    for name in manifest["files"]:
        check_file(root, name, manifest, hash_check=True)
    return manifest
