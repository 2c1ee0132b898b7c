"""What an evaluation is asked to do, decided once before any work, and what it gives back.

An evaluation of a checkpoint (:class:`CheckpointRequest`) or of predictions written elsewhere
(:class:`PredictionsRequest`) is described by a frozen request: the protocol with its options
applied, the metric weights resolved to a path, a loaded module or None
(:class:`MetricWeights`), the output folder, the device. The functions that sample and score
take the request; every option was checked when it was built. The evaluation returns an
:class:`EvaluationResult`: the numbers of ``metrics.json``, the timings and the folder of its
files.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hvrnn.config import EvalConfig
from hvrnn.errors import UserError
from hvrnn.evaluation.protocols import Protocol

# The weights argument meaning "the verified files of the weights cache" (``hvrnn weights
# fetch``); resolved to the cache folder by :meth:`MetricWeights.resolve`.
FROM_CACHE = "<weights cache>"
# The result files every evaluation writes (metrics.json last: it marks the folder complete).
OUTPUTS = ("metrics.json", "per_frame.csv", "curves.png")

Weights = Path | nn.Module | None


def _resolve_one(given: Any, configured: str) -> Weights:
    """One metric's weights: a path (a file or folder), a loaded module, ``FROM_CACHE``, None
    or False, decoded once (:meth:`MetricWeights.resolve`)."""
    from hvrnn import weights as cache

    if given is False:
        return None
    if isinstance(given, nn.Module):
        return given
    if given is None or (isinstance(given, str) and given in ("", FROM_CACHE)):
        if configured:
            return Path(configured).expanduser()
        return cache.weights_dir() if given == FROM_CACHE else None
    if isinstance(given, (str, Path)):
        return Path(given).expanduser()
    raise TypeError(f"metric weights must be a path, a module, FROM_CACHE, None or False, "
                    f"got {type(given).__name__}")


@dataclasses.dataclass(frozen=True)
class MetricWeights:
    """The LPIPS and I3D weights of one evaluation: a path (a file or folder; the weights
    cache's folder stands for its verified files, :func:`hvrnn.weights.is_cache`), a loaded
    module (:class:`~hvrnn.metrics.LPIPS`, an I3D module), or None where the metric is
    skipped."""

    lpips: Weights = None
    i3d: Weights = None

    @classmethod
    def resolve(cls, lpips: Any = None, i3d: Any = None, protocol: Protocol | None = None,
                configured: EvalConfig | None = None) -> MetricWeights:
        """Decode the weights arguments of the evaluation functions, once.

        Args:
            lpips, i3d: a path or a loaded module; :data:`FROM_CACHE` (the weights cache);
                None (skip the metric, unless ``configured`` names a path); False (skip it,
                whatever ``configured`` names).
            protocol: a metric the protocol does not score gets None.
            configured: an eval section whose ``lpips_weights`` / ``i3d_weights`` path fills
                an unset argument and is preferred to ``FROM_CACHE``.

        Raises:
            TypeError: an argument of another type.
        """
        lp = _resolve_one(lpips, configured.lpips_weights if configured else "")
        i3 = _resolve_one(i3d, configured.i3d_weights if configured else "")
        if protocol is not None:
            lp = lp if "lpips" in protocol.metrics else None
            i3 = i3 if "fvd" in protocol.metrics else None
        return cls(lp, i3)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluationRequest:
    """What every evaluation fixes before any work.

    Attributes:
        protocol: the protocol, with the options of this evaluation applied (recorded in
            metrics.json).
        weights: the metric weights.
        out: the output folder.
        force: replace an earlier evaluation's files there.
        device: where samples are drawn and metrics computed.
    """

    protocol: Protocol
    weights: MetricWeights = MetricWeights()
    out: Path
    force: bool = False
    device: torch.device = torch.device("cpu")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckpointRequest(EvaluationRequest):
    """An evaluation of a model: samples drawn on the protocol's test set, then scored.

    Attributes:
        source: the checkpoint as given (file, run directory or ``pretrained:NAME``).
        checkpoint: the checkpoint file it names.
        data_root: prepared test data.
        batch_size: sequences sampled together (>= 1).
        temperature: prior variance multiplier (>= 0).
        save_predictions: also write ``predictions.npz``.
        compile_mode: ``torch.compile`` mode of the ConvLSTM steps, or None.
        bf16: sample under bf16 autocast.
    """

    source: str | Path
    checkpoint: Path
    data_root: str | Path | None = None
    batch_size: int = 1
    temperature: float = 1.0
    save_predictions: bool = True
    compile_mode: str | None = None
    bf16: bool = False

    def outputs(self) -> tuple[str, ...]:
        """The files this evaluation writes into its folder."""
        return OUTPUTS + (("predictions.npz",) if self.save_predictions else ())


@dataclasses.dataclass(frozen=True, kw_only=True)
class PredictionsRequest(EvaluationRequest):
    """An evaluation of predictions made elsewhere (docs/evaluation.md).

    Attributes:
        predictions: a predictions ``.npz``, or a folder or arrays of another layout.
        layout: ``npz`` or the layout it is converted from
            (:func:`~hvrnn.evaluation.prediction_files.predictions_layout`).
        data_root: prepared test data (None: the protocol's).
        targets: ground-truth clips instead of the dataset: uint8 (S, K + T, H, W, C) or a file.
        chunk: sequences read and scored at once.
    """

    predictions: Path
    layout: str = "npz"
    data_root: str | Path | None = None
    targets: np.ndarray | str | Path | None = None
    chunk: int = 4

    def outputs(self) -> tuple[str, ...]:
        """The files this evaluation writes into its folder (a converted layout adds its
        ``predictions.npz``)."""
        return OUTPUTS + (("predictions.npz",) if self.layout != "npz" else ())


@dataclasses.dataclass(frozen=True, eq=False)
class EvaluationResult(Mapping[str, Any]):
    """What an evaluation gives back: the numbers, the timings and where the files are.

    It reads as the mapping written to metrics.json (``result["metrics"]["ssim"]``), which
    :attr:`record` holds as a plain, JSON-ready dict.

    Attributes:
        record: what metrics.json holds.
        folder: the folder holding metrics.json, per_frame.csv, curves.png (and
            predictions.npz, where written).
    """

    record: dict[str, Any]
    folder: Path

    def __getitem__(self, key: str) -> Any:
        return self.record[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.record)

    def __len__(self) -> int:
        return len(self.record)

    def __repr__(self) -> str:
        return f"EvaluationResult(protocol={self.record.get('protocol_id')!r}, " \
               f"folder={str(self.folder)!r})"

    @property
    def metrics_file(self) -> Path:
        """The metrics.json written."""
        return self.folder / "metrics.json"

    @property
    def wall_seconds(self) -> float:
        """Seconds from the first block sampled or read to the files written."""
        return float(self.record["wall_seconds"])

    @property
    def sampling_seconds(self) -> float | None:
        """Seconds spent drawing samples (scoring excluded); None for predictions."""
        sampling = self.record.get("sampling")
        return None if sampling is None else float(sampling["seconds"])


def check_sampling_options(n_samples: int | None, max_sequences: int | None,
                           temperature: float, batch_size: int) -> None:
    """Refuse numbers that would fail later (or sample garbage), before any work.

    Raises:
        UserError: naming the option and the value.
    """
    for name, value, low in (("n_samples", n_samples, 1), ("max_sequences", max_sequences, 1),
                             ("batch_size", batch_size, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < low):
            raise UserError(f"{name}={value!r} is invalid: expected an integer >= {low}")
    if not (isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
            and math.isfinite(temperature) and temperature >= 0):
        raise UserError(f"temperature={temperature!r} is invalid: expected a finite number "
                        ">= 0")
