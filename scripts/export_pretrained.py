"""Package a trained run as a pretrained model folder (weights, config, model card).

    python scripts/export_pretrained.py RUN_DIR_OR_CHECKPOINT --name smmnist32 \
        --eval RUN_DIR/eval/step_00019000/smmnist32-c2-p10-n10 \
        --summary "..." --recipe "..." --out src/hvrnn/pretrained/smmnist32 [--prose FILE] [--force]

The model card's front matter is filled from the run itself: the data section (dataset, frame
size, context and predicted frames, the data seed), the training seed, the steps of the
checkpoint, the wall-clock minutes of every training session in ``metrics.jsonl`` (from each
``start`` record to the session's last record, up to the checkpoint's step), the machine this
script runs on (pass --machine to describe the one that trained), and, from ``--eval`` (a folder
written by ``hvrnn evaluate``), the protocol and its scores: best-of-N and mean-of-N SSIM and
PSNR with 95% intervals, SSIM per predicted frame, the negative ELBO and the KL per level.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch

from hvrnn.checkpoint import checkpoint_config, read_checkpoint, resolve_checkpoint
from hvrnn.pretrained import export_pretrained
from hvrnn.training.logs import training_minutes


def wall_minutes(run_dir: Path, step: int) -> float:
    """Wall-clock minutes of the training sessions that led to ``step``."""
    minutes = training_minutes(run_dir)
    return round(minutes[max(s for s in minutes if s <= step)], 1)


def eval_facts(folder: Path) -> dict[str, Any]:
    """Protocol and scores from an ``hvrnn evaluate`` folder."""
    res = json.loads((folder / "metrics.json").read_text())
    m = res["metrics"]
    facts: dict[str, Any] = {"protocol": res["protocol_id"],
                             "evaluated": {"sequences": res["n_sequences"],
                                           "samples": res["n_samples"]}}
    scores: dict[str, Any] = {}
    for name in ("ssim", "psnr"):
        for which in ("best", "mean"):
            s = m[name][which]
            scores[f"{name}_{which}"] = round(float(s["mean"]), 4)
            scores[f"{name}_{which}_ci95"] = [round(float(v), 4) for v in s["ci95"]]
    scores["ssim_best_per_frame"] = [round(float(v), 3) for v in
                                     m["ssim"]["best"]["per_frame_mean"]]
    per = res.get("elbo", {}).get("per_clip_mean", {})
    if per:
        scores["nelbo"] = round(per["nelbo"], 1)
        scores["kl_per_level"] = [round(per[k], 2) for k in sorted(
            (k for k in per if k.startswith("kl/level_")), key=lambda k: int(k[9:]))]
    facts["metrics"] = scores
    return facts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("source", help="run directory or checkpoint")
    ap.add_argument("--name", required=True)
    ap.add_argument("--eval", required=True, type=Path, help="an hvrnn evaluate output folder")
    ap.add_argument("--summary", required=True, help="one line: what the model is")
    ap.add_argument("--recipe", required=True, help="how it was trained, in a few words")
    ap.add_argument("--machine", default=None, help="the machine it was trained on")
    ap.add_argument("--prose", type=Path, default=None, help="Markdown after the front matter")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()

    path = resolve_checkpoint(args.source)
    ckpt = read_checkpoint(path)
    cfg = checkpoint_config(ckpt, path)
    run_dir = path.parent.parent
    d = cfg.data
    card = {
        "name": args.name, "summary": args.summary,
        "data": {"dataset": d.name, "image_size": d.image_size, "channels": d.channels,
                 "context_frames": d.n_ctx, "predicted_frames_in_training": d.n_pred,
                 "test_set_seed": d.seed},
        "seed": cfg.train.seed, "recipe": args.recipe, "steps": int(ckpt["step"]),
        "wall_minutes": wall_minutes(run_dir, int(ckpt["step"])),
        "machine": args.machine or f"{platform.machine()} {platform.processor() or ''}".strip(),
        "software": {"torch": str(torch.__version__), "python": platform.python_version()},
        **eval_facts(args.eval),
        "use": f"hvrnn.load_pretrained('{args.name}'), or pretrained:{args.name} wherever "
               "a checkpoint is accepted",
    }
    prose = args.prose.read_text() if args.prose else ""
    out = export_pretrained(path, args.out, card, prose, force=args.force)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
