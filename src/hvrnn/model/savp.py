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

from hvrnn.config import LossConfig
from hvrnn.config.baselines import SAVPConfig
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
    ConvHead,
    ConvLSTMCell,
    ConvPool,
    LSTMCell,
    PairEncoder,
    UpConv,
    VideoDiscriminator,
    apply_cdna,
    init_normal,
    normalise_kernels,
    tile,
)
from hvrnn.model.savp_training import savp_terms

LSTMStateT = tuple[Tensor, Tensor]


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


class SAVPGenerator(nn.Module):
    """The convolutional-LSTM encoder-decoder with CDNA kernels, masks and a scratch image;
    one step per call (:meth:`forward`)."""

    def __init__(self, cfg: SAVPConfig):
        super().__init__()
        n, ngf, nz, c = cfg.levels, cfg.ngf, cfg.n_z, cfg.image_channels
        enc = [ngf * 2 ** i for i in range(n)]
        dec = [ngf * 2 ** (n - 2 - i) if i < n - 1 else ngf for i in range(n)]
        self.rnn_z = LSTMCell(nz, nz)
        self.down = nn.ModuleList([ConvPool((2 * c if i == 0 else enc[i - 1]) + nz, w,
                                            5 if i == 0 else 3) for i, w in enumerate(enc)])
        self.down_lstm = nn.ModuleList([ConvLSTMCell(w + nz, w) for w in enc])
        ins = [enc[-1]] + [dec[i - 1] + enc[n - 1 - i] for i in range(1, n)]
        self.up = nn.ModuleList([UpConv(i + nz, w) for i, w in zip(ins, dec, strict=True)])
        self.up_lstm = nn.ModuleList([ConvLSTMCell(w + nz, w) for w in dec[:-1]])
        k, kernels = cfg.cdna_kernel_size, cfg.cdna_kernels
        self.cdna = nn.Linear(enc[-1] * (cfg.image_size >> n) ** 2, kernels * k * k)
        self.scratch = ConvHead(ngf, ngf, c)
        self.n_images = kernels + 3  # transformed, previous, first, scratch
        self.masks = ConvHead(ngf, ngf, self.n_images, extra=self.n_images * c)
        self.kernel_shape = (kernels, k, k)
        self.widths = enc + dec[:-1]

    def zero_state(self, first: Tensor) -> tuple[list[LSTMStateT], LSTMStateT]:
        """Zero states of every ConvLSTM and of the latent LSTM (the original's)."""
        b, size = first.shape[0], first.shape[-1]
        sizes = [size >> (i + 1) for i in range(len(self.down))]
        sizes += [size >> (len(self.down) - 1 - i) for i in range(len(self.up_lstm))]
        conv = [(first.new_zeros(b, w, s, s),) * 2 for w, s in zip(self.widths, sizes,
                                                                    strict=True)]
        nz = self.rnn_z.units
        return conv, (first.new_zeros(b, nz), first.new_zeros(b, nz))

    def forward(self, image: Tensor, first: Tensor, z: Tensor, conv: list[LSTMStateT],
                rnn_z: LSTMStateT) -> tuple[Tensor, list[LSTMStateT], LSTMStateT]:
        """One frame from the previous one (B, C, H, W), c_1 and z (B, n_z).

        Returns (frame (B, C, H, W) in [0, 1], ConvLSTM states, latent-LSTM state).
        """
        za, rnn_z = self.rnn_z(z, rnn_z)
        h, skips, new = torch.cat([image, first], 1), [], []
        for down, lstm, state in zip(self.down, self.down_lstm, conv, strict=False):
            x = down(torch.cat([h, tile(za, h)], 1))
            h, s = lstm(torch.cat([x, tile(za, x)], 1), state)
            skips.append(h)
            new.append(s)
        n = len(self.down)
        for i, up in enumerate(self.up):
            x = h if i == 0 else torch.cat([h, skips[n - 1 - i]], 1)
            h = up(torch.cat([x, tile(za, x)], 1))
            if i < len(self.up_lstm):
                h, s = self.up_lstm[i](torch.cat([h, tile(za, h)], 1), conv[n + i])
                new.append(s)
        kernels = normalise_kernels(self.cdna(skips[-1].flatten(1)).view(-1, *self.kernel_shape))
        scratch = torch.sigmoid(self.scratch(h))
        images = [*apply_cdna(image, kernels).unbind(1), image, first, scratch]
        masks = torch.softmax(self.masks(h, images), 1)  # (B, M, H, W)
        frame = sum(masks[:, m:m + 1] * img for m, img in enumerate(images))
        return frame, new, rnn_z


@register_model("savp", preset="tiny_savp")
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


__all__ = ["SAVP", "SAVPGenerator", "SAVPState"]
