"""``train(cfg)``: set up a run (processes, run directory, data, state) and hand it to the loop.

Launch with ``torchrun`` for several GPUs or nodes; each process calls :func:`train`. Outputs in
the run directory: ``config.yaml``, ``metrics.jsonl`` (one JSON object per log, ``kind`` =
``train`` / ``val`` / ``start`` / ``end``), ``checkpoints/step_<N>.pt`` and
``checkpoints/last.pt``, ``samples/step_<N>.png|gif`` and TensorBoard events in ``tb/``.
Settings are those of the official runs (docs/design.md section 4): ``torch.optim.Adam`` with
coupled weight decay, lr 1e-4 at a global batch of 16, linear lr scaling (and optional warm-up)
with several processes, optional KL warm-up and gradient clipping.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from hvrnn import accel, distributed
from hvrnn import checkpoint as ckpt_io
from hvrnn.config import ExperimentConfig
from hvrnn.distributed import DistInfo
from hvrnn.log import logger
from hvrnn.sources import model_file
from hvrnn.training.batches import BatchPlan, iterate_batches
from hvrnn.training.engine import TrainingDiverged, autocast_forward, fit
from hvrnn.training.hooks import RunHooks
from hvrnn.training.logs import error_line
from hvrnn.training.rundir import GRACE_SECONDS, RunDirectory, StopFlag, check_run_dir
from hvrnn.training.state import TrainState


@dataclass
class TrainResult:
    """What :func:`train` did."""

    run_dir: Path
    step: int
    status: str  # "finished" | "interrupted" (a checkpoint of the last step was saved)
    checkpoint: Path | None
    train_metrics: dict[str, float] = field(default_factory=dict)
    val_metrics: dict[str, float] = field(default_factory=dict)
    score_term: str = "nelbo"  # the model's teacher-forced score (VideoModel.score_term)


# --------------------------------------------------------------------------------------------
# Run directory and data
# --------------------------------------------------------------------------------------------


def default_run_dir(cfg: ExperimentConfig) -> Path:
    return Path("runs") / f"{cfg.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def open_run_dir(run_dir: Path, cfg: ExperimentConfig, resume: bool, dist: DistInfo) -> None:
    """Check the run directory, then (main process) create it with ``config.yaml`` (without
    holding its lock afterwards; :func:`train` keeps it locked while it runs)."""
    folder = RunDirectory(run_dir, cfg, resume, dist)
    folder.check()
    try:
        folder.open()
    finally:
        folder.release()


def validation_batches(cfg: ExperimentConfig, val_set: Dataset | None) -> list[Tensor]:
    """The fixed validation clips: the first ``train.val_batches`` batches of ``val_set``."""
    if val_set is None:
        return []
    tc = cfg.train
    n_val = min(len(val_set), max(1, tc.val_batches) * tc.batch_size)
    loader = DataLoader(Subset(val_set, range(n_val)), batch_size=tc.batch_size)
    return [b[0] if isinstance(b, (list, tuple)) else b for b in loader]


def _datasets(cfg: ExperimentConfig, dist: DistInfo, train_set: Dataset | None,
              val_set: Dataset | None) -> tuple[Dataset, list[Tensor]]:
    from hvrnn.data import build_dataset

    if train_set is None:
        train_set = build_dataset(cfg.data, "train")
    if not dist.is_main:
        return train_set, []
    if val_set is None and (cfg.train.val_every > 0 or cfg.train.image_every > 0):
        val_set = build_dataset(cfg.data, "test")
    return train_set, validation_batches(cfg, val_set)


def wrap_for_training(model: nn.Module, cfg: ExperimentConfig, dist: DistInfo) -> Any:
    """The forward the steps call: DDP with several processes, ``torch.compile`` if asked,
    autocast per ``train.amp``."""
    net = model
    if dist.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    tc = cfg.train
    if tc.amp == "bf16" and dist.device.type == "cpu" and not accel.cpu_bf16_native():
        logger.warning("train.amp=bf16 on a CPU without native bf16 kernels: each step takes "
                       "many times as long as in float32 (train.amp=none)")
    if tc.amp_group_norm == "bf16":
        accel.group_norm_in_bf16(model)
    if tc.compile and tc.compile_scope == "cells":
        accel.compile_cells(model, tc.compile_mode)
    elif tc.compile:
        net = torch.compile(net, mode=tc.compile_mode)
    return autocast_forward(net, dist.device, cfg.train.amp)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def train(cfg: ExperimentConfig, run_dir: str | Path | None = None, *, resume: bool = False,
          train_set: Dataset | None = None, val_set: Dataset | None = None,
          progress: bool | None = None) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (or continue it with ``resume=True``).

    Everything that can be checked is checked before the run directory is created: the device,
    the memory the model needs, the run directory (and its lock), the data. While the run writes
    the folder it holds its lock; ``metrics.jsonl`` ends with a ``kind: end`` record whose
    ``status`` is ``finished``, ``interrupted`` (Ctrl-C or SIGTERM; ``checkpoint`` says where it
    was saved, or ``error`` that it was not) or ``failed`` (with the ``error`` line).

    Args:
        cfg: the full experiment config (saved in the run directory and every checkpoint).
        run_dir: output folder; default ``runs/<name>-<date>``. Must be absent or empty unless
            ``resume`` is set.
        resume: continue from the run directory's last checkpoint (from scratch if it has none).
        train_set, val_set: datasets of (K + T, C, H, W) clips in [0, 1]; default
            ``build_dataset(cfg.data, "train")`` and ``build_dataset(cfg.data, "test")``.
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        A :class:`TrainResult`.

    Raises:
        UserError: unusable device, run directory (or one locked by another process), data or
            checkpoint, or a model too large for the device (one-line message).
        TrainingDiverged: a non-finite loss or gradient; the last good checkpoint is kept.
        KeyboardInterrupt: Ctrl-C pressed again after the grace period: stopped without saving
            (the message says so and names the last checkpoint).
    """
    from hvrnn.memory import allocating, check_memory, training_activations

    dist = distributed.setup(cfg.train.device)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    try:
        check_memory(cfg.model, dist.device, training=True,
                     activations=training_activations(cfg, dist.device) or 0,
                     batch=f"train.batch_size={cfg.train.batch_size} clips of "
                           f"{cfg.data.n_ctx + cfg.data.n_pred} frames")
        if cfg.train.init_from:  # refuse a missing file before the run directory is made
            model_file(cfg.train.init_from)
        folder = RunDirectory(run_dir, cfg, resume, dist)
        folder.check()
        try:
            train_set, val_batches = _datasets(cfg, dist, train_set, val_set)
            # The model (and train.init_from's weights, which must fit it) before the folder:
            # a refused config leaves nothing behind.
            with allocating(cfg.model, training=True):
                state = TrainState.create(cfg, dist)
            folder.open()
            return _run(cfg, dist, folder, resume, state, train_set, val_batches, progress)
        except BaseException:
            folder.abandon()
            raise
        finally:
            folder.release()
    finally:
        distributed.cleanup(dist)


