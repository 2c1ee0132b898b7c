"""The losses of SAVP (Lee et al., arXiv 1804.01523, Eq. 1-6; the released code's
``generator_loss_fn`` and ``discriminator_loss_fn``), for :meth:`hvrnn.model.savp.SAVP.
training_terms`.

Scales follow the released code: the L1 term is a mean over frames, pixels and channels, the
KL a sum over latent channels averaged over steps and clips, each GAN term a mean over clips.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from hvrnn.model.base import StepContext, VRNNOutput, latent_noise
from hvrnn.model.savp_nets import gan_loss

if TYPE_CHECKING:
    from hvrnn.model.savp import SAVP


def clip_windows(video: Tensor, starts: Tensor, length: int) -> Tensor:
    """(B, N, C, H, W) -> (B, C, length, H, W): frames ``starts[b] ..`` of each clip."""
    idx = starts[:, None] + torch.arange(length, device=video.device)  # (B, L)
    rows = torch.arange(video.shape[0], device=video.device)[:, None]
    return video[rows, idx].transpose(1, 2)


def adversarial_terms(model: SAVP, video: Tensor, fakes: dict[str, Tensor]
                      ) -> dict[str, Tensor]:
    """``gan/<d>`` (generator) and ``discriminator/<d>`` for each discriminator d and its
    generated future (B, T, C, H, W). Both read a random window of ``clip_length`` predicted
    frames per clip, the same for the real and the generated clip (the released code's
    discriminators read the T = ``clip_length`` predicted frames); when T is shorter, the
    window starts with the last true context frames."""
    cfg, k = model.cfg, model.n_ctx
    first = k - max(0, cfg.clip_length - (video.shape[1] - k))  # true context frames read
    real_all = video[:, first:]
    terms: dict[str, Tensor] = {}
    for name, fake_future in fakes.items():
        fake_all = torch.cat([video[:, first:k], fake_future], 1)
        starts = torch.randint(0, real_all.shape[1] - cfg.clip_length + 1,
                               (video.shape[0],), device=video.device)
        real = clip_windows(real_all, starts, cfg.clip_length)
        fake = clip_windows(fake_all, starts, cfg.clip_length)
        d = model.discriminators[name]
        terms[f"gan/{name}"] = gan_loss(d(fake), True, cfg.gan_loss)
        terms[f"discriminator/{name}"] = (gan_loss(d(real), True, cfg.gan_loss)
                                          + gan_loss(d(fake.detach()), False, cfg.gan_loss))
    return terms


def savp_terms(model: SAVP, video: Tensor, ctx: StepContext,
               forward: Callable[..., VRNNOutput]) -> dict[str, Tensor]:
    """See :meth:`hvrnn.model.savp.SAVP.training_terms`."""
    cfg, k, eps, step = model.cfg, model.n_ctx, ctx.noise, ctx.step
    b, t = video.shape[0], video.shape[1] - k
    adversarial = model.training and bool(cfg.discriminators)
    feed = model.feed_mask(b, t, step, video.device) if model.training else None
    post = forward(video, eps=eps, feed=feed) if cfg.has_posterior else None
    prior = None
    if post is None or (adversarial and "gan" in cfg.discriminators):
        prior_eps = latent_noise(model, b, t, device=video.device)  # the global generator
        prior = forward(video, eps=prior_eps if post is not None else eps, from_prior=True,
                        feed=feed)
    recon = post if post is not None else prior
    error = (recon.frames.float() - video[:, k:].float()).abs()
    terms = {"l1": error.mean(), "nll": error.flatten(1).sum(1).mean()}
    kl = torch.zeros((), device=video.device)
    if post is not None:
        kl_clip = post.posterior[0].kl(post.prior[0]).flatten(1).sum(1)  # (B,)
        terms["kl"], terms["kl_step"] = kl_clip.mean(), kl_clip.mean() / t
        kl = terms["kl_step"]
    terms["nelbo"] = terms["nll"] + terms.get("kl", 0.0)
    generator = cfg.l1_weight * terms["l1"] + ctx.kl_weight * model.kl_weight_at(step) * kl
    if adversarial:
        fakes = {name: (post if name == "vae" else prior).frames for name in cfg.discriminators}
        adv = adversarial_terms(model, video, fakes)
        weights = {"vae": cfg.vae_gan_weight, "gan": cfg.gan_weight}
        generator = generator + sum(weights[n] * adv[f"gan/{n}"] for n in fakes)
        terms["loss/discriminator"] = sum(weights[n] * adv[f"discriminator/{n}"]
                                          for n in fakes)
        terms.update(adv)
    terms["loss"] = generator
    return terms


__all__ = ["adversarial_terms", "clip_windows", "savp_terms"]
