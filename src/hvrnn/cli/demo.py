"""``hvrnn demo [--out DIR]``: the quick start."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hvrnn.cli.common import FORMATTER, integer, number


def run(args: argparse.Namespace) -> int:
    from hvrnn.demo import format_results, run_demo
    from hvrnn.errors import require

    # What the quick start writes at its end (videos, curves), checked before it trains.
    require("imageio", "imageio_ffmpeg", "matplotlib", purpose="hvrnn demo")

    print(format_results(run_demo(out=args.out, data=args.data, minutes=args.minutes,
                                  steps=args.steps, mnist=args.mnist)))
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo", formatter_class=FORMATTER,
        help="the quick start: a pretrained model, then training from scratch",
        description="Prepare 32x32 Stochastic Moving MNIST (if needed); draw samples from the "
                    "pretrained model pretrained:smmnist32 (shipped with hvrnn) and score it on "
                    "protocol smmnist32-c2-p10-n10 next to copying the last context frame and "
                    "all-black frames; then train the same recipe from scratch for a few "
                    "minutes and score it and its untrained initialisation the same way. "
                    "About five minutes on a 2-core CPU.")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default demo/<date>); must be new or empty")
    p.add_argument("--data", type=Path, default=Path("data/smmnist32"), metavar="DIR",
                   help="prepared SM-MNIST 32x32 folder (prepared there if missing)")
    p.add_argument("--minutes", type=number(0.0, 1e4, above=0.0), default=4.0,
                   help="training time from scratch, wall clock")
    p.add_argument("--steps", type=integer(0, 10_000_000), default=0,
                   help="train exactly this many steps instead of --minutes (0: use --minutes)")
    p.add_argument("--mnist", type=Path, default=None, metavar="PATH",
                   help="MNIST source for preparing the data (see hvrnn data smmnist --help)")
    p.set_defaults(func=run)
    return p
