"""Registry of model kinds.

Training, sampling and evaluation only use the :class:`~hvrnn.model.base.VideoModel` interface,
so a baseline (SVG-LP, PredNet, ...) is added by registering a class here and its config class
with :func:`hvrnn.config.register_model_config`, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hvrnn.config import ModelConfig
    from hvrnn.model.base import VideoModel

MODEL_REGISTRY: dict[str, Callable[[ModelConfig], VideoModel]] = {}


def register_model(kind: str):
    """Class decorator: ``@register_model("hvrnn")`` makes ``model.kind: hvrnn`` buildable.

    The kind's config class must be registered too (:func:`hvrnn.config.register_model_config`);
    the model is built from an instance of it.
    """

    def wrap(cls):
        if kind in MODEL_REGISTRY:
            raise ValueError(f"model kind {kind!r} is already registered")
        MODEL_REGISTRY[kind] = cls
        return cls

    return wrap
