"""Prepared-dataset folders: ``manifest.json``, how a preparation writes its folder, and the
command that prepares a folder again.

A prepared dataset is one folder holding uint8 ``.npy`` arrays and a ``manifest.json`` that records
where the data came from, the preparation parameters, the number of clips per split, the SHA-256,
size, dtype and shape of every data file, and the arguments of the command that prepared it. A
preparation writes every file under a temporary name and renames them into place when all are
complete, the manifest last (:class:`Preparation`), so a folder without a manifest is an
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
      "files": {"test.npy": {"sha256": "...", "bytes": 94371968,
                             "array": {"dtype": "uint8", "shape": [256, 30, 64, 64, 3]}},
                "digits.npz": {"sha256": "...", "bytes": ...,
                               "arrays": {"train": {"dtype": "uint8", "shape": [...]}, ...}}},
      "prepare_args": ["data", "bair", "SRC"],   # the command, without --out and --force
      "prepare_command": "hvrnn data bair SRC --out DIR",
      "library_version": "0.1.0"
    }

``layout`` is ``clips`` (one array ``(N, T, H, W, C)``) or ``videos`` (frames of all videos
concatenated, ``(F, H, W, C)``, plus ``offsets``: int64 ``(N + 1,)`` so that video ``i`` is
``frames[offsets[i]:offsets[i + 1]]``). The checks of a folder against its manifest are in
:mod:`hvrnn.data.integrity`.
"""

from __future__ import annotations

import json
import shlex
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hvrnn.data.commands import (
    MANIFEST_NAME,
    again,
    command_args,
    fix_command,
)
from hvrnn.data.integrity import check_arrays, check_manifest
from hvrnn.data.writers import ArrayWriter, FrameStreamWriter, save_array, save_json
from hvrnn.errors import DataError
from hvrnn.io.files import reading, sha256_file
from hvrnn.io.npy import read_header
from hvrnn.io.output import OutputFolder

FORMAT_VERSION = 1

__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "ArrayWriter", "FrameStreamWriter", "Preparation",
           "begin_preparation", "check_file", "command_args", "fix_command", "read_manifest",
           "save_array", "save_json", "verify", "write_manifest"]


# ---- writing -----------------------------------------------------------------------------------


def describe_array(path: Path) -> dict[str, Any]:
    """``{"array": {dtype, shape}}`` of an ``.npy`` file, ``{"arrays": {name: ...}}`` of the
    members of an ``.npz`` archive, ``{}`` for other files."""
    if path.suffix == ".npy":
        with open(path, "rb") as f:
            shape, dtype, _, _ = read_header(f)
        return {"array": {"dtype": dtype.name, "shape": list(shape)}}
    if path.suffix == ".npz":
        members = {}
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                with z.open(name) as f:
                    shape, dtype, _, _ = read_header(f)
                members[name[:-4]] = {"dtype": dtype.name, "shape": list(shape)}
        return {"arrays": members}
    return {}


def write_manifest(out: str | Path, *, dataset: str, source: str,
                   parameters: Mapping[str, Any], splits: Mapping[str, Mapping[str, Any]],
                   files: Iterable[str], prepare_command: str,
                   prepare_args: list[str] | None = None,
                   locations: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """Hash and describe ``files`` (names relative to ``out``) and write ``out/manifest.json``.

    Args:
        out: the prepared folder.
        dataset: registry name (``data.name``) of the dataset.
        source: description of the raw data (a path, a package, "generated").
        parameters: preparation parameters; must hold ``image_size`` and ``channels``.
        splits: per split, ``file``, ``layout`` and ``count`` (plus ``offsets`` for videos).
        files: every data file of the folder.
        prepare_command: the command line that prepared this folder.
        prepare_args: its arguments without ``--out`` and ``--force`` (:func:`command_args`),
            from which error messages rebuild the command for the folder at hand.
        locations: where each file (and the manifest) is written now, when that is not
            ``out/<name>`` (the temporary names of a :class:`Preparation`).

    Returns:
        The manifest as a dict.
    """
    from hvrnn import __version__

    out, where = Path(out), dict(locations or {})
    entries = {}
    for name in sorted(set(files)):
        p = where.get(name, out / name)
        entries[name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size,
                         **describe_array(p)}
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "source": source,
        "parameters": dict(parameters),
        "splits": {k: dict(v) for k, v in splits.items()},
        "counts": {k: int(v["count"]) for k, v in splits.items()},
        "files": entries,
        **({"prepare_args": list(prepare_args)} if prepare_args else {}),
        "prepare_command": prepare_command,
        "library_version": __version__,
    }
    save_json(where.get(MANIFEST_NAME, out / MANIFEST_NAME), manifest)
    return manifest


