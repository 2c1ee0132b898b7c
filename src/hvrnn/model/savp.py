"""SAVP: stochastic adversarial video prediction (Lee et al., arXiv 1804.01523).

A baseline behind the :class:`~hvrnn.model.base.VideoModel` interface, built as the authors'
released code builds it (alexlee-gk/video_prediction, ``savp_model.py``; the networks are in
:mod:`hvrnn.model.savp_nets`). Each step t reads the previous frame x_{t-1} (true, or its own
prediction), the first context frame c_1 and a latent z_t (B, n_z):

    z'_t      = LSTM(z_t)                          its own recurrence over the latents
    encoder   L stages: conv-pool (5x5, then 3x3) and a ConvLSTM (5x5), widths ngf * 2^i,
              down to 8x8; z'_t tiled and joined to every stage's input and ConvLSTM input
    decoder   L stages: bilinear up-sampling + 3x3 conv, skip connections from the encoder,
              ConvLSTMs but at the last stage
    output    x_t = sum_m mask_m * image_m over: the previous frame moved by each of the
              ``cdna_kernels`` CDNA kernels (a dense layer on the coarsest ConvLSTM output),
              the previous frame, the first frame c_1 and an image synthesised from scratch;
              the masks are a softmax over a head that also sees those images.

Latents come from q(z_t | x_{t-1}, x_t), a convolutional encoder of the frame pair (the
posterior, in training; with ``model.posterior_rnn`` an LSTM over the pairs makes it
q(z_t | x_{<=t}), the original's ``use_e_rnn``) or from the fixed unit Gaussian
p(z_t) = N(0, I) (at test time). The
generator loss is ``l1_weight`` * mean |x_hat - x| + KL weight * KL(q || p) per step, plus the
two video GANs: one discriminator on clips generated from posterior latents ("vae"), one on
clips generated from prior latents ("gan"). The discriminators form the parameter group
``discriminator`` with their own optimiser. ``model.variant`` selects SAVP, its VAE-only or
its GAN-only ablation.

Departures, each deliberate (docs/models.md):
  * The context is consumed by :meth:`SAVP.context_state` with the posterior *means* of the
    context pairs as latents (the later code uses posterior samples there in both passes), so
    the state after the context is deterministic; the context frames are not scored (as the
    released code; the later code scores the generated c_2 .. c_K too).
  * Both optimisers step on the same batch with gradients taken at the same time; the
    original updates the discriminators first and takes the generator's adversarial gradient
    from the updated ones.
  * The discriminators read a random window of ``clip_length`` predicted frames per clip, the
    same window for the real and the generated clip (with the released settings, T =
    ``clip_length`` = 10: all of them, as the released code); when T is shorter (small test
    configs) the window starts with the last true context frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from hvrnn.config import LossConfig, ModelConfig
from hvrnn.config.checks import check
from hvrnn.distributions import DiagonalGaussian
from hvrnn.model.base import (
    RecurrentState,
    StepContext,
    StepOutput,
    VideoModel,
    VRNNOutput,
    count,
    latent_noise,
)
from hvrnn.model.registry import register_model
from hvrnn.model.savp_nets import (
    LSTMStateT,
    PairEncoder,
    SAVPGenerator,
    VideoDiscriminator,
    init_normal,
)
from hvrnn.model.savp_training import savp_terms

SAVP_VARIANTS = ("savp", "vae", "gan")


@dataclass(frozen=True)
class SAVPConfig(ModelConfig):
    """SAVP (Lee et al., "Stochastic Adversarial Video Prediction", arXiv 1804.01523),
    ``model.kind: savp``.

    Defaults are those of the released BAIR action-free SAVP model of the authors' repository
    (``pretrained_models/bair_action_free/ours_savp/model_hparams.json``, identical to
    ``hparams/bair_action_free/ours_savp/model_hparams.json`` as first published): ngf 32,
    ndf 32, nef 64, nz 8, 4 CDNA kernels of 5x5, L1 weight 100, KL weight 0.1 reached linearly
    between steps 50k and 100k, both video-GAN weights 1 with the sigmoid cross-entropy loss,
    10-frame discriminator clips, scheduled sampling with an inverse sigmoid of k = 900.
    ``variant`` selects SAVP (VAE + GAN), its VAE-only or its GAN-only ablation.

    SAVP predicts frames in [0, 1] directly (no pixel likelihood), so the shared
    ``base_channels``, ``max_channels``, ``width_mult`` and ``gn_groups`` settings of
    :class:`~hvrnn.config.ModelConfig` and the ELBO settings of the ``loss`` section
    (``likelihood``, ``kl_estimator``, ``kl_beta``, ``free_bits``) do not apply to it; its
    own weights are the settings above. docs/models.md lists the published settings behind
    every preset.
    """

    kind: str = "savp"
    n_z: int = 8  # nz: latent channels per step
    variant: str = "savp"  # savp | vae | gan
    ngf: int = 32  # generator width
    ndf: int = 32  # discriminator width
    nef: int = 64  # posterior encoder width
    # An LSTM over the pair features makes the posterior recurrent, q(z_t | x_{<=t}) (the
    # original's use_e_rnn; off in the released BAIR model).
    posterior_rnn: bool = False
    cdna_kernels: int = 4  # num_transformed_images
    cdna_kernel_size: int = 5
    l1_weight: float = 100.0
    kl_weight: float = 0.1
    kl_anneal_steps: tuple[int, int] = (50_000, 100_000)  # linear from 0; (0, 0) = constant
    vae_gan_weight: float = 1.0  # video GAN on posterior samples (video_sn_vae_gan_weight)
    gan_weight: float = 1.0  # video GAN on prior samples (video_sn_gan_weight)
    gan_loss: str = "gan"  # gan (sigmoid cross-entropy) | lsgan
    clip_length: int = 10  # frames per discriminator clip
    # Scheduled sampling: in training the generator reads the true previous frame with
    # probability k / (k + exp(step / k)) after the context, else its own (0 = always true).
    schedule_sampling_k: float = 900.0

    @property
    def latent_shapes(self) -> tuple[tuple[int, int, int], ...]:
        return ((self.n_z, 1, 1),)

    @property
    def levels(self) -> int:
        """Encoder stages of the generator: H / 2^levels = 8 (3 at 64x64, as the original)."""
        return self.image_size.bit_length() - 4

    @property
    def has_posterior(self) -> bool:
        return self.variant in ("savp", "vae")

    @property
    def discriminators(self) -> tuple[str, ...]:
        """The video discriminators the variant trains: on posterior and / or prior samples."""
        return {"savp": ("vae", "gan"), "vae": (), "gan": ("gan",)}[self.variant]

    def validate(self) -> None:
        size = self.image_size
        check(size >= 16 and size & (size - 1) == 0, "data.image_size", size,
              "a power of two >= 16 for model.kind=savp (the generator halves it down to 8x8)")
        check(self.variant in SAVP_VARIANTS, "model.variant", self.variant,
              ", ".join(SAVP_VARIANTS))
        check(self.gan_loss in ("gan", "lsgan"), "model.gan_loss", self.gan_loss, "gan or lsgan")
        for key in ("n_z", "ngf", "ndf", "nef", "cdna_kernels"):
            check(getattr(self, key) >= 1, f"model.{key}", getattr(self, key), ">= 1")
        check(self.cdna_kernel_size >= 1 and self.cdna_kernel_size % 2 == 1,
              "model.cdna_kernel_size", self.cdna_kernel_size, "an odd size")
        for key in ("l1_weight", "kl_weight", "vae_gan_weight", "gan_weight",
                    "schedule_sampling_k"):
            check(getattr(self, key) >= 0, f"model.{key}", getattr(self, key), ">= 0")
        start, end = self.kl_anneal_steps
        check(0 <= start <= end, "model.kl_anneal_steps", list(self.kl_anneal_steps),
              "[start, end] with 0 <= start <= end")
        check(self.clip_length >= 4, "model.clip_length", self.clip_length,
              ">= 4 (the video discriminator's temporal receptive field)")

    def check_clip_length(self, n_pred: int) -> None:
        # The discriminators read predicted frames, preceded by context frames if T is short.
        if self.discriminators:
            check(self.n_ctx + n_pred >= self.clip_length, "model.clip_length",
                  self.clip_length, f"<= data.n_ctx + data.n_pred = {self.n_ctx + n_pred}, "
                  "the frames the discriminators can read")


@dataclass
class SAVPState(RecurrentState):
    """Carried between steps; batch rows are ``b * n_samples + s``.

    Attributes:
        feats_prev: the previous frame (B, C, H, W), or None.
        posterior: when made for teacher-forced steps, the recurrent posterior's LSTM state
            (c, h), or () for the released, non-recurrent posterior; else None.
        conv: (c, h) of every ConvLSTM, encoder stages first.
        rnn_z: (c, h) of the latent LSTM, each (B, n_z).
        first: the first context frame c_1 (B, C, H, W).
    """

    conv: list[LSTMStateT]
    rnn_z: LSTMStateT
    first: Tensor


@register_model("savp", config=SAVPConfig, preset="tiny_savp")
class SAVP(VideoModel):
    """SAVP and its VAE-only and GAN-only variants; see the module docstring."""

    def __init__(self, cfg: SAVPConfig):
        super().__init__(cfg)  # latent_shapes: one (n_z, 1, 1) level
        self.generator = init_normal(SAVPGenerator(cfg))
        self.posterior = (init_normal(PairEncoder(cfg.image_channels, cfg.nef, cfg.n_z,
                                                  recurrent=cfg.posterior_rnn))
                          if cfg.has_posterior else None)
        self.discriminators = nn.ModuleDict(
            {name: VideoDiscriminator(cfg.image_channels, cfg.ndf, cfg.clip_length,
                                      cfg.image_size) for name in cfg.discriminators})

    # ---- latents ----------------------------------------------------------------------------
    def prior(self, like: Tensor) -> DiagonalGaussian:
        """p(z_t) = N(0, I), shaped (B, n_z, 1, 1) for the batch of ``like``."""
        zeros = like.new_zeros(like.shape[0], self.cfg.n_z, 1, 1, dtype=torch.float32)
        return DiagonalGaussian(zeros, torch.ones_like(zeros))

    def pair_posterior(self, prev: Tensor, nxt: Tensor, state: LSTMStateT | None = None
                       ) -> tuple[DiagonalGaussian, LSTMStateT | None]:
        """q(z_t | x_{t-1}, x_t) for frames (B, [T,] C, H, W) -> parameters (B, [T,] n_z, 1, 1)
        and, with a recurrent posterior, its LSTM state after the pairs (from ``state``, zero
        if None); the convolutional part runs over all pairs at once."""
        lead, enc = prev.shape[:-3], self.posterior
        feats = enc.features(torch.cat([prev, nxt], -3).flatten(0, len(lead) - 1))
        feats = feats.view(*lead, -1)
        if enc.rnn is not None:
            seq = feats if len(lead) == 2 else feats[:, None]
            state = state if state is not None else enc.zero_state(seq)
            outs = []
            for t in range(seq.shape[1]):
                h, state = enc.rnn(enc.embed(seq[:, t]), state)
                outs.append(h)
            feats = torch.stack(outs, 1) if len(lead) == 2 else outs[0]
        mu, log_var = enc.heads(feats)
        mu, var = mu.float(), log_var.float().exp()
        return DiagonalGaussian(mu[..., None, None], var[..., None, None]), state

    # ---- the step API -----------------------------------------------------------------------
    def encode_frame(self, frame: Tensor) -> Tensor:
        """SAVP reads raw frames: the frame itself."""
        return frame

    def context_state(self, context: Tensor, posterior: bool) -> SAVPState:
        """Run the generator over the context (B, K, C, H, W): step k reads c_k and, as its
        latent, the posterior mean of (c_k, c_{k+1}) (zero for the GAN-only variant). The
        posterior state (a recurrent posterior's LSTM state after the context pairs, else
        ()) is kept only if ``posterior``."""
        first = context[:, 0]
        conv, rnn_z = self.generator.zero_state(first)
        k, post_state = context.shape[1], None
        if k > 1 and self.posterior is not None:
            q, post_state = self.pair_posterior(context[:, :-1], context[:, 1:])
            zs = q.mean.flatten(2)
        else:
            zs = context.new_zeros(context.shape[0], max(k - 1, 0), self.cfg.n_z)
        for i in range(k - 1):
            _, conv, rnn_z = self.generator(context[:, i], first, zs[:, i].to(context.dtype),
                                            conv, rnn_z)
        if self.posterior is not None and self.posterior.rnn is not None and post_state is None:
            post_state = self.posterior.zero_state(context)
        kept = (post_state if post_state is not None else ()) if posterior else None
        return SAVPState(feats_prev=context[:, -1], posterior=kept, conv=conv, rnn_z=rnn_z,
                         first=first)

    def advance(self, state: SAVPState, feats_prev: Tensor, feats_next: Tensor | None, *,
                eps: list[Tensor] | None, generator: torch.Generator | None,
                temperature: float, use_mean: bool) -> tuple[SAVPState, StepOutput]:
        """One frame from x_{t-1} (B, C, H, W); latents from the posterior when x_t is given
        (and the variant has one), else from N(0, I)."""
        noise = None if eps is None else eps[0].float()
        p, posteriors = self.prior(feats_prev), []
        post_state = state.posterior
        if feats_next is not None and self.posterior is not None:
            q, post_state = self.pair_posterior(feats_prev, feats_next, post_state or None)
            post_state = () if post_state is None else post_state
            posteriors.append(q)
            z = q.draw(noise, generator=generator, use_mean=use_mean)
        else:
            z = p.draw(noise, temperature, generator, use_mean)
        frame, conv, rnn_z = self.generator(feats_prev, state.first,
                                            z.flatten(1).to(feats_prev.dtype), state.conv,
                                            state.rnn_z)
        new = SAVPState(feats_prev=feats_next, posterior=post_state, conv=conv,
                        rnn_z=rnn_z, first=state.first)
        return new, StepOutput(logits=None, frames=frame, prior=[p], posterior=posteriors,
                               z=[z])

    # ---- whole clips ------------------------------------------------------------------------
    def forward(self, video: Tensor, eps: list[Tensor] | None = None, *,
                from_prior: bool = False, feed: Tensor | None = None) -> VRNNOutput:
        """Pass over ``video`` (B, K + T, C, H, W) in [0, 1], generating frames K .. K+T-1.

        Args:
            eps: standard-normal noise [(B, T, n_z, 1, 1)] of the latents (drawn if None).
            from_prior: latents from N(0, I) (else from the posterior of the true pairs,
                when the variant has one).
            feed: (B, T) bool, True where step t reads the true x_{t-1}, False where it reads
                its own previous output (scheduled sampling); None: always the true frame.

        Returns:
            VRNNOutput with ``frames`` (B, T, C, H, W); prior, posterior (empty when the
            latents came from the prior) and z with one level of (B, T, n_z, 1, 1).
        """
        k, t_len = self.n_ctx, video.shape[1] - self.n_ctx
        if t_len < 1:
            raise ValueError(f"video has {video.shape[1]} frames; need more than n_ctx={k}")
        noise = latent_noise(self, video.shape[0], t_len, device=video.device)[0] \
            if eps is None else eps[0].float()
        p = self.prior(video[:, 0]).map(lambda x: x[:, None].expand(-1, t_len, -1, -1, -1))
        posteriors = []
        state = self.context_state(video[:, :k], posterior=True)
        if from_prior or self.posterior is None:
            z = p.mean + noise
        else:  # the true pairs, after the context's
            q, _ = self.pair_posterior(video[:, k - 1:-1], video[:, k:], state.posterior or None)
            posteriors.append(q)
            z = q.rsample(noise)
        conv, rnn_z, frames = state.conv, state.rnn_z, []
        for t in range(t_len):
            image = video[:, k + t - 1]
            if feed is not None and t > 0:
                image = torch.where(feed[:, t, None, None, None], image, frames[-1])
            frame, conv, rnn_z = self.generator(image, state.first, z[:, t].flatten(1).to(
                video.dtype), conv, rnn_z)
            frames.append(frame)
        return VRNNOutput(logits=None, frames=torch.stack(frames, 1), prior=[p],
                          posterior=posteriors, z=[z])

    # ---- training ---------------------------------------------------------------------------
    def kl_weight_at(self, step: int) -> float:
        """The KL weight after ``step`` updates: linear from 0 over ``kl_anneal_steps``."""
        w, (start, end) = self.cfg.kl_weight, self.cfg.kl_anneal_steps
        if end == 0:
            return w
        if start == end:
            return w if step >= start else 0.0
        return w * min(1.0, max(0.0, (step - start) / (end - start)))

    def feed_mask(self, batch: int, steps: int, step: int, device: torch.device
                  ) -> Tensor | None:
        """Scheduled sampling: (B, T) True where a step reads the true frame, with probability
        k / (k + exp(step / k)) (the first predicted step always does); None when every step
        does (k = 0). All False once the probability is below 0.001, as the original."""
        k = self.cfg.schedule_sampling_k
        if k <= 0:
            return None
        prob = k / (k + torch.exp(torch.tensor(step / k, dtype=torch.float64)).item())
        mask = torch.rand(batch, steps, device=device) < prob if prob >= 1e-3 else \
            torch.zeros(batch, steps, dtype=torch.bool, device=device)
        mask[:, 0] = True
        return mask

    def training_terms(self, video: Tensor, loss: LossConfig, ctx: StepContext | None = None,
                       *, forward: Callable[..., Any] | None = None) -> dict[str, Tensor]:
        """The SAVP losses of a batch (B, K + T, C, H, W).

        ``loss`` (generator): ``l1_weight`` * ``l1`` + ``ctx.kl_weight`` * SAVP's KL weight at
        ``ctx.step`` * ``kl_step`` (KL per step, annealed) + the adversarial terms
        ``gan/<d>``; ``loss/discriminator``: the discriminators' losses
        (``discriminator/<d>``). Reported as well: ``nll`` (the L1 summed over a clip, a
        Laplace negative log-likelihood up to its constant), ``kl`` (summed over a clip) and
        ``nelbo`` = nll + kl. In evaluation mode there is no scheduled sampling and no
        adversarial term. The ``loss`` section is unused (SAVP's weights are model settings).
        """
        return savp_terms(self, video, ctx or StepContext(), forward=forward or self)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``model`` (generator and posterior) and, when the variant has discriminators,
        ``discriminator`` (their own optimiser, stored in checkpoints)."""
        d_params = {id(p) for p in self.discriminators.parameters()}
        groups = {"model": [p for p in self.parameters()
                            if p.requires_grad and id(p) not in d_params]}
        if d_params:
            groups["discriminator"] = [p for p in self.discriminators.parameters()
                                       if p.requires_grad]
        return groups

    def component_parameters(self) -> dict[str, int]:
        counts = {"generator": count(self.generator.parameters())}
        if self.posterior is not None:
            counts["posterior"] = count(self.posterior.parameters())
        for name, d in self.discriminators.items():
            counts[f"discriminator/{name}"] = count(d.parameters())
        counts["total"] = count(self.parameters())
        return counts


__all__ = ["SAVP", "SAVPConfig", "SAVPGenerator", "SAVPState", "SAVP_VARIANTS"]
