"""Exact ancestral sampling with the step API: the cost grows linearly with the horizon.

Each generated frame is encoded once, all recurrent states are carried forward, the posterior is
never evaluated, and the N samples of a context are drawn together along the batch axis. The
frame fed back (and returned) is the mean of the pixel likelihood, never a pixel-noise sample
(docs/design.md section 1).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from hvrnn.model.base import VideoModel


@torch.no_grad()
def rollout(model: VideoModel, context: Tensor, horizon: int, n_samples: int = 1,
            generator: torch.Generator | None = None, temperature: float = 1.0,
            use_mean: bool = False) -> Tensor:
    """Draw ``n_samples`` futures of ``horizon`` frames for each context.

    Args:
        model: any registered :class:`VideoModel`.
        context: (B, K, C, H, W) in [0, 1], K = ``model.n_ctx``.
        horizon: number of frames to generate.
        n_samples: samples per context (drawn in one batch of B * n_samples rows); a
            deterministic model gives one whatever is asked
            (:meth:`~hvrnn.model.VideoModel.distinct_samples`).
        generator: source of all latent noise (on the model's device); fixes the samples.
        temperature: multiplies the prior variances (1 = the model's prior).
        use_mean: use the prior means instead of samples (deterministic rollout).

    Returns:
        (B, S, horizon, C, H, W) in [0, 1], S = ``model.distinct_samples(n_samples)``.
    """
    if context.dim() != 5:
        raise ValueError(f"context must be (B, K, C, H, W), got shape {tuple(context.shape)}")
    if horizon < 1 or n_samples < 1:
        raise ValueError(f"horizon and n_samples must be >= 1, got {horizon}, {n_samples}")
    n_samples = model.distinct_samples(n_samples)
    was_training = model.training
    model.eval()
    try:
        state = model.init_state(context, n_samples=n_samples)
        x_prev, frames = None, []
        for _ in range(horizon):
            state, out = model.step(state, x_prev, generator=generator,
                                    temperature=temperature, use_mean=use_mean)
            x_prev = out.mean.to(context.dtype)  # (B * S, C, H, W)
            frames.append(x_prev)
    finally:
        model.train(was_training)
    video = torch.stack(frames, dim=1)  # (B * S, T, C, H, W)
    return rearrange(video, "(b s) t c h w -> b s t c h w", s=n_samples)


def sample(model: VideoModel, context: Tensor, horizon: int = 28, n_samples: int = 100,
           generator: torch.Generator | None = None, temperature: float = 1.0,
           use_mean: bool = False) -> Tensor:
    """``hvrnn.sample``: the same as :func:`rollout`. -> (B, S, horizon, C, H, W)."""
    return rollout(model, context, horizon, n_samples, generator, temperature, use_mean)
