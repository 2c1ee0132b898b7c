"""Registry of model kinds.

Training, sampling and evaluation only use the :class:`~hvrnn.model.base.VideoModel` interface,
so a kind is one module: its config class, its network and its objective, registered together
by :func:`register_model`, plus a preset (docs/architecture.md, "Adding a model kind").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hvrnn.config import MODEL_CONFIGS, register_model_config

if TYPE_CHECKING:
    from hvrnn.config import ModelConfig
    from hvrnn.model.base import VideoModel

MODEL_REGISTRY: dict[str, Callable[[ModelConfig], VideoModel]] = {}
# The smallest preset (a name or a YAML path) of each kind: what the contract tests build.
MODEL_PRESETS: dict[str, str] = {}


def register_model(kind: str, config: type[ModelConfig] | None = None, preset: str = ""):
    """Class decorator: ``@register_model("toy", config=ToyConfig, preset="toy.yaml")`` makes
    ``model.kind: toy`` buildable from a ``ToyConfig`` section.

    Args:
        kind: the ``model.kind`` value.
        config: the kind's config class, defined in the same module (registered with
            :func:`hvrnn.config.register_model_config`); None when that is done already.
        preset: the kind's smallest preset: a preset name, or a YAML path, a relative one
            read beside the module that defines the class (:func:`preset_beside`).

    Raises:
        ValueError: the kind is registered already, or has no config class.
    """

    def wrap(cls):
        if kind in MODEL_REGISTRY:
            raise ValueError(f"model kind {kind!r} is already registered")
        if config is not None:
            register_model_config(kind)(config)
        if kind not in MODEL_CONFIGS:
            raise ValueError(f"model kind {kind!r} has no config class: pass config=")
        MODEL_REGISTRY[kind] = cls
        if preset:
            MODEL_PRESETS[kind] = preset_beside(cls, preset)
        return cls

    return wrap


def preset_beside(cls: type, preset: str) -> str:
    """A preset given as a relative YAML path names a file beside the module that defines
    ``cls`` (``preset="mykind.yaml"`` next to ``mykind.py``), wherever the process runs; a
    preset name or an absolute path is kept."""
    file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if file is None or not preset.endswith((".yaml", ".yml")) or Path(preset).is_absolute():
        return preset
    return str(Path(file).resolve().parent / preset)
