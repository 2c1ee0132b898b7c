"""The official implementation's training step, timed the way ``bench/train_step.py`` times
hvrnn's: its hierarchical model (``models/vrnn_hier.py``, ``Model(3, 2, n_z=10)``, 64x64 RGB),
its losses (``losses.reconstruction_loss`` with BCE + ``losses.kl_loss``, beta 1) and
``torch.optim.Adam(lr=1e-4, weight_decay=1e-4)`` on clips of 2 context + 10 predicted frames.

The official code is not part of hvrnn (its licence is non-commercial): ``--official-root``
names a checkout of github.com/facebookresearch/improved_vrnn (or a folder with its
``layers.py``, ``flows.py``, ``losses.py`` and ``models/vrnn_hier.py``) to which a one-line
``vrnn_layers.py`` has been added, ``from layers import *`` (the module ``vrnn_hier.py``
imports, missing from that repository).

    python bench/official_step.py --official-root ../improved_vrnn --batch-size 16 --json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, machine, peak_rss_mb  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--official-root", required=True)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast of the forward")
    ap.add_argument("--n-hid", type=int, default=64, help="the model's width (64: the paper's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    sys.path.insert(0, os.path.abspath(args.official_root))
    import losses  # noqa: PLC0415  (the official modules)
    from models.vrnn_hier import Model  # noqa: PLC0415

    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = Model(3, 2, n_hid=args.n_hid, n_z=10).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    config = {"n_steps": 10, "n_ctx": 2, "rec_loss": "bce", "beta": 1.0}
    x = torch.rand(args.batch_size, 12, 3, 64, 64, device=dev)

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            (preds, priors, posteriors), _ = model(x, config, False)
        priors = [tuple(v.float() if torch.is_tensor(v) else v for v in p) for p in priors]
        posteriors = [tuple(v.float() if torch.is_tensor(v) else v for v in q)
                      for q in posteriors]
        with torch.autocast(dev.type, enabled=False):
            loss = (F.binary_cross_entropy(preds.float(), x[:, 2:], reduction="none")
                    .flatten(1).sum(1).mean()
                    + config["beta"] * losses.kl_loss(config, priors, posteriors))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times = []
    for i in range(args.warmup + args.steps):
        if i == args.warmup and dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        step()
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    result = {"bench": "official_step", "bf16": args.bf16, "device": str(dev),
              "batch_size": args.batch_size, "n_hid": args.n_hid,
              "parameters": sum(p.numel() for p in model.parameters()),
              "step_seconds": [round(t, 4) for t in times], "seconds_per_step": round(dt, 4),
              "frames_per_second": round(args.batch_size * 10 / dt, 3),
              "peak_rss_mb": round(peak_rss_mb(), 1), **machine()}
    if dev.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
