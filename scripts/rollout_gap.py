"""How much of a model's error comes from feeding back its own predictions.

    python scripts/rollout_gap.py pretrained:smmnist32 --out OUT [--protocol ID]
        [--sequences 64] [--samples 10] [--data-root DIR]

Predicts each frame of the protocol's first test clips in three ways, all with the step API,
and scores the best of N samples per clip by SSIM (frames quantised to uint8, as the protocol):

- ``free-running``: latents from the prior, the model's own predictions fed back: what
  sampling (and the protocol) does;
- ``one step from the true past``: latents from the prior, the true frames fed back, so every
  frame is predicted one step ahead from the truth;
- ``posterior``: latents from the posterior, which also reads the frame being predicted (the
  teacher-forced reconstruction of the ELBO; a ceiling, not a prediction).

A model whose one-step predictions stay good while its free-running ones decay loses the digits
through its own fed-back errors (exposure bias), not through a bad one-step predictor.
Writes ``OUT/rollout_gap.json`` (per-frame best-of-N and mean-of-N SSIM of each way) and
``OUT/rollout_gap.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def predict(model, video: torch.Tensor, n: int, way: str, seed: int) -> torch.Tensor:
    """(B, K + T, C, H, W) -> (B, N, T, C, H, W) pixel means, each frame predicted ``way``."""
    k, t = model.n_ctx, video.shape[1] - model.n_ctx
    g = torch.Generator().manual_seed(seed)
    truth = video.repeat_interleave(n, 0)  # (B * N, K + T, C, H, W)
    state = model.init_state(video[:, :k], n_samples=n, posterior=way == "posterior")
    frames, x_prev = [], None
    for i in range(t):
        x_next = truth[:, k + i] if way == "posterior" else None
        state, out = model.step(state, x_prev, x_next, generator=g)
        frames.append(out.mean.float())
        x_prev = frames[-1] if way == "free-running" else truth[:, k + i]
    return torch.stack(frames, 1).view(video.shape[0], n, t, *video.shape[2:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", help="a checkpoint, a run directory or pretrained:NAME")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--protocol", default="smmnist32-c2-p10-n10")
    ap.add_argument("--sequences", type=int, default=64)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()

    import hvrnn
    from hvrnn.evaluation.ground_truth import clips_uint8, ground_truth
    from hvrnn.evaluation.protocols import get_protocol
    from hvrnn.metrics import ssim
    from hvrnn.metrics.reduce import select_samples

    model, _ = hvrnn.load_checkpoint(args.model)
    p = get_protocol(args.protocol)
    clips = clips_uint8(ground_truth(p, args.data_root), 0, args.sequences, p)
    video = torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255  # (B, K + T, C, H, W)
    target = video[:, p.n_ctx:].repeat_interleave(args.samples, 0)
    result = {"model": args.model, "protocol": p.id, "sequences": args.sequences,
              "samples": args.samples}
    with torch.no_grad():
        for way in ("free-running", "one step from the true past", "posterior"):
            pred = predict(model, video, args.samples, way, p.seed)
            pred = (pred * 255).round() / 255
            s = ssim(pred.flatten(0, 1), target).view(args.sequences, args.samples, -1)
            chosen = select_samples(s, True)
            result[way] = {"best": chosen["best"].mean(0).tolist(),
                           "mean": chosen["mean"].mean(0).tolist(),
                           "best_overall": chosen["best"].mean().item()}
            print(f"{way:>28}: best-of-{args.samples} SSIM {result[way]['best_overall']:.3f}; "
                  "per frame " + " ".join(f"{v:.3f}" for v in result[way]["best"]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rollout_gap.json").write_text(json.dumps(result, indent=1))
    plot(result, args.out / "rollout_gap.png")
    print(f"wrote {args.out / 'rollout_gap.json'} and rollout_gap.png")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for way in ("free-running", "one step from the true past", "posterior"):
        best = result[way]["best"]
        ax.plot(range(1, len(best) + 1), best, marker=".", label=way)
    ax.set_xlabel("predicted frame")
    ax.set_ylabel(f"SSIM, best of {result['samples']}")
    ax.set_title(f"{result['model']} on {result['protocol']}, first {result['sequences']} clips")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
