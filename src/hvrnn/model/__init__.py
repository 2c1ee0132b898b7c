"""Model kinds. Importing this package registers the built-in ones.

Each kind is one module: its config class beside its network, its objective and its
registration (:func:`register_model`): :mod:`hvrnn.model.hvrnn` (``HVRNNConfig``),
:mod:`hvrnn.model.svg` (``SVGLPConfig``), :mod:`hvrnn.model.prednet` (``PredNetConfig``) and
:mod:`hvrnn.model.savp` (``SAVPConfig``); their config classes are exported here too.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from hvrnn.config import ConfigError, DataConfig, ModelConfig, model_config_class
from hvrnn.model.base import (
    RecurrentState,
    StepContext,
    StepOutput,
    VideoModel,
    VRNNOutput,
    count,
    elbo_objective,
    latent_noise,
)
from hvrnn.model.hvrnn import HVRNNConfig  # registers "hvrnn"
from hvrnn.model.prednet import PredNetConfig  # registers "prednet"
from hvrnn.model.registry import MODEL_PRESETS, MODEL_REGISTRY, register_model
from hvrnn.model.savp import SAVPConfig  # registers "savp"
from hvrnn.model.svg import SVGLPConfig  # registers "svg_lp"

__all__ = ["MODEL_PRESETS", "MODEL_REGISTRY", "HVRNNConfig", "PredNetConfig", "RecurrentState",
           "SAVPConfig", "SVGLPConfig", "StepContext", "StepOutput", "VRNNOutput", "VideoModel",
           "build_model", "count_parameters", "elbo_objective", "latent_noise", "register_model"]


def build_model(cfg: ModelConfig, data: DataConfig | None = None) -> VideoModel:
    """Build the model of kind ``cfg.kind`` from its config section.

    Args:
        cfg: a model section as :func:`hvrnn.load_config` makes it (it carries the image
            geometry of its experiment's data section).
        data: a data section to take the image geometry from instead.

    Raises:
        ConfigError: unknown ``model.kind``, a section of another kind's class, or an invalid
            value (named in the message).
    """
    if cfg.kind not in MODEL_REGISTRY:
        raise ConfigError(f"model.kind={cfg.kind!r} is invalid: expected one of "
                          f"{sorted(MODEL_REGISTRY)}")
    expected = model_config_class(cfg.kind)
    if not isinstance(cfg, expected):
        raise ConfigError(f"model.kind={cfg.kind!r} needs a {expected.__name__} section, got "
                          f"{type(cfg).__name__}")
    if data is not None:
        cfg = dataclasses.replace(cfg, geometry=data.geometry)
    cfg.validate()
    return MODEL_REGISTRY[cfg.kind](cfg)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """``{"total": n, "<component>": n, ...}``; components as the model defines them."""
    if isinstance(model, VideoModel):
        return model.component_parameters()
    return {"total": count(model.parameters())}
