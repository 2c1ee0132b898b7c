"""The ELBO of the paper (supplementary A.1, Eq. 5) as named loss terms.

Reductions are written out: sum over C, H, W and T, mean over B (docs/design.md section 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from hvrnn.distributions import DiagonalGaussian


@dataclass
class VRNNOutput:
    """Teacher-forced pass over the predicted frames.

    Attributes:
        logits: (B, T, C, H, W) decoder output before the sigmoid, or None for a kind that
            predicts frames directly (then ``frames`` is set).
        prior: one DiagonalGaussian per latent level, parameters (B, T, C_l, H_l, W_l).
        posterior: same layout as ``prior``.
        z: the latents fed to the decoder, one (B, T, C_l, H_l, W_l) tensor per level.
        frames: (B, T, C, H, W) predicted frames in [0, 1] of a kind without a pixel
            likelihood (PredNet, SAVP), or None.
    """

    logits: Tensor | None
    prior: list[DiagonalGaussian] = field(default_factory=list)
    posterior: list[DiagonalGaussian] = field(default_factory=list)
    z: list[Tensor] = field(default_factory=list)
    frames: Tensor | None = None

    @property
    def mean(self) -> Tensor:
        """(B, T, C, H, W) predicted frames in [0, 1]: ``frames`` when the kind gives them,
        else the mean of the pixel likelihood (the sigmoid of ``logits``)."""
        if self.frames is not None:
            return self.frames
        if self.logits is None:
            raise ValueError("the output holds neither frames nor logits")
        return torch.sigmoid(self.logits)


def reconstruction_nll(logits: Tensor, target: Tensor, likelihood: str) -> Tensor:
    """Per-clip negative log-likelihood (up to a constant for l1/l2), shape (B,).

    logits: (B, T, C, H, W) decoder output before the sigmoid; target: same shape in [0, 1].
      - ``bce``: Bernoulli on logits against grey-level targets (not binarised).
      - ``l1``: sum |sigmoid(logits) - x| (Laplace, scale 1).
      - ``l2``: sum (sigmoid(logits) - x)^2 (Gaussian, variance 1/2).
    """
    logits, target = logits.float(), target.float()
    if likelihood == "bce":
        per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    elif likelihood == "l1":
        per = (torch.sigmoid(logits) - target).abs()
    elif likelihood == "l2":
        per = (torch.sigmoid(logits) - target) ** 2
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}")
    return per.flatten(1).sum(1)


def kl_per_level(output: VRNNOutput, estimator: str = "analytic") -> list[Tensor]:
    """KL(q || p) per level, summed over T, C, H, W: a list of (B,) tensors, float32.

    ``analytic`` is the closed form; ``mc`` is the single-sample estimate
    ``log q(z) - log p(z)`` at the posterior sample used by the decoder (the official code's).
    """
    return [k.sum(1) for k in kl_per_level_step(output, estimator)]


def kl_per_level_step(output: VRNNOutput, estimator: str = "analytic") -> list[Tensor]:
    """KL(q || p) per level and predicted frame, summed over C, H, W: (B, T) tensors, float32."""
    out = []
    for q, p, z in zip(output.posterior, output.prior, output.z, strict=True):
        if estimator == "analytic":
            kl = q.kl(p)
        elif estimator == "mc":
            kl = q.log_prob(z.float()) - p.log_prob(z.float())
        else:
            raise ValueError(f"unknown KL estimator {estimator!r}")
        out.append(kl.flatten(2).sum(2))
    return out


def kl_weight(step: int, beta: float = 1.0, warmup_steps: int = 0) -> float:
    """beta, optionally ramped linearly from 0 over ``warmup_steps`` iterations (docs/design.md
    section 4)."""
    if warmup_steps <= 0:
        return float(beta)
    return float(beta) * min(1.0, step / warmup_steps)


def rollout_clips(batch: int, step: int, fraction: float, warmup_steps: int = 0) -> int:
    """How many clips of a batch of ``batch`` read the model's own predictions at optimisation
    step ``step`` (``loss.rollout_inputs``): ``fraction`` of them, rising linearly from 0 over
    ``warmup_steps`` (scheduled sampling, Bengio et al., NeurIPS 2015), rounded."""
    ramp = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
    return round(batch * fraction * ramp)


def elbo_terms(output: VRNNOutput, target: Tensor, likelihood: str,
               kl_estimator: str = "analytic", beta: float = 1.0,
               free_bits: float = 0.0) -> dict[str, Tensor]:
    """Named loss terms, each a scalar (batch mean of per-clip sums).

    Args:
        output: the model's teacher-forced output.
        target: (B, T, C, H, W) the predicted frames in [0, 1].
        free_bits: if > 0, the KL in ``loss`` counts each level's batch-mean KL of each frame
            as at least ``free_bits`` nats (Kingma et al., "Improved Variational Inference with
            Inverse Autoregressive Flow", NeurIPS 2016, Eq. 13, with levels x frames as the
            groups); the reported ``kl`` and ``nelbo`` stay the true values.

    Returns:
        ``loss`` (nll + beta * kl, what is minimised), ``nll``, ``kl``, ``kl/level_<l>``,
        ``nelbo`` (nll + kl, the negative ELBO per clip in nats) and ``bpd`` (the negative ELBO
        in bits per sub-pixel; exact for ``bce``, up to the likelihood constant otherwise).
    """
    nll = reconstruction_nll(output.logits, target, likelihood)
    steps = kl_per_level_step(output, kl_estimator)  # [(B, T)] per level
    levels = [k.sum(1) for k in steps]
    kl = torch.stack(levels).sum(0) if levels else torch.zeros_like(nll)
    nelbo = nll + kl
    kl_loss = kl.mean()
    if free_bits > 0 and steps:
        kl_loss = sum(k.mean(0).clamp(min=free_bits).sum() for k in steps)
    terms = {
        "loss": nll.mean() + beta * kl_loss,
        "nll": nll.mean(),
        "kl": kl.mean(),
        "nelbo": nelbo.mean(),
        "bpd": nelbo.mean() / (math.log(2) * target[0].numel()),
    }
    for i, k in enumerate(levels):
        terms[f"kl/level_{i}"] = k.mean()
    return terms
