"""Datasets: preparation into uint8 arrays with a manifest, and loading as float clips.

``build_dataset(cfg.data, split)`` returns a torch ``Dataset`` of float32 ``(T, C, H, W)`` clips in
[0, 1]; ``prepare_<name>`` functions turn raw data into a prepared folder (see docs/data.md).
Importing this package registers the built-in datasets (:func:`register_dataset`).
"""

from torch.utils.data import Dataset

from hvrnn.config import DataConfig
from hvrnn.data.bair import prepare_bair
from hvrnn.data.base import (
    DATASETS,
    SPLIT_TAGS,
    PreparedVideoDataset,
    item_rng,
    register_dataset,
)
from hvrnn.data.cityscapes import prepare_cityscapes
from hvrnn.data.kth import prepare_kth
from hvrnn.data.manifest import read_manifest, verify, write_manifest
from hvrnn.data.mnist import load_mnist
from hvrnn.data.smmnist import SMMNISTTrainDataset, generate_clip, prepare_smmnist
from hvrnn.data.videos import prepare_videos
from hvrnn.errors import DataError

__all__ = [
    "DATASETS",
    "PreparedVideoDataset",
    "SMMNISTTrainDataset",
    "build_dataset",
    "generate_clip",
    "item_rng",
    "load_mnist",
    "prepare_bair",
    "prepare_cityscapes",
    "prepare_kth",
    "prepare_smmnist",
    "prepare_videos",
    "read_manifest",
    "register_dataset",
    "verify",
    "write_manifest",
]


def build_dataset(cfg: DataConfig, split: str) -> Dataset:
    """Build the dataset named by ``cfg.name`` for one split.

    Args:
        cfg: the data section of the experiment config.
        split: ``"train"`` or ``"test"`` (``"val"`` for datasets that have one).

    Returns:
        A map-style dataset whose items are float32 ``(T, C, H, W)`` in [0, 1],
        ``T = cfg.n_ctx + cfg.n_pred``.

    Raises:
        DataError: unknown dataset or split, or a missing, unprepared or mismatching root (the
            message names the path and the command that prepares it).
    """
    if cfg.name not in DATASETS:
        raise DataError(f"data.name={cfg.name!r} is not a known dataset; known: "
                        f"{', '.join(sorted(DATASETS))}")
    if split not in SPLIT_TAGS:
        raise DataError(f"split {split!r} is invalid: expected one of {list(SPLIT_TAGS)}")
    return DATASETS[cfg.name].builder(cfg, split)
