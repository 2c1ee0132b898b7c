"""Dataset registry and the clip dataset over prepared uint8 arrays (built by
:func:`hvrnn.data.build_dataset`).

Contract of every dataset returned by :func:`build_dataset`:

- an item is a float32 tensor ``(T, C, H, W)`` in [0, 1] with ``T = cfg.n_ctx + cfg.n_pred``;
- split ``"train"`` draws a random window of ``T`` frames (start uniform over the
  ``len - T + 1`` valid starts) from a per-item generator seeded by
  ``(cfg.seed, split, epoch, index)``, so the data are a pure function of the index and epoch,
  whatever the number of loader workers; call ``dataset.set_epoch(e)`` before each epoch to draw
  new windows (as with ``DistributedSampler``);
- split ``"test"`` (and ``"val"`` where a dataset has one) uses fixed windows that start at frame 0.

Prepared data are opened with ``np.load(mmap_mode="r")`` lazily, in the process that reads them,
so loader workers share the page cache instead of pickling arrays.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hvrnn.config import DataConfig
from hvrnn.data.commands import again, prepare_args
from hvrnn.data.manifest import check_file, read_manifest
from hvrnn.errors import DataError
from hvrnn.io.frames import to_float

SPLIT_TAGS = {"train": 0, "test": 1, "val": 2}


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its builder and the command that prepares its root."""

    builder: Callable[[DataConfig, str], Dataset]
    prepare_hint: str  # may contain {root} and {size}


DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, prepare_hint: str) -> Callable:
    """Decorator registering ``builder(cfg, split) -> Dataset`` under ``data.name = name``."""

    def wrap(builder: Callable[[DataConfig, str], Dataset]) -> Callable:
        DATASETS[name] = DatasetEntry(builder, prepare_hint)
        return builder

    return wrap


def register_prepared(name: str, prepare_hint: str, split_files: Mapping[str, str],
                      default_train_length: int = 0) -> None:
    """Register a dataset read from a prepared folder by :func:`open_prepared`.

    Args:
        name: ``data.name``. prepare_hint: the command that prepares its root.
        split_files: requested split -> stored split name.
        default_train_length: items per training epoch when ``data.train_length`` is 0.
    """

    def build(cfg: DataConfig, split: str) -> Dataset:
        return open_prepared(cfg, split, name, split_files, default_train_length)

    register_dataset(name, prepare_hint)(build)


def prepare_hint(cfg: DataConfig) -> str:
    """The command that prepares ``cfg.root`` (no manifest to take the arguments from)."""
    import shlex

    entry = DATASETS.get(cfg.name)
    if entry is None:
        return ""
    return entry.prepare_hint.format(root=shlex.quote(str(cfg.root)), size=cfg.image_size)


def item_rng(seed: int, split: str, index: int, epoch: int = 0) -> np.random.Generator:
    """The generator of one item: a pure function of (seed, split, epoch, index)."""
    return np.random.default_rng([int(seed), SPLIT_TAGS[split], int(epoch), int(index)])


def open_manifest(cfg: DataConfig, dataset: str) -> dict[str, Any]:
    """Read the manifest of ``cfg.root`` and check it matches ``cfg`` (name, size, channels)."""
    hint = prepare_hint(cfg)
    manifest = read_manifest(cfg.root, hint)
    root = Path(cfg.root)
    if manifest["dataset"] != dataset:
        raise DataError(f"data root '{root}' holds a {manifest['dataset']!r} dataset, but "
                        f"data.name={dataset!r}")
    params = manifest["parameters"]
    for key, cfg_key, value, option in (
            ("image_size", "data.image_size", cfg.image_size, "--size"),
            ("channels", "data.channels", cfg.channels, "--channels")):
        if params.get(key) != value:
            change = {option: value} if option in prepare_args(manifest) else {}
            raise DataError(f"data root '{root}' was prepared with {key}={params.get(key)}, but "
                            f"{cfg_key}={value}", hint=again(root, manifest, change))
    return manifest


