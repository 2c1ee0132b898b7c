"""``hvrnn train CONFIG [key=value ...] [--run-dir DIR] [--resume]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hvrnn.cli.common import FORMATTER, add_config_arguments


def run(args: argparse.Namespace) -> int:
    from hvrnn.config import load_config
    from hvrnn.training import format_result, train

    cfg = load_config(args.config, args.overrides)
    if args.resume and args.run_dir is not None:
        cfg = _resumed(args.run_dir, cfg, args.overrides)
    result = train(cfg, args.run_dir, resume=args.resume)
    print(format_result(result))
    return 130 if result.status == "interrupted" else 0


def _resumed(run_dir: Path, cfg: Any, overrides: list[str]) -> Any:
    """The run's own config with the command line's overrides (the run says what it
    continues with once it holds the run directory)."""
    from hvrnn.training.rundir import resumed_config

    return resumed_config(run_dir, cfg, overrides)[0]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train", formatter_class=FORMATTER, help="train a model",
        description="Train CONFIG (a preset or YAML file) with dotted key=value overrides. The "
                    "run directory gets config.yaml, metrics.jsonl, checkpoints/, samples/ and "
                    "TensorBoard logs in tb/. Ctrl-C or SIGTERM saves a checkpoint and stops; "
                    "--resume continues exactly. Several GPUs or nodes: launch with torchrun "
                    "--nproc_per_node=G -m hvrnn.cli train ...")
    add_config_arguments(p)
    p.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                   help="output folder (default runs/<name>-<date>); must be new or empty "
                        "unless --resume")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its last checkpoint, with the run's "
                        "own settings (config.yaml) but for the key=value overrides given; "
                        "CONFIG must agree with the run except on run-control keys "
                        "(train.max_steps, data.root, ...)")
    p.set_defaults(func=run)
    return p
