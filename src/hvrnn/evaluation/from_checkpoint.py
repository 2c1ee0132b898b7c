"""Evaluating a checkpoint: sample on the protocol's test set, score, and report the ELBO.

For each block of test sequences: N samples of ``n_pred`` frames are drawn from the ground-truth
context (one ``torch.Generator`` seeded with the protocol seed, on the evaluation device),
quantised to uint8 by rounding, scored, and written to ``predictions.npz``; the teacher-forced
terms of the model's loss (negative ELBO and KL per level) are computed on the same clips.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hvrnn.accel import compile_cells
from hvrnn.config import EvalConfig, ExperimentConfig
from hvrnn.config.sections import COMPILE_MODES
from hvrnn.distributed import resolve_device
from hvrnn.errors import UserError
from hvrnn.evaluation.ground_truth import clips_uint8, ground_truth
from hvrnn.evaluation.predictions import Block, eval_folder, require_report
from hvrnn.evaluation.protocols import Protocol, get_protocol
from hvrnn.evaluation.report import OUTPUTS, write_outputs
from hvrnn.evaluation.scorer import (
    FROM_CACHE,
    Scorer,
    check_fvd_inputs,
    fvd_warnings,
    progress_bar,
)
from hvrnn.io.files import sha256_file
from hvrnn.io.frames import to_float, to_uint8
from hvrnn.io.npy import NpzWriter
from hvrnn.io.output import OutputFolder
from hvrnn.model import VideoModel
from hvrnn.outputs import checkpoint_tag, default_output_base
from hvrnn.sampling import sample
from hvrnn.sources import load_model, model_file


class PredictionsWriter:
    """Writes ``predictions.npz`` while sampling: ``samples`` row blocks streamed into the
    archive as they come (uint8 (S, N, T, H, W, C)), ``context`` (S, K, H, W, C) at the end.

    Built on :class:`hvrnn.io.npy.NpzWriter`: the file appears only when every sequence has
    been written; an interrupted evaluation leaves none."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.npz = NpzWriter(path, "samples", shape, np.uint8)
        self.context: list[np.ndarray] = []

    def write(self, samples: np.ndarray, context: np.ndarray) -> None:
        self.npz.write(samples)
        self.context.append(context)

    def close(self) -> None:
        if self.npz.complete:
            self.npz.close({"context": np.concatenate(self.context)})
        else:
            self.npz.abort()


def _check_geometry(cfg: ExperimentConfig, p: Protocol, path: Path) -> None:
    for key, have, want in (("n_ctx", cfg.data.n_ctx, p.n_ctx),
                            ("image_size", cfg.data.image_size, p.image_size),
                            ("channels", cfg.data.channels, p.channels)):
        if have != want:
            raise UserError(f"checkpoint {str(path)!r} has data.{key}={have} but protocol "
                            f"{p.id} needs {want}")

SEQUENCE_STRIDE = 1_000_003


def _model_protocol(model: VideoModel, cfg: ExperimentConfig, protocol_id: str | Protocol,
                    n_samples: int | None, max_sequences: int | None, path: Path) -> Protocol:
    """The protocol with the options given, N = 1 for a deterministic model
    (``VideoModel.distinct_samples``), checked against the checkpoint's geometry."""
    p = get_protocol(protocol_id).with_options(n_samples, max_sequences)
    p = p.with_options(n_samples=model.distinct_samples(p.n_samples))
    _check_geometry(cfg, p, path)
    return p


