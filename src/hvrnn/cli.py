"""The ``hvrnn`` command: argument parsing only; each subcommand calls one library function.

A user error (bad config, missing file, corrupt checkpoint, unwritable folder) prints one line
``error: ...`` to stderr and exits with status 2. Heavy modules are imported inside the handlers
so that ``hvrnn --help`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import NoReturn

# OpenMP threads that spin while waiting make every step many times slower as soon as another
# process shares the cores (seen: 40 s instead of 1.5 s per step on 2 busy cores). Must be set
# before torch is imported; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1


class _Parser(argparse.ArgumentParser):
    """Argument errors as one ``error: ...`` line (exit 2), like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------


def _info(args: argparse.Namespace) -> int:
    import json

    from hvrnn.config import load_config
    from hvrnn.info import format_info, model_info

    info = model_info(load_config(args.config, args.overrides))
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _train(args: argparse.Namespace) -> int:
    from hvrnn.config import load_config
    from hvrnn.train import format_result, train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, args.run_dir, resume=args.resume)
    print(format_result(result))
    return 130 if result.status == "interrupted" else 0


def _sample(args: argparse.Namespace) -> int:
    from hvrnn.demo import write_samples

    out = write_samples(args.checkpoint, out=args.out, context=args.context,
                        n_samples=args.n_samples, horizon=args.horizon,
                        num_sequences=args.num_sequences, seed=args.seed,
                        temperature=args.temperature, device=args.device, force=args.force)
    print(f"wrote samples.npz, grids (PNG), GIFs and MP4s to {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from hvrnn.demo import run_demo

    run_demo(out=args.out, data=args.data, steps=args.steps, mnist=args.mnist)
    return 0


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


_HEAVY = {  # subcommands whose parsers live in modules that import torch: (help, module, adder)
    "data": ("prepare or check a dataset folder", "hvrnn.data.cli", "add_data_parser"),
    "evaluate": ("score a checkpoint or a predictions file on a named protocol",
                 "hvrnn.evaluate", "add_evaluate_parser"),
}


def _add_heavy_parser(sub, name: str, chosen: str | None) -> None:
    """Register the full parser of ``name`` when it is the chosen command, or when the chosen
    token is no light command; else a stub with only its help line, so ``--help`` stays fast."""
    help_line, module, adder = _HEAVY[name]
    if chosen == name or chosen not in (None, *_LIGHT):
        getattr(importlib.import_module(module), adder)(sub)
    else:
        sub.add_parser(name, help=help_line)


_LIGHT = ("info", "train", "sample", "demo")  # commands whose parsers need no heavy import


def _chosen_command(argv: list[str] | None) -> str | None:
    for token in sys.argv[1:] if argv is None else argv:
        if not token.startswith("-"):
            return token
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``hvrnn`` parser with every subcommand registered.

    ``data`` and ``evaluate`` get their full parsers only when ``argv`` selects them (or is
    not a command line at all), so that ``hvrnn --help`` does not import torch.
    """
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = _Parser(prog="hvrnn", description="Hierarchical conditional VRNNs for stochastic "
                     "video prediction: prepare data, train, sample and evaluate.")
    from hvrnn import __version__

    parser.add_argument("--version", action="version", version=f"hvrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("info", formatter_class=fmt, help="parameter counts of a config",
                       description="Build the model of CONFIG and print its parameter count "
                                   "per component and in total.")
    p.add_argument("config", metavar="CONFIG", help="preset name (e.g. tiny, bair64) or YAML")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_info)

    chosen = _chosen_command(argv)
    _add_heavy_parser(sub, "data", chosen)

    p = sub.add_parser(
        "train", formatter_class=fmt, help="train a model",
        description="Train CONFIG (a preset or YAML file) with dotted key=value overrides. The "
                    "run directory gets config.yaml, metrics.jsonl, checkpoints/, samples/ and "
                    "TensorBoard logs in tb/. Ctrl-C or SIGTERM saves a checkpoint and stops; "
                    "--resume continues exactly. Several GPUs or nodes: launch with torchrun "
                    "--nproc_per_node=G -m hvrnn.cli train ...")
    p.add_argument("config", metavar="CONFIG", help="preset name (e.g. tiny, bair64) or YAML")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted overrides, e.g. train.batch_size=8 model.n_z=20")
    p.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                   help="output folder (default runs/<name>-<date>); must be new or empty "
                        "unless --resume")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its last checkpoint")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "sample", formatter_class=fmt, help="draw samples from a checkpoint",
        description="Draw prior samples from CHECKPOINT (a .pt file or a run directory) and "
                    "write samples.npz (uint8 samples (sequences, N, T, H, W, C) and context "
                    "(sequences, K, H, W, C)), a PNG grid per sequence (rows: ground truth, "
                    "then samples; columns: time steps), GIFs and MP4s.")
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    p.add_argument("--context", type=Path, default=None, metavar="FILE",
                   help="uint8 clips (N, T, H, W[, C]) in .npy, or .npz with key 'context' "
                        "(and optional 'truth'); frames after the first K are ground truth. "
                        "Default: the first sequences of the config's test split")
    p.add_argument("--n-samples", type=int, default=5, metavar="N")
    p.add_argument("--horizon", type=int, default=0, metavar="T",
                   help="frames to predict (0 = eval.horizon, else data.n_pred)")
    p.add_argument("--num-sequences", type=int, default=4, metavar="M",
                   help="test sequences to use when --context is not given")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default <run dir>/samples/<checkpoint name>)")
    p.add_argument("--force", action="store_true", help="replace files written before")
    p.set_defaults(func=_sample)

    _add_heavy_parser(sub, "evaluate", chosen)

    p = sub.add_parser(
        "demo", formatter_class=fmt, help="the quick start: data, train, sample, evaluate",
        description="Prepare 32x32 Stochastic Moving MNIST (if needed), train the tiny "
                    "hierarchical model on the CPU for a few minutes, draw samples and compare "
                    "best-of-N SSIM against the untrained model and copying the last context "
                    "frame.")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default demo/<date>); must be new or empty")
    p.add_argument("--data", type=Path, default=Path("data/smmnist32"), metavar="DIR",
                   help="prepared SM-MNIST 32x32 folder (prepared there if missing)")
    p.add_argument("--steps", type=int, default=0, help="training steps (0 = demo default)")
    p.add_argument("--mnist", type=Path, default=None, metavar="PATH",
                   help="MNIST source for preparing the data (see hvrnn data smmnist --help)")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hvrnn`` console script. Returns the exit status."""
    from hvrnn.errors import UserError

    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or an argument error already printed
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USER_ERROR
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        where = f" {exc.filename!r}" if exc.filename else ""
        print(f"error: cannot access{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        from hvrnn.train import TrainingDiverged

        if isinstance(exc, TrainingDiverged):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        raise


if __name__ == "__main__":
    sys.exit(main())
