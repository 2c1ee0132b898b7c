"""SM-MNIST training clips per second: the CPU generator (one clip at a time, as the loader's
``__getitem__``) against the batched generator of ``train.data_on_device`` on ``--device``.
Random 28x28 "digits" stand in for MNIST (the cost does not depend on them).

    python bench/smmnist_device.py --size 64 --seq-len 15 --batch-size 32 --json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, machine  # noqa: E402

from hvrnn.data.base import item_rng  # noqa: E402
from hvrnn.data.smmnist import generate_clip  # noqa: E402
from hvrnn.data.smmnist_device import generate_batch, resized_digits  # noqa: E402
from hvrnn.io.frames import to_float  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dev = torch.device(args.device)
    digits = np.random.default_rng(0).integers(0, 256, (1000, 28, 28), dtype=np.uint8)
    small = resized_digits(digits, args.size // 2, dev)
    gen = torch.Generator(device=dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def cpu_batch(k: int) -> torch.Tensor:
        return torch.stack([to_float(generate_clip(digits, item_rng(0, "train", k * 1000 + i),
                                                   seq_len=args.seq_len,
                                                   image_size=args.size).video)
                            for i in range(args.batch_size)])

    def device_batch(k: int) -> torch.Tensor:
        gen.manual_seed(k)
        return generate_batch(small, args.batch_size, seq_len=args.seq_len,
                              image_size=args.size, num_digits=2, generator=gen)

    result = {"bench": "smmnist_device", "device": str(dev), "size": args.size,
              "seq_len": args.seq_len, "batch_size": args.batch_size}
    for name, fn in (("cpu_generator", cpu_batch), ("batched_generator", device_batch)):
        fn(0)
        sync()
        times = []
        for k in range(args.repeats):
            t0 = time.perf_counter()
            fn(k + 1)
            sync()
            times.append(time.perf_counter() - t0)
        result[f"{name}_clips_per_second"] = round(args.batch_size / statistics.median(times), 1)
    result.update(machine())
    emit(result, args.json)


if __name__ == "__main__":
    main()
