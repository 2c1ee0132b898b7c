"""The ground truth of a protocol as uint8 clips, and the checks of arrays handed in.

Besides prepared datasets (:func:`hvrnn.data.build_dataset`), the Moving MNIST test set of
Srivastava et al. (2015), ``mnist_test_seq.npy``, is read as it is distributed: uint8
``(20, 10000, 64, 64)``, time-major (protocol dataset ``"mnist_test_seq"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from hvrnn.errors import UserError
from hvrnn.evaluation.protocols import Protocol, protocol_data_config
from hvrnn.io.files import reading
from hvrnn.io.frames import to_uint8

MNIST_TEST_SEQ_URL = "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy"


class TimeMajorClips:
    """Clips of a time-major uint8 array ``(frames, sequences, H, W)`` such as
    ``mnist_test_seq.npy``, read through a memory map: clip i is ``array[:K + T, i]``.

    Args:
        path: the ``.npy`` file.
        p: the protocol (its frame size and horizons are checked against the file).

    Raises:
        UserError: not a uint8 array of that layout, frames of another size, or fewer frames
            per sequence than the protocol needs.
    """

    def __init__(self, path: Path, p: Protocol) -> None:
        with reading(path, "test set"):
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        need = p.n_ctx + p.n_pred
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[2:] != (p.image_size,) * 2 \
                or arr.shape[0] < need:
            raise UserError(f"'{path}' holds {arr.dtype} {tuple(arr.shape)}; protocol {p.id} "
                            f"needs uint8 (frames >= {need}, sequences, {p.image_size}, "
                            f"{p.image_size}), time-major as mnist_test_seq.npy")
        self.arr, self.need = arr, need

    def __len__(self) -> int:
        return int(self.arr.shape[1])

    def uint8_clips(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, K + T, H, W, 1) uint8."""
        block = np.asarray(self.arr[:self.need, start:stop])  # (K + T, b, H, W)
        return np.ascontiguousarray(block.transpose(1, 0, 2, 3))[..., None]

    def __getitem__(self, i: int) -> torch.Tensor:
        """Clip i as float32 (K + T, 1, H, W) in [0, 1]."""
        clip = torch.from_numpy(self.uint8_clips(i, i + 1)[0]).permute(0, 3, 1, 2)
        return clip.to(torch.float32) / 255


def _time_major_file(p: Protocol, data_root: str | Path | None) -> Path:
    """The ``mnist_test_seq.npy`` of the protocol: ``data_root`` (a file, or a folder holding
    it), else the protocol's ``data_root``."""
    tried = []
    for root in (data_root, p.data_root):
        if not root:
            continue
        path = Path(root)
        if path.is_dir():
            path = path / "mnist_test_seq.npy"
        if path.is_file():
            return path
        tried.append(str(path))
    raise UserError(f"Moving MNIST test set not found (tried {', '.join(tried) or 'nothing'}); "
                    f"download {MNIST_TEST_SEQ_URL} and pass it with --data-root")


def ground_truth(p: Protocol, data_root: str | Path | None, dataset: Any = None) -> Any:
    """The protocol's test clips as a map-style dataset of (T, C, H, W) float in [0, 1]
    (:class:`TimeMajorClips` for ``mnist_test_seq``)."""
    if dataset is not None:
        return dataset
    from hvrnn.evaluation.protocols import MNIST_TEST_SEQ

    if p.dataset == MNIST_TEST_SEQ:
        return TimeMajorClips(_time_major_file(p, data_root), p)
    from hvrnn.data import build_dataset

    return build_dataset(protocol_data_config(p, data_root), split=p.split)


def clips_uint8(dataset: Any, start: int, stop: int, p: Protocol) -> np.ndarray:
    """(stop - start, K + T, H, W, C) uint8 ground-truth clips, shapes checked."""
    if hasattr(dataset, "uint8_clips"):
        return dataset.uint8_clips(start, stop)
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


def load_targets(path: Path, p: Protocol | None = None) -> np.ndarray:
    """Ground-truth clips uint8 (sequences, K + T, H, W, C) from a file.

    Accepted: an ``.npz`` with ``videos`` (or a single array); an ``.npy``. Grey clips may
    omit the channel axis ((sequences, K + T, H, W)); for the ``mnist_test_seq`` protocol the
    time-major layout (frames, sequences, H, W) of ``mnist_test_seq.npy`` is read as such.

    Raises:
        UserError: a missing or unreadable file, no array, or an npz with several arrays but
            no ``videos``.
    """
    from hvrnn.io.npy import check_not_empty

    if not path.is_file():
        raise UserError(f"targets file '{path}' does not exist")
    with reading(path, "targets file"):
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                if "videos" in z:
                    arr = z["videos"]
                elif len(z.files) == 1:
                    arr = z[z.files[0]]
                else:
                    raise UserError(f"targets file '{path}' has no 'videos' array (it holds: "
                                    f"{', '.join(z.files) or 'nothing'})")
    if not isinstance(arr, np.ndarray):
        raise UserError(f"targets file '{path}' does not hold an array")
    if p is not None and arr.ndim == 4:
        from hvrnn.evaluation.protocols import MNIST_TEST_SEQ

        if p.dataset == MNIST_TEST_SEQ and arr.shape[1] != p.n_ctx + p.n_pred:
            arr = arr.transpose(1, 0, 2, 3)  # time-major, as distributed
        if p.channels == 1:
            arr = arr[..., None]
    check_not_empty(arr.shape, f"targets file '{path}'")
    return np.ascontiguousarray(arr)
