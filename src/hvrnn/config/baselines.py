"""Model sections of the baselines the paper compares with: PredNet and SAVP.

Each documents where its defaults come from; docs/models.md lists the published settings behind
every preset. Both predict frames in [0, 1] directly (no pixel likelihood), so the shared
``base_channels``, ``max_channels``, ``width_mult`` and ``gn_groups`` settings of
:class:`~hvrnn.config.ModelConfig` and the ELBO settings of the ``loss`` section
(``likelihood``, ``kl_estimator``, ``kl_beta``, ``free_bits``) do not apply to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from hvrnn.config.checks import ConfigError, check
from hvrnn.config.models import ModelConfig, register_model_config


def _positive(values: tuple[int, ...], key: str, kind: str) -> None:
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"{key}={list(values)!r} is invalid for model.kind={kind}: expected "
                          "positive integers")


@register_model_config("prednet")
@dataclass(frozen=True)
class PredNetConfig(ModelConfig):
    """PredNet (Lotter, Kreiman and Cox, ICLR 2017), ``model.kind: prednet``.

    Defaults are the 4-layer KITTI model of the original ``kitti_train.py``: A / Ahat
    channels (C, 48, 96, 192) with C the image channels, R channels equal to them, 3x3
    filters everywhere, and the "L0" loss (layer weights 1, 0, 0, 0). Time weights follow the
    same file: 0 for the first frame of a clip, 1 / (N - 1) for the N - 1 others.
    """

    kind: str = "prednet"
    stack_sizes: tuple[int, ...] = (48, 96, 192)  # A / Ahat channels of layers 1 .. L-1
    r_stack_sizes: tuple[int, ...] = ()  # R channels of layers 0 .. L-1; () = (C, *stack_sizes)
    a_filter_sizes: tuple[int, ...] = (3, 3, 3)  # layers 1 .. L-1
    ahat_filter_sizes: tuple[int, ...] = (3, 3, 3, 3)
    r_filter_sizes: tuple[int, ...] = (3, 3, 3, 3)
    layer_loss_weights: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)
    pixel_max: float = 1.0  # the bottom prediction is min(Ahat_0, pixel_max)
    # Train in the extrapolation mode: from the first predicted frame on the model reads its
    # own previous prediction, and the loss is 0.5 * the mean absolute error of the frames
    # after the first (the original kitti_extrap_finetune.py).
    extrap_finetune: bool = False

    @property
    def layers(self) -> int:
        return len(self.stack_sizes) + 1

    @property
    def a_channels(self) -> tuple[int, ...]:
        """A / Ahat channels per layer, the image's first."""
        return (self.image_channels, *self.stack_sizes)

    @property
    def r_channels(self) -> tuple[int, ...]:
        return tuple(self.r_stack_sizes) if self.r_stack_sizes else self.a_channels

    def validate(self) -> None:
        kind, n = self.kind, self.layers
        _positive(self.stack_sizes, "model.stack_sizes", kind)
        for key, want in (("r_stack_sizes", n if self.r_stack_sizes else 0),
                          ("a_filter_sizes", n - 1), ("ahat_filter_sizes", n),
                          ("r_filter_sizes", n), ("layer_loss_weights", n)):
            value = getattr(self, key)
            check(len(value) == want, f"model.{key}", list(value),
                  f"{want} values for the {n} layers of model.stack_sizes"
                  + (" (or [] for the A channels)" if key == "r_stack_sizes" else ""))
        if self.r_stack_sizes:
            _positive(self.r_stack_sizes, "model.r_stack_sizes", kind)
        for key in ("a_filter_sizes", "ahat_filter_sizes", "r_filter_sizes"):
            value = getattr(self, key)
            check(all(k >= 1 and k % 2 == 1 for k in value), f"model.{key}", list(value),
                  "odd filter sizes")
        check(all(w >= 0 for w in self.layer_loss_weights) and any(self.layer_loss_weights),
              "model.layer_loss_weights", list(self.layer_loss_weights),
              "non-negative weights, not all zero")
        check(self.pixel_max > 0, "model.pixel_max", self.pixel_max, "> 0")
        size = self.image_size
        check(size % 2 ** (n - 1) == 0, "data.image_size", size,
              f"a multiple of {2 ** (n - 1)} for a {n}-layer PredNet (each layer halves it)")

    def check_clip_length(self, n_pred: int) -> None:
        check(self.n_ctx + n_pred >= 2, "data.n_pred", n_pred,
              "at least 2 frames per clip (the first frame is not scored)")


SAVP_VARIANTS = ("savp", "vae", "gan")


@register_model_config("savp")
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
