"""Model sections: the settings every model kind shares, and the registry of the kinds' classes.

The ``model`` section of a config is an instance of the class registered for its ``kind``
(:data:`MODEL_CONFIGS`), so each kind accepts exactly its own keys. Each kind's class lives in
the kind's own module, beside its network (``hvrnn.model.hvrnn.HVRNNConfig``, ...); the
built-in kinds' modules are imported on first lookup (:data:`BUILTIN_KINDS`,
:func:`model_config_class`).

The image geometry (context length, frame size, channels) is not a model key: it belongs to
the data section, and the :class:`~hvrnn.config.ExperimentConfig` that holds both hands it to
its model section as :attr:`ModelConfig.geometry` when it is built. A model is therefore built
from ``cfg.model`` alone (``hvrnn.build_model(cfg.model)``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

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

    Subclasses add the settings of one kind; each lives in its kind's module and is registered
    with the kind's network (``@register_model(kind, config=...)``, :mod:`hvrnn.model.registry`).
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


# The config class of every kind imported so far, by ``model.kind``.
MODEL_CONFIGS: dict[str, type[ModelConfig]] = {}

# The built-in kinds: ``model.kind`` -> the module that defines the kind (config class, network,
# objective) and registers it. Presets are read here, in the config layer, below the model
# layer, so this layer never imports a kind's module statically: :func:`model_config_class`
# imports it on the kind's first lookup (as Hugging Face's ``AutoConfig`` resolves a
# ``model_type`` through its ``CONFIG_MAPPING_NAMES``).
BUILTIN_KINDS: dict[str, str] = {
    "hvrnn": "hvrnn.model.hvrnn",
    "svg_lp": "hvrnn.model.svg",
    "prednet": "hvrnn.model.prednet",
    "savp": "hvrnn.model.savp",
}

# The entry-point group through which an installed package names the module of a kind of its
# own (``[project.entry-points."hvrnn.model_kinds"] mykind = "mypackage.mykind"``); that module
# is imported on the kind's first lookup, as a built-in kind's is.
ENTRY_POINT_GROUP = "hvrnn.model_kinds"
# How to make a kind of one's own known, for the error of an unknown kind.
KIND_ADVICE = ("a kind of your own is known once its module is imported: import it in Python, "
               "run 'hvrnn --import MODULE ...', or name the module under the entry-point group "
               f"'{ENTRY_POINT_GROUP}' of an installed package")


class UnknownKindError(ConfigError):
    """``model.kind`` names no built-in kind, no kind registered so far and no entry point."""

    def __init__(self, kind: object):
        super().__init__(f"model.kind={kind!r} is invalid: expected one of {model_kinds()}",
                         hint=KIND_ADVICE)
        self.kind = kind


def _entry_point_kinds() -> dict[str, str]:
    """``model.kind`` -> module, from the installed packages' entry points."""
    return {ep.name: ep.module for ep in entry_points(group=ENTRY_POINT_GROUP)}


def register_model_config(kind: str) -> Callable[[type[ModelConfig]], type[ModelConfig]]:
    """Class decorator: the config class of ``model.kind: <kind>`` (a kind's module usually
    registers it with :func:`hvrnn.model.register_model`, ``config=``).

    Raises:
        ValueError: the kind has a config class already.
    """

    def wrap(cls: type[ModelConfig]) -> type[ModelConfig]:
        if kind in MODEL_CONFIGS:
            raise ValueError(f"a config class for model kind {kind!r} is already registered")
        MODEL_CONFIGS[kind] = cls
        return cls

    return wrap


def model_kinds() -> list[str]:
    """Every valid ``model.kind``, sorted: the built-in kinds, the kinds registered since and
    those of the installed packages' entry points (:data:`ENTRY_POINT_GROUP`)."""
    return sorted(set(BUILTIN_KINDS) | set(MODEL_CONFIGS) | set(_entry_point_kinds()))


def model_config_class(kind: object) -> type[ModelConfig]:
    """The config class of ``model.kind`` = ``kind``.

    A built-in kind's module (:data:`BUILTIN_KINDS`), or the module an installed package names
    for it under the entry-point group :data:`ENTRY_POINT_GROUP`, is imported on the kind's
    first lookup: it holds the config class beside the network and registers both. Any other
    kind must have been imported (registered) before its preset is loaded.

    Raises:
        UnknownKindError: an unknown kind, naming ``model.kind``, the valid choices
            (:func:`model_kinds`) and how to make a kind of one's own known.
    """
    if isinstance(kind, str) and kind not in MODEL_CONFIGS:
        module = BUILTIN_KINDS.get(kind) or _entry_point_kinds().get(kind)
        if module is not None:
            importlib.import_module(module)
    if not isinstance(kind, str) or kind not in MODEL_CONFIGS:
        raise UnknownKindError(kind)
    return MODEL_CONFIGS[kind]
