"""Training-step throughput and peak memory: hvrnn's own step (:func:`hvrnn.training.engine.
train_step`: learning rate, posterior noise, forward, backward, finite check, Adam) over
K + T frame clips, with every speed option of the train section.

    python bench/train_step.py --preset bair64 --batch-size 4 --json
    python bench/train_step.py --preset bair64 --batch-size 16 --bf16 --fused \\
        --device-check --compile cells --compile-mode reduce-overhead --json
    python bench/train_step.py --preset smmnist32 --batch-size 8 --data-on-device --json

Frames per second count predicted (scored) frames: batch * n_pred per step. Two timings:
``seconds_per_step``, the median of ``--steps`` steps each waited for (defaults 5 after 3
warm-up steps, as in docs/benchmarks.md), and ``pipelined_seconds_per_step``, the same steps
run back to back with one wait at the end (what a training run sees when the host does not
wait for the device every step); ``frames_per_second`` uses the faster of the two. The first
warm-up step includes compilation (``compile_seconds``). Run each variant in its own process
so that peak memory is its own. TFLOP/s use torch's FLOP counter on one plain step.
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


def overrides(args: argparse.Namespace) -> list[str]:
    """The train-section options of the command line, as config overrides."""
    ov = [f"train.batch_size={args.batch_size}", f"train.amp={'bf16' if args.bf16 else 'none'}",
          f"train.fused_optimizer={'enabled' if args.fused else 'disabled'}",
          f"train.finite_check={'device' if args.device_check else 'host'}",
          f"train.channels_last={'enabled' if args.channels_last else 'disabled'}",
          f"train.amp_group_norm={'bf16' if args.bf16_norm else 'float32'}",
          f"train.compile={'true' if args.compile != 'none' else 'false'}",
          f"train.compile_scope={'cells' if args.compile == 'cells' else 'model'}",
          f"train.compile_mode={args.compile_mode}", "train.lr=1e-4"]
    if args.official_layout:
        ov += ["model.center_tap_1x1=false", "model.prior_dense=false"]
    if args.checkpointing != "none":
        ov += [f"model.activation_checkpointing={args.checkpointing}"]
    return ov + list(args.overrides)


def count_flops(cfg, x: torch.Tensor) -> int:
    """FLOPs of one plain forward + backward (a fresh model: compiled code is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = hvrnn.build_model(cfg.model).to(x.device)
    with FlopCounterMode(display=False) as fc:
        model.training_terms(x, cfg.loss)["loss"].backward()
    del model
    return fc.get_total_flops()


def batch_source(cfg, args: argparse.Namespace, dev: torch.device):
    """A function of the step giving its batch: a fixed random clip, or SM-MNIST generated on
    the device (``--data-on-device``; random 28x28 "digits", the same cost as MNIST's)."""
    d = cfg.data
    if not args.data_on_device:
        x = torch.rand(args.batch_size, d.n_ctx + d.n_pred, d.channels, d.image_size,
                       d.image_size, device=dev)
        return lambda step: x
    from hvrnn.data.smmnist_device import generate_batch, resized_digits

    digits = resized_digits(torch.randint(0, 256, (1000, 28, 28), dtype=torch.uint8).numpy(),
                            d.image_size // 2, dev)
    gen = torch.Generator(device=dev)

    def batch(step: int) -> torch.Tensor:
        gen.manual_seed(step)
        return generate_batch(digits, args.batch_size, seq_len=d.n_ctx + d.n_pred,
                              image_size=d.image_size, num_digits=d.num_digits, generator=gen)
    return batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=5, help="timed steps; the median is reported")
    ap.add_argument("--official-layout", action="store_true",
                    help="3x3 kernels on 1x1 maps and no dense prior (the official layout)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (train.amp=bf16)")
    ap.add_argument("--fused", action="store_true", help="train.fused_optimizer=enabled")
    ap.add_argument("--device-check", action="store_true",
                    help="train.finite_check=device (needs --fused)")
    ap.add_argument("--channels-last", action="store_true", help="train.channels_last=enabled")
    ap.add_argument("--bf16-norm", action="store_true",
                    help="train.amp_group_norm=bf16 (GroupNorm in bf16 under autocast)")
    ap.add_argument("--compile", choices=("none", "model", "cells"), default="none",
                    help="train.compile with train.compile_scope")
    ap.add_argument("--compile-mode", default="default", help="train.compile_mode")
    ap.add_argument("--data-on-device", action="store_true",
                    help="generate each step's SM-MNIST batch on the device (timed)")
    ap.add_argument("--checkpointing", choices=("none", "decoder", "all"), default="none",
                    help="activation checkpointing (model.activation_checkpointing)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    run(args)


def run(args: argparse.Namespace) -> None:
    from hvrnn.distributed import DistInfo
    from hvrnn.training.engine import settle_state, train_step
    from hvrnn.training.launcher import wrap_for_training
    from hvrnn.training.state import TrainState

    cfg = hvrnn.load_config(args.preset, overrides(args))
    cfg.validate()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    batch = batch_source(cfg, args, dev)
    flops = count_flops(cfg, batch(0))
    dist = DistInfo(device=dev)
    state = TrainState.create(cfg, dist)
    forward = wrap_for_training(state.model, cfg, dist)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times, warmup_times = [], []
    for i in range(args.warmup + args.steps):
        if i == args.warmup and dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        train_step(state, forward, batch(i), cfg, dist)
        sync()
        (times if i >= args.warmup else warmup_times).append(time.perf_counter() - t0)
    settle_state(state)
    t0 = time.perf_counter()
    for i in range(args.steps):
        train_step(state, forward, batch(i), cfg, dist)
    settle_state(state)
    sync()
    pipelined = (time.perf_counter() - t0) / args.steps
    dt = statistics.median(times)
    frames = args.batch_size * cfg.data.n_pred
    result = {
        "bench": "train_step", "preset": args.preset, "official_layout": args.official_layout,
        "checkpointing": args.checkpointing, "bf16": args.bf16, "fused": args.fused,
        "device_check": args.device_check, "channels_last": args.channels_last,
        "bf16_norm": args.bf16_norm,
        "compile": args.compile, "compile_mode": args.compile_mode,
        "data_on_device": args.data_on_device,
        "device": str(dev), "batch_size": args.batch_size, "clip_frames": cfg.data.seq_len,
        "parameters": hvrnn.count_parameters(state.model)["total"], "warmup": args.warmup,
        "warmup_step_seconds": [round(t, 4) for t in warmup_times],
        "compile_seconds": round(warmup_times[0] - dt, 3) if warmup_times else None,
        "step_seconds": [round(t, 4) for t in times],
        "seconds_per_step": round(dt, 4), "pipelined_seconds_per_step": round(pipelined, 4),
        "frames_per_second": round(frames / min(dt, pipelined), 3),
        "tflop_per_step": round(flops / 1e12, 4),
        "tflop_per_second": round(flops / min(dt, pipelined) / 1e12, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1), **machine(),
    }
    if dev.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