def sequence_generator(seed: int, index: int, device: torch.device) -> torch.Generator:
    """The generator of all latent noise of test sequence ``index`` under protocol seed
    ``seed``."""
    return torch.Generator(device=device).manual_seed(seed * SEQUENCE_STRIDE + index)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _sampled_blocks(model: VideoModel, cfg: ExperimentConfig, p: Protocol, gt: Any,
                    n_sequences: int, batch_size: int, sampler: Callable[..., Tensor],
                    temperature: float, device: torch.device, elbo_sums: dict[str, float],
                    writer: PredictionsWriter | None) -> Iterator[Block]:
    """Draw, quantise and yield the samples of each block; add the block's loss terms (summed
    over clips) to ``elbo_sums``, the seconds spent drawing samples to
    ``elbo_sums["_sampling_seconds"]`` and its samples to ``writer``. The noise of test
    sequence i comes from its own generator (:func:`sequence_generator`), so the samples do
    not depend on ``batch_size``."""
    for a in range(0, n_sequences, batch_size):
        b = min(n_sequences, a + batch_size)
        generator = [sequence_generator(p.seed, i, device) for i in range(a, b)]
        clip = clips_uint8(gt, a, b, p)  # (b, K + T, H, W, C)
        video = to_float(clip, device=device)  # (b, K + T, C, H, W)
        with torch.no_grad():
            _synchronize(device)
            t0 = time.perf_counter()
            samples = sampler(model, video[:, :p.n_ctx], horizon=p.n_pred,
                              n_samples=p.n_samples, generator=generator,
                              temperature=temperature)
            _synchronize(device)
            elbo_sums["_sampling_seconds"] = (elbo_sums.get("_sampling_seconds", 0.0)
                                              + time.perf_counter() - t0)
            # Teacher-forced terms; the posterior noise comes from a seeded global RNG.
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(p.seed + a)
                terms = model.training_terms(video, cfg.loss)
        for k, v in terms.items():
            elbo_sums[k] = elbo_sums.get(k, 0.0) + float(v) * (b - a)
        if samples.shape[1] != p.n_samples:
            raise ValueError(f"the sampler drew {samples.shape[1]} samples per sequence; the "
                             f"protocol asks for {p.n_samples}")
        samples_u8 = to_uint8(samples, what=f"the samples of test sequences {a} to {b - 1} "
                                             f"(of {n_sequences})")  # (b, N, T, H, W, C)
        if writer is not None:
            writer.write(samples_u8, clip[:, :p.n_ctx])
        yield samples_u8, clip[:, p.n_ctx:], clip[:, :p.n_ctx]


def _sample_and_score(model: VideoModel, cfg: ExperimentConfig, p: Protocol, gt: Any,
                      n_sequences: int, scorer: Scorer, predictions: Path | None,
                      batch_size: int, sampler: Callable[..., Tensor], temperature: float,
                      device: torch.device) -> dict[str, float]:
    """Sample, score with ``scorer`` and (to ``predictions``) write every block; returns the
    loss terms summed over clips."""
    shape = (n_sequences, p.n_samples, p.n_pred, p.image_size, p.image_size, p.channels)
    writer = PredictionsWriter(predictions, shape) if predictions is not None else None
    elbo_sums: dict[str, float] = {}
    try:
        with progress_bar(n_sequences, f"sampling and scoring {p.id}") as bar:
            for samples_u8, fut, ctx in _sampled_blocks(
                    model, cfg, p, gt, n_sequences, batch_size, sampler, temperature, device,
                    elbo_sums, writer):
                scorer.add(samples_u8, fut, ctx)
                bar.update(samples_u8.shape[0])
    finally:
        if writer is not None:
            writer.close()
    return elbo_sums


def _elbo_entry(sums: dict[str, float], n_sequences: int, cfg: ExperimentConfig, p: Protocol,
                model: VideoModel) -> dict[str, Any]:
    """The ``elbo`` entry of metrics.json: the means per clip of the model's teacher-forced
    terms (its losses left out), which of them scores the model, and how they were got."""
    return {"per_clip_mean": {k: v / n_sequences for k, v in sums.items()
                              if not k.startswith(("loss", "_"))},
            "score_term": model.score_term,
            "likelihood": cfg.loss.likelihood, "kl_estimator": cfg.loss.kl_estimator,
            "frames_scored": p.n_pred, "note": "the model's training terms on the same test "
            "clips, teacher-forced (posterior pass for latent-variable models; the ELBO in "
            "nats per clip, KL per level summed over frames)"}


