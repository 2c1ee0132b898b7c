"""Step-wise ancestral sampling versus re-running the teacher-forced pass over the whole clip for
every new frame (the official procedure), measured in the same run on the same weights.
Every re-run pass costs the same, so ``--rerun-passes P`` times P of them and scales to the
horizon.

    python bench/sampling.py --preset bair64 --horizon 28 --samples 8 --json
    python bench/sampling.py --preset tiny --horizon 28 --samples 8 --json
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
from official_sampler import rerun_rollout  # noqa: E402

import hvrnn  # noqa: E402
from hvrnn.sampling import rollout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--horizon", type=int, default=28)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--sequences", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    ap.add_argument("--skip-rerun", action="store_true", help="time the step-wise sampler only")
    ap.add_argument("--rerun-passes", type=int, default=0,
                    help="time only this many of the re-run baseline's passes (each costs the "
                         "same: the whole clip) and scale to the horizon; 0 = all")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for the step-wise sampler")
    ap.add_argument("--compile", default="none",
                    help="none, or a torch.compile mode for every ConvLSTM step (the first "
                         "untimed run compiles; compile_seconds)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    cfg = hvrnn.load_config(args.preset, args.overrides)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = hvrnn.build_model(cfg.model).to(dev).eval()
    if args.compile != "none":
        from hvrnn.accel import compile_cells

        compile_cells(model, args.compile)
    m = cfg.model
    ctx = torch.rand(args.sequences, m.n_ctx, m.image_channels, m.image_size, m.image_size,
                     device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    first: list[float] = []

    def timed(fn):
        """(median, all) seconds of ``args.repeats`` runs after ``args.warmup`` untimed ones;
        the first untimed run's seconds go to ``first``."""
        for i in range(args.warmup):
            t0 = time.perf_counter()
            fn()
            sync()
            if i == 0:
                first.append(time.perf_counter() - t0)
        times = []
        for _ in range(args.repeats):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times), [round(t, 4) for t in times]

    def stepwise():
        g = torch.Generator(device=dev).manual_seed(0)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            return rollout(model, ctx, args.horizon, args.samples, generator=g)

    t_step, step_times = timed(stepwise)
    frames = args.sequences * args.samples * args.horizon
    result = {"bench": "sampling", "preset": args.preset, "device": str(dev),
              "bf16": args.bf16, "compile": args.compile, "n_ctx": m.n_ctx,
              "horizon": args.horizon,
              "samples": args.samples, "sequences": args.sequences,
              "warmup": args.warmup, "repeats": args.repeats,
              "stepwise_seconds": round(t_step, 4), "stepwise_seconds_all": step_times,
              "stepwise_frames_per_second": round(frames / t_step, 2),
              "compile_seconds": round(first[0] - t_step, 3) if first else None}
    if not args.skip_rerun:
        passes = args.rerun_passes if 0 < args.rerun_passes < args.horizon else args.horizon

        def rerun():
            g = torch.Generator(device=dev).manual_seed(0)
            return rerun_rollout(model, ctx, args.horizon, args.samples, generator=g,
                                 max_passes=passes)

        t_pass, rerun_times = timed(rerun)
        t_rerun = t_pass * args.horizon / passes
        result.update(rerun_passes_timed=passes, rerun_seconds=round(t_rerun, 4),
                      rerun_seconds_all=rerun_times,
                      speedup=round(t_rerun / t_step, 2))
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result.update(machine())
    emit(result, args.json)


if __name__ == "__main__":
    main()