def _run(cfg: ExperimentConfig, dist: DistInfo, folder: RunDirectory, resume: bool,
         state: TrainState, train_set: Dataset, val_batches: list[Tensor],
         progress: bool | None) -> TrainResult:
    run_dir = folder.path
    if resume:
        _continue(state, ckpt_io.latest_checkpoint(run_dir), cfg, dist)
    forward = wrap_for_training(state.model, cfg, dist)
    plan = BatchPlan(train_set, cfg.train.batch_size, cfg.train.seed, dist.world_size,
                     dist.rank)
    batches = _training_batches(train_set, plan, state.step, cfg, dist)
    hooks = RunHooks(cfg, dist, run_dir, val_batches, plan, progress, state)
    stop = StopFlag()
    hooks.protect = stop.protect
    status, error = "failed", None
    stop.install()
    try:
        status = fit(state, forward, batches, hooks, cfg, dist, lambda: stop.raised)
    except KeyboardInterrupt:
        status, error = "interrupted", (
            f"stopped at step {state.step} without saving a checkpoint (Ctrl-C pressed again "
            f"after {GRACE_SECONDS:g} s); " + (f"the last checkpoint is '{hooks.saved}'"
                                               if hooks.saved else "no checkpoint was written"))
        raise KeyboardInterrupt(error) from None
    except BaseException as exc:
        error = error_line(exc)
        raise
    finally:
        stop.restore()
        hooks.close(state.step, status, error)
    if status == "interrupted" and dist.is_main:
        logger.warning(f"interrupted at step {state.step}; checkpoint '{hooks.saved}' saved; "
                       "continue with --resume")
    return TrainResult(run_dir=run_dir, step=state.step, status=status, checkpoint=hooks.saved,
                       train_metrics=hooks.train_metrics, val_metrics=hooks.val_metrics,
                       score_term=state.model.score_term)


def _continue(state: TrainState, last: Path | None, cfg: ExperimentConfig, dist: DistInfo
              ) -> None:
    """Restore ``state`` from the run's latest checkpoint ``last`` (None: start afresh), and
    say with which settings the run continues."""
    if last is None:
        return
    state.restore(last, cfg, dist)
    if dist.is_main:
        logger.info(f"continuing from step {state.step} ('{last}') with the run's "
                    f"settings (config.yaml; key=value overrides them): train.max_steps="
                    f"{cfg.train.max_steps}, train.batch_size={cfg.train.batch_size}, "
                    f"data.root={cfg.data.root}")


def _training_batches(train_set: Dataset, plan: BatchPlan, step: int, cfg: ExperimentConfig,
                      dist: DistInfo) -> Iterator[Tensor]:
    """This process's training batches from ``step`` on: generated on the device
    (``train.data_on_device``) or read by the data loader as ``plan`` fixes them."""
    tc = cfg.train
    if tc.data_on_device:
        from hvrnn.data.smmnist_device import device_batches

        return device_batches(train_set, tc.batch_size, tc.seed, step, dist.device,
                              dist.world_size, dist.rank)
    return iterate_batches(train_set, plan, step, cfg.data.num_workers, tc.seed,
                           pin=dist.device.type == "cuda")


def format_result(result: TrainResult) -> str:
    """A short human summary of a finished run."""
    parts = [f"{result.status} at step {result.step}; run directory {result.run_dir}"]
    if result.checkpoint is not None:
        parts.append(f"checkpoint {result.checkpoint}")
    if result.train_metrics:
        parts.append(f"train loss {result.train_metrics.get('loss', math.nan):.4g}")
    if result.val_metrics:
        term = result.score_term
        parts.append(f"val {term} {result.val_metrics.get(term, math.nan):.4g}, ssim "
                     f"best {result.val_metrics.get('ssim_best', math.nan):.3f}")
    return "; ".join(parts)


__all__ = ["RunDirectory", "StopFlag", "TrainResult", "TrainingDiverged", "check_run_dir",
           "default_run_dir",
           "format_result", "open_run_dir", "train", "validation_batches", "wrap_for_training"]
