"""Hierarchical conditional VRNN (Castrejon, Ballas, Courville, ICCV 2019; SPEC sections 2-3).

Notation: K context frames c_1..c_K, T future frames x_1..x_T, x_0 := c_K. Each step has L
latent levels z_t = (z_t^1..z_t^L), coarsest first.

    prior      p(z_t^l | z_t^{<l}, x_{<t}, c)   reads E(x_{t-1}) through its own ConvLSTM
    posterior  q(z_t^l | z_t^{<l}, x_{<=t}, c)  reads E(x_t) through its own ConvLSTM
    decoder    p(x_t | z_{<=t}, x_{<t}, c)      reads E5(x_{t-1}) and z_t^l at their resolutions

All ConvLSTM states start from InitNets over the context features of the same resolution. The
upper-level latents z_t^{<l} enter the posterior head (always) and the prior head (when
``prior_dense``), up-sampled with nearest neighbour.

Two execution paths share the weights:
  * ``forward``: teacher forcing, layer-major. The encoder runs once over all K+T frames; every
    ConvLSTM computes its input-to-hidden gates for all steps in one batch and only the
    recurrent half steps; heads and up-sampling run batched over time.
  * ``init_state`` / ``step``: time-major, one frame at a time, for exact ancestral sampling
    (see ``hvrnn.sampling``). Each frame is encoded once; no posterior work unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from hvrnn.config import ModelConfig
from hvrnn.layers import LSTMState
from hvrnn.model.base import StepOutput, VideoModel, VRNNOutput
from hvrnn.model.decoder import ConvLSTMDecoder
from hvrnn.model.encoder import FrameEncoder
from hvrnn.model.latent import LatentNet
from hvrnn.model.registry import register_model


@dataclass
class VRNNState:
    """Everything carried between steps. Batch rows are ``b * n_samples + s``."""

    decoder: list[LSTMState]
    prior: list[LSTMState]
    posterior: list[LSTMState] | None
    feats_prev: dict[int, Tensor] | None  # encoder features of x_{t-1}, if already computed

    def map(self, fn) -> VRNNState:
        """Apply ``fn`` to every tensor (e.g. repeat along the batch, move device)."""
        def lstm(states):
            return None if states is None else [LSTMState(fn(s.h), fn(s.c)) for s in states]
        feats = None if self.feats_prev is None else {r: fn(f) for r, f in self.feats_prev.items()}
        return VRNNState(lstm(self.decoder), lstm(self.prior), lstm(self.posterior), feats)


@register_model("hvrnn")
class HierarchicalVRNN(VideoModel):
    """The hierarchical conditional VRNN; a single 1x1 level gives "Ours w/o Hier"."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.n_ctx = cfg.n_ctx
        self.likelihood = cfg.likelihood
        self.levels = cfg.latent_resolutions
        self.level_channels = cfg.level_channels
        self.encoder = FrameEncoder(cfg)
        self.decoder = ConvLSTMDecoder(cfg)

        def latent_net(level: int, dense: bool) -> LatentNet:
            r = self.levels[level]
            return LatentNet(
                cfg.width(r), r, self.level_channels[level],
                sum(self.level_channels[:level]) if dense else 0, cfg.n_ctx,
                groups=cfg.gn_groups, lstm_groups=cfg.gn_groups_lstm,
                latent_groups=cfg.gn_groups_latent, center_tap=cfg.center_tap_1x1,
                var_floor=cfg.var_floor)

        self.prior = torch.nn.ModuleList(
            [latent_net(i, cfg.prior_dense) for i in range(len(self.levels))])
        self.posterior = torch.nn.ModuleList(
            [latent_net(i, True) for i in range(len(self.levels))])

    # ------------------------------------------------------------------------------------
    # Encoding
    # ------------------------------------------------------------------------------------
    def encode(self, video: Tensor) -> dict[int, Tensor]:
        """video: (B, T, C, H, W) -> {resolution: (B, T, C_r, r, r)}; all frames in one batch."""
        b = video.shape[0]
        feats = self.encoder(rearrange(video, "b t c h w -> (b t) c h w"))
        return {r: rearrange(f, "(b t) c h w -> b t c h w", b=b) for r, f in feats.items()}

    # ------------------------------------------------------------------------------------
    # Teacher-forced pass (training)
    # ------------------------------------------------------------------------------------
    def forward(self, video: Tensor, eps: list[Tensor] | None = None,
                from_prior: bool = False) -> VRNNOutput:
        """Teacher-forced pass over ``video`` (B, K + T, C, H, W) in [0, 1].

        Latents come from the posterior; the prior is evaluated on the same inputs. The upper
        levels fed to a dense prior are the posterior samples (SPEC 2, ELBO). ``from_prior``
        draws the decoder's (and the dense heads') latents from the prior instead, as the
        official sampler's layer-major pass does (only used to reproduce that procedure).

        Returns:
            VRNNOutput with logits (B, T, C, H, W) for frames K..K+T-1, and per level the
            prior, the posterior and the sampled z, each (B, T, C_l, r, r).
        """
        k = self.n_ctx
        if video.shape[1] <= k:
            raise ValueError(f"video has {video.shape[1]} frames; need more than n_ctx={k}")
        # model.activation_checkpointing="all" recomputes the encoder and every latent net in
        # the backward pass (the decoder handles "decoder" and "all" itself).
        ckpt = self.cfg.activation_checkpointing == "all" and torch.is_grad_enabled()

        def run(fn, *args):
            return checkpoint(fn, *args, use_reentrant=False) if ckpt else fn(*args)

        feats = run(self.encode, video)
        ctx = {r: f[:, :k] for r, f in feats.items()}
        prev = {r: f[:, k - 1:-1] for r, f in feats.items()}  # x_0 .. x_{T-1}
        cur = {r: f[:, k:] for r, f in feats.items()}  # x_1 .. x_T

        priors, posteriors, zs = [], [], []
        for i, r in enumerate(self.levels):
            q_net, p_net = self.posterior[i], self.prior[i]
            upper = list(zs)  # a copy: recomputation under checkpointing must see this list
            q, _ = run(q_net, cur[r], q_net.init_state(ctx[r]), upper)
            p, _ = run(p_net, prev[r], p_net.init_state(ctx[r]),
                       upper if self.cfg.prior_dense else [])
            priors.append(p)
            posteriors.append(q)
            zs.append((p if from_prior else q).rsample(None if eps is None else eps[i].float()))

        logits, _ = self.decoder(prev, dict(zip(self.levels, zs, strict=True)),
                                 self.decoder.init_state(ctx))
        return VRNNOutput(logits=logits, prior=priors, posterior=posteriors, z=zs)

    # ------------------------------------------------------------------------------------
    # Step API (generation)
    # ------------------------------------------------------------------------------------
    def init_state(self, context: Tensor, n_samples: int = 1, posterior: bool = False
                   ) -> VRNNState:
        """State after the context. context: (B, K, C, H, W) in [0, 1].

        The context is encoded once, before the N samples are repeated along the batch.
        """
        if context.shape[1] != self.n_ctx:
            raise ValueError(f"context has {context.shape[1]} frames; the model was built for "
                             f"n_ctx={self.n_ctx}")
        ctx = self.encode(context)
        state = VRNNState(
            decoder=self.decoder.init_state(ctx),
            prior=[net.init_state(ctx[r]) for net, r in zip(self.prior, self.levels,
                                                             strict=True)],
            posterior=[net.init_state(ctx[r]) for net, r in zip(self.posterior, self.levels,
                                                                 strict=True)]
            if posterior else None,
            feats_prev={r: f[:, -1] for r, f in ctx.items()},  # x_0 = c_K
        )
        if n_samples > 1:
            state = state.map(lambda t: t.repeat_interleave(n_samples, dim=0))
        return state

    def step(self, state: VRNNState, x_prev: Tensor | None = None, x_next: Tensor | None = None,
             *, generator: torch.Generator | None = None, eps: list[Tensor] | None = None,
             temperature: float = 1.0, use_mean: bool = False) -> tuple[VRNNState, StepOutput]:
        """Advance one frame (see :meth:`VideoModel.step`); SPEC 3.6 is the reference."""
        if x_prev is not None:
            fp = {r: f for r, f in self.encoder(x_prev).items()}
        elif state.feats_prev is not None:
            fp = state.feats_prev
        else:
            raise ValueError("step() needs x_prev: the state holds no features of x_{t-1}")
        fn = None
        if x_next is not None:
            if state.posterior is None:
                raise ValueError("teacher-forced step() needs init_state(..., posterior=True)")
            fn = self.encoder(x_next)

        priors, posteriors, zs, p_states, q_states = [], [], [], [], []
        for i, r in enumerate(self.levels):
            p, ps = self.prior[i].step(fp[r], state.prior[i], zs if self.cfg.prior_dense else [])
            p_states.append(ps)
            priors.append(p)
            e = None if eps is None else eps[i].float()
            if fn is not None:
                q, qs = self.posterior[i].step(fn[r], state.posterior[i], zs)
                q_states.append(qs)
                posteriors.append(q)
                z = q.mean if use_mean else q.rsample(e, generator=generator)
            else:
                z = p.mean if use_mean else p.rsample(e, temperature, generator=generator)
            zs.append(z)

        logits, d_states = self.decoder.step(fp, dict(zip(self.levels, zs, strict=True)),
                                             state.decoder)
        new_state = VRNNState(d_states, p_states, q_states if fn is not None else state.posterior,
                              fn)
        return new_state, StepOutput(logits=logits, prior=priors, posterior=posteriors, z=zs)

    # ------------------------------------------------------------------------------------
    # Introspection
    # ------------------------------------------------------------------------------------
    def component_parameters(self) -> dict[str, int]:
        def n(mods) -> int:
            return sum(p.numel() for m in mods for p in m.parameters())

        def without_init(nets) -> int:
            return n(nets) - n([x.init_net for x in nets])

        counts = {
            "encoder": n([self.encoder]),
            "decoder": n([self.decoder.blocks]),
            "decoder_init": n([self.decoder.init_nets]),
            "prior": without_init(self.prior),
            "prior_init": n([x.init_net for x in self.prior]),
            "posterior": without_init(self.posterior),
            "posterior_init": n([x.init_net for x in self.posterior]),
        }
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts

    def inert_parameters(self) -> int:
        """Weights of k x k kernels that only see 1x1 maps, less their centre taps (they never
        receive a gradient). 0 when ``center_tap_1x1`` builds those kernels as 1x1."""
        total = 0
        for m in self.modules():
            if getattr(m, "sees_1x1", False) and m.kernel_size[0] > 1:
                taps = m.kernel_size[0] * m.kernel_size[1]
                total += m.weight.numel() // taps * (taps - 1)
        return total


__all__ = ["HierarchicalVRNN", "VRNNState"]
