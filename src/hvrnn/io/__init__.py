"""File plumbing shared by data preparation, training, sampling and evaluation.

- :mod:`hvrnn.io.frames`: the one conversion between float frames (..., C, H, W) in [0, 1] and
  uint8 frames (..., H, W, C).
- :mod:`hvrnn.io.files`: SHA-256 of a file and the one check that refuses to write into an
  occupied output folder.
- :mod:`hvrnn.io.npy`: ``.npy`` arrays written and read a block of rows at a time (plain files or
  members of an ``.npz`` archive), so that large arrays never need to fit in memory.
"""

from hvrnn.io.files import prepare_output_dir, sha256_file
from hvrnn.io.frames import to_float, to_uint8
from hvrnn.io.npy import NpyReader, NpyWriter, open_npz

__all__ = ["NpyReader", "NpyWriter", "open_npz", "prepare_output_dir", "sha256_file", "to_float",
           "to_uint8"]
