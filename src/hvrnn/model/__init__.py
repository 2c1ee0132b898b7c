"""Model kinds. Importing this package registers the built-in ones."""

from __future__ import annotations

from torch import nn

from hvrnn.config import ConfigError, ModelConfig
from hvrnn.model import hvrnn as _hvrnn  # noqa: F401  (registers "hvrnn")
from hvrnn.model import svg as _svg  # noqa: F401  (registers "svg_lp")
from hvrnn.model.base import StepOutput, VideoModel, VRNNOutput
from hvrnn.model.registry import MODEL_REGISTRY, register_model

__all__ = ["MODEL_REGISTRY", "StepOutput", "VRNNOutput", "VideoModel", "build_model",
           "count_parameters", "register_model"]


def build_model(cfg: ModelConfig) -> VideoModel:
    """Build the model of kind ``cfg.kind`` from its config section alone.

    Raises:
        ConfigError: unknown ``model.kind`` or an invalid value (named in the message).
    """
    if cfg.kind not in MODEL_REGISTRY:
        raise ConfigError(f"model.kind={cfg.kind!r} is invalid: expected one of "
                          f"{sorted(MODEL_REGISTRY)}")
    cfg.validate()
    return MODEL_REGISTRY[cfg.kind](cfg)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """``{"total": n, "<component>": n, ...}``; components as the model defines them."""
    if isinstance(model, VideoModel):
        return model.component_parameters()
    return {"total": sum(p.numel() for p in model.parameters())}
