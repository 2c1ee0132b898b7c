"""Datasets: preparation into uint8 arrays with a manifest, and loading as float clips.

``build_dataset(cfg.data, split)`` returns a torch ``Dataset`` of float32 ``(T, C, H, W)`` clips in
[0, 1]; ``prepare_<name>`` functions turn raw data into a prepared folder (see docs/data.md).
"""

from hvrnn.data.bair import prepare_bair
from hvrnn.data.base import (
    DATASETS,
    PreparedVideoDataset,
    build_dataset,
    item_rng,
    register_dataset,
)
from hvrnn.data.cityscapes import prepare_cityscapes
from hvrnn.data.kth import prepare_kth
from hvrnn.data.manifest import read_manifest, verify, write_manifest
from hvrnn.data.mnist import load_mnist
from hvrnn.data.smmnist import SMMNISTTrainDataset, generate_clip, prepare_smmnist
from hvrnn.data.videos import prepare_videos

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
