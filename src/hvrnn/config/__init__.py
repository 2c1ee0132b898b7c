"""Typed, frozen experiment configuration.

Every option is defined once, as a dataclass field with a default: the data, train and eval
sections in :mod:`hvrnn.config.sections`, the loss section in :mod:`hvrnn.config.loss`, the
model sections (common settings and one class per model kind) in :mod:`hvrnn.config.models`.
:func:`load_config` reads presets and YAML files (:mod:`hvrnn.config.loading`), bringing earlier
layouts up to date on the way (:mod:`hvrnn.config.migration`). Unknown keys and wrong types
raise :class:`ConfigError` naming the key; nothing is ever changed after construction.
"""

from hvrnn.config.baselines import PredNetConfig, SAVPConfig
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
    MODEL_CONFIGS,
    Geometry,
    HVRNNConfig,
    ModelConfig,
    SVGLPConfig,
    model_config_class,
    register_model_config,
)
from hvrnn.config.sections import DataConfig, EvalConfig, ExperimentConfig, TrainConfig

__all__ = ["MODEL_CONFIGS", "PRESET_DIR", "ConfigError", "DataConfig", "EvalConfig",
           "ExperimentConfig", "Geometry", "HVRNNConfig", "LossConfig", "ModelConfig",
           "PredNetConfig", "SAVPConfig", "SVGLPConfig", "TrainConfig", "config_from_dict",
           "load_config", "model_config_class", "preset_names", "register_model_config",
           "resolve_source", "save_config"]
