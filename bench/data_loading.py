"""Clips per second of each data loader on small synthetic prepared data.

Loaders: SM-MNIST train (generated on the fly), SM-MNIST test (fixed file), a BAIR-like clips
folder (N, 30, 64, 64, 3) and a custom-videos folder (videos of different lengths). Each is read
item by item in this process and through a ``DataLoader`` with ``--workers`` processes.

Usage::

    python bench/data_loading.py --json [--seconds 2] [--workers 2] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from hvrnn.config import DataConfig
from hvrnn.data import build_dataset, prepare_smmnist
from hvrnn.data.manifest import ArrayWriter, FrameStreamWriter, write_manifest


def _fake_mnist(path: Path) -> Path:
    rng = np.random.default_rng(0)
    digits = {s: np.pad(rng.integers(0, 256, (n, 20, 20), dtype=np.uint8), ((0, 0), (4, 4),
                                                                          (4, 4)))
              for s, n in (("train", 2000), ("test", 500))}
    np.savez(path, **digits)
    return path


def _clips_folder(root: Path, n: int, size: int) -> Path:
    """A BAIR-like prepared folder: uint8 (n, 30, size, size, 3), train and test."""
    root.mkdir()
    rng = np.random.default_rng(1)
    splits = {}
    for split in ("train", "test"):
        shape = (n, 30, size, size, 3)
        w = ArrayWriter(root / f"{split}.npy", shape)
        for i in range(n):
            w[i] = rng.integers(0, 256, shape[1:], dtype=np.uint8)
        w.close()
        splits[split] = {"file": f"{split}.npy", "layout": "clips", "count": n,
                         "shape": list(shape)}
    write_manifest(root, dataset="bair", source="synthetic", parameters={
        "image_size": size, "channels": 3}, splits=splits, files=["train.npy", "test.npy"],
        prepare_command="bench")
    return root


def _videos_folder(root: Path, n: int, size: int) -> Path:
    """A custom-videos folder: n videos of 40 to 120 frames, (size, size, 3)."""
    root.mkdir()
    rng = np.random.default_rng(2)
    splits, files = {}, []
    for split in ("train", "test"):
        w = FrameStreamWriter(root / f"{split}.npy", (size, size, 3))
        for _ in range(n):
            w.add(rng.integers(0, 256, (int(rng.integers(40, 121)), size, size, 3), np.uint8))
        data, offsets = w.close()
        splits[split] = {"file": data.name, "offsets": offsets.name, "layout": "videos",
                         "count": n}
        files += [data.name, offsets.name]
    write_manifest(root, dataset="videos", source="synthetic", parameters={
        "image_size": size, "channels": 3}, splits=splits, files=files, prepare_command="bench")
    return root


def _rate(fn, seconds: float) -> float:
    """Calls of ``fn(i)`` per second over about ``seconds``."""
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or n < 8:
        fn(n)
        n += 1
    return n / elapsed


def _loader_rate(ds, batch_size: int, workers: int, seconds: float) -> float:
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    next(it)  # start the workers before timing
    n, start = 0, time.perf_counter()
    for batch in it:
        n += len(batch)
        if time.perf_counter() - start > seconds:
            break
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sm = prepare_smmnist(tmp / "sm", num_sequences=200, seq_len=30, image_size=64,
                             mnist_path=_fake_mnist(tmp / "mnist.npz"))
        cases = {
            "smmnist_train_on_the_fly": (DataConfig(name="smmnist", root=str(sm), n_ctx=5,
                                                    n_pred=10), "train"),
            "smmnist_test": (DataConfig(name="smmnist", root=str(sm), n_ctx=5, n_pred=10),
                             "test"),
            "bair_like_train": (DataConfig(name="bair", root=str(_clips_folder(
                tmp / "bair", 200, 64)), channels=3, n_ctx=2, n_pred=10), "train"),
            "videos_train": (DataConfig(name="videos", root=str(_videos_folder(
                tmp / "videos", 50, 64)), channels=3, n_ctx=2, n_pred=10), "train"),
        }
        for name, (cfg, split) in cases.items():
            ds = build_dataset(cfg, split)
            results[name] = {
                "clip_shape": list(ds[0].shape),
                "getitem_clips_per_s": round(_rate(lambda i, ds=ds: ds[i % len(ds)],
                                                   args.seconds), 1),
                f"dataloader_{args.workers}w_clips_per_s": round(_loader_rate(
                    ds, args.batch_size, args.workers, args.seconds), 1),
            }
    out = {"benchmark": "data_loading", "torch": torch.__version__,
           "cpu_count": os.cpu_count(), "batch_size": args.batch_size,
           "workers": args.workers, "results": results}
    if args.json:
        print(json.dumps(out))
    else:
        for name, r in results.items():
            print(f"{name:28s} " + "  ".join(f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
