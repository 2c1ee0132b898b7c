"""``hvrnn compare RUN_OR_CHECKPOINT_OR_PREDICTIONS... --protocol ID --out DIR``."""

from __future__ import annotations

import argparse
from typing import Any

from hvrnn.cli.common import FORMATTER, device, integer, metric_weights
from hvrnn.evaluation.protocols import PROTOCOLS, get_protocol


def run(args: argparse.Namespace) -> int:
    """Compare the entries; print where the table, curves and figures are."""
    from hvrnn.cli.evaluate import conventions_arg
    from hvrnn.evaluation.compare_outputs import compare
    from hvrnn.weights import LPIPS_FILES

    protocol = get_protocol(args.protocol).with_options(conventions=conventions_arg(
        args.convention))
    notes: dict[str, str] = {}  # as hvrnn evaluate: given weights, else the cache's
    lpips = metric_weights(args.lpips_weights, args.no_lpips, "lpips",
                     LPIPS_FILES[protocol.lpips_net], notes)
    i3d = metric_weights(args.i3d_weights, args.no_fvd, "fvd", ("i3d",), notes)
    options = {k: v for k, v in (("n_samples", args.n_samples),
                                 ("max_sequences", args.max_sequences),
                                 ("lpips_weights", lpips), ("i3d_weights", i3d),
                                 ("batch_size", args.batch_size)) if v}
    summary = compare(args.entries, protocol, args.out, labels=args.labels,
                      sequences=tuple(args.sequences), show=args.show, seed=args.seed,
                      force=args.force, data_root=args.data_root, device=args.device,
                      **options)
    print((args.out / "table.md").read_text())
    print(f"wrote table.md, table.csv, curves.png and {len(summary['figures'])} figure(s) "
          f"to {args.out}")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from pathlib import Path

    p = sub.add_parser(
        "compare", formatter_class=FORMATTER, help="compare several models on one protocol",
        description="Compare runs, checkpoints, predictions files or evaluation folders on one "
        "protocol: a table (table.md, table.csv: best-of-N and mean-of-N of every metric with "
        "std and 95% interval over sequences, FVD over rounds, sampling throughput), "
        "per-frame curves of all entries (curves.png) and one figure per test sequence "
        "(figures/seq_<i>.png: ground truth, then one row per model; context frames, then "
        "the predicted steps t = 3, 4, 6, 8, 10, 12, 15, 18, 20, 25 within the horizon, or "
        "every predicted step for horizons of 10 frames or fewer; figures/sequences.png "
        "stacks them). An entry's evaluation for "
        "the protocol is reused where it exists (where hvrnn evaluate writes it by default for "
        "that checkpoint, next to a predictions file, or the evaluation folder given); "
        "otherwise it is evaluated into "
        "DIR/evaluations/<label>. Entries scored under different protocols are refused. "
        f"Protocols: {', '.join(PROTOCOLS)}.")
    p.add_argument("entries", nargs="+", metavar="ENTRY",
                   help="run directory, checkpoint, predictions .npz or evaluation folder")
    p.add_argument("--protocol", required=True, help="protocol id or protocol file (.yaml)")
    from hvrnn.cli.evaluate import add_convention_option

    add_convention_option(p)
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument("--labels", nargs="+", metavar="NAME",
                   help="entry names, one per entry (default: run, checkpoint or file names)")
    p.add_argument("--sequences", nargs="+", type=integer(0, 10_000_000), default=[0], metavar="I",
                   help="test sequences to draw figures of")
    p.add_argument("--show", choices=("best", "random"), default="best",
                   help="sample shown per model: the best by SSIM, or a random one")
    p.add_argument("--seed", type=integer(), default=0, help="seed of the random sample choice")
    p.add_argument("--data-root", metavar="DIR", help="prepared test data (default: the "
                   "protocol's)")
    p.add_argument("--n-samples", type=integer(1, 10_000),
                   help="samples per sequence for entries evaluated here (default: the protocol's)")
    p.add_argument("--max-sequences", type=integer(1, 10_000_000),
                   help="score only the first sequences (entries evaluated here; default: as "
                        "a reused evaluation, else the protocol's)")
    p.add_argument("--lpips-weights", metavar="P", help="LPIPS weights for entries evaluated "
                   "here (default: the weights cache if it holds them)")
    p.add_argument("--i3d-weights", metavar="P", help="I3D weights for entries evaluated here "
                   "(default: the weights cache if it holds them)")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS (entries evaluated here)")
    p.add_argument("--no-fvd", action="store_true", help="skip FVD (entries evaluated here)")
    p.add_argument("--batch-size", type=integer(0, 10_000), default=0,
                   help="sequences per sampling batch (0: the checkpoint's eval.batch_size)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or auto")
    p.add_argument("--force", action="store_true", help="overwrite an earlier comparison")
    p.set_defaults(func=run)
    return p
