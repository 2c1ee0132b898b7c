"""``hvrnn demo [--out DIR]``: the quick start."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hvrnn.cli.common import FORMATTER, integer


def run(args: argparse.Namespace) -> int:
    from hvrnn.demo import format_results, run_demo
    from hvrnn.errors import require

    # What the quick start writes at its end (videos, curves), checked before it trains.
    require("imageio", "imageio_ffmpeg", "matplotlib", purpose="hvrnn demo")

    print(format_results(run_demo(out=args.out, data=args.data, steps=args.steps,
                                  mnist=args.mnist)))
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo", formatter_class=FORMATTER, help="the quick start: data, train, sample, evaluate",
        description="Prepare 32x32 Stochastic Moving MNIST (if needed), train the tiny "
                    "hierarchical model on the CPU for a few minutes, draw samples and compare "
                    "best-of-N SSIM against the untrained model and copying the last context "
                    "frame.")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default demo/<date>); must be new or empty")
    p.add_argument("--data", type=Path, default=Path("data/smmnist32"), metavar="DIR",
                   help="prepared SM-MNIST 32x32 folder (prepared there if missing)")
    p.add_argument("--steps", type=integer(0, 10_000_000), default=0,
                   help="training steps (0 = demo default)")
    p.add_argument("--mnist", type=Path, default=None, metavar="PATH",
                   help="MNIST source for preparing the data (see hvrnn data smmnist --help)")
    p.set_defaults(func=run)
    return p