def _model_entries(sums: dict[str, float], n_sequences: int, cfg: ExperimentConfig,
                   p: Protocol, model: VideoModel, options: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """``elbo`` (:func:`_elbo_entry`) and ``sampling``: the throughput, predicted frames
    drawn per second of sampling (scoring excluded)."""
    seconds, frames = sums.get("_sampling_seconds", 0.0), n_sequences * p.n_samples * p.n_pred
    return {"elbo": _elbo_entry(sums, n_sequences, cfg, p, model),
            "sampling": {"seconds": round(seconds, 4), "frames": frames,
                         "frames_per_second": frames / seconds if seconds > 0 else None,
                         **(options or {})}}


def _default_weights(given: Any, configured: str) -> Any:
    """Weights for one metric: ``given``, unless it is unset (None, "") or :data:`FROM_CACHE`,
    where a path ``configured`` in the eval section wins; False (skip the metric) gives None."""
    if given is False:
        return None
    if not given or (isinstance(given, str) and given == FROM_CACHE):
        return configured or given or None
    return given


def _options(defaults: EvalConfig | None, n_samples: int | None, max_sequences: int | None,
             temperature: float | None, lpips_weights: Any, i3d_weights: Any, batch_size: int = 0
             ) -> tuple[int | None, int | None, float, Any, Any]:
    """Options left unset taken from ``defaults`` (an eval section) when given; every number
    checked (:func:`_check_options`)."""
    if defaults is not None:
        n_samples = n_samples or defaults.n_samples or None
        max_sequences = max_sequences or defaults.max_sequences or None
        temperature = defaults.temperature if temperature is None else temperature
        lpips_weights = _default_weights(lpips_weights, defaults.lpips_weights)
        i3d_weights = _default_weights(i3d_weights, defaults.i3d_weights)
    temperature = 1.0 if temperature is None else temperature
    _check_options(n_samples, max_sequences, temperature, batch_size)
    return n_samples, max_sequences, temperature, lpips_weights, i3d_weights


def evaluate_checkpoint(checkpoint_path: str | Path, protocol_id: str | Protocol,
                        out_dir: str | Path | None = None, data_root: str | Path | None = None,
                        n_samples: int | None = None, max_sequences: int | None = None,
                        device: str = "cpu", lpips_weights: Any = None, i3d_weights: Any = None,
                        *, batch_size: int = 0, temperature: float | None = None,
                        force: bool = False, save_predictions: bool = True,
                        dataset: Any = None, sampler: Callable[..., Tensor] | None = None,
                        config_defaults: bool = False, compile_mode: str | None = None,
                        bf16: bool = False) -> dict[str, Any]:
    """Sample from a checkpoint on the protocol's test set and score the samples.

    Long because it documents every option of an evaluation.

    Args:
        checkpoint_path: a checkpoint file or run directory.
        protocol_id: a protocol id or :class:`Protocol`.
        out_dir: output folder; None: ``eval/step_<N>/<protocol>[-<options>]`` in the run
            directory (:meth:`Protocol.folder_name`). One holding any file this evaluation
            writes needs ``force=True``; the files appear together when all are complete.
        data_root: prepared test data (default: the checkpoint config's ``data.root``).
        n_samples: samples per sequence (default: the protocol's; recorded in the protocol;
            1 for a deterministic model).
        max_sequences: score only the first sequences (recorded in the protocol).
        device: ``cpu``, ``cuda`` or ``auto`` (checked first).
        lpips_weights, i3d_weights: a path or module, :data:`FROM_CACHE` (the weights cache),
            None (skip LPIPS / FVD) or False (skip, whatever ``config_defaults`` finds).
        batch_size: sequences sampled together (0: the config's ``eval.batch_size``).
        temperature: prior variance multiplier (default 1, the protocol's).
        save_predictions: also write ``predictions.npz`` (samples and context, uint8).
        dataset: test clips to use instead of ``build_dataset`` (tests, custom data).
        sampler: replaces :func:`hvrnn.sampling.sample` (same signature).
        config_defaults: take the options left unset from the checkpoint config's ``eval``
            section (``n_samples``, ``max_sequences``, ``temperature``, weights; a weights path
            there is preferred to ``FROM_CACHE``), as ``hvrnn evaluate`` does.
        compile_mode: ``torch.compile`` every ConvLSTM's per-frame step in this mode
            (:func:`hvrnn.accel.compile_cells`); None: the config's ``eval.compile`` (with
            ``config_defaults``), else no compilation.
        bf16: sample under bf16 autocast (heads, variances and the fed-back frames stay
            float32; the samples differ from float32's by rounding).

    Returns:
        What metrics.json holds (``checkpoint_sha256``, ``elbo``: teacher-forced terms,
        ``sampling``: throughput, any ``warnings``: FVD from a partial test set), as
        :class:`~hvrnn.evaluation.report.Results` (``folder``: where it was written).

    Raises:
        UserError: before any sampling, the checkpoint does not fit the protocol, FVD cannot
            be computed (fewer than 9 frames or 2 sequences), an option is out of range or the
            output folder is taken; samples holding NaN or inf (how many), before any write.
    """
    dev, ckpt_file = resolve_device(device), model_file(checkpoint_path)
    require_report()
    model, cfg = load_model(ckpt_file, device=dev)
    _compile(model, cfg.eval if config_defaults else None, compile_mode)
    protocol_id = get_protocol(protocol_id)  # a protocol file is read once
    defaults = cfg.eval if config_defaults else None
    if defaults is not None and protocol_id.source:
        # a protocol file states its N and sequences: the checkpoint's eval section does not
        # override them (options given here still do)
        defaults = dataclasses.replace(defaults, n_samples=0, max_sequences=0)
    n_samples, max_sequences, temperature, lpips_weights, i3d_weights = _options(
        defaults, n_samples, max_sequences, temperature, lpips_weights, i3d_weights,
        batch_size)
    p = _model_protocol(model, cfg, protocol_id, n_samples, max_sequences, ckpt_file)
    gt = ground_truth(p, data_root or cfg.data.root, dataset)
    s = p.sequences(len(gt))
    check_fvd_inputs(p, s, i3d_weights)  # before any sampling
    folder = _output_folder(out_dir, checkpoint_path, ckpt_file, p, temperature, force,
                            save_predictions)
    with folder:
        return _evaluate_into(folder, model.eval(), cfg, p, gt, s, ckpt_file,
                              Scorer(p, lpips_weights, i3d_weights, dev),
                              batch_size or cfg.eval.batch_size,
                              _autocast(sampler or sample, dev, bf16),
                              temperature, dev, save_predictions, i3d_weights,
                              {"bf16": bf16, "compile_mode": _compile_mode(
                                  cfg.eval if config_defaults else None, compile_mode)})


def _autocast(sampler: Callable[..., Tensor], device: torch.device, bf16: bool
              ) -> Callable[..., Tensor]:
    """``sampler`` under bf16 autocast on ``device`` when ``bf16``."""
    if not bf16:
        return sampler

    def sampled(*args: Any, **kwargs: Any) -> Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return sampler(*args, **kwargs)
    return sampled


def _compile_mode(defaults: EvalConfig | None, mode: str | None) -> str | None:
    """``mode``, else ``defaults.compile_mode`` if ``defaults.compile``, else None."""
    if mode is None and defaults is not None and defaults.compile:
        return defaults.compile_mode
    return mode


def _compile(model: VideoModel, defaults: EvalConfig | None, mode: str | None) -> None:
    """Compile the model's ConvLSTM steps in :func:`_compile_mode` (None: not at all)."""
    mode = _compile_mode(defaults, mode)
    if mode is None:
        return
    if mode not in COMPILE_MODES:
        raise UserError(f"compile_mode={mode!r} is invalid: expected one of "
                        f"{', '.join(COMPILE_MODES)}")
    compile_cells(model, mode)


def _evaluate_into(folder: OutputFolder, model: VideoModel, cfg: ExperimentConfig,
                   p: Protocol, gt: Any, s: int, ckpt_file: Path, scorer: Scorer,
                   batch_size: int, sampler: Callable[..., Tensor], temperature: float,
                   dev: torch.device, save_predictions: bool, i3d_weights: Any,
                   options: dict[str, Any]) -> dict[str, Any]:
    """Sample, score and write the result files (and predictions.npz) into ``folder``;
    ``options`` (how the samples were drawn) join metrics.json's ``sampling`` entry."""
    t0 = time.time()
    elbo_sums = _sample_and_score(model, cfg, p, gt, s, scorer,
                                  folder.temp("predictions.npz") if save_predictions else None,
                                  batch_size, sampler, temperature, dev)
    extra = {"checkpoint": str(ckpt_file), "checkpoint_sha256": sha256_file(ckpt_file),
             **_model_entries(elbo_sums, s, cfg, p, model, options),
             "temperature": temperature, "model_config": cfg.to_dict(),
             **fvd_warnings(p, s, len(gt), i3d_weights)}
    if save_predictions:
        extra["predictions_file"] = str(folder.path / "predictions.npz")
    return write_outputs(folder, scorer, p, s, extra, time.time() - t0)


def _output_folder(out_dir: str | Path | None, source: str | Path, ckpt_file: Path,
                   p: Protocol, temperature: float, force: bool, save_predictions: bool
                   ) -> OutputFolder:
    """The evaluation's folder (given, or ``eval/<checkpoint tag>/<protocol folder name>``
    in the run directory), checked before any sampling."""
    out = Path(out_dir) if out_dir is not None else \
        default_eval_folder(source, ckpt_file, p, temperature)
    folder = eval_folder(out, force, OUTPUTS + (("predictions.npz",) if save_predictions
                                                else ()))
    folder.check()
    return folder


def default_eval_folder(source: str | Path, ckpt_file: Path, p: Protocol,
                        temperature: float = 1.0) -> Path:
    """``eval/<checkpoint>/<protocol>[-<options>]`` in the run directory of ``source``
    (:func:`hvrnn.outputs.checkpoint_tag`, :meth:`Protocol.folder_name`): evaluations of
    other checkpoints of a run, or with other options, never share it."""
    return (default_output_base(source) / "eval" / checkpoint_tag(ckpt_file)
            / p.folder_name(temperature))


def _check_options(n_samples: int | None, max_sequences: int | None, temperature: float,
                   batch_size: int) -> None:
    """Refuse numbers that would fail later (or sample garbage), before any work."""
    for name, value, low in (("n_samples", n_samples, 1), ("max_sequences", max_sequences, 1),
                             ("batch_size", batch_size, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < low):
            raise UserError(f"{name}={value!r} is invalid: expected an integer >= {low}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature >= 0):
        raise UserError(f"temperature={temperature!r} is invalid: expected a finite number "
                        ">= 0")
