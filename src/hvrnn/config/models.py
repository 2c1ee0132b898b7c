"""Model sections: the settings every model kind shares, and one class per kind.

The ``model`` section of a config is an instance of the class registered for its ``kind``
(:data:`MODEL_CONFIGS`), so each kind accepts exactly its own keys. The image geometry (context
length, frame size, channels) is not a model key: it belongs to the data section, and the
:class:`~hvrnn.config.ExperimentConfig` that holds both hands it to its model section as
:attr:`ModelConfig.geometry` when it is built. A model is therefore built from
``cfg.model`` alone (``hvrnn.build_model(cfg.model)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hvrnn.config.checks import ConfigError, check
from hvrnn.config.loss import LossConfig

# A field carrying this metadata is derived at construction and never read from or written to
# a config file.
DERIVED = {"derived": True}


@dataclass(frozen=True)
class Geometry:
    """What a model needs to know about the frames: context length K, side H = W, channels C."""

    n_ctx: int
    image_size: int
    image_channels: int


@dataclass(frozen=True)
class ModelConfig:
    """Settings shared by every model kind (docs/design.md section 3 for the hierarchical VRNN).

    Subclasses add the settings of one kind and are registered with :func:`register_model_config`.
    """

    kind: str = "hvrnn"
    n_z: int = 10  # channels of the 1x1 latent level
    # Widths: stage i (resolution H / 2^i) has min(base * 2^i, max) * width_mult channels,
    # unless ``stage_widths`` lists one width per stage, finest first (H, H/2, ..., 4, 1).
    base_channels: int = 64
    max_channels: int = 512
    width_mult: float = 1.0
    stage_widths: tuple[int, ...] = ()
    gn_groups: int = 4  # GroupNorm groups of the convolutional blocks
    geometry: Geometry | None = field(default=None, repr=False, metadata=DERIVED)

    # ---- the geometry handed over by the data section ------------------------------------
    def _geometry(self) -> Geometry:
        if self.geometry is None:
            raise ConfigError("the model section has no image geometry: it comes from the data "
                              "section (build configs with hvrnn.load_config, or call "
                              "build_model(cfg.model, cfg.data))")
        return self.geometry

    @property
    def n_ctx(self) -> int:
        return self._geometry().n_ctx

    @property
    def image_size(self) -> int:
        return self._geometry().image_size

    @property
    def image_channels(self) -> int:
        return self._geometry().image_channels

    # ---- derived -------------------------------------------------------------------------
    @property
    def stage_resolutions(self) -> tuple[int, ...]:
        """Encoder/decoder resolutions, finest first: H, H/2, ..., 4, then 1."""
        res, out = self.image_size, []
        while res >= 4:
            out.append(res)
            res //= 2
        return (*out, 1)

    def width(self, resolution: int) -> int:
        """Channel width of the encoder stage / decoder block at ``resolution``."""
        idx = self.stage_resolutions.index(resolution)
        if self.stage_widths:
            return self.stage_widths[idx]
        base = self.base_channels * 2**idx
        return max(1, int(round(min(base, self.max_channels) * self.width_mult)))

    @property
    def latent_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """(channels, height, width) of the latent of one step, per level, coarsest first."""
        return ()

    def check_clip_length(self, n_pred: int) -> None:
        """Raise ConfigError if this model cannot train on clips of ``n_ctx + n_pred`` frames
        (called by :meth:`ExperimentConfig.validate` with ``data.n_pred``); any length by
        default."""

    def check_loss(self, loss: LossConfig) -> None:
        """Raise ConfigError for a ``loss`` setting this kind cannot honour (called by
        :meth:`ExperimentConfig.validate`); own-prediction inputs are the hierarchical VRNN's
        only, by default."""
        check(loss.rollout_inputs == 0, "loss.rollout_inputs", loss.rollout_inputs,
              f"0 for model.kind {self.kind!r} (own-prediction inputs are hvrnn's)")

    def validate(self) -> None:
        size = self.image_size
        check(size >= 8 and size & (size - 1) == 0, "data.image_size", size,
              f"a power of two >= 8 for model.kind={self.kind} (the encoder halves it down "
              "to 4x4)")
        check(self.n_z >= 1, "model.n_z", self.n_z, ">= 1")
        check(self.width_mult > 0, "model.width_mult", self.width_mult, "> 0")
        for key in ("base_channels", "max_channels", "gn_groups"):
            check(getattr(self, key) >= 1, f"model.{key}", getattr(self, key), ">= 1")
        if self.stage_widths:
            n = len(self.stage_resolutions)
            check(len(self.stage_widths) == n and min(self.stage_widths) >= 1,
                  "model.stage_widths", self.stage_widths,
                  f"{n} positive widths, one per stage {list(self.stage_resolutions)}")
        for r in self.stage_resolutions:
            w = self.width(r)
            check(w % self.gn_groups == 0, "model.gn_groups", self.gn_groups,
                  f"a divisor of every stage width (width {w} at {r}x{r})")


MODEL_CONFIGS: dict[str, type[ModelConfig]] = {}


def register_model_config(kind: str) -> Callable[[type[ModelConfig]], type[ModelConfig]]:
    """Class decorator: the config class of ``model.kind: <kind>``."""

    def wrap(cls: type[ModelConfig]) -> type[ModelConfig]:
        if kind in MODEL_CONFIGS:
            raise ValueError(f"a config class for model kind {kind!r} is already registered")
        MODEL_CONFIGS[kind] = cls
        return cls

    return wrap


def model_config_class(kind: object) -> type[ModelConfig]:
    """The config class of a kind. Raises ConfigError for an unknown kind."""
    if not isinstance(kind, str) or kind not in MODEL_CONFIGS:
        raise ConfigError(f"model.kind={kind!r} is invalid: expected one of "
                          f"{sorted(MODEL_CONFIGS)}")
    return MODEL_CONFIGS[kind]


@register_model_config("hvrnn")
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


@register_model_config("svg_lp")
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
