"""Training-step throughput and peak memory (forward, backward and Adam over K + T frame clips).

    python bench/train_step.py --preset bair64 --batch-size 4 --json
    python bench/train_step.py --preset bair64 --batch-size 4 --official-layout --json

Frames per second count predicted (scored) frames: batch * n_pred per step, at the median of
``--steps`` timed steps after ``--warmup`` untimed ones (defaults 5 and 3). Run each variant in
its own process so that peak memory is its own. GFLOP/s use torch's FLOP counter on one step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, machine, peak_rss_mb  # noqa: E402

import hvrnn  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=5, help="timed steps; the median is reported")
    ap.add_argument("--official-layout", action="store_true",
                    help="3x3 kernels on 1x1 maps and no dense prior (the official layout)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (train.amp=bf16)")
    ap.add_argument("--checkpointing", choices=("none", "decoder", "all"), default="none",
                    help="activation checkpointing (model.activation_checkpointing)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model's forward")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    ov = list(args.overrides)
    if args.official_layout:
        ov += ["model.center_tap_1x1=false", "model.prior_dense=false"]
    if args.checkpointing != "none":
        ov += [f"model.activation_checkpointing={args.checkpointing}"]
    cfg = hvrnn.load_config(args.preset, ov)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = hvrnn.build_model(cfg.model).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    d = cfg.data
    x = torch.rand(args.batch_size, d.n_ctx + d.n_pred, d.channels, d.image_size,
                   d.image_size, device=dev)
    net = torch.compile(model) if args.compile else model

    def forward(*a, **k):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            return net(*a, **k)

    def step():
        terms = model.training_terms(x, cfg.loss, forward=forward)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times, warmup_times = [], []
    for i in range(args.warmup + args.steps):
        if i == args.warmup and dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        step()
        sync()
        (times if i >= args.warmup else warmup_times).append(time.perf_counter() - t0)
    dt = statistics.median(times)

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    frames = args.batch_size * d.n_pred
    result = {
        "bench": "train_step", "preset": args.preset, "official_layout": args.official_layout,
        "checkpointing": args.checkpointing, "bf16": args.bf16, "compile": args.compile,
        "device": str(dev), "batch_size": args.batch_size, "clip_frames": d.n_ctx + d.n_pred,
        "parameters": hvrnn.count_parameters(model)["total"], "warmup": args.warmup,
        "warmup_step_seconds": [round(t, 4) for t in warmup_times],
        "step_seconds": [round(t, 4) for t in times],
        "seconds_per_step": round(dt, 4), "frames_per_second": round(frames / dt, 3),
        "tflop_per_step": round(flops / 1e12, 4), "gflop_per_second": round(flops / dt / 1e9, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1), **machine(),
    }
    if dev.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
