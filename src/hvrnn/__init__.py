"""hvrnn: hierarchical conditional VRNNs for stochastic video prediction."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_config": "hvrnn.config",
    "ConfigError": "hvrnn.config",
    "ExperimentConfig": "hvrnn.config",
    "UserError": "hvrnn.errors",
    "build_model": "hvrnn.model",
    "count_parameters": "hvrnn.model",
    "sample": "hvrnn.sampling",
    "build_dataset": "hvrnn.data",
    "load_checkpoint": "hvrnn.sources",
    "load_model": "hvrnn.sources",
    "load_pretrained": "hvrnn.pretrained",
    "metrics": None,
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use so that `hvrnn --help` and light scripts start fast.
    if name not in _LAZY:
        raise AttributeError(f"module 'hvrnn' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        return importlib.import_module(f"hvrnn.{name}")
    return getattr(importlib.import_module(module), name)
