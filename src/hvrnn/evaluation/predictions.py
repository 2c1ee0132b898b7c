"""Scoring predictions: arrays in memory or a predictions file (docs/evaluation.md), block by
block."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hvrnn.distributed import resolve_device
from hvrnn.errors import UserError, require
from hvrnn.evaluation.ground_truth import check_array, clips_uint8, ground_truth, load_targets
from hvrnn.evaluation.protocols import Protocol, get_protocol
from hvrnn.evaluation.report import write_outputs
from hvrnn.evaluation.request import (
    OUTPUTS,
    EvaluationRequest,
    EvaluationResult,
    MetricWeights,
    PredictionsRequest,
)
from hvrnn.evaluation.scorer import Scorer, check_fvd_inputs, fvd_warnings, progress_bar
from hvrnn.io.files import sha256_file
from hvrnn.io.npy import NpyReader, open_npz
from hvrnn.io.output import OutputFolder

Block = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # samples, targets, context (uint8)


def eval_folder(out_dir: str | Path, force: bool, writes: tuple[str, ...] = OUTPUTS
                ) -> OutputFolder:
    """The output folder of an evaluation that writes the files ``writes``: refused, without
    ``force``, when it holds any of them (an earlier ``predictions.npz`` or ``per_frame.csv``
    is never overwritten, with or without ``metrics.json``)."""
    return OutputFolder(out_dir, force=force, watched=tuple(writes),
                        advice="pass --force (force=True) to overwrite it or choose another "
                               "output folder")


def prepare_eval_dir(out_dir: str | Path, force: bool) -> Path:
    """Check the output folder of an evaluation (:func:`eval_folder`) and create it."""
    folder = eval_folder(out_dir, force)
    folder.check()
    folder.path.mkdir(parents=True, exist_ok=True)
    return folder.path


def score_blocks(blocks: Iterator[Block], n_sequences: int, request: EvaluationRequest,
                 out: OutputFolder, extra: dict[str, Any]) -> EvaluationResult:
    """Score blocks of (samples (b, N, T, H, W, C), targets (b, T, H, W, C), context) under
    ``request`` and write the result files into ``out`` (an entered :class:`OutputFolder`);
    ``extra``: more metrics.json entries."""
    t0 = time.time()
    p = request.protocol
    scorer = Scorer(p, request.weights, request.device)
    with progress_bar(n_sequences, f"scoring {p.id}") as bar:
        for samples, targets, context in blocks:
            scorer.add(samples, targets, context)
            bar.update(samples.shape[0])
    return write_outputs(out, scorer, p, n_sequences, extra, time.time() - t0)


def evaluate_predictions(samples_uint8: np.ndarray, targets_uint8: np.ndarray,
                         context_uint8: np.ndarray | None, protocol: str | Protocol,
                         out_dir: str | Path, lpips_weights: Any = None, i3d_weights: Any = None,
                         *, force: bool = False, device: str = "cpu", chunk: int = 4,
                         extra: dict[str, Any] | None = None) -> EvaluationResult:
    """Score predictions held in memory and write metrics.json, per_frame.csv, curves.png.

    Args:
        samples_uint8: (S, N, T_pred, H, W, C) uint8 generated frames.
        targets_uint8: (S, T_pred, H, W, C) uint8 ground-truth future frames.
        context_uint8: (S, K, H, W, C) uint8 ground-truth context (needed for FVD with
            ``fvd_frames="context+pred"``), or None.
        protocol: a protocol id or :class:`Protocol`.
        out_dir: output folder; one holding metrics.json, per_frame.csv or curves.png needs
            ``force=True``.
        lpips_weights: LPIPS weights (see :func:`hvrnn.metrics.lpips`), or
            :data:`~hvrnn.evaluation.request.FROM_CACHE` for the weights cache; None skips LPIPS.
        i3d_weights: I3D weights (see :func:`hvrnn.metrics.load_i3d`), or ``FROM_CACHE``; None
            skips FVD.
        device: where metrics are computed.
        chunk: sequences scored at once.
        extra: more top-level entries for metrics.json (e.g. a checkpoint hash).

    Returns:
        An :class:`~hvrnn.evaluation.request.EvaluationResult`: what metrics.json holds, and
        the folder.

    Raises:
        UserError: arrays of the wrong dtype or shape, or FVD asked for where it cannot be
            computed (fewer than 9 frames or 2 sequences), before anything is scored.
    """
    p = get_protocol(protocol)
    samples, targets = np.asarray(samples_uint8), np.asarray(targets_uint8)
    shape = (p.image_size, p.image_size, p.channels)
    check_array("samples", samples, (None, None, p.n_pred, *shape), p)
    s = samples.shape[0]
    check_array("targets", targets, (s, p.n_pred, *shape), p)
    if context_uint8 is not None:
        check_array("context", np.asarray(context_uint8), (s, p.n_ctx, *shape), p)
    request = EvaluationRequest(protocol=p, weights=MetricWeights.resolve(lpips_weights,
                                                                           i3d_weights, p),
                                out=Path(out_dir), force=force, device=resolve_device(device))
    check_fvd_inputs(p, s, request.weights.i3d)
    require_report()
    folder = eval_folder(request.out, force)
    folder.check()

    def blocks() -> Iterator[Block]:
        for i in range(0, s, chunk):
            ctx = None if context_uint8 is None else np.asarray(context_uint8[i:i + chunk])
            yield samples[i:i + chunk], targets[i:i + chunk], ctx

    with folder:
        return score_blocks(blocks(), s, request, folder, extra or {})


def _truth_source(p: Protocol, targets: np.ndarray | str | Path | None,
                  data_root: str | Path | None, dataset: Any
                  ) -> tuple[int, Callable[[int, int], np.ndarray]]:
    """(number of test clips available, clips(a, b) -> uint8 (b - a, K + T, H, W, C))."""
    if targets is None:
        gt = ground_truth(p, data_root, dataset)
        return len(gt), lambda a, b: clips_uint8(gt, a, b, p)
    what = "targets"
    if not isinstance(targets, np.ndarray):
        what = f"targets file '{targets}'"
        targets = load_targets(Path(targets), p)
    check_array("targets", targets, (None, None, p.image_size, p.image_size, p.channels), p)
    if targets.shape[1] < p.n_ctx + p.n_pred:
        raise UserError(f"{what} holds clips of {targets.shape[1]} frames (shape "
                        f"{tuple(targets.shape)}); protocol {p.id} needs {p.n_ctx} context + "
                        f"{p.n_pred} predicted frames")
    need = p.n_ctx + p.n_pred
    return targets.shape[0], lambda a, b: targets[a:b, :need]


def _file_blocks(path: Path, p: Protocol, s: int, chunk: int,
                 clips: Callable[[int, int], np.ndarray], samples: NpyReader,
                 context: NpyReader | None) -> Iterator[Block]:
    """Blocks read from the file; a given ``context`` must match the ground truth (+-1)."""
    for a in range(0, s, chunk):
        b = min(s, a + chunk)
        clip = clips(a, b)
        ctx, fut = clip[:, :p.n_ctx], clip[:, p.n_ctx:]
        if context is not None:
            given = context.read(b - a)
            bad = np.abs(given.astype(np.int16) - ctx.astype(np.int16)).reshape(
                b - a, -1).max(axis=1) > 1
            if bad.any():
                i = a + int(np.argmax(bad))
                raise UserError(f"{str(path)!r}: 'context' of sequence {i} differs from test "
                                f"sequence {i} of protocol {p.id}; predictions must follow "
                                "the protocol's test order")
        yield samples.read(b - a), fut, ctx


def _check_file(arrays: dict[str, NpyReader], p: Protocol, n_sequences: int, path: Path
                ) -> None:
    """The arrays of a predictions file against the protocol and the number of sequences."""
    frame = (p.image_size, p.image_size, p.channels)
    check_array("samples", arrays["samples"], (n_sequences, None, p.n_pred, *frame), p,
                str(path))
    if "context" in arrays:
        check_array("context", arrays["context"], (n_sequences, p.n_ctx, *frame), p, str(path))


def evaluate_predictions_file(npz_path: str | Path, protocol_id: str | Protocol,
                              out_dir: str | Path | None = None,
                              data_root: str | Path | None = None,
                              lpips_weights: Any = None, i3d_weights: Any = None, *,
                              targets: np.ndarray | str | Path | None = None,
                              dataset: Any = None, max_sequences: int | None = None,
                              force: bool = False, device: str = "cpu",
                              chunk: int = 4) -> EvaluationResult:
    """Score a predictions file (docs/evaluation.md) against the protocol's ground truth.

    The file holds ``samples`` uint8 (sequences, N, T_pred, H, W, C) and optionally
    ``context`` uint8 (sequences, K, H, W, C); sequence i must be test sequence i of the
    protocol (checked against ``context`` when present). The file is read block by block.
    Other layouts (:mod:`~hvrnn.evaluation.prediction_files`) are first converted to
    ``predictions.npz`` in ``out_dir`` (its path and layout are recorded).

    Args:
        npz_path: the predictions file, or a folder or array of another layout.
        protocol_id: a protocol id or :class:`Protocol`.
        out_dir: output folder; None: ``eval-<name>-<protocol>[-<options>]`` next to the
            predictions. One holding any file this evaluation writes needs ``force=True``;
            the files appear together when all are complete.
        data_root: prepared test data (default: the protocol's ``data_root``).
        lpips_weights, i3d_weights: optional metric weights (a path or module; None skips
            LPIPS / FVD, :data:`~hvrnn.evaluation.request.FROM_CACHE` reads the weights cache;
            :meth:`~hvrnn.evaluation.request.MetricWeights.resolve`).
        targets: ground-truth clips instead of the dataset: uint8 (sequences, K + T_pred, H, W,
            C), or a file (:func:`~hvrnn.evaluation.ground_truth.load_targets`).
        dataset: a map-style dataset of (K + T_pred, C, H, W) float clips instead.
        max_sequences: score only the first sequences (recorded in the protocol).

    Returns:
        An :class:`~hvrnn.evaluation.request.EvaluationResult`: what metrics.json holds
        (``warnings``: what limits its comparison with published numbers), and the folder.

    Raises:
        UserError: a missing or malformed file or folder (the first offending file named), or
            FVD asked for where it cannot be computed, before anything is scored.
    """
    p = get_protocol(protocol_id).with_options(max_sequences=max_sequences)
    path = Path(npz_path)
    layout = _checked_layout(path)
    request = PredictionsRequest(
        protocol=p, weights=MetricWeights.resolve(lpips_weights, i3d_weights, p),
        out=Path(out_dir) if out_dir is not None else predictions_eval_folder(path, p),
        force=force, device=resolve_device(device), predictions=path, layout=layout,
        data_root=data_root, targets=targets, chunk=chunk)
    require_report()
    own_truth = _own_truth(request, dataset)
    available, clips = own_truth or _truth_source(p, targets, data_root, dataset)
    s = p.sequences(available)
    check_fvd_inputs(p, s, request.weights.i3d)
    folder = eval_folder(request.out, force, request.outputs())
    folder.check()
    with folder:
        source: dict[str, Any] = {} if own_truth is None else {
            "ground_truth": "inputs.npy + trues.npy next to the predictions"}
        if layout != "npz":  # a folder or other codebase's arrays: converted to predictions.npz
            path, converted_from = _convert(path, folder, p, s)
            source.update(converted_from)
        return _score_file(path, request, s, clips, folder,
                           {**source, **fvd_warnings(p, s, available, request.weights.i3d)})


def _checked_layout(path: Path) -> str:
    """The layout of the predictions (:func:`~hvrnn.evaluation.prediction_files.
    predictions_layout`); an ``.npz`` is opened and checked before any other work."""
    from hvrnn.evaluation.prediction_files import predictions_layout

    layout = predictions_layout(path) if path.exists() else "npz"
    if layout == "npz":
        open_npz(path, (), required="samples", what="predictions file")
    return layout


def _own_truth(request: PredictionsRequest, dataset: Any
               ) -> tuple[int, Callable[[int, int], np.ndarray]] | None:
    """OpenSTL's saved ``inputs.npy`` + ``trues.npy`` as the ground truth of its predictions,
    when no other ground truth is given (else None)."""
    if request.layout != "openstl" or request.targets is not None or \
            request.data_root is not None or dataset is not None:
        return None
    from hvrnn.evaluation.prediction_arrays import openstl_truth

    return openstl_truth(request.predictions, request.protocol)


def _convert(path: Path, folder: OutputFolder, p: Protocol, s: int
             ) -> tuple[Path, dict[str, Any]]:
    """A PNG or video folder converted to the evaluation folder's predictions.npz; its
    (temporary) path and the metrics.json entries naming the source."""
    from hvrnn.evaluation.prediction_files import convert_predictions

    info = convert_predictions(path, folder.temp("predictions.npz"), p, s, force=True)
    return folder.temp("predictions.npz"), {
        "predictions_source": str(path), "predictions_layout": info["layout"],
        "predictions_file": str(folder.path / "predictions.npz")}


def _score_file(path: Path, request: PredictionsRequest, s: int,
                clips: Callable[[int, int], np.ndarray], folder: OutputFolder,
                extra: dict[str, Any]) -> EvaluationResult:
    """Check the arrays of the predictions file ``path`` (the request's, or what it was
    converted to), score them block by block, write the results."""
    p = request.protocol
    arrays = open_npz(path, ("samples", "context"), required="samples",
                      what="predictions file")
    try:
        _check_file(arrays, p, s, path)
        extra = {"predictions_file": str(path), "predictions_sha256": sha256_file(path),
                 "checkpoint_sha256": None, **extra}
        named = Path(extra.get("predictions_source") or path)  # a converted folder: its source
        blocks = _file_blocks(named, p, s, request.chunk, clips, arrays["samples"],
                              arrays.get("context"))
        return score_blocks(blocks, s, request, folder, extra)
    finally:
        for reader in arrays.values():
            reader.close()


def predictions_eval_folder(path: str | Path, p: Protocol) -> Path:
    """The default output folder of scoring the predictions ``path`` under ``p``:
    ``eval-<name>-<protocol>[-<options>]`` next to it."""
    path = Path(path)
    return path.parent / f"eval-{path.name if path.is_dir() else path.stem}-{p.folder_name()}"


def require_report() -> None:
    """The package the result files need (matplotlib for curves.png), checked before work."""
    require("matplotlib", purpose="writing curves.png")
