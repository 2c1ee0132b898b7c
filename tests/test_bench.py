"""The benchmark baseline: the official re-run sampler kept in bench/official_sampler.py."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from helpers import seeded_model, tiny, video_batch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from official_sampler import rerun_rollout  # noqa: E402


def test_rerun_baseline_fills_one_frame_per_pass():
    """The official re-run procedure fills one frame per pass of the whole zero-padded clip."""
    cfg = tiny()
    model = seeded_model(cfg)
    ctx = video_batch(cfg, t=0)
    out = rerun_rollout(model, ctx, 3, n_samples=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 2, 3, 1, 32, 32)
    part = rerun_rollout(model, ctx, 3, n_samples=1, max_passes=1)
    assert part[:, :, 1:].abs().max() == 0 and part[:, :, 0].abs().max() > 0
