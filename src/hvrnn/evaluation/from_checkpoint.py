"""Evaluating a checkpoint: sample on the protocol's test set, score, and report the ELBO.

:func:`evaluate_checkpoint` decodes its options once into a
:class:`~hvrnn.evaluation.request.CheckpointRequest`; a :class:`CheckpointEvaluation` carries it
out. For each block of test sequences: N samples of ``n_pred`` frames are drawn from the
ground-truth context (each test sequence's own ``torch.Generator``, seeded from the protocol
seed, on the evaluation device), quantised to uint8 by rounding, scored, and written to
``predictions.npz``; the teacher-forced terms of the model's loss (negative ELBO and KL per
level) are computed on the same clips.
"""

from __future__ import annotations

import dataclasses
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
from hvrnn.evaluation.report import write_outputs
from hvrnn.evaluation.request import (
    CheckpointRequest,
    EvaluationResult,
    MetricWeights,
    check_sampling_options,
)
from hvrnn.evaluation.scorer import Scorer, check_fvd_inputs, fvd_warnings, progress_bar
from hvrnn.io.files import sha256_file
from hvrnn.io.frames import to_float, to_uint8
from hvrnn.io.npy import NpzWriter
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


def _model_protocol(model: VideoModel, cfg: ExperimentConfig, protocol: Protocol,
                    n_samples: int | None, max_sequences: int | None, path: Path) -> Protocol:
    """The protocol with the options given, N = 1 for a deterministic model
    (``VideoModel.distinct_samples``), checked against the checkpoint's geometry."""
    p = protocol.with_options(n_samples, max_sequences)
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


def _eval_defaults(cfg: ExperimentConfig, protocol: Protocol) -> EvalConfig:
    """The checkpoint config's eval section as defaults; a protocol file states its N and
    sequences, so the section does not override them (options given still do)."""
    if protocol.source:
        return dataclasses.replace(cfg.eval, n_samples=0, max_sequences=0)
    return cfg.eval


def evaluate_checkpoint(checkpoint_path: str | Path, protocol_id: str | Protocol,
                        out_dir: str | Path | None = None, data_root: str | Path | None = None,
                        n_samples: int | None = None, max_sequences: int | None = None,
                        device: str = "cpu", lpips_weights: Any = None, i3d_weights: Any = None,
                        *, batch_size: int = 0, temperature: float | None = None,
                        force: bool = False, save_predictions: bool = True,
                        dataset: Any = None, sampler: Callable[..., Tensor] | None = None,
                        config_defaults: bool = False, compile_mode: str | None = None,
                        bf16: bool = False) -> EvaluationResult:
    """Sample from a checkpoint on the protocol's test set and score the samples.

    The options are decoded here, once, into a
    :class:`~hvrnn.evaluation.request.CheckpointRequest`, which :class:`CheckpointEvaluation`
    carries out.

    Args:
        checkpoint_path: a checkpoint file, run directory or ``pretrained:NAME``.
        protocol_id: a protocol id, a protocol file or a :class:`Protocol`.
        out_dir: output folder; None: ``eval/step_<N>/<protocol>[-<options>]`` in the run
            directory (:meth:`Protocol.folder_name`). One holding any file this evaluation
            writes needs ``force=True``; the files appear together when all are complete.
        data_root: prepared test data (default: the checkpoint config's ``data.root``).
        n_samples: samples per sequence (default: the protocol's; recorded in the protocol;
            1 for a deterministic model).
        max_sequences: score only the first sequences (recorded in the protocol).
        device: ``cpu``, ``cuda`` or ``auto`` (checked first).
        lpips_weights, i3d_weights: a path or module, :data:`FROM_CACHE` (the weights cache),
            None (skip LPIPS / FVD) or False (skip, whatever ``config_defaults`` finds);
            :meth:`MetricWeights.resolve`.
        batch_size: sequences sampled together (0: the config's ``eval.batch_size``).
        temperature: prior variance multiplier (default 1, the protocol's).
        save_predictions: also write ``predictions.npz`` (samples and context, uint8).
        dataset: test clips to use instead of ``build_dataset`` (tests, custom data).
        sampler: replaces :func:`hvrnn.sampling.sample` (same signature).
        config_defaults: take the options left unset from the checkpoint config's ``eval``
            section (``n_samples``, ``max_sequences``, ``temperature``, ``compile``, weights; a
            weights path there is preferred to ``FROM_CACHE``), as ``hvrnn evaluate`` does.
        compile_mode: ``torch.compile`` every ConvLSTM's per-frame step in this mode
            (:func:`hvrnn.accel.compile_cells`); None: no compilation (with
            ``config_defaults``, the config's ``eval.compile``).
        bf16: sample under bf16 autocast (heads, variances and the fed-back frames stay
            float32; the samples differ from float32's by rounding).

    Returns:
        An :class:`~hvrnn.evaluation.request.EvaluationResult`: what metrics.json holds
        (``checkpoint_sha256``, ``elbo``: teacher-forced terms, ``sampling``: throughput, any
        ``warnings``: FVD from a partial test set), the timings and the folder.

    Raises:
        UserError: before any sampling, the checkpoint does not fit the protocol, FVD cannot
            be computed (fewer than 9 frames or 2 sequences), an option is out of range or the
            output folder is taken; samples holding NaN or inf (how many), before any write.
    """
    dev, ckpt_file = resolve_device(device), model_file(checkpoint_path)
    require_report()
    model, cfg = load_model(ckpt_file, device=dev)
    protocol = get_protocol(protocol_id)  # a protocol file is read once
    defaults = _eval_defaults(cfg, protocol) if config_defaults else None
    if defaults is not None:
        n_samples = n_samples or defaults.n_samples or None
        max_sequences = max_sequences or defaults.max_sequences or None
        temperature = defaults.temperature if temperature is None else temperature
        if compile_mode is None and defaults.compile:
            compile_mode = defaults.compile_mode
    temperature = 1.0 if temperature is None else temperature
    check_sampling_options(n_samples, max_sequences, temperature, batch_size)
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        raise UserError(f"compile_mode={compile_mode!r} is invalid: expected one of "
                        f"{', '.join(COMPILE_MODES)}")
    p = _model_protocol(model, cfg, protocol, n_samples, max_sequences, ckpt_file)
    out = Path(out_dir) if out_dir is not None else \
        default_eval_folder(checkpoint_path, ckpt_file, p, temperature)
    request = CheckpointRequest(
        protocol=p, weights=MetricWeights.resolve(lpips_weights, i3d_weights, p, defaults),
        out=out, force=force, device=dev, source=checkpoint_path, checkpoint=ckpt_file,
        data_root=data_root or cfg.data.root, batch_size=batch_size or cfg.eval.batch_size,
        temperature=temperature, save_predictions=save_predictions, compile_mode=compile_mode,
        bf16=bf16)
    return CheckpointEvaluation(request, model, cfg, dataset, sampler).run()


