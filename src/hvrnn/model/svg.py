"""SVG-LP: stochastic video generation with a learned prior (Denton & Fergus, ICML 2018).

A baseline behind the same :class:`~hvrnn.model.base.VideoModel` interface as the hierarchical
VRNN. Notation as in :mod:`hvrnn.model.hvrnn`: context c_1..c_K, future x_1..x_T, x_0 := c_K,
h_t = E(x_t) a ``g_dim`` vector per frame.

    posterior  q(z_t | x_{<=t})   LSTM over h_t
    prior      p(z_t | x_{<t})    LSTM over h_{t-1}
    predictor  g_t = LSTM([h_{t-1}, z_t])   (linear embed in, tanh out)
    decoder    x_t ~ D(g_t, skips of c_K)

The single latent level is (B, z_dim, 1, 1) with ``z_dim = model.n_z``; the Gaussian heads
output (mu, logvar) and the variance is ``exp(logvar)`` (SVG's parameterisation).

Departures from the original, all deliberate:
  * GroupNorm (``model.gn_groups``) replaces BatchNorm in the DCGAN encoder and decoder.
    BatchNorm mixes the frames and sequences of a batch, so a frame's code would depend on the
    other (also future) frames in the batch, and training and evaluation would compute different
    functions; GroupNorm is per frame, which keeps the model causal and lets the step API
    reproduce the teacher-forced pass exactly.
  * The decoder's skip connections always come from the last context frame c_K. SVG uses the
    skips of the last ground-truth frame, i.e. the current frame during the context and c_K
    afterwards; only predicted frames are decoded here, so that is c_K for all of them.
  * The context is consumed inside :meth:`SVGLP.context_state` (and the same code in ``forward``):
    the LSTMs are run teacher-forced over c_1..c_K as in SVG, but with the posterior *means* as
    the predictor's latents (SVG draws them), so the state after the context is deterministic.
    The context frames are not scored.
  * The encoder/decoder halve the frame down to 4x4 for any power-of-two size (DCGAN-64 has
    four stride-2 blocks for 64x64). ``model.frame_network: vgg`` builds SVG's VGG-64 pair
    instead (:mod:`hvrnn.model.svg_vgg`), which SVG used for BAIR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

from hvrnn.config import ConfigError, LossConfig, ModelConfig
from hvrnn.distributions import DiagonalGaussian
from hvrnn.model.base import (
    RecurrentState,
    StepContext,
    StepOutput,
    VideoModel,
    VRNNOutput,
    count,
    elbo_objective,
)
from hvrnn.model.registry import register_model
from hvrnn.model.svg_vgg import VGGDecoder, VGGEncoder

LSTMStates = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class SVGLPConfig(ModelConfig):
    """The SVG-LP baseline (``model.kind: svg_lp``): one (n_z, 1, 1) latent per step, a DCGAN
    or VGG encoder/decoder of ``base_channels`` width, LSTMs of ``rnn_size`` cells."""

    kind: str = "svg_lp"
    # The frame encoder / decoder pair: "dcgan" (SVG's dcgan_64, its SM-MNIST choice) or
    # "vgg" (SVG's vgg_64, its BAIR and KTH choice).
    frame_network: str = "dcgan"
    g_dim: int = 128  # frame code width
    rnn_size: int = 256
    predictor_layers: int = 2
    posterior_layers: int = 1
    prior_layers: int = 1

    @property
    def latent_shapes(self) -> tuple[tuple[int, int, int], ...]:
        return ((self.n_z, 1, 1),)

    def validate(self) -> None:
        super().validate()

        def svg_check(ok: bool, key: str, value: object, expected: str) -> None:
            if not ok:
                raise ConfigError(f"{key}={value!r} is invalid for model.kind=svg_lp: "
                                  f"expected {expected}")

        svg_check(self.frame_network in ("dcgan", "vgg"), "model.frame_network",
                  self.frame_network, "dcgan or vgg")
        svg_check(self.g_dim >= 1 and self.g_dim % self.gn_groups == 0, "model.g_dim",
                  self.g_dim, f"a positive multiple of model.gn_groups={self.gn_groups}")
        svg_check(self.rnn_size >= 1, "model.rnn_size", self.rnn_size, ">= 1")
        for key in ("predictor_layers", "posterior_layers", "prior_layers"):
            svg_check(getattr(self, key) >= 1, f"model.{key}", getattr(self, key), ">= 1")


def _conv_block(c_in: int, c_out: int, groups: int, transpose: bool) -> nn.Sequential:
    """4x4 stride-2 (transposed) convolution, GroupNorm, LeakyReLU(0.2): 2x down / up."""
    conv = (nn.ConvTranspose2d if transpose else nn.Conv2d)(c_in, c_out, 4, 2, 1)
    return nn.Sequential(conv, nn.GroupNorm(groups, c_out), nn.LeakyReLU(0.2))


class DCGANEncoder(nn.Module):
    """Frame (N, C, H, W) -> code (N, g_dim) in (-1, 1) and skips, finest first.

    Block i halves the resolution to H / 2^(i+1) with ``cfg.width(H / 2^i)`` channels (64, 128,
    256, 512 for DCGAN-64); a 4x4 valid convolution maps the 4x4 features to the code.
    """

    def __init__(self, cfg: SVGLPConfig):
        super().__init__()
        res = cfg.stage_resolutions[:-2]  # H, H/2, ..., 8: the inputs of the stride-2 blocks
        self.widths = [cfg.width(r) for r in res]
        chans = [cfg.image_channels, *self.widths]
        self.blocks = nn.ModuleList(
            [_conv_block(chans[i], chans[i + 1], cfg.gn_groups, False) for i in range(len(res))])
        self.head = nn.Sequential(nn.Conv2d(self.widths[-1], cfg.g_dim, 4, 1, 0),
                                  nn.GroupNorm(cfg.gn_groups, cfg.g_dim), nn.Tanh())

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        skips = []
        for block in self.blocks:
            x = block(x)
            skips.append(x)
        return self.head(x).flatten(1), skips


class DCGANDecoder(nn.Module):
    """Code (N, g_dim) and encoder skips -> logits (N, C, H, W); mirrors :class:`DCGANEncoder`.

    Each up-sampling block reads its input concatenated with the skip of the same resolution.
    """

    def __init__(self, cfg: SVGLPConfig, widths: list[int]):
        super().__init__()
        groups = cfg.gn_groups
        self.stem = nn.Sequential(nn.ConvTranspose2d(cfg.g_dim, widths[-1], 4, 1, 0),
                                  nn.GroupNorm(groups, widths[-1]), nn.LeakyReLU(0.2))
        outs = [*widths[:-1][::-1]]  # coarse to fine, the last block outputs the image
        ins = widths[::-1]
        self.blocks = nn.ModuleList(
            [_conv_block(2 * c_in, c_out, groups, True)
             for c_in, c_out in zip(ins[:-1], outs, strict=True)])
        self.out = nn.ConvTranspose2d(2 * widths[0], cfg.image_channels, 4, 2, 1)

    def forward(self, g: Tensor, skips: list[Tensor]) -> Tensor:
        d = self.stem(g[:, :, None, None])
        for block, skip in zip(self.blocks, skips[::-1][:-1], strict=True):
            d = block(torch.cat([d, skip], 1))
        return self.out(torch.cat([d, skips[0]], 1))  # logits; SVG applies a sigmoid


class CellStack(nn.Module):
    """Linear embedding, ``layers`` stacked ``nn.LSTMCell``; returns the top hidden state."""

    def __init__(self, c_in: int, hidden: int, layers: int):
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Linear(c_in, hidden)
        self.cells = nn.ModuleList([nn.LSTMCell(hidden, hidden) for _ in range(layers)])

    def zero_state(self, batch: int, like: Tensor) -> LSTMStates:
        z = like.new_zeros(batch, self.hidden)
        return [(z, z) for _ in self.cells]

    def forward(self, x: Tensor, state: LSTMStates) -> tuple[Tensor, LSTMStates]:
        h, new = self.embed(x), []
        for cell, s in zip(self.cells, state, strict=True):
            hc = cell(h, s)
            new.append(hc)
            h = hc[0]
        return h, new


class GaussianLSTM(CellStack):
    """:class:`CellStack` with linear mu and logvar heads -> DiagonalGaussian (N, z, 1, 1)."""

    def __init__(self, c_in: int, z_dim: int, hidden: int, layers: int):
        super().__init__(c_in, hidden, layers)
        self.mu = nn.Linear(hidden, z_dim)
        self.logvar = nn.Linear(hidden, z_dim)

    def forward(self, x: Tensor, state: LSTMStates) -> tuple[DiagonalGaussian, LSTMStates]:
        h, new = super().forward(x, state)
        mu, logvar = self.mu(h).float(), self.logvar(h).float()
        return DiagonalGaussian(mu[..., None, None], logvar.exp()[..., None, None]), new


class FramePredictor(CellStack):
    """:class:`CellStack` over [h_{t-1}, z_t] with a linear + tanh output -> g_t (N, g_dim)."""

    def __init__(self, c_in: int, g_dim: int, hidden: int, layers: int):
        super().__init__(c_in, hidden, layers)
        self.out = nn.Linear(hidden, g_dim)

    def forward(self, x: Tensor, state: LSTMStates) -> tuple[Tensor, LSTMStates]:
        h, new = super().forward(x, state)
        return torch.tanh(self.out(h)), new


@dataclass
class SVGState(RecurrentState):
    """Carried between steps. Batch rows are ``b * n_samples + s``.

    Attributes:
        feats_prev: (B, g_dim) code of x_{t-1}, or None if the caller must pass x_prev.
        posterior: (h, c) per LSTM layer, each (B, rnn_size), or None when ``init_state`` was
            not asked for it.
        predictor, prior: (h, c) per LSTM layer, each (B, rnn_size).
        skips: skip features of c_K, finest first, (B, C_i, H_i, W_i).
    """

    predictor: LSTMStates
    prior: LSTMStates
    skips: list[Tensor]


@register_model("svg_lp", config=SVGLPConfig, preset="tiny_svglp")
class SVGLP(VideoModel):
    """SVG-LP with a DCGAN- or VGG-style encoder/decoder; see the module docstring for the
    departures."""

    def __init__(self, cfg: SVGLPConfig):
        super().__init__(cfg)  # latent_shapes: one (n_z, 1, 1) level
        encoder, decoder = ((VGGEncoder, VGGDecoder) if cfg.frame_network == "vgg" else
                            (DCGANEncoder, DCGANDecoder))
        self.encoder = encoder(cfg)
        self.decoder = decoder(cfg, self.encoder.widths)
        self.predictor = FramePredictor(cfg.g_dim + cfg.n_z, cfg.g_dim, cfg.rnn_size,
                                        cfg.predictor_layers)
        self.prior = GaussianLSTM(cfg.g_dim, cfg.n_z, cfg.rnn_size, cfg.prior_layers)
        self.posterior = GaussianLSTM(cfg.g_dim, cfg.n_z, cfg.rnn_size, cfg.posterior_layers)
        self._init_weights()

    def _init_weights(self) -> None:
        """DCGAN initialisation as SVG: conv weights N(0, 0.02), norm gains N(1, 0.02)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.GroupNorm):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------------------------
    def encode(self, video: Tensor) -> tuple[Tensor, list[Tensor]]:
        """video (B, T, C, H, W) -> codes (B, T, g_dim) and skips (B, T, C_i, H_i, W_i)."""
        b = video.shape[0]
        h, skips = self.encoder(rearrange(video, "b t c h w -> (b t) c h w"))
        return (rearrange(h, "(b t) g -> b t g", b=b),
                [rearrange(s, "(b t) c h w -> b t c h w", b=b) for s in skips])

    def encode_frame(self, frame: Tensor) -> Tensor:
        """frame (B, C, H, W) -> code (B, g_dim)."""
        return self.encoder(frame)[0]

    def _run_context(self, codes: Tensor, skips: list[Tensor], posterior: bool) -> SVGState:
        """Run the LSTMs teacher-forced over the context codes (B, K, g_dim).

        Step i = 1..K-1 feeds h_{i-1} to the prior, h_i to the posterior and [h_{i-1}, mean of
        q(z_i)] to the predictor; the last context frame's skips and code are kept.
        """
        b = codes.shape[0]
        state = SVGState(feats_prev=codes[:, -1], posterior=self.posterior.zero_state(b, codes),
                         predictor=self.predictor.zero_state(b, codes),
                         prior=self.prior.zero_state(b, codes), skips=[s[:, -1] for s in skips])
        for i in range(1, codes.shape[1]):
            _, state.prior = self.prior(codes[:, i - 1], state.prior)
            q, state.posterior = self.posterior(codes[:, i], state.posterior)
            z = q.mean.flatten(1).to(codes.dtype)
            _, state.predictor = self.predictor(torch.cat([codes[:, i - 1], z], 1),
                                                state.predictor)
        if not posterior:
            state.posterior = None
        return state

    def context_state(self, context: Tensor, posterior: bool) -> SVGState:
        """State after the context (B, K, C, H, W), encoded once."""
        codes, skips = self.encode(context)
        return self._run_context(codes, skips, posterior)

    def advance(self, state: SVGState, feats_prev: Tensor, feats_next: Tensor | None, *,
                eps: list[Tensor] | None, generator: torch.Generator | None,
                temperature: float, use_mean: bool) -> tuple[SVGState, StepOutput]:
        """One predicted frame from the codes h_{t-1} (B, g_dim) and, teacher-forced, h_t."""
        noise = None if eps is None else eps[0].float()
        p, p_state = self.prior(feats_prev, state.prior)  # p(z_t | x_<t): (B, n_z, 1, 1)
        q_state, posteriors = state.posterior, []
        if feats_next is not None:
            q, q_state = self.posterior(feats_next, state.posterior)  # q(z_t | x_<=t)
            posteriors.append(q)
            z = q.draw(noise, generator=generator, use_mean=use_mean)
        else:
            z = p.draw(noise, temperature, generator, use_mean)
        g, pred_state = self.predictor(torch.cat([feats_prev, z.flatten(1).to(feats_prev.dtype)],
                                                 1), state.predictor)  # g_t: (B, g_dim)
        logits = self.decoder(g, state.skips)  # (B, C, H, W)
        new = SVGState(feats_prev=feats_next, posterior=q_state, predictor=pred_state,
                       prior=p_state, skips=state.skips)
        return new, StepOutput(logits=logits, prior=[p], posterior=posteriors, z=[z])

    # ------------------------------------------------------------------------------------
    def forward(self, video: Tensor, eps: list[Tensor] | None = None) -> VRNNOutput:
        """Teacher-forced pass over ``video`` (B, K + T, C, H, W) in [0, 1].

        The encoder runs once over all K + T frames; the (small) LSTMs then step through time.
        ``eps``: optional [(B, T, n_z, 1, 1)] posterior noise.

        Returns:
            VRNNOutput: logits (B, T, C, H, W); prior, posterior and z with one level of
            (B, T, n_z, 1, 1).
        """
        k = self.n_ctx
        if video.shape[1] <= k:
            raise ValueError(f"video has {video.shape[1]} frames; need more than n_ctx={k}")
        codes, skips = self.encode(video)
        state = self._run_context(codes[:, :k], [s[:, :k] for s in skips], posterior=True)
        outs = []
        for t in range(video.shape[1] - k):
            state, out = self.advance(state, codes[:, k + t - 1], codes[:, k + t],
                                      eps=None if eps is None else [eps[0][:, t]],
                                      generator=None, temperature=1.0, use_mean=False)
            outs.append(out)

        def stack(dists):
            return DiagonalGaussian(torch.stack([d.mean for d in dists], 1),
                                    torch.stack([d.var for d in dists], 1))

        return VRNNOutput(logits=torch.stack([o.logits for o in outs], 1),
                          prior=[stack([o.prior[0] for o in outs])],
                          posterior=[stack([o.posterior[0] for o in outs])],
                          z=[torch.stack([o.z[0] for o in outs], 1)])

    def training_terms(self, video: Tensor, loss: LossConfig, ctx: StepContext | None = None,
                       *, forward: Callable[..., Any] | None = None) -> dict[str, Tensor]:
        """The ELBO terms (:func:`~hvrnn.model.base.elbo_objective`)."""
        return elbo_objective(self, video, loss, ctx, forward)

    # ------------------------------------------------------------------------------------
    def component_parameters(self) -> dict[str, int]:
        counts = {name: count(getattr(self, name).parameters())
                  for name in ("encoder", "decoder", "predictor", "prior", "posterior")}
        counts["total"] = count(self.parameters())
        return counts


__all__ = ["SVGLP", "SVGLPConfig", "SVGState"]
