"""``hvrnn sample CHECKPOINT [--context FILE] [--n-samples N] [--horizon T] [--out DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hvrnn.cli.common import FORMATTER, device, integer, number


def run(args: argparse.Namespace) -> int:
    from hvrnn.sample_files import write_samples

    out = write_samples(args.checkpoint, out=args.out, context=args.context,
                        n_samples=args.n_samples, horizon=args.horizon,
                        num_sequences=args.num_sequences, seed=args.seed,
                        temperature=args.temperature, device=args.device, force=args.force,
                        data_root=args.data_root)
    print(f"wrote samples.npz, grids (PNG), GIFs and MP4s to {out}")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sample", formatter_class=FORMATTER, help="draw samples from a checkpoint",
        description="Draw prior samples from CHECKPOINT (a .pt file, a run directory or "
                    "pretrained:NAME) and "
                    "write samples.npz (uint8 samples (sequences, N, T, H, W, C) and context "
                    "(sequences, K, H, W, C)), a PNG grid per sequence (rows: ground truth, "
                    "then samples; columns: time steps), GIFs and MP4s.")
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT",
                   help="a .pt checkpoint, a run directory, or pretrained:NAME (a model "
                        "shipped with hvrnn; `hvrnn info --pretrained` lists them)")
    p.add_argument("--context", type=Path, default=None, metavar="FILE",
                   help="uint8 clips (N, T, H, W[, C]) in .npy, or .npz with key 'context' "
                        "(and optional 'truth'); frames after the first K are ground truth. "
                        "Default: the first sequences of the config's test split")
    p.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                   help="prepared data whose test split gives the context when --context is "
                        "not given (default: the checkpoint config's data.root)")
    p.add_argument("--n-samples", type=integer(1, 10_000), default=5, metavar="N",
                   help="samples drawn per sequence")
    p.add_argument("--horizon", type=integer(0, 10_000), default=0, metavar="T",
                   help="frames to predict (0 = eval.horizon, else data.n_pred)")
    p.add_argument("--num-sequences", type=integer(1, 1_000_000), default=4, metavar="M",
                   help="test sequences to use when --context is not given")
    p.add_argument("--seed", type=integer(), default=0,
                   help="seed of the latent noise (the same seed draws the same samples)")
    p.add_argument("--temperature", type=number(0.0), default=1.0,
                   help="prior variance multiplier (0: the prior means)")
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default: samples/step_<N> in the run directory, "
                        "step_<N> the checkpoint's step, also for last.pt, as hvrnn evaluate's "
                        "eval/step_<N>)")
    p.add_argument("--force", action="store_true", help="replace files written before")
    p.set_defaults(func=run)
    return p
