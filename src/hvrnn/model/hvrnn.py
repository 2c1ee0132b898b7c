"""Hierarchical conditional VRNN (Castrejon, Ballas, Courville, "Improved Conditional VRNNs for
Video Prediction", ICCV 2019).

Notation: K context frames c = (c_1..c_K), T future frames x_1..x_T, x_0 := c_K. Each step has
L latent levels z_t = (z_t^1, ..., z_t^L), coarsest first; level l is a map of C_l x r_l x r_l
(``latent_resolutions`` r_l, e.g. 1, 8 and 32 for 64x64 frames).

The prior (supplementary material, Eq. 7) and the approximate posterior (Eq. 8) factorise over
the levels, each level conditioned on the levels above it in the same step::

    p(z_t | z_<t, x_<t, c)  = prod_l p(z_t^l | z_t^<l, z_<t^l, x_<t, c)
    q(z_t | z_<t, x_<=t, c) = prod_l q(z_t^l | z_t^<l, z_<t^l, x_<=t, c)

(Eq. 8 prints z_<=t^l; a variable cannot condition on itself, so we read z_<t^l.) The frames
follow p(x_t | z_<=t, x_<t, c), and the ELBO (Eq. 5, derived in supplementary A.1 from the VRNN
bound of Eq. 6) is::

    log p(x | c) >= sum_t E_q[ log p(x_t | z_<=t, x_<t, c) ]
                    - sum_t sum_l E_q(z_t^<l)[ KL( q(z_t^l | ...) || p(z_t^l | ...) ) ]

:func:`hvrnn.objective.elbo_terms` computes it from the :class:`VRNNOutput` of :meth:`forward`:
the KL of level l is taken with the upper levels z_t^<l drawn from the posterior.

How the networks realise the conditioning (docs/design.md section 2):

    prior l      ConvLSTM over E(x_0..x_{t-1}) at r_l; its head reads z_t^<l if prior_dense
    posterior l  ConvLSTM over E(x_1..x_t) at r_l; its head always reads z_t^<l
    decoder      one ConvLSTM per resolution; input E(x_{t-1}) at 1x1, z_t^l joins at r_l

Past latents z_<t reach every network through its recurrent state, and every state starts from
an InitNet over the context features of its resolution. "Dense connectivity" is
:func:`~hvrnn.model.latent.dense_input`: z_t^<l up-sampled (nearest neighbour) to r_l and
concatenated on channels; :func:`~hvrnn.model.latent.latent_levels` runs the levels.

Two execution paths share the weights:

* :meth:`HierarchicalVRNN.forward`: teacher forcing, layer-major. The encoder runs once over all
  K + T frames; every ConvLSTM computes its input-to-hidden gates for all steps in one batch
  and only the recurrent half steps; heads and up-sampling run batched over time.
* ``init_state`` / ``step`` (:class:`~hvrnn.model.base.VideoModel`, with :meth:`advance` here):
  time-major, one frame at a time, for exact ancestral sampling (:mod:`hvrnn.sampling`). Each
  frame is encoded once; the posterior runs only when the true next frame is given.

The kind's settings are :class:`HVRNNConfig`, registered with the network as ``model.kind:
hvrnn``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from hvrnn.config import LossConfig, ModelConfig
from hvrnn.config.checks import check
from hvrnn.distributions import DiagonalGaussian
from hvrnn.layers import ConvOn1x1, LSTMState
from hvrnn.model.base import (
    RecurrentState,
    StepContext,
    StepOutput,
    VideoModel,
    VRNNOutput,
    count,
    elbo_objective,
)
from hvrnn.model.decoder import ConvLSTMDecoder
from hvrnn.model.encoder import Features, FrameEncoder
from hvrnn.model.latent import (
    Draw,
    LatentNet,
    LevelPass,
    dense_input,
    latent_levels,
    upsample_nearest,
)
from hvrnn.model.registry import register_model
from hvrnn.objective import rollout_clips


@dataclass(frozen=True)
class HVRNNConfig(ModelConfig):
    """The hierarchical conditional VRNN (``model.kind: hvrnn``; docs/design.md section 3)."""

    kind: str = "hvrnn"
    # Latent hierarchy, coarsest first. The level at resolution 1 has ``n_z`` channels, the
    # others as many channels as the encoder stage of the same resolution, unless
    # ``latent_channels`` lists them explicitly (same length as ``latent_resolutions``).
    latent_resolutions: tuple[int, ...] = (1, 8, 32)
    latent_channels: tuple[int, ...] = ()
    # GroupNorm groups: ConvLSTM gates and cell; latent nets and initial-state output.
    gn_groups_lstm: int = 16
    gn_groups_latent: int = 1
    residual_scale: float = 0.1
    prior_dense: bool = True
    center_tap_1x1: bool = True
    var_floor: float = 1e-5
    # Departure from the paper (off in its presets): every decoder block above 1x1 also reads
    # the encoder features of the previous frame at its resolution, so appearance need not pass
    # through the 1x1 bottleneck. Makes small models on a CPU budget draw recognisable frames.
    frame_skips: bool = False
    # Recompute activations in the backward pass: "decoder" (its ConvLSTM blocks) or "all"
    # (also the encoder and every latent net); trades compute for memory.
    activation_checkpointing: str = "none"  # none | decoder | all

    def check_loss(self, loss: LossConfig) -> None:
        """Every loss setting applies (own-prediction inputs included)."""

    @property
    def level_channels(self) -> tuple[int, ...]:
        if self.latent_channels:
            return tuple(self.latent_channels)
        return tuple(self.n_z if r == 1 else self.width(r) for r in self.latent_resolutions)

    @property
    def latent_shapes(self) -> tuple[tuple[int, int, int], ...]:
        return tuple((c, r, r) for c, r in zip(self.level_channels, self.latent_resolutions,
                                               strict=True))

    def validate(self) -> None:
        super().validate()
        check(self.activation_checkpointing in ("none", "decoder", "all"),
              "model.activation_checkpointing", self.activation_checkpointing,
              "none, decoder or all")
        check(self.var_floor >= 0, "model.var_floor", self.var_floor, ">= 0")
        for key in ("gn_groups_lstm", "gn_groups_latent"):
            check(getattr(self, key) >= 1, f"model.{key}", getattr(self, key), ">= 1")
        check(all(c >= 1 for c in self.latent_channels), "model.latent_channels",
              list(self.latent_channels), "positive channel counts")
        res, size = self.latent_resolutions, self.image_size
        check(len(res) >= 1, "model.latent_resolutions", res, "at least one level")
        check(list(res) == sorted(set(res)), "model.latent_resolutions", res,
              "strictly increasing (coarsest level first)")
        for r in res:
            check(r in self.stage_resolutions and r != size, "model.latent_resolutions", res,
                  f"each a decoder resolution below the image size, i.e. in "
                  f"{list(self.stage_resolutions[1:][::-1])}")
        if self.latent_channels:
            check(len(self.latent_channels) == len(res), "model.latent_channels",
                  self.latent_channels, f"{len(res)} values, one per latent level")
        for r in self.stage_resolutions:
            w = self.width(r)
            check(w % self.gn_groups_lstm == 0, "model.gn_groups_lstm", self.gn_groups_lstm,
                  f"a divisor of every ConvLSTM width (width {w} at {r}x{r})")
            check(w % self.gn_groups_latent == 0, "model.gn_groups_latent",
                  self.gn_groups_latent, f"a divisor of every latent-net width ({w})")


@dataclass
class VRNNState(RecurrentState):
    """Everything carried between steps; batch rows are ``b * n_samples + s``.

    Attributes:
        feats_prev: encoder features of x_{t-1}, {r: (B, C_r, r, r)}, or None.
        posterior: one ConvLSTM state per level, h and c (B, C_{r_l}, r_l, r_l), or None.
        decoder: one ConvLSTM state per decoder block, h and c (B, C_r, r, r), coarse to fine.
        prior: one ConvLSTM state per level, like ``posterior``.
    """

    decoder: list[LSTMState]
    prior: list[LSTMState]


@register_model("hvrnn", config=HVRNNConfig, preset="tiny")
class HierarchicalVRNN(VideoModel):
    """The hierarchical conditional VRNN; a single 1x1 level gives "Ours w/o Hier"."""

    def __init__(self, cfg: HVRNNConfig):
        super().__init__(cfg)
        self.latent_resolutions = cfg.latent_resolutions  # r_l, coarsest first
        self.encoder = FrameEncoder(cfg)
        self.decoder = ConvLSTMDecoder(cfg)

        def latent_net(level: int, dense: bool) -> LatentNet:
            r, channels = self.latent_resolutions[level], cfg.level_channels
            return LatentNet(
                cfg.width(r), r, channels[level], sum(channels[:level]) if dense else 0,
                cfg.n_ctx, groups=cfg.gn_groups, lstm_groups=cfg.gn_groups_lstm,
                latent_groups=cfg.gn_groups_latent, center_tap=cfg.center_tap_1x1,
                var_floor=cfg.var_floor)

        levels = range(len(self.latent_resolutions))
        self.prior = torch.nn.ModuleList([latent_net(i, cfg.prior_dense) for i in levels])
        self.posterior = torch.nn.ModuleList([latent_net(i, True) for i in levels])

    # ------------------------------------------------------------------------------------
    # Encoding
    # ------------------------------------------------------------------------------------
    def encode(self, video: Tensor) -> Features:
        """video: (B, T, C, H, W) -> {resolution: (B, T, C_r, r, r)}; all frames in one batch."""
        b = video.shape[0]
        feats = self.encoder(rearrange(video, "b t c h w -> (b t) c h w"))
        return {r: rearrange(f, "(b t) c h w -> b t c h w", b=b) for r, f in feats.items()}

    def encode_frame(self, frame: Tensor) -> Features:
        """frame: (B, C, H, W) -> {resolution: (B, C_r, r, r)}."""
        return self.encoder(frame)

    # ------------------------------------------------------------------------------------
    # Teacher-forced pass (training)
    # ------------------------------------------------------------------------------------
    def latent_levels(self, prev: Features, cur: Features | None, draw: Draw, *,
                      over_time: bool, **states: Any) -> LevelPass:
        """The latent hierarchy of one pass over this model's nets
        (:func:`~hvrnn.model.latent.latent_levels`; ``states``: its ``ctx``, ``prior_states``,
        ``posterior_states`` and ``run``). Training (:meth:`forward`, over the sequence),
        one-step predictions and the step API (:meth:`advance`, one step) all run it."""
        return latent_levels(self.prior, self.posterior, self.cfg.prior_dense, prev, cur, draw,
                             over_time=over_time, **states)

    def forward(self, video: Tensor, eps: list[Tensor] | None = None,
                history: Tensor | None = None) -> VRNNOutput:
        """Teacher-forced pass over ``video`` (B, K + T, C, H, W) in [0, 1].

        Latents come from the posterior; the prior is evaluated on the same inputs, its dense
        heads reading the posterior samples of the upper levels (the KL terms of the ELBO).

        Args:
            eps: optional standard-normal noise of the posterior samples, one
                (B, T, C_l, r_l, r_l) tensor per level.
            history: optional (B, T - 1, C, H, W) frames that the prior and the decoder read
                as x_1 .. x_{T-1} in place of the true ones (``loss.rollout_inputs``); the
                posterior always reads the true frames.

        Returns:
            VRNNOutput with logits (B, T, C, H, W) for frames K..K+T-1, and per level the
            prior, the posterior and the sampled z, each (B, T, C_l, r_l, r_l).
        """
        k = self.n_ctx
        if video.shape[1] <= k:
            raise ValueError(f"video has {video.shape[1]} frames; need more than n_ctx={k}")
        # model.activation_checkpointing="all" recomputes the encoder and every latent net in
        # the backward pass (the decoder handles "decoder" and "all" itself).
        ckpt = self.cfg.activation_checkpointing == "all" and torch.is_grad_enabled()

        def run(fn, *args):
            return checkpoint(fn, *args, use_reentrant=False) if ckpt else fn(*args)

        feats = run(self.encode, video)  # {r: (B, K + T, C_r, r, r)}
        ctx = {r: f[:, :k] for r, f in feats.items()}  # c_1 .. c_K
        prev = {r: f[:, k - 1:-1] for r, f in feats.items()}  # x_0 .. x_{T-1}
        if history is not None and history.shape[1] > 0:
            if history.shape[1] != video.shape[1] - k - 1:
                raise ValueError(f"history has {history.shape[1]} frames; need "
                                 f"{video.shape[1] - k - 1} (T - 1)")
            read = run(self.encode, history)  # {r: (B, T - 1, C_r, r, r)}
            prev = {r: torch.cat([f[:, k - 1:k], read[r]], 1) for r, f in feats.items()}
        cur = {r: f[:, k:] for r, f in feats.items()}  # x_1 .. x_T

        def posterior_sample(level: int, p: DiagonalGaussian, q: DiagonalGaussian) -> Tensor:
            return q.rsample(None if eps is None else eps[level].float())  # (B, T, C_l, r, r)

        levels = self.latent_levels(prev, cur, posterior_sample, over_time=True, ctx=ctx, run=run)
        zs = levels.z
        logits, _ = self.decoder(prev, dict(zip(self.latent_resolutions, zs, strict=True)),
                                 self.decoder.init_state(ctx))  # (B, T, C, H, W)
        return VRNNOutput(logits=logits, prior=levels.prior, posterior=levels.posterior, z=zs)

    def training_terms(self, video: Tensor, loss: LossConfig, ctx: StepContext | None = None,
                       *, forward: Callable[..., Any] | None = None) -> dict[str, Tensor]:
        """The ELBO terms (:func:`~hvrnn.model.base.elbo_objective`). With ``loss.rollout_inputs``
        (while gradients are on), the first :func:`~hvrnn.objective.rollout_clips` clips of
        the batch have the prior and the decoder read the model's own prediction as
        x_1 .. x_{T-1}, drawn from the prior without gradient, as pixel means (what sampling
        feeds back), seeded by ``ctx.step``: a free-running sample from the context
        (``loss.rollout_from: context``) or each frame predicted one step ahead from the true
        past (``truth``)."""
        ctx, k, n = ctx or StepContext(), self.n_ctx, 0
        if torch.is_grad_enabled() and video.shape[1] > k + 1:
            n = rollout_clips(video.shape[0], ctx.step, loss.rollout_inputs,
                              loss.rollout_warmup_steps)
        if n == 0:
            return elbo_objective(self, video, loss, ctx, forward)
        generator = torch.Generator(device=video.device).manual_seed(ctx.step)
        with torch.no_grad(), torch.autocast(video.device.type, dtype=torch.bfloat16,
                                             enabled=ctx.autocast):
            if loss.rollout_from == "truth":
                own = self.one_step_predictions(video[:n, :-1], generator)
            else:
                own = self.free_running(video[:n, :k], video.shape[1] - k - 1, generator)
        history = torch.cat([own.to(video.dtype), video[n:, k:-1]])  # (B, T - 1, C, H, W)
        return elbo_objective(self, video, loss, ctx, forward, history=history)

    def free_running(self, context: Tensor, horizon: int, generator: torch.Generator | None
                     ) -> Tensor:
        """context (B, K, C, H, W) -> (B, horizon, C, H, W): one sample, latents from the
        prior, each predicted frame's pixel means fed back (as :func:`hvrnn.sampling.rollout`)."""
        state, x_prev, own = self.init_state(context), None, []
        for _ in range(horizon):
            state, out = self.step(state, x_prev, generator=generator)
            x_prev = out.mean.to(context.dtype)  # (B, C, H, W)
            own.append(x_prev)
        return torch.stack(own, 1)

    def one_step_predictions(self, video: Tensor, generator: torch.Generator | None) -> Tensor:
        """video (B, K + T, C, H, W) -> (B, T, C, H, W): the pixel means of x_{K+1} .. x_{K+T},
        each from a prior sample given the true frames before it, all steps in one pass."""
        k = self.n_ctx
        feats = self.encode(video)
        ctx = {r: f[:, :k] for r, f in feats.items()}
        prev = {r: f[:, k - 1:-1] for r, f in feats.items()}
        zs = self.latent_levels(prev, None, lambda level, p, q: p.rsample(generator=generator),
                                over_time=True, ctx=ctx).z
        logits, _ = self.decoder(prev, dict(zip(self.latent_resolutions, zs, strict=True)),
                                 self.decoder.init_state(ctx))
        return VRNNOutput(logits=logits).mean

    # ------------------------------------------------------------------------------------
    # Step API (generation)
    # ------------------------------------------------------------------------------------
    def context_state(self, context: Tensor, posterior: bool) -> VRNNState:
        """State after the context (B, K, C, H, W): every ConvLSTM from its InitNet."""
        ctx = self.encode(context)  # {r: (B, K, C_r, r, r)}
        res = self.latent_resolutions
        return VRNNState(
            feats_prev={r: f[:, -1] for r, f in ctx.items()},  # E(x_0) = E(c_K)
            posterior=[net.init_state(ctx[r]) for net, r in zip(self.posterior, res,
                                                                strict=True)]
            if posterior else None,
            decoder=self.decoder.init_state(ctx),
            prior=[net.init_state(ctx[r]) for net, r in zip(self.prior, res, strict=True)])

    def advance(self, state: VRNNState, feats_prev: Features, feats_next: Features | None, *,
                eps: list[Tensor] | None, generator: torch.Generator | None,
                temperature: float, use_mean: bool) -> tuple[VRNNState, StepOutput]:
        """One step (docs/design.md section 3.6). feats_prev: E(x_{t-1}), feats_next: E(x_t)
        or None, each {r: (B, C_r, r, r)}. Latents come from q when feats_next is given."""
        def pick(level: int, p: DiagonalGaussian, q: DiagonalGaussian | None) -> Tensor:
            noise = None if eps is None else eps[level].float()
            if q is not None:  # teacher forced: from the posterior
                return q.draw(noise, generator=generator, use_mean=use_mean)
            return p.draw(noise, temperature, generator, use_mean)

        levels = self.latent_levels(feats_prev, feats_next, pick, over_time=False,
                                    prior_states=state.prior, posterior_states=state.posterior)
        zs = levels.z
        logits, d_states = self.decoder.step(  # logits of x_t: (B, C, H, W)
            feats_prev, dict(zip(self.latent_resolutions, zs, strict=True)), state.decoder)
        teacher_forced = feats_next is not None
        new_state = VRNNState(feats_prev=feats_next, decoder=d_states, prior=levels.prior_states,
                              posterior=levels.posterior_states if teacher_forced
                              else state.posterior)
        return new_state, StepOutput(logits=logits, prior=levels.prior,
                                     posterior=levels.posterior, z=zs)

    # ------------------------------------------------------------------------------------
    # Introspection
    # ------------------------------------------------------------------------------------
    def component_parameters(self) -> dict[str, int]:
        def inits(nets) -> int:
            return count(p for net in nets for p in net.init_net.parameters())

        counts = {
            "encoder": count(self.encoder.parameters()),
            "decoder": count(self.decoder.blocks.parameters()),
            "decoder_init": count(self.decoder.init_nets.parameters()),
            "prior": count(self.prior.parameters()) - inits(self.prior),
            "prior_init": inits(self.prior),
            "posterior": count(self.posterior.parameters()) - inits(self.posterior),
            "posterior_init": inits(self.posterior),
        }
        counts["total"] = count(self.parameters())
        return counts

    def inert_parameters(self) -> int:
        """Weights of k x k kernels that only see 1x1 maps, less their centre taps (they never
        receive a gradient). 0 when ``center_tap_1x1`` builds those kernels as 1x1."""
        return sum(m.inert_weights for m in self.modules() if isinstance(m, ConvOn1x1))


__all__ = ["HVRNNConfig", "HierarchicalVRNN", "LevelPass", "VRNNState", "dense_input",
           "upsample_nearest"]
