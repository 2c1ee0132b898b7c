"""Validation during training: the teacher-forced negative ELBO and the quality of prior samples
on a fixed subset of the test split."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from hvrnn.config import ExperimentConfig
from hvrnn.metrics.psnr import psnr
from hvrnn.metrics.reduce import select_samples
from hvrnn.metrics.ssim import ssim
from hvrnn.model import StepContext, VideoModel
from hvrnn.sampling import sample
from hvrnn.training.engine import autocast_enabled, autocast_forward

VALIDATION_SEED_OFFSET = 17


def _batch_values(model: VideoModel, video: Tensor, cfg: ExperimentConfig,
                  generator: torch.Generator) -> tuple[dict[str, float], Tensor]:
    """Metrics of one batch (B, K + T, C, H, W) and its samples (B, S, T, C, H, W)."""
    k = model.n_ctx
    forward = autocast_forward(model, video.device, cfg.train.amp)
    ctx = StepContext(autocast=autocast_enabled(video.device, cfg.train.amp))
    terms = model.training_terms(video, cfg.loss, ctx, forward=forward)
    samples = sample(model, video[:, :k], horizon=video.shape[1] - k,
                     n_samples=cfg.train.val_n_samples, generator=generator)
    n = samples.shape[1]  # one for a deterministic model
    flat = rearrange(samples, "b s t c h w -> (b s) t c h w").float()
    target = video[:, k:].repeat_interleave(n, dim=0).float()
    values = {name: float(v) for name, v in terms.items() if not name.startswith("loss")}
    for name, score in (("psnr", psnr(flat, target)), ("ssim", ssim(flat, target))):
        chosen = select_samples(rearrange(score, "(b s) t -> b s t", s=n), True)  # (B, T) each
        values[f"{name}_best"] = chosen["best"].mean().item()
        values[f"{name}_mean"] = chosen["mean"].mean().item()
    return values, samples


@torch.no_grad()
def validate(model: VideoModel, batches: list[Tensor], cfg: ExperimentConfig,
             device: torch.device) -> tuple[dict[str, float], dict[str, Tensor]]:
    """Teacher-forced negative ELBO and best-of-N prior-sample PSNR/SSIM on fixed batches.

    Runs under its own seeds (``train.seed``, ``eval.seed``) inside ``torch.random.fork_rng``,
    so the training random streams are untouched. Best-of-N is
    :func:`hvrnn.metrics.reduce.select_samples` with N = ``train.val_n_samples``.

    Args:
        model: the unwrapped model.
        batches: (B, K + T, C, H, W) clips in [0, 1] (a fixed validation subset).

    Returns:
        (metrics, example) where metrics holds the model's terms other than its losses (for
        the ELBO ``nelbo``, ``nll``, ``kl``, ``kl/level_<l>``, ``bpd``; always the model's
        ``score_term``), ``psnr_best``, ``ssim_best``, ``psnr_mean``,
        ``ssim_mean`` (batch-weighted means) and example holds ``context`` (K, C, H, W),
        ``truth`` (T, C, H, W) and ``samples`` (S, T, C, H, W) for the first clip.
    """
    k = model.n_ctx
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    example: dict[str, Tensor] = {}
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.manual_seed(cfg.train.seed + VALIDATION_SEED_OFFSET)
        gen = torch.Generator(device=device).manual_seed(cfg.eval.seed)
        for video in batches:
            video = video.to(device)
            values, samples = _batch_values(model, video, cfg, gen)
            for name, v in values.items():
                sums[name] = sums.get(name, 0.0) + v * video.shape[0]
            count += video.shape[0]
            if not example:
                example = {"context": video[0, :k].cpu(), "truth": video[0, k:].cpu(),
                           "samples": samples[0].cpu()}
    model.train(was_training)
    return {name: v / max(count, 1) for name, v in sums.items()}, example