class CheckpointEvaluation:
    """One evaluation of a model under a :class:`~hvrnn.evaluation.request.CheckpointRequest`.

    Construction compiles the model's cells if asked, builds the protocol's test clips and
    checks FVD's requirements and the output folder, all before any sampling; :meth:`run`
    samples, scores and writes the files.

    Args:
        request: what to score, and how.
        model: the model (put in eval mode).
        cfg: its experiment config (``cfg.loss`` gives the teacher-forced terms).
        dataset: test clips instead of ``build_dataset`` (tests, custom data).
        sampler: replaces :func:`hvrnn.sampling.sample` (same signature).

    Attributes:
        term_sums: the model's teacher-forced terms summed over the clips sampled so far.
        sampling_seconds: the seconds spent drawing samples so far (scoring excluded).
    """

    def __init__(self, request: CheckpointRequest, model: VideoModel, cfg: ExperimentConfig,
                 dataset: Any = None, sampler: Callable[..., Tensor] | None = None) -> None:
        self.request, self.model, self.cfg = request, model.eval(), cfg
        p = request.protocol
        if request.compile_mode is not None:
            compile_cells(model, request.compile_mode)
        self.gt = ground_truth(p, request.data_root, dataset)
        self.n_sequences = p.sequences(len(self.gt))
        check_fvd_inputs(p, self.n_sequences, request.weights.i3d)
        self.folder = eval_folder(request.out, request.force, request.outputs())
        self.folder.check()
        self.sampler = _autocast(sampler or sample, request.device, request.bf16)
        self.term_sums: dict[str, float] = {}
        self.sampling_seconds = 0.0

    def run(self) -> EvaluationResult:
        """Sample, score and write metrics.json, per_frame.csv, curves.png (and
        predictions.npz) into the folder, together."""
        r, p = self.request, self.request.protocol
        with self.folder:
            scorer = Scorer(p, r.weights, r.device)
            t0 = time.time()
            shape = (self.n_sequences, p.n_samples, p.n_pred, p.image_size, p.image_size,
                     p.channels)
            writer = PredictionsWriter(self.folder.temp("predictions.npz"), shape) \
                if r.save_predictions else None
            try:
                with progress_bar(self.n_sequences, f"sampling and scoring {p.id}") as bar:
                    for samples_u8, fut, ctx in self.blocks(writer):
                        scorer.add(samples_u8, fut, ctx)
                        bar.update(samples_u8.shape[0])
            finally:
                if writer is not None:
                    writer.close()
            return write_outputs(self.folder, scorer, p, self.n_sequences, self.record(),
                                 time.time() - t0)

    def blocks(self, writer: PredictionsWriter | None = None) -> Iterator[Block]:
        """Draw, quantise and yield the samples of each block of ``batch_size`` test
        sequences, with their targets and context (uint8); add the block's loss terms to
        :attr:`term_sums`, its sampling time to :attr:`sampling_seconds` and its samples to
        ``writer``. The noise of test sequence i comes from its own generator
        (:func:`sequence_generator`), so the samples do not depend on ``batch_size``."""
        r, p, device = self.request, self.request.protocol, self.request.device
        for a in range(0, self.n_sequences, r.batch_size):
            b = min(self.n_sequences, a + r.batch_size)
            generator = [sequence_generator(p.seed, i, device) for i in range(a, b)]
            clip = clips_uint8(self.gt, a, b, p)  # (b, K + T, H, W, C)
            video = to_float(clip, device=device)  # (b, K + T, C, H, W)
            with torch.no_grad():
                _synchronize(device)
                t0 = time.perf_counter()
                samples = self.sampler(self.model, video[:, :p.n_ctx], horizon=p.n_pred,
                                       n_samples=p.n_samples, generator=generator,
                                       temperature=r.temperature)
                _synchronize(device)
                self.sampling_seconds += time.perf_counter() - t0
                # Teacher-forced terms; the posterior noise comes from a seeded global RNG.
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(p.seed + a)
                    terms = self.model.training_terms(video, self.cfg.loss)
            for k, v in terms.items():
                self.term_sums[k] = self.term_sums.get(k, 0.0) + float(v) * (b - a)
            if samples.shape[1] != p.n_samples:
                raise ValueError(f"the sampler drew {samples.shape[1]} samples per sequence; "
                                 f"the protocol asks for {p.n_samples}")
            samples_u8 = to_uint8(samples, what=f"the samples of test sequences {a} to "
                                                f"{b - 1} (of {self.n_sequences})")
            if writer is not None:
                writer.write(samples_u8, clip[:, :p.n_ctx])
            yield samples_u8, clip[:, p.n_ctx:], clip[:, :p.n_ctx]

    def record(self) -> dict[str, Any]:
        """metrics.json's entries of this evaluation beside the scores: the checkpoint, the
        ``elbo`` (means per clip of the model's teacher-forced terms, its losses left out),
        the ``sampling`` throughput (predicted frames drawn per second of sampling), the
        temperature, the model's config, any FVD warning and the predictions file."""
        r, p, n = self.request, self.request.protocol, self.n_sequences
        frames, seconds = n * p.n_samples * p.n_pred, self.sampling_seconds
        elbo = {"per_clip_mean": {k: v / n for k, v in self.term_sums.items()
                                  if not k.startswith("loss")},
                "score_term": self.model.score_term,
                "likelihood": self.cfg.loss.likelihood,
                "kl_estimator": self.cfg.loss.kl_estimator,
                "frames_scored": p.n_pred, "note": "the model's training terms on the same test "
                "clips, teacher-forced (posterior pass for latent-variable models; the ELBO in "
                "nats per clip, KL per level summed over frames)"}
        sampling = {"seconds": round(seconds, 4), "frames": frames,
                    "frames_per_second": frames / seconds if seconds > 0 else None,
                    "bf16": r.bf16, "compile_mode": r.compile_mode}
        record = {"checkpoint": str(r.checkpoint),
                  "checkpoint_sha256": sha256_file(r.checkpoint),
                  "elbo": elbo, "sampling": sampling, "temperature": r.temperature,
                  "model_config": self.cfg.to_dict(),
                  **fvd_warnings(p, n, len(self.gt), r.weights.i3d)}
        if r.save_predictions:
            record["predictions_file"] = str(self.folder.path / "predictions.npz")
        return record


def _autocast(sampler: Callable[..., Tensor], device: torch.device, bf16: bool
              ) -> Callable[..., Tensor]:
    """``sampler`` under bf16 autocast on ``device`` when ``bf16``."""
    if not bf16:
        return sampler

    def sampled(*args: Any, **kwargs: Any) -> Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return sampler(*args, **kwargs)
    return sampled


def default_eval_folder(source: str | Path, ckpt_file: Path, p: Protocol,
                        temperature: float = 1.0) -> Path:
    """``eval/<checkpoint>/<protocol>[-<options>]`` in the run directory of ``source``
    (:func:`hvrnn.outputs.checkpoint_tag`, :meth:`Protocol.folder_name`): evaluations of
    other checkpoints of a run, or with other options, never share it."""
    return (default_output_base(source) / "eval" / checkpoint_tag(ckpt_file)
            / p.folder_name(temperature))
