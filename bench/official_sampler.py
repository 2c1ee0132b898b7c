"""The official code's sampling procedure, kept only as a benchmark baseline.

``train_fns.sample_pass`` of facebookresearch/improved_vrnn re-runs the whole model layer-major
over the clip for every new frame: the K + T frames (future frames zero-filled, then replaced by
the predictions made so far) are re-encoded, every prior, posterior and decoder ConvLSTM is
re-run, the decoder's latents are drawn from the prior, and one output frame is kept per pass.
All past latents are redrawn at every pass, so the procedure is neither linear in the horizon
nor exact ancestral sampling; ``hvrnn.sampling.rollout`` is both (docs/design.md section 7).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from hvrnn.model import latent_noise
from hvrnn.model.hvrnn import HierarchicalVRNN


def prior_pass(model: HierarchicalVRNN, video: Tensor, eps: list[Tensor] | None = None) -> Tensor:
    """The layer-major pass of the official sampler: the teacher-forced pass of
    :meth:`HierarchicalVRNN.forward` with the latents (and the dense heads' inputs) drawn from
    the prior; the posterior is run too, as the official code does. Returns the mean frames
    (B, T, C, H, W)."""
    k = model.n_ctx
    feats = model.encode(video)
    ctx = {r: f[:, :k] for r, f in feats.items()}
    prev = {r: f[:, k - 1:-1] for r, f in feats.items()}
    cur = {r: f[:, k:] for r, f in feats.items()}
    zs = model.latent_levels(  # the posterior runs, unused, as in the official pass
        prev, cur, lambda level, p, q: p.rsample(None if eps is None else eps[level].float()),
        over_time=True, ctx=ctx).z
    logits, _ = model.decoder(prev, dict(zip(model.latent_resolutions, zs, strict=True)),
                              model.decoder.init_state(ctx))
    return torch.sigmoid(logits)


@torch.no_grad()
def rerun_rollout(model: HierarchicalVRNN, context: Tensor, horizon: int, n_samples: int = 1,
                  generator: torch.Generator | None = None,
                  max_passes: int | None = None) -> Tensor:
    """Samples by the official re-run procedure (module docstring).

    Every pass costs the same, so ``max_passes`` lets a benchmark time a few passes and scale.

    Returns (B, S, horizon, C, H, W) (frames after ``max_passes`` stay zero).
    """
    if not isinstance(model, HierarchicalVRNN):
        raise TypeError("rerun_rollout is defined for HierarchicalVRNN only")
    model.eval()
    b, k = context.shape[:2]
    ctx = context.repeat_interleave(n_samples, dim=0)  # (B * S, K, C, H, W)
    clip = torch.cat([ctx, ctx.new_zeros(ctx.shape[0], horizon, *ctx.shape[2:])], dim=1)
    for t in range(horizon if max_passes is None else min(horizon, max_passes)):
        eps = None if generator is None else latent_noise(model, clip.shape[0], horizon,
                                                          generator, clip.device)
        clip[:, k + t] = prior_pass(model, clip, eps)[:, t]
    return rearrange(clip[:, k:], "(b s) t c h w -> b s t c h w", b=b)
