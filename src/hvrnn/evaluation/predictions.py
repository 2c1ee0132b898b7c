"""Scoring predictions: arrays in memory or a predictions file (docs/evaluation.md), block by
block."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hvrnn.distributed import resolve_device
from hvrnn.errors import UserError
from hvrnn.evaluation.ground_truth import check_array, clips_uint8, ground_truth, load_targets
from hvrnn.evaluation.protocols import Protocol, get_protocol
from hvrnn.evaluation.report import write_outputs
from hvrnn.evaluation.scorer import Scorer, check_fvd_inputs, fvd_warnings, progress_bar
from hvrnn.io.files import prepare_output_dir, sha256_file
from hvrnn.io.npy import NpyReader, open_npz

Block = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # samples, targets, context (uint8)


def prepare_eval_dir(out_dir: str | Path, force: bool) -> Path:
    """The output folder of an evaluation; an existing metrics.json needs ``force``."""
    return prepare_output_dir(out_dir, force=force, watched=("metrics.json",),
                              advice="pass --force (force=True) to overwrite it or choose "
                                     "another output folder")


def score_blocks(blocks: Iterator[Block], n_sequences: int, p: Protocol, out: Path,
                 lpips_weights: Any, i3d_weights: Any, *, device: str, extra: dict[str, Any],
                 desc: str = "scoring") -> dict[str, Any]:
    """Score blocks of (samples (b, N, T, H, W, C), targets (b, T, H, W, C), context) and
    write the result files into ``out``; returns what metrics.json holds."""
    t0 = time.time()
    scorer = Scorer(p, lpips_weights, i3d_weights, resolve_device(device))
    with progress_bar(n_sequences, f"{desc} {p.id}") as bar:
        for samples, targets, context in blocks:
            scorer.add(samples, targets, context)
            bar.update(samples.shape[0])
    return write_outputs(out, scorer, p, n_sequences, extra, time.time() - t0)


def evaluate_predictions(samples_uint8: np.ndarray, targets_uint8: np.ndarray,
                         context_uint8: np.ndarray | None, protocol: str | Protocol,
                         out_dir: str | Path, lpips_weights: Any = None, i3d_weights: Any = None,
                         *, force: bool = False, device: str = "cpu", chunk: int = 4,
                         extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score predictions held in memory and write metrics.json, per_frame.csv, curves.png.

    Args:
        samples_uint8: (S, N, T_pred, H, W, C) uint8 generated frames.
        targets_uint8: (S, T_pred, H, W, C) uint8 ground-truth future frames.
        context_uint8: (S, K, H, W, C) uint8 ground-truth context (needed for FVD with
            ``fvd_frames="context+pred"``), or None.
        protocol: a protocol id or :class:`Protocol`.
        out_dir: output folder; an existing metrics.json needs ``force=True``.
        lpips_weights: LPIPS weights (see :func:`hvrnn.metrics.lpips`), or
            :data:`~hvrnn.evaluation.scorer.FROM_CACHE` for the weights cache; None skips LPIPS.
        i3d_weights: I3D weights (see :func:`hvrnn.metrics.load_i3d`), or ``FROM_CACHE``; None
            skips FVD.
        device: where metrics are computed.
        chunk: sequences scored at once.
        extra: more top-level entries for metrics.json (e.g. a checkpoint hash).

    Returns:
        The dictionary written to metrics.json.

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
    check_fvd_inputs(p, s, i3d_weights)
    out = prepare_eval_dir(out_dir, force)

    def blocks() -> Iterator[Block]:
        for i in range(0, s, chunk):
            ctx = None if context_uint8 is None else np.asarray(context_uint8[i:i + chunk])
            yield samples[i:i + chunk], targets[i:i + chunk], ctx

    return score_blocks(blocks(), s, p, out, lpips_weights, i3d_weights, device=device,
                        extra=extra or {})


def _truth_source(p: Protocol, targets: np.ndarray | str | Path | None,
                  data_root: str | Path | None, dataset: Any
                  ) -> tuple[int, Callable[[int, int], np.ndarray]]:
    """(number of test clips available, clips(a, b) -> uint8 (b - a, K + T, H, W, C))."""
    if targets is None:
        gt = ground_truth(p, data_root, dataset)
        return len(gt), lambda a, b: clips_uint8(gt, a, b, p)
    if not isinstance(targets, np.ndarray):
        targets = load_targets(Path(targets))
    check_array("targets", targets, (None, p.n_ctx + p.n_pred, p.image_size, p.image_size,
                                     p.channels), p)
    return targets.shape[0], lambda a, b: targets[a:b]


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


def _predictions_npz(path: Path, p: Protocol, n_sequences: int, out_dir: str | Path,
                     force: bool) -> tuple[Path, dict[str, Any]]:
    """The ``.npz`` to score: ``path`` itself, or a PNG / video folder converted to
    ``predictions.npz`` in the output folder; and the metrics.json entries naming the source."""
    if not path.is_dir():
        return path, {}
    from hvrnn.evaluation.prediction_files import convert_predictions

    converted = prepare_eval_dir(out_dir, force) / "predictions.npz"
    info = convert_predictions(path, converted, p, n_sequences, force=force)
    return converted, {"predictions_source": str(path), "predictions_layout": info["layout"]}


def _check_file(arrays: dict[str, NpyReader], p: Protocol, n_sequences: int, path: Path
                ) -> None:
    """The arrays of a predictions file against the protocol and the number of sequences."""
    frame = (p.image_size, p.image_size, p.channels)
    check_array("samples", arrays["samples"], (n_sequences, None, p.n_pred, *frame), p,
                str(path))
    if "context" in arrays:
        check_array("context", arrays["context"], (n_sequences, p.n_ctx, *frame), p, str(path))


def evaluate_predictions_file(npz_path: str | Path, protocol_id: str | Protocol,
                              out_dir: str | Path, data_root: str | Path | None = None,
                              lpips_weights: Any = None, i3d_weights: Any = None, *,
                              targets: np.ndarray | str | Path | None = None,
                              dataset: Any = None, max_sequences: int | None = None,
                              force: bool = False, device: str = "cpu",
                              chunk: int = 4) -> dict[str, Any]:
    """Score a predictions file (docs/evaluation.md) against the protocol's ground truth.

    The file holds ``samples`` uint8 (sequences, N, T_pred, H, W, C) and optionally
    ``context`` uint8 (sequences, K, H, W, C); sequence i must be test sequence i of the
    protocol (checked against ``context`` when present). The file is read block by block.
    A folder in the PNG or video layout of :mod:`hvrnn.evaluation.prediction_files` is first
    converted to ``predictions.npz`` in ``out_dir`` (its path and layout are recorded).

    Args:
        npz_path: the predictions file, or a PNG / video folder.
        protocol_id: a protocol id or :class:`Protocol`.
        out_dir: output folder (existing metrics.json needs ``force=True``).
        data_root: prepared test data (default: the protocol's ``data_root``).
        lpips_weights, i3d_weights: optional metric weights (see :class:`Scorer`; None skips
            LPIPS / FVD, :data:`~hvrnn.evaluation.scorer.FROM_CACHE` reads the weights cache).
        targets: ground-truth clips instead of the dataset: uint8 (sequences, K + T_pred, H, W,
            C), or an .npz path holding them as ``videos``.
        dataset: a map-style dataset of (K + T_pred, C, H, W) float clips instead of
            ``build_dataset``.
        max_sequences: score only the first sequences (recorded in the protocol).

    Returns:
        The dictionary written to metrics.json; ``warnings`` lists what limits its comparison
        with published numbers (FVD on fewer videos than the full test set).

    Raises:
        UserError: a missing or malformed file or folder (the first offending file named), or
            FVD asked for where it cannot be computed, before anything is scored.
    """
    p = get_protocol(protocol_id).with_options(max_sequences=max_sequences)
    path = Path(npz_path)
    if not path.is_dir():  # the file itself is checked before any other work
        open_npz(path, (), required="samples", what="predictions file")
    available, clips = _truth_source(p, targets, data_root, dataset)
    s = p.sequences(available)
    check_fvd_inputs(p, s, i3d_weights)
    path, source = _predictions_npz(path, p, s, out_dir, force)
    arrays = open_npz(path, ("samples", "context"), required="samples",
                      what="predictions file")
    try:
        _check_file(arrays, p, s, path)
        out = prepare_eval_dir(out_dir, force)
        extra = {"predictions_file": str(path), "predictions_sha256": sha256_file(path),
                 "checkpoint_sha256": None, **source,
                 **fvd_warnings(p, s, available, i3d_weights)}
        blocks = _file_blocks(path, p, s, chunk, clips, arrays["samples"], arrays.get("context"))
        return score_blocks(blocks, s, p, out, lpips_weights, i3d_weights, device=device,
                            extra=extra)
    finally:
        for reader in arrays.values():
            reader.close()