class PreparedVideoDataset(Dataset):
    """Windows of ``seq_len`` frames cut from a prepared split.

    The split is either ``clips`` (``(N, T0, H, W, C)``) or ``videos`` (concatenated frames plus
    offsets); both are viewed as one frame array ``(F, H, W, C)`` plus per-video start and length.

    Args:
        root: the prepared folder.
        split_info: the manifest entry of the split.
        seq_len: frames per item ``T``.
        train: random windows (True) or windows starting at frame 0 (False).
        seed: base seed of the per-item generators.
        length: items per epoch when ``train`` (item ``i`` uses video ``i mod N``); 0 = N.
        split: split name (part of the per-item seed).
    """

    def __init__(self, root: str | Path, split_info: Mapping[str, Any], seq_len: int, *,
                 train: bool, seed: int = 0, length: int = 0, split: str = "train"):
        self.root = Path(root)
        self.file = self.root / split_info["file"]
        self.seq_len = int(seq_len)
        self.train = train
        self.seed = int(seed)
        self.split = split
        self.epoch = 0
        self._frames: np.ndarray | None = None
        if split_info["layout"] == "clips":
            n, t0 = split_info["shape"][:2]
            starts = np.arange(n, dtype=np.int64) * t0
            lengths = np.full(n, t0, dtype=np.int64)
        elif split_info["layout"] == "videos":
            offsets = np.load(self.root / split_info["offsets"])
            starts, lengths = offsets[:-1], np.diff(offsets)
        else:
            raise DataError(f"'{self.file}': unknown layout {split_info['layout']!r}")
        keep = lengths >= self.seq_len
        if not keep.any():
            raise DataError(f"no video in '{self.file}' has {self.seq_len} frames (the longest "
                            f"has {int(lengths.max()) if len(lengths) else 0}); lower "
                            f"data.n_ctx + data.n_pred or prepare longer clips")
        if not train and not keep.all():
            warnings.warn(f"{int((~keep).sum())} of {len(keep)} videos in '{self.file}' are "
                          f"shorter than {self.seq_len} frames and are left out", stacklevel=2)
        self.starts = starts[keep]
        self.lengths = lengths[keep]
        self.length = int(length) if train and length > 0 else len(self.starts)

    def set_epoch(self, epoch: int) -> None:
        """Select the random windows of epoch ``epoch`` (train split only)."""
        self.epoch = int(epoch)

    @property
    def frames(self) -> np.ndarray:
        if self._frames is None:
            arr = np.load(self.file, mmap_mode="r")
            self._frames = arr.reshape(-1, *arr.shape[-3:])  # (F, H, W, C), still a memmap
        return self._frames

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_frames"] = None  # each worker maps the file itself
        return state

    def __len__(self) -> int:
        return self.length

    def window(self, index: int) -> tuple[int, int]:
        """(video number, first frame inside that video) of item ``index``."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        video = index % len(self.starts)
        offset = 0
        if self.train:
            rng = item_rng(self.seed, self.split, index, self.epoch)
            offset = int(rng.integers(0, self.lengths[video] - self.seq_len + 1))
        return video, offset

    def __getitem__(self, index: int) -> torch.Tensor:
        """Returns: float32 ``(T, C, H, W)`` in [0, 1]."""
        video, offset = self.window(index)
        start = int(self.starts[video]) + offset
        return to_float(self.frames[start:start + self.seq_len])


def open_prepared(cfg: DataConfig, split: str, dataset: str, split_files: Mapping[str, str],
                  default_train_length: int = 0) -> PreparedVideoDataset:
    """Open a split of a prepared folder (clips or videos layout) for ``build_dataset``.

    Args:
        cfg: data config (root, sizes, seed, window length).
        split: requested split.
        dataset: expected registry name in the manifest.
        split_files: requested split -> stored split name (e.g. Cityscapes ``test`` -> ``val``).
        default_train_length: items per training epoch when ``cfg.train_length`` is 0
            (0 = one item per stored video).
    """
    if split not in split_files:
        raise DataError(f"dataset {dataset!r} has no split {split!r}; available: "
                        f"{list(split_files)}")
    manifest = open_manifest(cfg, dataset)
    stored = split_files[split]
    info = manifest["splits"].get(stored)
    if info is None:
        raise DataError(f"data root '{cfg.root}' holds no {stored!r} split (it has "
                        f"{list(manifest['splits'])})", hint=again(cfg.root, manifest))
    for name in (info["file"], info.get("offsets")):
        if name:
            check_file(cfg.root, name, manifest, hash_check=False)
    train = split == "train"
    return PreparedVideoDataset(cfg.root, info, cfg.seq_len, train=train, seed=cfg.seed,
                                length=cfg.train_length or default_train_length, split=split)
