"""A prepared folder's manifest checked against itself, and its arrays against the manifest.

:func:`check_manifest` (every read of a manifest) refuses one that contradicts itself: counts
that differ from the splits, a split's shape that is not ``(count, T, S, S, C)`` for the
recorded ``image_size`` S and ``channels`` C, split files that are not listed, recorded arrays
that differ from their split. :func:`check_arrays` (every loader, and ``hvrnn data verify``)
reads the ``.npy`` headers of a file (the members of an ``.npz``) and refuses a dtype, shape or
length other than the manifest's: a file rewritten as float32, int16 or at another size, even
with its hash updated in the manifest, is caught without reading the data.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hvrnn.data.commands import MANIFEST_NAME, again
from hvrnn.errors import DataError
from hvrnn.io.files import READ_ERRORS, reason
from hvrnn.io.npy import read_header

Expected = tuple[str, tuple[int | None, ...]]  # dtype name, shape (None: any size)


def _shape(text: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("*" if n is None else str(n) for n in text) + ")"


def _fail(root: Path, manifest: Mapping[str, Any], message: str) -> DataError:
    return DataError(f"manifest '{root / MANIFEST_NAME}' contradicts itself: {message}",
                     hint=again(root, manifest))


def _split_arrays(name: str, info: Mapping[str, Any], frame: tuple[int, int, int],
                  ) -> dict[str, Expected]:
    """file -> expected array of one split."""
    if info.get("layout") == "videos":
        out = {info["file"]: ("uint8", (info.get("frames"), *frame))}
        if info.get("offsets"):
            out[info["offsets"]] = ("int64", (int(info["count"]) + 1,))
        return out
    shape = info.get("shape")
    if not isinstance(shape, list) or len(shape) != 5:
        raise ValueError(f"splits.{name}.shape={shape!r} is not (count, T, H, W, C)")
    return {info["file"]: ("uint8", tuple(int(n) for n in shape))}


def expected_arrays(root: Path, manifest: Mapping[str, Any]) -> dict[str, dict[str, Expected]]:
    """file -> member ("" for an ``.npy`` file) -> (dtype, shape), from the splits and the
    recorded array descriptions.

    Raises:
        DataError: the manifest contradicts itself (see the module docstring).
    """
    params, splits, files = manifest["parameters"], manifest["splits"], manifest["files"]
    for key in ("parameters", "splits", "files"):
        if not isinstance(manifest[key], dict):
            raise _fail(root, manifest, f"{key!r} is not a mapping")
    for file, entry in files.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("bytes"), int)
                and re.fullmatch(r"[0-9a-f]{64}", str(entry.get("sha256")))):
            raise _fail(root, manifest, f"files.{file} lacks its size or SHA-256")
    frame = (params.get("image_size"), params.get("image_size"), params.get("channels"))
    out: dict[str, dict[str, Expected]] = {}
    try:
        for name, info in splits.items():
            if int(manifest.get("counts", {}).get(name, info["count"])) != int(info["count"]):
                raise ValueError(f"counts.{name}={manifest['counts'][name]} but "
                                 f"splits.{name}.count={info['count']}")
            for file, (dtype, shape) in _split_arrays(name, info, frame).items():
                if file not in files:
                    raise ValueError(f"file {file!r} of split {name!r} is not listed")
                if info.get("layout") != "videos" and (shape[0] != int(info["count"])
                                                       or shape[2:] != frame):
                    raise ValueError(f"splits.{name}.shape={list(shape)} does not hold "
                                     f"{info['count']} clips of {_shape(frame)} frames "
                                     "(image_size, image_size, channels)")
                out.setdefault(file, {})[""] = (dtype, shape)
    except (KeyError, TypeError) as exc:
        raise _fail(root, manifest, f"a split lacks {exc}") from None
    except ValueError as exc:
        raise _fail(root, manifest, str(exc)) from None
    for file, entry in files.items():
        recorded = {"": entry["array"]} if "array" in entry else entry.get("arrays", {})
        for member, desc in recorded.items():
            got = (str(desc.get("dtype")), tuple(desc.get("shape", ())))
            want = out.get(file, {}).get(member)
            if want is not None and not _matches(got, want):
                raise _fail(root, manifest, f"{file} is recorded as {got[0]} "
                            f"{_shape(got[1])}, its split as {want[0]} {_shape(want[1])}")
            out.setdefault(file, {})[member] = got
    return out


def check_manifest(root: str | Path, manifest: Mapping[str, Any]) -> None:
    """Refuse a manifest that contradicts itself (see the module docstring)."""
    expected_arrays(Path(root), manifest)


def _matches(got: Expected, want: Expected) -> bool:
    return got[0] == want[0] and len(got[1]) == len(want[1]) and all(
        w is None or g == w for g, w in zip(got[1], want[1], strict=True))


def _headers(path: Path, members: Mapping[str, Expected]) -> dict[str, tuple[Expected, int]]:
    """member -> ((dtype, shape), bytes the header and data take) as stored in ``path``."""
    found = {}
    if path.suffix == ".npz":
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            for member in members:
                if f"{member}.npy" not in names:
                    raise ValueError(f"it has no {member!r} array")
                with z.open(f"{member}.npy") as f:
                    shape, dtype, _, length = read_header(f)
                found[member] = ((dtype.name, shape), -1)
        return found
    with open(path, "rb") as f:
        shape, dtype, fortran, length = read_header(f)
    if dtype.hasobject or fortran:
        raise ValueError("it holds Python objects or a Fortran-ordered array")
    nbytes = length + math.prod(shape) * dtype.itemsize
    found[""] = ((dtype.name, shape), nbytes)
    return found


def check_arrays(root: str | Path, name: str, manifest: Mapping[str, Any]) -> None:
    """Check the dtype, shape and length of every array in ``root/name`` against the manifest.

    Raises:
        DataError: naming the file, what it holds and what the manifest describes, with the
            command that prepares the folder again.
    """
    root = Path(root)
    path = root / name
    members = expected_arrays(root, manifest).get(name, {})
    if not members:
        return
    try:
        found = _headers(path, members)
    except READ_ERRORS as exc:
        raise DataError(f"data file '{path}' is not a readable array: {reason(exc)}",
                        hint=again(root, manifest)) from None
    for member, want in members.items():
        (dtype, shape), nbytes = found[member]
        label = f"'{path}'" + (f" ({member!r})" if member else "")
        if not _matches((dtype, shape), want) or np.dtype(dtype).hasobject:
            raise DataError(f"data file {label} holds {dtype} {_shape(shape)}; the manifest "
                            f"describes {want[0]} {_shape(want[1])}", hint=again(root, manifest))
        if nbytes >= 0 and nbytes != path.stat().st_size:
            raise DataError(f"data file {label} is {path.stat().st_size} bytes, its header "
                            f"announces {nbytes}", hint=again(root, manifest))
