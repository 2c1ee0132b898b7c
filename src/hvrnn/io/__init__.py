"""File plumbing shared by data preparation, training, sampling and evaluation.

- :mod:`hvrnn.io.frames`: the one conversion between float frames (..., C, H, W) in [0, 1] and
  uint8 frames (..., H, W, C), and its scale alone (``k / 255``) for uint8 frames already laid
  out channels first.
- :mod:`hvrnn.io.files`: SHA-256 of a file, the one check that refuses to write into an
  occupied output folder, atomic file writes, and reads that name the file they failed on.
- :mod:`hvrnn.io.output`: :class:`OutputFolder`, the files of one command written as a unit
  (temporary names, renamed when complete, removed on failure) under the folder's lock.
- :mod:`hvrnn.io.locks`: :class:`FolderLock`, the exclusive lock of a folder being written.
- :mod:`hvrnn.io.npy`: ``.npy`` arrays written and read a block of rows at a time (plain files or
  members of an ``.npz`` archive), so that large arrays never need to fit in memory.

Names are imported on first use, so that ``hvrnn.io.files`` (standard library only) can be used
where torch must not be loaded (``hvrnn weights list``).
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "prepare_output_dir": "files", "sha256_file": "files", "write_atomically": "files",
    "read_text": "files", "OutputFolder": "output", "FolderLock": "locks",
    "to_float": "frames", "to_uint8": "frames", "uint8_to_float": "frames",
    "NpyReader": "npy", "NpyWriter": "npy", "open_npz": "npy",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'hvrnn.io' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hvrnn.io.{_NAMES[name]}"), name)