class Preparation(OutputFolder):
    """The output folder of a dataset preparation (an :class:`~hvrnn.io.output.OutputFolder`
    with the manifest as its completion marker).

    ``with begin_preparation(out, force, args) as prep:`` write each file to
    ``prep.temp(name)``, then call :meth:`write_manifest`; the files appear when the block ends.
    """

    def __init__(self, out: str | Path, force: bool, args: list[str]) -> None:
        self.args = list(args)
        super().__init__(out, force=force, what="data folder", error=DataError,
                         advice="choose another --out or pass --force to replace its "
                                "prepared files")

    def write_manifest(self, **fields: Any) -> dict[str, Any]:
        """:func:`write_manifest` over the files written so far (see its arguments)."""
        self.temp(MANIFEST_NAME, marker=True)
        command = shlex.join(["hvrnn", *self.args[:2], "--out", str(self.path),
                              *self.args[2:]])
        return write_manifest(self.path, prepare_command=command, prepare_args=self.args,
                              locations=dict(self.files), **fields)


def begin_preparation(out: str | Path, force: bool, args: list[str] | str) -> Preparation:
    """The :class:`Preparation` of ``out``; entering it refuses a non-empty folder unless
    ``force``, creates the folder and takes its lock.

    With ``force`` the files of the earlier preparation stay readable until the new ones are
    complete; then the old manifest is removed, the new files renamed into place and the new
    manifest written last.

    Args:
        args: the preparing command's arguments (:func:`command_args`).
    """
    return Preparation(out, force, shlex.split(args)[1:] if isinstance(args, str) else args)


# ---- reading -----------------------------------------------------------------------------------


def read_manifest(root: str | Path, hint: str = "") -> dict[str, Any]:
    """Load ``root/manifest.json`` and check it against itself.

    Args:
        root: a prepared dataset folder.
        hint: the command that prepares it, quoted in error messages.

    Raises:
        DataError: the folder or its manifest is missing, unreadable, of another format, or
            contradicts itself (:func:`hvrnn.data.integrity.check_manifest`).
    """

    root = Path(root)
    how = f"prepare it with: {hint}" if hint else ""
    if not root.exists():
        raise DataError(f"data root '{root}' does not exist", hint=how)
    if not root.is_dir():
        raise DataError(f"data root '{root}' is not a folder", hint=how)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise DataError(f"data root '{root}' has no {MANIFEST_NAME} (not prepared, or the "
                        f"preparation was interrupted)", hint=how)
    with reading(path, "manifest", DataError):
        manifest = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise DataError(f"manifest '{path}' has format_version {version!r}; this library reads "
                        f"version {FORMAT_VERSION}", hint=how)
    for key in ("dataset", "parameters", "splits", "files"):
        if key not in manifest:
            raise DataError(f"manifest '{path}' lacks the key {key!r}", hint=how)
    check_manifest(root, manifest)
    return manifest


def check_file(root: str | Path, name: str, manifest: Mapping[str, Any],
               hash_check: bool = True) -> Path:
    """Check one data file against its manifest entry: existence, size, dtype and shape of its
    arrays, and with ``hash_check`` the SHA-256.

    Raises:
        DataError: naming the file, when it is missing, truncated, too long, corrupt or holds
            arrays other than those recorded; with the command that prepares the folder again.
    """

    root = Path(root)
    path = root / name
    how = again(root, manifest)
    entry = manifest["files"].get(name)
    if entry is None:
        raise DataError(f"data file '{path}' is not listed in {root / MANIFEST_NAME}", hint=how)
    if not path.is_file():
        raise DataError(f"data file '{path}' is missing", hint=how)
    size = path.stat().st_size
    if size != entry["bytes"]:
        state = "truncated" if size < entry["bytes"] else "longer than recorded"
        raise DataError(f"data file '{path}' is {state}: {size} bytes, the manifest records "
                        f"{entry['bytes']}", hint=how)
    if hash_check:
        with reading(path, "data file", DataError):
            digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise DataError(f"data file '{path}' is corrupt: SHA-256 {digest[:16]}... differs "
                            f"from the manifest's {entry['sha256'][:16]}...", hint=how)
    check_arrays(root, name, manifest)
    return path


def verify(root: str | Path) -> dict[str, Any]:
    """Check a prepared dataset against its manifest and the manifest against itself.

    Every file listed must exist with the recorded size and SHA-256, and every array in it with
    the dtype and shape the manifest records for it and for its split (count of clips, frame
    size, channels).

    Args:
        root: a prepared dataset folder.

    Returns:
        The manifest, when everything matches.

    Raises:
        DataError: one message naming the first missing, truncated, corrupt or mismatching
            file, and the command that prepares the folder again.
    """
    manifest = read_manifest(root)
    for name in manifest["files"]:
        check_file(root, name, manifest, hash_check=True)
    return manifest
