"""What a training run does besides stepping: logs, validation, sample images, checkpoints.

:class:`RunHooks` is called by :func:`hvrnn.training.engine.fit` at the cadences of the train
section. Every process calls every hook (the log hook averages the terms over processes); only
the main process writes files.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hvrnn import checkpoint as ckpt_io
from hvrnn import distributed, viz
from hvrnn.config import ExperimentConfig
from hvrnn.distributed import DistInfo
from hvrnn.io.frames import to_uint8
from hvrnn.log import logger
from hvrnn.training.batches import BatchPlan
from hvrnn.training.engine import StepResult
from hvrnn.training.logs import MetricsLog, TensorBoard
from hvrnn.training.state import TrainState
from hvrnn.training.validation import validate


def write_sample_images(example: dict[str, Tensor], folder: Path, step: int, tb: TensorBoard
                        ) -> None:
    """``samples/step_<N>.png`` (grid: truth, then samples) and ``.gif``, and TensorBoard."""
    ctx, truth, samples = (to_uint8(example[k]) for k in ("context", "truth", "samples"))
    grid = viz.sample_grid(ctx, samples, truth)
    scale = viz.auto_scale(ctx.shape[1])
    folder.mkdir(exist_ok=True)
    viz.save_png(grid.repeat(scale, 0).repeat(scale, 1), folder / f"step_{step:08d}.png")
    viz.save_gif(viz.animation_frames(ctx, samples, truth, scale=scale),
                 folder / f"step_{step:08d}.gif")
    tb.image("val/samples", grid, step)
    tb.video("val/samples_video", viz.tensorboard_video(example["context"], example["samples"],
                                                        example["truth"]), step)


class RunHooks:
    """The hooks of one run (see the module docstring).

    Args:
        cfg: the experiment.
        dist: this process.
        run_dir: the run directory (exists).
        val_batches: fixed validation clips (main process only; empty: no validation).
        plan: the data order (its position is stored in checkpoints).
        progress: show a progress bar (None: when stderr is a terminal).
        state: the state the run starts from.
    """

    def __init__(self, cfg: ExperimentConfig, dist: DistInfo, run_dir: Path,
                 val_batches: list[Tensor], plan: BatchPlan, progress: bool | None,
                 state: TrainState) -> None:
        from hvrnn.log import progress as progress_bar

        self.cfg, self.dist, self.run_dir, self.plan = cfg, dist, run_dir, plan
        self.val_batches = val_batches
        self.log_file = MetricsLog(run_dir / "metrics.jsonl") if dist.is_main else None
        self.tb = TensorBoard(run_dir / "tb", dist.is_main)
        self.bar = progress_bar(total=cfg.train.max_steps, initial=state.step, desc="train",
                                unit="step", dynamic_ncols=True,
                                enabled=False if not dist.is_main else progress)
        self.saved: Path | None = state.restored_from
        self.protect = nullcontext  # replaced by the run's StopFlag.protect
        self.train_metrics: dict[str, float] = {}
        self.val_metrics: dict[str, float] = {}
        self._window_start, self._window_steps = time.perf_counter(), 0
        self._record({"kind": "start", "step": state.step,
                      "resumed": state.restored_from is not None,
                      "world_size": dist.world_size, "pid": os.getpid(), "time": time.time()})

    def _record(self, record: dict[str, Any]) -> None:
        if self.log_file is not None:
            self.log_file.write(record)

    def _restart_window(self) -> None:
        self._window_start, self._window_steps = time.perf_counter(), 0

    # ---- called by fit ---------------------------------------------------------------------
    def after_step(self, state: TrainState, result: StepResult) -> None:
        self._window_steps += 1
        self.bar.update(1)

    def log(self, state: TrainState, result: StepResult) -> None:
        """Average the terms over processes; write them with grad norm, lr, beta, frames/s."""
        names = sorted(result.terms)
        values = distributed.all_reduce_mean(
            torch.stack([result.terms[k].detach().float() for k in names]), self.dist)
        elapsed = time.perf_counter() - self._window_start
        frames = self.cfg.train.batch_size * self.dist.world_size * self.cfg.data.seq_len
        metrics = {k: float(v) for k, v in zip(names, values.tolist(), strict=True)}
        for group, norm in result.grad_norms.items():
            metrics["grad_norm" if group == "model" else f"grad_norm/{group}"] = float(norm)
        metrics.update(lr=result.lr, beta=result.beta,
                       fps=frames * self._window_steps / max(elapsed, 1e-9))
        self.train_metrics = metrics
        self._restart_window()
        self._record({"kind": "train", "step": state.step, "time": time.time(), **metrics})
        self.tb.scalars("train", metrics, state.step)
        self.bar.set_postfix(loss=f"{metrics['loss']:.4g}", fps=f"{metrics['fps']:.0f}",
                             refresh=False)

    def validate(self, state: TrainState, record: bool, images: bool) -> None:
        """Validation metrics (``record``) and sample images (``images``), main process only."""
        if not (self.dist.is_main and self.val_batches):
            return
        batches = self.val_batches if record else self.val_batches[:1]
        metrics, example = validate(state.model, batches, self.cfg, self.dist.device)
        if record:
            self.val_metrics = metrics
            self._record({"kind": "val", "step": state.step, "time": time.time(), **metrics})
            self.tb.scalars("val", metrics, state.step)
            term = state.model.score_term
            n = state.model.distinct_samples(self.cfg.train.val_n_samples)  # 1 if deterministic
            logger.info(f"step {state.step}: val {term} {metrics[term]:.4g}, ssim "
                        f"best-of-{n} {metrics['ssim_best']:.3f}")
        if images:
            write_sample_images(example, self.run_dir / "samples", state.step, self.tb)
        self._restart_window()

    def checkpoint(self, state: TrainState) -> None:
        """Write ``checkpoints/step_<N>.pt`` and ``last.pt`` (main process only)."""
        if not self.dist.is_main:
            return
        epoch, batch = self.plan.position(state.step)
        ckpt = state.to_checkpoint(self.cfg, self.dist, metrics=self.train_metrics,
                                   sampler={"epoch": epoch, "batch": batch,
                                            "seed": self.cfg.train.seed})
        with self.protect():  # a second Ctrl-C does not cut a save short
            self.saved = ckpt_io.save_checkpoint(ckpt, self.run_dir,
                                                 keep=self.cfg.train.keep_checkpoints)

    def diverged(self, message: str) -> str:
        """The divergence message, with where the last good checkpoint is."""
        where = (f"; the last good checkpoint is {str(self.saved)!r}" if self.saved else
                 "; no checkpoint was written yet")
        return message + where

    def close(self, step: int, status: str, error: str | None = None) -> None:
        """Record how the run ended: ``status`` finished, interrupted or failed, the ``error``
        line of a failure (or of an interrupt that could not save), the last checkpoint. A
        record that cannot be written (a full disk) does not hide the run's own error."""
        self.bar.close()
        self.tb.close()
        record = {"kind": "end", "step": step, "status": status,
                  "checkpoint": str(self.saved) if self.saved else None, "time": time.time()}
        try:
            self._record({**record, "error": error} if error else record)
        except OSError:
            pass
        if self.log_file is not None:
            self.log_file.close()
