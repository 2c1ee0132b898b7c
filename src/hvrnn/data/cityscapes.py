"""Cityscapes sequences: 30-frame snippets, centre square, resized to S x S (docs/design.md
section 5.3).

Source: the ``leftImg8bit_sequence`` folder
(``<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png``) or the
``leftImg8bit_sequence_trainvaltest.zip`` archive. Needs a Cityscapes account to download.

Preprocessing, as the original code: group files by (city, sequence id); keep only groups of
exactly 30 frames; crop the centred square (for the 2048 x 1024 originals: 512 columns off each
side; in general ``(W - H) // 2`` on the left, so scaled-down test images crop the same way);
resize to ``size x size`` with bilinear interpolation without antialiasing
(:func:`hvrnn.data.transforms.resize_frames`, the sampling grid of OpenCV ``INTER_LINEAR``;
identical for the integer factors 8 and 16 of 1024 -> 128 and 64). The original stored JPEG
(quality 98) files; we store lossless uint8 arrays.

Output: ``train.npy``, ``val.npy``, ``test.npy`` (whichever splits the source has), uint8
``(N, 30, S, S, 3)``, snippets ordered by (city, sequence id), plus ``manifest.json``. The loader's
``test`` split is the official **val** split (docs/design.md section 8, D7); ``val`` is an alias
of it.
"""

from __future__ import annotations

import functools
import io
import re
import zipfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hvrnn.data.base import register_prepared
from hvrnn.data.manifest import ArrayWriter, begin_preparation, command_args
from hvrnn.data.transforms import center_square, resize_frames
from hvrnn.errors import DataError
from hvrnn.io.npy import ZIP_READ_ERRORS
from hvrnn.log import progress

FRAMES = 30
SPLITS = ("train", "val", "test")
DEFAULT_TRAIN_LENGTH = 45_000
_NAME_RE = re.compile(
    r"(?:^|/)(train|val|test)/([^/]+)/([^/]+?)_(\d+)_(\d+)_leftImg8bit\.png$")


def _list_source(src: Path) -> dict[str, dict[tuple[str, int], list[tuple[int, str]]]]:
    """split -> (city, sequence) -> [(frame number, member path)]."""
    if src.is_dir():
        names = [p.relative_to(src).as_posix() for p in src.rglob("*_leftImg8bit.png")]
    elif src.is_file() and zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zf:
            names = [n for n in zf.namelist() if n.endswith("_leftImg8bit.png")]
    else:
        raise DataError(f"Cityscapes source '{src}' is neither a leftImg8bit_sequence folder "
                        f"nor its zip archive")
    groups: dict[str, dict[tuple[str, int], list[tuple[int, str]]]] = {
        s: defaultdict(list) for s in SPLITS}
    for name in names:
        m = _NAME_RE.search(name)
        if m:
            split, _, city, seq, frame = m.groups()
            groups[split][(city, int(seq))].append((int(frame), name))
    if not any(groups.values()):
        raise DataError(f"Cityscapes source '{src}' holds no "
                        f"<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png files")
    return groups


@functools.lru_cache(maxsize=1)
def _open_zip(path: str) -> zipfile.ZipFile:
    """One open archive per process (its directory of ~150k entries is parsed once)."""
    return zipfile.ZipFile(path)


def _read_snippet(args: tuple[str, list[str], int]) -> np.ndarray:
    """Load, crop and resize one snippet. Returns uint8 ``(30, S, S, 3)``."""
    from hvrnn.io.frames import read_image

    src, names, size = args
    root = Path(src)
    frames = []
    zf = _open_zip(src) if root.is_file() else None
    for name in names:
        try:
            data = zf.read(name) if zf is not None else (root / name).read_bytes()
        except ZIP_READ_ERRORS as exc:  # a damaged member, an unsupported compression method
            if isinstance(exc, OSError) and exc.errno is not None and zf is None:
                raise
            raise DataError(f"cannot read '{src}:{name}': {exc}") from None
        img = read_image(io.BytesIO(data), f"{src}:{name}", DataError)
        frame = center_square(img[None])
        frames.append(resize_frames(frame, size, antialias=False)[0])
    if len({f.shape for f in frames}) != 1:
        raise DataError(f"frames of the snippet starting at '{src}:{names[0]}' differ in size")
    return np.stack(frames)


def prepare_cityscapes(src: str | Path, out: str | Path, size: int = 128, force: bool = False,
                       workers: int = 0) -> Path:
    """Convert ``leftImg8bit_sequence`` into per-split uint8 arrays plus a manifest.

    Args:
        src: the ``leftImg8bit_sequence`` folder (or a folder above it) or its zip.
        out: output folder (must be empty or absent unless ``force``).
        size: output side S (128 or 64 in the paper).
        force: replace the files of an existing preparation.
        workers: decoding processes (0 = in this process).

    Returns:
        The output folder.
    """
    if size < 1:
        raise DataError(f"size={size} is invalid: expected >= 1")
    args = command_args("cityscapes", src, size=size, workers=workers or None)
    src = Path(src)
    groups = _list_source(src)
    with begin_preparation(out, force, args) as prep:
        splits, dropped = _write_splits(prep, src, groups, size, workers)
        if not splits:
            raise DataError(f"Cityscapes source '{src}' has no snippet of exactly {FRAMES} "
                            "frames")
        params = {"image_size": size, "channels": 3, "frames": FRAMES,
                  "crop": "centre square, (W - H) // 2 columns off the left",
                  "resize": "bilinear, half-pixel centres, no antialiasing",
                  "dropped_snippets": dropped}
        prep.write_manifest(dataset="cityscapes", source=str(src), parameters=params,
                            splits=splits, files=[v["file"] for v in splits.values()])
    return prep.path


def _write_splits(prep: Any, src: Path, groups: dict, size: int, workers: int
                  ) -> tuple[dict[str, Any], dict[str, int]]:
    """Every split's snippets of exactly 30 frames into ``<split>.npy``; returns the
    manifest's split entries and the number of snippets dropped per split."""
    splits, dropped = {}, {}
    pool = ProcessPoolExecutor(workers) if workers > 0 else None
    try:
        for split in SPLITS:
            if not groups[split]:
                continue
            keys = sorted(groups[split])
            kept = [k for k in keys if len(groups[split][k]) == FRAMES]
            dropped[split] = len(keys) - len(kept)
            if not kept:
                continue
            jobs = [(str(src), [n for _, n in sorted(groups[split][k])], size) for k in kept]
            shape = (len(kept), FRAMES, size, size, 3)
            with ArrayWriter(prep.temp(f"{split}.npy"), shape) as writer:
                results = pool.map(_read_snippet, jobs) if pool else map(_read_snippet, jobs)
                for i, clip in enumerate(progress(results, total=len(jobs),
                                                  desc=f"cityscapes {split}")):
                    writer[i] = clip
                writer.close()
            splits[split] = {"file": f"{split}.npy", "layout": "clips", "count": len(kept),
                             "shape": list(shape),
                             "snippets": [f"{city}_{seq:06d}" for city, seq in kept]}
    finally:
        if pool is not None:
            pool.shutdown()
    return splits, dropped


# Train: official train (45,000 draws per epoch by default, snippet i mod N); test and val:
# official val.
register_prepared("cityscapes", "hvrnn data cityscapes SRC --out {root} --size {size}",
                  {"train": "train", "test": "val", "val": "val"},
                  default_train_length=DEFAULT_TRAIN_LENGTH)
