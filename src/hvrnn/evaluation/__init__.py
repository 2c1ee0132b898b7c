"""Evaluation on named protocols: one concern per module.

- :mod:`~hvrnn.evaluation.protocols`: what a protocol fixes, and the registered ones.
- :mod:`~hvrnn.evaluation.scorer`: per-frame metrics and FVD embeddings, block by block.
- :mod:`~hvrnn.evaluation.report`: ``metrics.json``, ``per_frame.csv``, ``curves.png`` and the
  printed summary.
- :mod:`~hvrnn.evaluation.ground_truth`: the protocol's test clips as uint8, array checks.
- :mod:`~hvrnn.evaluation.predictions`: scoring predictions in memory or in a file.
- :mod:`~hvrnn.evaluation.prediction_files`: PNG and video folders written by other codebases,
  converted to the predictions ``.npz``.
- :mod:`~hvrnn.evaluation.from_checkpoint`: sampling from a checkpoint, scoring, the ELBO.
- :mod:`~hvrnn.evaluation.compare` and :mod:`~hvrnn.evaluation.compare_outputs`: several
  models side by side on one protocol (table, curves, figures).

Names are imported on first use, so that listing protocols does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "FVD_FRAMES": "protocols", "PROTOCOLS": "protocols", "Protocol": "protocols",
    "get_protocol": "protocols", "protocol_data_config": "protocols",
    "format_protocols": "protocols",
    "FROM_CACHE": "request", "MetricWeights": "request",
    "EvaluationResult": "request", "CheckpointRequest": "request",
    "PredictionsRequest": "request", "SKIPPED": "scorer", "Scorer": "scorer",
    "format_summary": "report", "write_outputs": "report",
    "evaluate_predictions": "predictions", "evaluate_predictions_file": "predictions",
    "convert_predictions": "prediction_files", "predictions_layout": "prediction_files",
    "evaluate_checkpoint": "from_checkpoint", "PredictionsWriter": "from_checkpoint",
    "compare": "compare_outputs",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'hvrnn.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hvrnn.evaluation.{_NAMES[name]}"), name)
