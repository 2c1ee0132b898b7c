"""Time of a whole evaluation protocol as ``hvrnn evaluate`` runs it (``evaluate_checkpoint``):
a checkpoint of the preset with random weights (the cost does not depend on the values) on
synthetic test clips, PSNR + SSIM (LPIPS and FVD off: they need weights files).

    python bench/protocol.py --protocol bair64-c2-p28-n100 --preset bair64 --batch-size 16 \\
        --bf16 --compile default --json
    python bench/protocol.py --protocol bair64-c2-p28-n100 --preset tiny --sequences 4 \\
        --n-samples 4 --json                                        # a quick CPU check

Reports the model time (sampling, each batch waited for; ``first_batch_seconds`` holds any
compilation), the rest (data, teacher-forced ELBO, metrics, writing) and the total;
``--sequences`` below the protocol's count is scaled to the whole protocol.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, machine  # noqa: E402

import hvrnn  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--protocol", default="bair64-c2-p28-n100")
    ap.add_argument("--preset", default="bair64")
    ap.add_argument("--sequences", type=int, default=256, help="test sequences sampled")
    ap.add_argument("--test-set", type=int, default=256,
                    help="sequences of the whole test set (BAIR: 256), for the scaling")
    ap.add_argument("--n-samples", type=int, default=0, help="0 = the protocol's")
    ap.add_argument("--batch-size", type=int, default=16, help="sequences per sampling batch")
    ap.add_argument("--bf16", action="store_true", help="sample under bf16 autocast")
    ap.add_argument("--compile", default="none", help="none, or a torch.compile mode")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("overrides", nargs="*", help="config overrides of the preset")
    args = ap.parse_args()

    from hvrnn.checkpoint import make_checkpoint, save_checkpoint
    from hvrnn.evaluation.from_checkpoint import evaluate_checkpoint
    from hvrnn.evaluation.protocols import get_protocol
    from hvrnn.sampling import sample

    p = get_protocol(args.protocol)
    n_seq = args.sequences
    cfg = hvrnn.load_config(args.preset, args.overrides)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    clips = torch.rand(n_seq, p.n_ctx + p.n_pred, p.channels, p.image_size, p.image_size,
                       generator=g)
    times: list[float] = []

    def timed_sample(*a, **k):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = sample(*a, **k)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        return out

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint(make_checkpoint(model=hvrnn.build_model(cfg.model),
                                               optimizer=None, step=0, cfg=cfg),
                               Path(tmp) / "run")
        t0 = time.perf_counter()
        res = evaluate_checkpoint(
            ckpt, p, Path(tmp) / "eval", n_samples=args.n_samples or None,
            max_sequences=n_seq, device=args.device, lpips_weights=False, i3d_weights=False,
            batch_size=args.batch_size, save_predictions=False, dataset=clips,
            sampler=timed_sample, bf16=args.bf16,
            compile_mode=None if args.compile == "none" else args.compile)
        total = time.perf_counter() - t0
    whole = p.sequences(args.test_set)
    scale = whole / n_seq
    model_time = sum(times)
    steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
    batches_full = -(-whole // args.batch_size)
    result = {
        "bench": "protocol", "protocol": p.id, "preset": args.preset, "device": str(dev),
        "bf16": args.bf16, "compile": args.compile, "batch_size": args.batch_size,
        "sequences": n_seq, "n_samples": res["n_samples"], "horizon": p.n_pred,
        "first_batch_seconds": round(times[0], 3), "median_batch_seconds": round(steady, 3),
        "model_seconds": round(model_time, 3), "other_seconds": round(total - model_time, 3),
        "total_seconds": round(total, 3),
        "whole_protocol_model_seconds": round(steady * batches_full, 2),
        "whole_protocol_other_seconds": round((total - model_time) * scale, 2),
        "sampled_frames_per_second": round(n_seq * res["n_samples"] * p.n_pred / model_time, 1),
        **machine(),
    }
    if dev.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
