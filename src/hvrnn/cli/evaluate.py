"""``hvrnn evaluate CHECKPOINT --protocol ID`` and ``hvrnn evaluate --predictions FILE.npz``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hvrnn.cli.common import FORMATTER
from hvrnn.errors import UserError
from hvrnn.evaluation.protocols import PROTOCOLS, get_protocol


def run(args: argparse.Namespace) -> int:
    """Score a predictions file, or sample from a checkpoint and score; print a summary."""
    from hvrnn.evaluation.from_checkpoint import evaluate_checkpoint
    from hvrnn.evaluation.predictions import evaluate_predictions_file
    from hvrnn.evaluation.report import format_summary

    if bool(args.checkpoint) == bool(args.predictions):
        raise UserError("give either a CHECKPOINT or --predictions FILE.npz (not both)")
    get_protocol(args.protocol)
    if args.predictions:
        out = args.out or str(Path(args.predictions).parent / f"eval-{args.protocol}")
        result = evaluate_predictions_file(
            args.predictions, args.protocol, out, data_root=args.data_root,
            lpips_weights=args.lpips_weights, i3d_weights=args.i3d_weights,
            targets=args.targets, max_sequences=args.max_sequences, force=args.force,
            device=args.device)
    else:
        if args.targets:
            raise UserError("--targets is only used with --predictions")
        ckpt = Path(args.checkpoint)
        base = ckpt if ckpt.is_dir() else ckpt.parent.parent
        out = args.out or str(base / "eval" / args.protocol)
        result = evaluate_checkpoint(
            args.checkpoint, args.protocol, out, data_root=args.data_root,
            n_samples=args.n_samples, max_sequences=args.max_sequences, device=args.device,
            lpips_weights=args.lpips_weights, i3d_weights=args.i3d_weights,
            batch_size=args.batch_size, temperature=args.temperature, force=args.force,
            save_predictions=not args.no_save_predictions, config_defaults=True)
    print(format_summary(result))
    print(f"results: {Path(out) / 'metrics.json'}")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate", formatter_class=FORMATTER,
        help="score a checkpoint or a predictions file on a named protocol",
        description="Sample from CHECKPOINT on the protocol's test set and score the samples, "
        "or score a predictions .npz (samples uint8 (sequences, N, T_pred, H, W, C), optional "
        "context). Writes metrics.json, per_frame.csv and curves.png. LPIPS and FVD run only "
        "when their weights are given. Options left unset for a checkpoint come from its "
        f"config's eval section, else the protocol. Protocols: {', '.join(PROTOCOLS)}.")
    p.add_argument("checkpoint", nargs="?", help="checkpoint file or run directory")
    p.add_argument("--protocol", required=True, help="protocol id")
    p.add_argument("--predictions", metavar="FILE.npz", help="score this file instead")
    p.add_argument("--targets", metavar="FILE.npz",
                   help="ground-truth clips (key 'videos', uint8 (sequences, K+T, H, W, C)) "
                   "instead of the prepared dataset (with --predictions)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: eval/<protocol> next "
                   "to the checkpoint, or next to the predictions file)")
    p.add_argument("--data-root", metavar="DIR", help="prepared test data")
    p.add_argument("--n-samples", type=int, help="samples per sequence (checkpoint only; "
                   "default eval.n_samples, else the protocol's)")
    p.add_argument("--max-sequences", type=int, help="score only the first N sequences "
                   "(default eval.max_sequences, else the protocol's)")
    p.add_argument("--temperature", type=float, help="prior variance multiplier (checkpoint "
                   "only; default eval.temperature)")
    p.add_argument("--lpips-weights", metavar="P", help="LPIPS backbone file or folder "
                   "(default eval.lpips_weights)")
    p.add_argument("--i3d-weights", metavar="P", help="I3D TorchScript or state dict "
                   "(default eval.i3d_weights)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--batch-size", type=int, default=0, help="sequences per sampling batch "
                   "(0: the checkpoint's eval.batch_size)")
    p.add_argument("--no-save-predictions", action="store_true",
                   help="do not write predictions.npz (checkpoint only)")
    p.add_argument("--force", action="store_true", help="overwrite an existing metrics.json")
    p.set_defaults(func=run)
    return p
