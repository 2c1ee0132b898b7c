"""Where a trained model comes from: one :func:`load_model` over training checkpoints
(:mod:`hvrnn.checkpoint`) and shipped models (:mod:`hvrnn.pretrained`).

A *source* is a checkpoint file, a run directory (its latest checkpoint), ``pretrained:<name>``
(a model shipped in the package) or a pretrained-model folder or its ``model.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hvrnn import checkpoint, pretrained
from hvrnn.config import ExperimentConfig


def model_file(source: str | Path) -> Path:
    """The file a source names: a checkpoint file, the latest checkpoint of a run directory,
    or the weights file of a shipped model or a pretrained-model folder.

    Raises:
        CheckpointError: nothing found, or an unknown shipped model.
    """
    if pretrained.is_pretrained(source):
        return pretrained.folder(str(source)) / pretrained.WEIGHTS_FILE
    p = Path(source)
    if (p / pretrained.WEIGHTS_FILE).is_file():
        return p / pretrained.WEIGHTS_FILE
    return checkpoint.resolve_checkpoint(p)


def load_model(source: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[torch.nn.Module, ExperimentConfig]:
    """Rebuild a model and its config from a source alone (``hvrnn.load_checkpoint``).

    Args:
        source: a checkpoint file, a run directory (its latest checkpoint), ``pretrained:<name>``
            or a pretrained-model folder / its ``model.safetensors``.
        device: where to put the model.

    Returns:
        ``(model, cfg)``: the model in eval mode with the stored weights, and the frozen config.

    Raises:
        CheckpointError: missing, corrupt, unsafe or foreign file, weights that do not match
            a model card's SHA-256, or weights that do not fit the model the stored config
            describes.
    """
    path = model_file(source)
    if path.name == pretrained.WEIGHTS_FILE:
        return pretrained.load_weights_folder(path, str(device))
    return checkpoint.load_checkpoint_file(path, device)


load_checkpoint = load_model  # the public name, hvrnn.load_checkpoint

__all__ = ["load_checkpoint", "load_model", "model_file"]
