"""``hvrnn evaluate CHECKPOINT --protocol ID``, ``hvrnn evaluate --predictions PATH --protocol ID``
and ``hvrnn evaluate --list-protocols``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hvrnn.cli.common import FORMATTER, device, integer, metric_weights, number
from hvrnn.config.sections import COMPILE_MODES
from hvrnn.errors import UserError
from hvrnn.evaluation.protocols import format_protocols, get_protocol


def conventions_arg(value: str | None) -> list[str] | None:
    """``--convention a,b`` as a list of names (None when not given)."""
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def add_convention_option(p: argparse.ArgumentParser) -> None:
    """``--convention NAME[,NAME...]`` (shared by evaluate and compare)."""
    p.add_argument("--convention", metavar="NAME[,NAME...]",
                   help="metric convention(s) to score under, in one pass: the first gives "
                   "psnr/ssim, the others psnr@NAME/ssim@NAME (skimage, svg, svg_per_frame, "
                   "svg_finn, srvp = slamp, savp, mcvd, openstl; default: the protocol's; see "
                   "docs/evaluation.md)")


def run(args: argparse.Namespace) -> int:
    """Score predictions, or sample from a checkpoint and score; print a summary. Notes on
    skipped metrics go to stderr after the results, so that an error stays one line."""
    if args.list_protocols:
        print(format_protocols())
        return 0
    if args.list_conventions:
        from hvrnn.metrics.conventions import format_conventions

        print(format_conventions())
        return 0
    if not args.protocol:
        raise UserError("--protocol ID is required (see --list-protocols)")
    if bool(args.checkpoint) == bool(args.predictions):
        raise UserError("give either a CHECKPOINT or --predictions PATH (not both)")
    from hvrnn.weights import LPIPS_FILES

    protocol = get_protocol(args.protocol).with_options(conventions=conventions_arg(
        args.convention))
    args.protocol = protocol
    notes: dict[str, str] = {}
    lpips_weights = metric_weights(args.lpips_weights, args.no_lpips, "lpips",
                             LPIPS_FILES[protocol.lpips_net], notes)
    i3d_weights = metric_weights(args.i3d_weights, args.no_fvd, "fvd", ("i3d",), notes)
    if args.predictions:
        result = _score_predictions(args, lpips_weights, i3d_weights)
    else:
        result = _score_checkpoint(args, lpips_weights, i3d_weights)
    from hvrnn.evaluation.report import format_summary
    from hvrnn.evaluation.scorer import SKIPPED

    print(format_summary(result))
    print(f"results: {Path(result.folder) / 'metrics.json'}")
    for metric, note in notes.items():
        if result["implementations"].get(metric) == SKIPPED:  # not filled in from the config
            print(note, file=sys.stderr)
    return 0


def _score_predictions(args: argparse.Namespace, lpips_weights: Any, i3d_weights: Any
                       ) -> dict[str, Any]:
    from hvrnn.evaluation.predictions import evaluate_predictions_file

    for option in ("n_samples", "temperature"):
        if getattr(args, option) is not None:
            raise UserError(f"--{option.replace('_', '-')} is only used with a CHECKPOINT (the "
                            "predictions file fixes it)")
    return evaluate_predictions_file(
        args.predictions, args.protocol, args.out, data_root=args.data_root,
        lpips_weights=lpips_weights, i3d_weights=i3d_weights, targets=args.targets,
        max_sequences=args.max_sequences, force=args.force, device=args.device)


def _score_checkpoint(args: argparse.Namespace, lpips_weights: Any, i3d_weights: Any
                      ) -> dict[str, Any]:
    from hvrnn.evaluation.from_checkpoint import evaluate_checkpoint

    if args.targets:
        raise UserError("--targets is only used with --predictions")
    return evaluate_checkpoint(
        args.checkpoint, args.protocol, args.out, data_root=args.data_root,
        n_samples=args.n_samples, max_sequences=args.max_sequences, device=args.device,
        lpips_weights=lpips_weights, i3d_weights=i3d_weights, batch_size=args.batch_size,
        temperature=args.temperature, force=args.force,
        save_predictions=not args.no_save_predictions, config_defaults=True,
        compile_mode=args.compile, bf16=args.bf16)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate", formatter_class=FORMATTER,
        help="score a checkpoint or predictions on a named protocol",
        description="Sample from CHECKPOINT on the protocol's test set and score the samples, "
        "or score predictions: a .npz (samples uint8 (sequences, N, T_pred, H, W, C), optional "
        "context), a folder of PNG frames <sequence>/<sample>/<frame>.png or a folder of videos "
        "<sequence>_<sample>.mp4|gif (see docs/evaluation.md). Writes metrics.json, "
        "per_frame.csv and curves.png. LPIPS and FVD run when their weights are given, named "
        "in a checkpoint config's eval section, or in the weights cache (hvrnn weights fetch). "
        "Options left unset for a checkpoint come from its config's eval section, else the "
        "protocol. Protocols: --list-protocols.")
    p.add_argument("checkpoint", nargs="?",
                   help="checkpoint file, run directory or pretrained:NAME")
    p.add_argument("--protocol", help="protocol id or protocol file (.yaml; required unless "
                   "--list-protocols)")
    p.add_argument("--list-protocols", action="store_true",
                   help="print every protocol in the YAML form of a protocol file and exit")
    p.add_argument("--list-conventions", action="store_true",
                   help="print every metric convention with its definition and exit")
    add_convention_option(p)
    p.add_argument("--predictions", metavar="PATH",
                   help="score this .npz, PNG folder or video folder instead")
    p.add_argument("--targets", metavar="FILE",
                   help="ground-truth clips, uint8 (sequences, K+T, H, W, C): an .npz with key "
                   "'videos' or an .npy, instead of the prepared dataset (with --predictions)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: "
                   "eval/step_<N>/<protocol>[-n<N>][-s<S>][-t<T>] in the run directory, "
                   "step_<N> the checkpoint's step, also for last.pt, as hvrnn sample's "
                   "samples/step_<N>; or eval-<file>-<protocol> next to the predictions; "
                   "-n, -s, -t: the samples, sequences and temperature where they differ from "
                   "the registered protocol's; -n, -s always for a protocol file)")
    p.add_argument("--data-root", metavar="DIR",
                   help="prepared test data (default: the checkpoint config's data.root; with "
                        "--predictions, the protocol's)")
    p.add_argument("--n-samples", type=integer(1, 10_000),
                   help="samples per sequence (checkpoint only; default eval.n_samples, else "
                        "the protocol's)")
    p.add_argument("--max-sequences", type=integer(1, 10_000_000),
                   help="score only the first N sequences (default eval.max_sequences, else "
                        "the protocol's)")
    p.add_argument("--temperature", type=number(0.0), help="prior variance multiplier (checkpoint "
                   "only; default eval.temperature)")
    p.add_argument("--lpips-weights", metavar="P", help="LPIPS backbone file or folder "
                   "(default eval.lpips_weights, else the weights cache if it holds them)")
    p.add_argument("--i3d-weights", metavar="P", help="I3D TorchScript or state dict "
                   "(default eval.i3d_weights, else the weights cache if it holds it)")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    p.add_argument("--no-fvd", action="store_true", help="skip FVD")
    p.add_argument("--device", type=device, default="auto", help="cpu, cuda or auto")
    p.add_argument("--batch-size", type=integer(0, 10_000), default=0,
                   help="sequences per sampling batch (0: the checkpoint's eval.batch_size)")
    p.add_argument("--compile", nargs="?", const="default", choices=COMPILE_MODES,
                   metavar="MODE", help="torch.compile each ConvLSTM's per-frame step for "
                   "sampling (checkpoint only; MODE default, or reduce-overhead for CUDA "
                   "graphs; default: the checkpoint's eval.compile)")
    p.add_argument("--bf16", action="store_true", help="sample under bf16 autocast "
                   "(checkpoint only; faster on GPUs, samples differ by rounding)")
    p.add_argument("--no-save-predictions", action="store_true",
                   help="do not write predictions.npz (checkpoint only)")
    p.add_argument("--force", action="store_true",
                   help="overwrite the results (metrics.json, per_frame.csv, curves.png, "
                        "predictions.npz) of an earlier evaluation in the output folder")
    p.set_defaults(func=run)
    return p
