"""The ground truth of a protocol as uint8 clips, and the checks of arrays handed in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from hvrnn.errors import UserError
from hvrnn.evaluation.protocols import Protocol, protocol_data_config
from hvrnn.io.files import reading
from hvrnn.io.frames import to_uint8


def ground_truth(p: Protocol, data_root: str | Path | None, dataset: Any = None) -> Any:
    """The protocol's test clips as a map-style dataset of (T, C, H, W) float in [0, 1]."""
    if dataset is not None:
        return dataset
    from hvrnn.data import build_dataset

    return build_dataset(protocol_data_config(p, data_root), split=p.split)


def clips_uint8(dataset: Any, start: int, stop: int, p: Protocol) -> np.ndarray:
    """(stop - start, K + T, H, W, C) uint8 ground-truth clips, shapes checked."""
    clips = []
    expected = (p.n_ctx + p.n_pred, p.channels, p.image_size, p.image_size)
    for i in range(start, stop):
        item = dataset[i]
        clip = torch.as_tensor(item[0] if isinstance(item, (tuple, list)) else item)
        if tuple(clip.shape) != expected:
            raise UserError(f"test clip {i} of {p.dataset!r} has shape {tuple(clip.shape)}, "
                            f"expected {expected} for protocol {p.id}")
        clips.append(clip)
    return to_uint8(torch.stack(clips))


def check_array(key: str, arr: Any, expected: tuple[int | None, ...], p: Protocol,
                source: str = "") -> None:
    """Refuse an array (or anything with ``shape``, ``dtype``, ``ndim``) that is not uint8 of
    the ``expected`` shape (None: any size)."""
    where = f"{source}: " if source else ""
    shown = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
    if arr.dtype != np.uint8:
        raise UserError(f"{where}{key!r} has dtype {arr.dtype}, expected uint8 {shown}")
    if arr.ndim != len(expected) or any(e is not None and a != e
                                        for a, e in zip(arr.shape, expected, strict=False)):
        raise UserError(f"{where}{key!r} has shape {tuple(arr.shape)}, expected {shown} for "
                        f"protocol {p.id}")


def load_targets(path: Path) -> np.ndarray:
    """Ground-truth clips uint8 (sequences, K + T, H, W, C) from an .npz (key ``videos``) or
    an .npy (the array itself).

    Raises:
        UserError: a missing, unreadable or empty file, or an .npz without ``videos``.
    """
    from hvrnn.io.npy import check_not_empty

    if not path.is_file():
        raise UserError(f"targets file '{path}' does not exist")
    with reading(path, "targets file"):
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # an .npy file
            videos = loaded
        else:
            with loaded as z:
                if "videos" not in z:
                    raise UserError(f"targets file '{path}' has no 'videos' array (it holds: "
                                    f"{', '.join(z.files) or 'nothing'})")
                videos = z["videos"]
    check_not_empty(videos.shape, f"targets file '{path}'")
    return videos
