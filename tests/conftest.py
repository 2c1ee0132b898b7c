"""Shared fixtures: a tiny config, deterministic seeding, small datasets made on the spot."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

# The tensors here are tiny: one thread per process is faster, and with several processes (or a
# busy machine) extra OpenMP threads only contend for the cores. Subprocesses inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

# Small enough that a training step takes a few milliseconds on one CPU core.
TINY_OVERRIDES = [
    "data.image_size=16", "data.n_pred=3", "data.num_workers=0",
    "model.base_channels=8", "model.max_channels=16", "model.n_z=4",
    "train.batch_size=4", "train.max_steps=6", "train.log_every=1",
    "train.checkpoint_every=3", "train.val_every=0", "train.image_every=0",
    "train.val_batches=1", "train.val_n_samples=2",
    "eval.n_samples=2", "eval.horizon=4", "eval.batch_size=4",
]


def pytest_collection_modifyitems(config, items):
    if os.environ.get("HVRNN_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow; run with HVRNN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _private_weights_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty weights cache: none reads the user's ~/.cache."""
    monkeypatch.setenv("HVRNN_CACHE", str(tmp_path_factory.mktemp("hvrnn-cache")))
    yield


@pytest.fixture
def tiny_config():
    """The ``tiny`` preset shrunk to 16x16 frames, 2 context + 3 predicted, batch 4."""
    from hvrnn.config import load_config

    return load_config("tiny", TINY_OVERRIDES)


class FakeVideos(Dataset):
    """Deterministic clips (T, C, S, S) in [0, 1]: a bright square moving in a straight line.

    Item ``i`` depends on ``i`` (and ``offset``) only, so any order of reads gives the same data.
    """

    def __init__(self, n: int, t: int, size: int, channels: int = 1, offset: int = 0):
        self.n, self.t, self.size, self.channels, self.offset = n, t, size, channels, offset

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng(1000 + self.offset + int(i))
        s = self.size
        w = max(2, s // 4)
        x, y = (int(v) for v in rng.integers(0, s - w, 2))
        dx, dy = (int(v) for v in rng.integers(-2, 3, 2))
        video = np.zeros((self.t, self.channels, s, s), np.float32)
        for k in range(self.t):
            video[k, :, y:y + w, x:x + w] = 1.0
            x, y = int(np.clip(x + dx, 0, s - w)), int(np.clip(y + dy, 0, s - w))
        return torch.from_numpy(video)


@pytest.fixture
def fake_data(tiny_config):
    """(train_set, val_set) of FakeVideos shaped for ``tiny_config``."""
    d = tiny_config.data
    return (FakeVideos(32, d.seq_len, d.image_size, d.channels),
            FakeVideos(8, d.seq_len, d.image_size, d.channels, offset=10_000))


def fake_digits(n: int, seed: int) -> np.ndarray:
    """Digit-like uint8 28x28 images (a random bright blob), instead of MNIST."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), dtype=np.uint8)
    x[:, 4:24, 6:22] = rng.integers(0, 256, size=(n, 20, 16), dtype=np.uint8)
    return x


@pytest.fixture(scope="session")
def smmnist16_root(tmp_path_factory) -> str:
    """A prepared 16x16 SM-MNIST folder made from fake digits (no download)."""
    from hvrnn.data.smmnist import prepare_smmnist

    folder = tmp_path_factory.mktemp("smmnist")
    mnist = folder / "mnist.npz"
    np.savez(mnist, train=fake_digits(40, 0), test=fake_digits(20, 1))
    out = folder / "smmnist16"
    prepare_smmnist(out, num_sequences=12, seq_len=12, image_size=16, mnist_path=mnist)
    return str(out)
