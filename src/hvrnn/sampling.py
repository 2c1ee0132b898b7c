"""Exact ancestral sampling with the step API: the cost grows linearly with the horizon.

Each generated frame is encoded once, all recurrent states are carried forward, the posterior is
never evaluated, and the N samples of a context are drawn together along the batch axis. The
frame fed back (and returned) is the mean of the pixel likelihood, never a pixel-noise sample
(docs/design.md section 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor

from hvrnn.model.base import VideoModel


@torch.no_grad()
def rollout(model: VideoModel, context: Tensor, horizon: int, n_samples: int = 1,
            generator: torch.Generator | Sequence[torch.Generator] | None = None,
            temperature: float = 1.0, use_mean: bool = False) -> Tensor:
    """Draw ``n_samples`` futures of ``horizon`` frames for each context.

    Args:
        model: any registered :class:`VideoModel`.
        context: (B, K, C, H, W) in [0, 1], K = ``model.n_ctx``.
        horizon: number of frames to generate.
        n_samples: samples per context (drawn in one batch of B * n_samples rows); a
            deterministic model gives one whatever is asked
            (:meth:`~hvrnn.model.VideoModel.distinct_samples`).
        generator: source of all latent noise (on the model's device); fixes the samples. A
            sequence of B generators, one per context: the samples of context b then draw only
            from ``generators[b]`` (its noise of every step, level after level), so they do not
            depend on which other contexts share the batch (``hvrnn evaluate`` relies on it).
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
        per_context = generator is not None and not isinstance(generator, torch.Generator)
        if per_context and len(generator) != context.shape[0]:
            raise ValueError(f"{len(generator)} generators for {context.shape[0]} contexts")
        for _ in range(horizon):
            eps = (step_noise(model, generator, n_samples, context.device)
                   if per_context and not use_mean else None)
            state, out = model.step(state, x_prev, generator=None if per_context else generator,
                                    eps=eps, temperature=temperature, use_mean=use_mean)
            x_prev = out.mean.to(context.dtype)  # (B * S, C, H, W)
            frames.append(x_prev)
    finally:
        model.train(was_training)
    video = torch.stack(frames, dim=1)  # (B * S, T, C, H, W)
    return rearrange(video, "(b s) t c h w -> b s t c h w", s=n_samples)


def step_noise(model: VideoModel, generators: Sequence[torch.Generator], n_samples: int,
               device: torch.device) -> list[Tensor] | None:
    """The latent noise of one step for B contexts of ``n_samples`` rows each, context b's
    from ``generators[b]``: per level (B * n_samples, C_l, H_l, W_l); None without latents."""
    if not model.latent_shapes:
        return None
    return [torch.cat([torch.randn(n_samples, *shape, generator=g, device=device)
                       for g in generators]) for shape in model.latent_shapes]


def sample(model: VideoModel, context: Tensor, horizon: int = 28, n_samples: int = 100,
           generator: torch.Generator | Sequence[torch.Generator] | None = None,
           temperature: float = 1.0, use_mean: bool = False) -> Tensor:
    """``hvrnn.sample``: the same as :func:`rollout`. -> (B, S, horizon, C, H, W)."""
    return rollout(model, context, horizon, n_samples, generator, temperature, use_mean)
