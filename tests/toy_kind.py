"""A toy model kind, whole in this one module (with its preset, ``fixtures/toy.yaml``): the
config dataclass beside the network, its objective and its registration. It shows what adding
a kind takes (docs/architecture.md, "Adding a model kind"); the tests train, sample and
evaluate it through the public API like the built-in kinds.

The model: one (n_z, 1, 1) latent per step; the prior reads the previous frame, the posterior
the frame it scores, each through a global average and an affine head; the frame's logits are
two 3x3 convolutions of the previous frame plus a per-channel offset from the latent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hvrnn.config import LossConfig, ModelConfig
from hvrnn.distributions import DiagonalGaussian
from hvrnn.model import (
    RecurrentState,
    StepContext,
    StepOutput,
    VideoModel,
    VRNNOutput,
    elbo_objective,
    register_model,
)

# The preset's absolute path, for the tests; register_model below is given it relative to
# this module ("fixtures/toy.yaml"), which it reads beside the module.
PRESET = str(Path(__file__).resolve().parent / "fixtures" / "toy.yaml")


@dataclass(frozen=True)
class ToyConfig(ModelConfig):
    """``model.kind: toy``: ``n_z`` latent channels (the shared setting) and nothing else."""

    kind: str = "toy"

    @property
    def latent_shapes(self) -> tuple[tuple[int, int, int], ...]:
        return ((self.n_z, 1, 1),)


class Affine(nn.Module):
    """``x @ weight.T + bias`` as a product and a sum, so that every batch row is computed
    alike (a matrix product may round rows differently by their position in the batch)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) / n_in**0.5)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: Tensor) -> Tensor:
        return (x.unsqueeze(-2) * self.weight).sum(-1) + self.bias


@register_model("toy", config=ToyConfig, preset="fixtures/toy.yaml")
class ToyModel(VideoModel):
    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__(cfg)
        c, n_z = cfg.image_channels, cfg.n_z
        self.prior_head = Affine(c, 2 * n_z)
        self.posterior_head = Affine(c, 2 * n_z)
        self.frame = nn.Sequential(nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(16, c, 3, padding=1))
        self.offset = Affine(n_z, c)

    @staticmethod
    def _gaussian(head: Affine, frames: Tensor) -> DiagonalGaussian:
        """frames (..., C, H, W) -> a Gaussian with (..., n_z, 1, 1) parameters."""
        raw = head(frames.float().mean((-2, -1)))[..., None, None]
        return DiagonalGaussian.from_raw(raw, dim=-3, var_floor=1e-4)

    def _logits(self, prev: Tensor, z: Tensor) -> Tensor:
        """prev (N, C, H, W), z (N, n_z, 1, 1) -> logits (N, C, H, W)."""
        return self.frame(prev) + self.offset(z.flatten(1))[..., None, None]

    def forward(self, video: Tensor, eps: list[Tensor] | None = None) -> VRNNOutput:
        k = self.n_ctx
        prev, cur = video[:, k - 1:-1], video[:, k:]  # x_0 .. x_{T-1}, x_1 .. x_T
        p, q = self._gaussian(self.prior_head, prev), self._gaussian(self.posterior_head, cur)
        z = q.rsample(None if eps is None else eps[0].float())  # (B, T, n_z, 1, 1)
        logits = self._logits(prev.flatten(0, 1), z.flatten(0, 1)).unflatten(0, prev.shape[:2])
        return VRNNOutput(logits=logits, prior=[p], posterior=[q], z=[z])

    def encode_frame(self, frame: Tensor) -> Tensor:
        return frame

    def context_state(self, context: Tensor, posterior: bool) -> RecurrentState:
        return RecurrentState(feats_prev=context[:, -1], posterior=() if posterior else None)

    def advance(self, state: RecurrentState, feats_prev: Tensor, feats_next: Tensor | None, *,
                eps: list[Tensor] | None, generator: torch.Generator | None,
                temperature: float, use_mean: bool) -> tuple[RecurrentState, StepOutput]:
        noise = None if eps is None else eps[0].float()
        p = self._gaussian(self.prior_head, feats_prev)
        if feats_next is not None:
            q = self._gaussian(self.posterior_head, feats_next)
            z, posteriors = q.draw(noise, generator=generator, use_mean=use_mean), [q]
        else:
            z, posteriors = p.draw(noise, temperature, generator, use_mean), []
        out = StepOutput(logits=self._logits(feats_prev, z), prior=[p], posterior=posteriors,
                         z=[z])
        return RecurrentState(feats_prev=feats_next, posterior=state.posterior), out

    def training_terms(self, video: Tensor, loss: LossConfig, ctx: StepContext | None = None,
                       *, forward: Callable[..., Any] | None = None) -> dict[str, Tensor]:
        return elbo_objective(self, video, loss, ctx, forward)
