"""Typed, frozen experiment configuration.

Every option is defined once, as a dataclass field with a default: the data, train and eval
sections in :mod:`hvrnn.config.sections`, the loss section in :mod:`hvrnn.config.loss`, the
settings every model kind shares in :mod:`hvrnn.config.models`, and each kind's own model
section beside its network, in the kind's module (``hvrnn.model.hvrnn.HVRNNConfig``, ...),
imported on the kind's first lookup (:func:`model_config_class`).
:func:`load_config` reads presets and YAML files (:mod:`hvrnn.config.loading`), bringing earlier
layouts up to date on the way (:mod:`hvrnn.config.migration`). Unknown keys and wrong types
raise :class:`ConfigError` naming the key; nothing is ever changed after construction.
"""

from __future__ import annotations

import warnings

from hvrnn.config.checks import ConfigError
from hvrnn.config.loading import (
    PRESET_DIR,
    config_from_dict,
    load_config,
    preset_names,
    resolve_source,
    save_config,
)
from hvrnn.config.loss import LossConfig
from hvrnn.config.models import (
    BUILTIN_KINDS,
    ENTRY_POINT_GROUP,
    MODEL_CONFIGS,
    Geometry,
    ModelConfig,
    UnknownKindError,
    model_config_class,
    model_kinds,
    register_model_config,
)
from hvrnn.config.sections import DataConfig, EvalConfig, ExperimentConfig, TrainConfig

# Config classes of the built-in kinds that were importable from here; each now lives in its
# kind's module (BUILTIN_KINDS), beside the network.
MOVED_CONFIGS = {"HVRNNConfig": "hvrnn", "SVGLPConfig": "svg_lp", "PredNetConfig": "prednet",
                 "SAVPConfig": "savp"}

__all__ = ["BUILTIN_KINDS", "ENTRY_POINT_GROUP", "MODEL_CONFIGS", "PRESET_DIR", "ConfigError",
           "DataConfig", "EvalConfig", "ExperimentConfig", "Geometry", "LossConfig",
           "ModelConfig", "TrainConfig", "UnknownKindError", "config_from_dict", "load_config",
           "model_config_class", "model_kinds", "preset_names", "register_model_config",
           "resolve_source", "save_config"]


def __getattr__(name: str) -> type[ModelConfig]:
    """``hvrnn.config.HVRNNConfig`` and the three other moved classes, with a
    DeprecationWarning naming their place (``hvrnn.model.hvrnn.HVRNNConfig``, ...)."""
    kind = MOVED_CONFIGS.get(name)
    if kind is None:
        raise AttributeError(f"module 'hvrnn.config' has no attribute {name!r}")
    cls = model_config_class(kind)
    warnings.warn(f"hvrnn.config.{name} is deprecated; use {cls.__module__}.{name} (also "
                  f"exported by hvrnn.model)", DeprecationWarning, stacklevel=2)
    return cls
