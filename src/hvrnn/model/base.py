"""The interface every model kind implements; training, sampling and evaluation use only this."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from hvrnn.config import ModelConfig
from hvrnn.distributions import DiagonalGaussian


def latent_noise(cfg: ModelConfig, batch: int, steps: int,
                 generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> list[Tensor]:
    """Standard-normal latent noise, one (batch, steps, C_l, R_l, R_l) tensor per level.

    Passed as ``eps`` to ``forward`` (or sliced per step for ``step``) it fixes the latent
    samples, e.g. to compare both execution paths or to draw the noise of a global batch.
    """
    return [torch.randn(batch, steps, c, r, r, generator=generator, device=device)
            for c, r in zip(cfg.level_channels, cfg.latent_resolutions, strict=True)]


@dataclass
class VRNNOutput:
    """Teacher-forced pass over the predicted frames.

    Attributes:
        logits: (B, T, C, H, W) decoder output before the sigmoid.
        prior: one DiagonalGaussian per latent level, parameters (B, T, C_l, H_l, W_l).
        posterior: same layout as ``prior``.
        z: the latents fed to the decoder, one (B, T, C_l, H_l, W_l) tensor per level.
    """

    logits: Tensor
    prior: list[DiagonalGaussian] = field(default_factory=list)
    posterior: list[DiagonalGaussian] = field(default_factory=list)
    z: list[Tensor] = field(default_factory=list)

    @property
    def mean(self) -> Tensor:
        """(B, T, C, H, W) mean of the pixel likelihood, in [0, 1]."""
        return torch.sigmoid(self.logits)


@dataclass
class StepOutput(VRNNOutput):
    """One generated (or teacher-forced) step: the fields of :class:`VRNNOutput` without T,
    i.e. logits (B, C, H, W) and per-level parameters (B, C_l, H_l, W_l)."""


class VideoModel(nn.Module, ABC):
    """A conditional video model: K context frames in, a distribution over future frames out.

    Subclasses are registered with :func:`hvrnn.model.registry.register_model` and built from
    their ``ModelConfig`` alone.
    """

    n_ctx: int
    likelihood: str  # "bce" | "l1" | "l2": how objective.py scores ``logits``

    @abstractmethod
    def forward(self, video: Tensor, eps: list[Tensor] | None = None) -> VRNNOutput:
        """Teacher-forced pass. video: (B, K + T, C, H, W) in [0, 1]; scores frames K..K+T-1.

        ``eps``: optional standard-normal noise per level, (B, T, C_l, H_l, W_l), for the
        posterior samples (used to check the step API against this pass).
        """

    @abstractmethod
    def init_state(self, context: Tensor, n_samples: int = 1, posterior: bool = False) -> Any:
        """Recurrent state from context (B, K, C, H, W); samples repeat along the batch:
        row ``b * n_samples + s`` is sample s of sequence b."""

    @abstractmethod
    def step(self, state: Any, x_prev: Tensor | None = None, x_next: Tensor | None = None, *,
             generator: torch.Generator | None = None, eps: list[Tensor] | None = None,
             temperature: float = 1.0, use_mean: bool = False) -> tuple[Any, StepOutput]:
        """Advance one frame.

        Args:
            state: from :meth:`init_state` or a previous step.
            x_prev: (B, C, H, W) the previous frame; ``None`` reuses the features cached in
                ``state`` (the last context frame right after ``init_state``).
            x_next: (B, C, H, W) the true next frame; if given, latents come from the posterior
                (teacher forcing), otherwise from the prior.
            generator, eps: source of the latent noise (explicit ``eps`` wins).
            temperature: multiplies the prior variance. use_mean: latents = means.

        Returns:
            (new_state, StepOutput) with ``logits`` (B, C, H, W).
        """

    def component_parameters(self) -> dict[str, int]:
        """Parameter count per named component (for ``hvrnn info``)."""
        return {"total": sum(p.numel() for p in self.parameters())}

    def inert_parameters(self) -> int:
        """Parameters that can never receive a gradient (3x3 taps that only see 1x1 maps)."""
        return 0
