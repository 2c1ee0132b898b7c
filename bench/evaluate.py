"""Throughput of the evaluation metrics on this machine.

PSNR + SSIM (protocol variant plus the legacy one) stream over synthetic 64x64 RGB samples of
28 predicted frames, N samples per sequence, exactly as ``hvrnn evaluate`` scores them. LPIPS
(AlexNet) and I3D forwards use random weights: the timing does not depend on the values.
Step-wise sampling of the ``--preset`` model (random weights) is timed for
``--sampling-samples`` samples and scaled to N (its cost is linear in N), and the per-sequence
costs are added up into a whole-protocol rate.

    python bench/evaluate.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--sequences", type=int, default=2, help="sequences timed for PSNR+SSIM")
    ap.add_argument("--n-samples", type=int, default=100)
    ap.add_argument("--frames", type=int, default=28)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default="bair64",
                    help="model whose step-wise sampling is timed (random weights)")
    ap.add_argument("--sampling-samples", type=int, default=10,
                    help="samples drawn for the sampling timing (cost is linear in N)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast while sampling")
    args = ap.parse_args()

    from hvrnn import metrics
    from hvrnn.evaluation.protocols import PROTOCOLS
    from hvrnn.evaluation.scorer import Scorer

    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    s, n, t, hw = args.sequences, args.n_samples, args.frames, args.size
    truth = rng.integers(0, 256, size=(s, t, hw, hw, 3), dtype=np.uint8)
    noise = rng.integers(-20, 21, size=(s, n, t, hw, hw, 3))
    samples = np.clip(truth[:, None].astype(np.int16) + noise, 0, 255).astype(np.uint8)

    proto = PROTOCOLS["bair64-c2-p28-n100"]

    def psnr_ssim() -> None:
        scorer = Scorer(proto, device=device)
        for i in range(s):
            scorer.add(samples[i:i + 1], truth[i:i + 1], None)
        scorer.reducer.result()

    sec = _time(psnr_ssim, repeat=1)
    out = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "setting": f"{n} samples x {t} frames x {hw}x{hw}x3 per sequence",
        "psnr_ssim_sequences_per_s": s / sec,
        "psnr_ssim_frames_per_s": s * n * t / sec,
    }

    # LPIPS (AlexNet), random weights: frames per second at 64x64.
    lp = metrics.LPIPS("alex").to(device)
    x = torch.rand(1, 256, 3, hw, hw, device=device)
    y = torch.rand(1, 256, 3, hw, hw, device=device)
    sec = _time(lambda: metrics.lpips(x, y, weights=lp), repeat=2)
    out["lpips_frames_per_s"] = 256 / sec
    out["lpips_sequences_per_s"] = 256 / sec / (n * t)

    # I3D at 224x224 (what FVD uses): videos of 2 context + 28 predicted frames.
    i3d = metrics.I3D().to(device).eval()
    vid = torch.rand(1, 30, 3, hw, hw, device=device)
    sec = _time(lambda: metrics.i3d_features(vid, i3d, batch_size=1), repeat=1)
    out["i3d_videos_per_s"] = 1 / sec
    out["i3d_sequences_per_s"] = 1 / sec / (n + 1)  # N generated + 1 real video per sequence

    # Frechet distance of 400-d Gaussians (one FVD round).
    f1, f2 = rng.normal(size=(256, 400)), rng.normal(size=(256, 400))
    sec = _time(lambda: metrics.fvd_from_features(f1, f2), repeat=2)
    out["fvd_round_s"] = sec

    # Sampling: 2 context -> 28 frames with the step API, N samples of one sequence in a batch.
    import hvrnn

    cfg = hvrnn.load_config(args.preset)
    torch.manual_seed(0)
    model = hvrnn.build_model(cfg.model).to(device).eval()
    m = cfg.model
    ctx = torch.rand(1, m.n_ctx, m.image_channels, m.image_size, m.image_size, device=device)

    def draw() -> None:
        g = torch.Generator(device=device).manual_seed(0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            hvrnn.sample(model, ctx, horizon=t, n_samples=args.sampling_samples, generator=g)

    sec = _time(draw, repeat=1)
    out["sampling_preset"] = args.preset
    out["sampling_frames_per_s"] = args.sampling_samples * t / sec
    out["sampling_sequences_per_s"] = args.sampling_samples / sec / n  # N samples a sequence
    # The whole protocol per sequence: sampling + PSNR/SSIM (+ LPIPS and I3D when weights are
    # given); each rate above was measured separately, the costs add up.
    core = 1 / out["sampling_sequences_per_s"] + 1 / out["psnr_ssim_sequences_per_s"]
    out["protocol_sequences_per_s_psnr_ssim"] = 1 / core
    out["protocol_sequences_per_s_all_metrics"] = 1 / (
        core + 1 / out["lpips_sequences_per_s"] + 1 / out["i3d_sequences_per_s"]
        + 100 * out["fvd_round_s"] / 256)

    if args.json:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                          for k, v in out.items()}))
    else:
        for k, v in out.items():
            print(f"{k:28s} {v}")


if __name__ == "__main__":
    main()
