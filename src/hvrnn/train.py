"""The training loop: Adam, beta warm-up, bf16 autocast, DDP, checkpoints, logging.

Nothing here is model-specific: the loop sees a :class:`~hvrnn.model.base.VideoModel` and the
ELBO terms of :mod:`hvrnn.objective`. Settings follow SPEC 4: ``torch.optim.Adam`` with coupled
weight decay, lr 1e-4 at a global batch of 16, linear lr scaling (and optional warm-up) when
several processes train together, optional beta warm-up, optional gradient clipping.

Exact resumption. Everything random is either a function of the step or stored in the
checkpoint: the data order comes from a seeded ``DistributedSampler`` (epoch and batch position
follow from the step), the posterior noise from a dedicated generator that draws the noise of
the *global* batch on every process (so 2 processes with batch B reproduce 1 process with batch
2B), and the torch / numpy / python RNG states (used by datasets that draw on the fly) are saved
and restored. Validation runs under ``torch.random.fork_rng`` with its own seeds, so it does not
disturb training. A run killed at any moment and resumed from its last checkpoint therefore
produces the same losses as an uninterrupted one (on the same hardware and thread count).

Outputs in the run directory: ``config.yaml``, ``metrics.jsonl`` (one JSON object per log,
``kind`` = ``train`` / ``val`` / ``start`` / ``end``), ``checkpoints/step_<N>.pt`` and
``checkpoints/last.pt``, ``samples/step_<N>.png|gif`` and TensorBoard events in ``tb/``.
"""

from __future__ import annotations

import json
import math
import random
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from hvrnn import checkpoint as ckpt_io
from hvrnn import distributed
from hvrnn.config import ExperimentConfig, TrainConfig, save_config
from hvrnn.errors import CheckpointError, UserError
from hvrnn.model.base import latent_noise
from hvrnn.objective import elbo_terms, kl_weight

REFERENCE_BATCH = 16  # SPEC 4: lr 1e-4 is tuned for a global batch of 16


class TrainingDiverged(RuntimeError):
    """A loss term or the gradient became NaN or infinite; the message names which."""


@dataclass
class TrainResult:
    """What :func:`train` did."""

    run_dir: Path
    step: int
    status: str  # "finished" | "interrupted"
    checkpoint: Path | None
    train_metrics: dict[str, float] = field(default_factory=dict)
    val_metrics: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Schedules (pure functions of the step)
# --------------------------------------------------------------------------------------------


def learning_rate(step: int, cfg: TrainConfig, world_size: int = 1) -> float:
    """Learning rate for the update that follows ``step`` completed steps.

    With several processes and ``lr_scale_by_batch``, the paper's linear scaling rule gives
    ``lr * batch_size * world_size / 16``, reached linearly from ``lr`` over ``lr_warmup_steps``.
    A single process uses ``lr`` as given (SPEC 4).
    """
    target = cfg.lr
    if cfg.lr_scale_by_batch and world_size > 1:
        target = cfg.lr * cfg.batch_size * world_size / REFERENCE_BATCH
    if cfg.lr_warmup_steps > 0 and step < cfg.lr_warmup_steps:
        return cfg.lr + (target - cfg.lr) * step / cfg.lr_warmup_steps
    return target


# --------------------------------------------------------------------------------------------
# Data order
# --------------------------------------------------------------------------------------------


class BatchPlan:
    """Which item indices this process reads at every step; a pure function of the step.

    Each epoch is a seeded permutation shared by all processes (``DistributedSampler``);
    process r takes every ``world``-th item, so the union of the processes' batches at a step
    is the batch a single process with the global batch size would read.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, world_size: int = 1,
                 rank: int = 0):
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                          shuffle=True, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.batches_per_epoch = len(self.sampler) // batch_size
        if self.batches_per_epoch == 0:
            raise UserError(f"the training set has {len(dataset)} clips, fewer than one global "
                            f"batch of {batch_size * world_size}; lower train.batch_size")

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) read by the step after ``step`` completed ones."""
        return divmod(step, self.batches_per_epoch)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        self.sampler.set_epoch(epoch)
        idx = list(self.sampler)
        b = self.batch_size
        return [idx[i * b:(i + 1) * b] for i in range(self.batches_per_epoch)]


def _batches(dataset: Dataset, plan: BatchPlan, start_step: int, num_workers: int, seed: int,
             pin: bool) -> Iterator[Tensor]:
    epoch, skip = plan.position(start_step)
    while True:
        batches = plan.epoch_batches(epoch)[skip:]
        if hasattr(dataset, "set_epoch"):  # datasets that draw new clips every epoch
            dataset.set_epoch(epoch)
        # An explicit generator keeps the loader from drawing on the global RNG (which would
        # make a resumed run diverge) and gives workers seeds that depend on the epoch only.
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                            pin_memory=pin, generator=gen)
        for batch in loader:
            yield batch[0] if isinstance(batch, (list, tuple)) else batch
        epoch, skip = epoch + 1, 0


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------


class MetricsLog:
    """Append-only JSONL file; one flushed line per record (a killed run loses at most one)."""

    def __init__(self, path: Path):
        self.path = path
        needs_newline = path.exists() and path.stat().st_size > 0 and \
            not path.read_bytes().endswith(b"\n")
        self.file = open(path, "a")  # noqa: SIM115  (kept open for the whole run)
        if needs_newline:
            self.file.write("\n")

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_metrics(run_dir: str | Path, kind: str = "train") -> list[dict[str, Any]]:
    """Records of one kind from ``metrics.jsonl``, one per step (the latest written, so steps
    repeated after a resume count once), sorted by step. Unparseable lines are skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    by_step: dict[int, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and rec.get("kind") == kind and "step" in rec:
                by_step[int(rec["step"])] = rec
    return [by_step[s] for s in sorted(by_step)]


class _TensorBoard:
    def __init__(self, folder: Path, enabled: bool):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn("tensorboard is not installed: logging to metrics.jsonl only "
                          "(pip install hvrnn[viz])", stacklevel=3)
            return
        self.writer = SummaryWriter(str(folder))

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def video(self, tag: str, video: Tensor, step: int) -> None:
        if self.writer is None:
            return
        try:
            self.writer.add_video(tag, video, step, fps=4)
        except ImportError:  # moviepy missing: the PNG grid and GIF on disk remain
            pass

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --------------------------------------------------------------------------------------------
# Run directory
# --------------------------------------------------------------------------------------------


def default_run_dir(cfg: ExperimentConfig) -> Path:
    return Path("runs") / f"{cfg.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _check_run_dir(run_dir: Path, cfg: ExperimentConfig, resume: bool) -> None:
    """Refuse to reuse a non-empty run directory without ``resume``; check a resumed one."""
    if not resume:
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise UserError(f"run directory {str(run_dir)!r} already exists and is not empty; "
                            f"pass --resume to continue it, or choose another --run-dir")
        return
    if not run_dir.is_dir():
        raise UserError(f"cannot resume: run directory {str(run_dir)!r} does not exist")
    saved = run_dir / "config.yaml"
    if saved.exists():
        import yaml

        try:
            old = yaml.safe_load(saved.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"cannot resume: {str(saved)!r} is not valid YAML ({exc})") from None
        diffs = ckpt_io.config_differences(old, cfg.to_dict())
        if diffs:
            key, a, b = diffs[0]
            raise CheckpointError(f"cannot resume {str(run_dir)!r}: it was started with "
                                  f"{key}={a!r} but the config has {key}={b!r}")


def _create_run_dir(run_dir: Path, cfg: ExperimentConfig) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        if not (run_dir / "config.yaml").exists():
            save_config(cfg, run_dir / "config.yaml")
    except OSError as exc:
        raise UserError(f"cannot write to run directory {str(run_dir)!r}: "
                        f"{exc.strerror or exc}") from None


# --------------------------------------------------------------------------------------------
# One step, validation
# --------------------------------------------------------------------------------------------


def _autocast(device: torch.device, amp: str):
    use_bf16 = amp == "bf16" or (amp == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)


def train_step(model: nn.Module, video: Tensor, cfg: ExperimentConfig, beta: float,
               eps: list[Tensor] | None, device: torch.device) -> dict[str, Tensor]:
    """Teacher-forced forward pass and ELBO terms for one batch (no backward).

    Args:
        model: the (possibly DDP-wrapped or compiled) model.
        video: (B, K + T, C, H, W) in [0, 1] on ``device``.
        eps: posterior noise per level, (B, T, C_l, R_l, R_l), or None to draw it.

    Returns:
        The terms of :func:`hvrnn.objective.elbo_terms` (``loss`` is minimised).
    """
    k = cfg.model.n_ctx
    with _autocast(device, cfg.train.amp):
        out = model(video, eps=eps)
    # Heads, variances and the KL are float32 inside the model and objective.
    return elbo_terms(out, video[:, k:], cfg.model.likelihood, cfg.model.kl_estimator, beta,
                      cfg.train.free_bits)


def _diagnose(terms: dict[str, Tensor], grad_norm: Tensor, model: nn.Module, step: int) -> str:
    bad = [f"{k}={v.item()}" for k, v in terms.items() if not torch.isfinite(v)]
    if bad:
        good = [f"{k}={v.item():.4g}" for k, v in terms.items()
                if torch.isfinite(v) and (k == "nll" or k.startswith("kl/"))]
        return (f"non-finite loss at step {step}: {', '.join(bad)}"
                + (f" (finite: {', '.join(good)})" if good else ""))
    names = [n for n, p in model.named_parameters()
             if p.grad is not None and not torch.isfinite(p.grad).all()]
    return (f"non-finite gradient at step {step} (norm {grad_norm.item()}) with a finite loss "
            f"{terms['loss'].item():.4g}; first parameters with bad gradients: "
            f"{', '.join(names[:3]) or 'on another process'}")


@torch.no_grad()
def validate(model: nn.Module, batches: list[Tensor], cfg: ExperimentConfig,
             device: torch.device) -> tuple[dict[str, float], dict[str, Tensor]]:
    """Teacher-forced negative ELBO and best-of-N prior-sample PSNR/SSIM on fixed batches.

    Args:
        model: the unwrapped model.
        batches: (B, K + T, C, H, W) clips in [0, 1] (a fixed validation subset).

    Returns:
        (metrics, example) where metrics holds ``nelbo``, ``nll``, ``kl``, ``kl/level_<l>``,
        ``bpd``, ``psnr_best``, ``ssim_best``, ``psnr_mean``, ``ssim_mean`` (batch-weighted means)
        and example holds ``context`` (K, C, H, W), ``truth`` (T, C, H, W) and ``samples``
        (S, T, C, H, W) for the first clip.
    """
    from hvrnn.metrics.psnr import psnr
    from hvrnn.metrics.ssim import ssim
    from hvrnn.sampling import sample

    k, n = cfg.model.n_ctx, cfg.train.val_n_samples
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    example: dict[str, Tensor] = {}
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.manual_seed(cfg.train.seed + 17)
        gen = torch.Generator(device=device).manual_seed(cfg.eval.seed)
        for video in batches:
            video = video.to(device)
            b, t = video.shape[0], video.shape[1] - k
            terms = train_step(model, video, cfg, 1.0, None, device)
            samples = sample(model, video[:, :k], horizon=t, n_samples=n, generator=gen)
            flat = rearrange(samples, "b s t c h w -> (b s) t c h w").float()
            target = video[:, k:].repeat_interleave(n, dim=0).float()
            scores = {"psnr": psnr(flat, target), "ssim": ssim(flat, target)}  # (B*S, T)
            values = {name: float(v) for name, v in terms.items() if name != "loss"}
            for name, s in scores.items():
                per = rearrange(s, "(b s) t -> b s t", s=n).mean(-1)  # (B, S)
                values[f"{name}_best"] = per.max(1).values.mean().item()
                values[f"{name}_mean"] = per.mean().item()
            for name, v in values.items():
                sums[name] = sums.get(name, 0.0) + v * b
            count += b
            if not example:
                example = {"context": video[0, :k].cpu(), "truth": video[0, k:].cpu(),
                           "samples": samples[0].cpu()}
    model.train(was_training)
    return {name: v / max(count, 1) for name, v in sums.items()}, example


def _write_images(example: dict[str, Tensor], run_dir: Path, step: int, tb: _TensorBoard
                  ) -> None:
    from hvrnn import viz

    ctx, truth, samples = (viz.to_uint8(example[k]) for k in ("context", "truth", "samples"))
    grid = viz.sample_grid(ctx, samples, truth)
    scale = viz.auto_scale(ctx.shape[1])
    folder = run_dir / "samples"
    folder.mkdir(exist_ok=True)
    viz.save_png(grid.repeat(scale, 0).repeat(scale, 1), folder / f"step_{step:08d}.png")
    viz.save_gif(viz.animation_frames(ctx, samples, truth, scale=scale),
                 folder / f"step_{step:08d}.gif")
    tb.image("val/samples", grid, step)
    tb.video("val/samples_video", viz.tensorboard_video(example["context"], example["samples"],
                                                        example["truth"]), step)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


class _StopFlag:
    """Set by SIGINT / SIGTERM; the loop saves a checkpoint and returns at the next step."""

    def __init__(self) -> None:
        self.raised = False
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def _handle(self, signum: int, frame: Any) -> None:
        if self.raised:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.raised = True

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_initial_model(cfg: ExperimentConfig) -> nn.Module:
    """The model a run starts from: built right after seeding every RNG with ``train.seed``."""
    from hvrnn.model import build_model

    _seed_all(cfg.train.seed)
    return build_model(cfg.model)


def train(cfg: ExperimentConfig, run_dir: str | Path | None = None, *, resume: bool = False,
          train_set: Dataset | None = None, val_set: Dataset | None = None,
          progress: bool | None = None) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (or continue it with ``resume=True``).

    Launch with ``torchrun`` for several GPUs or nodes; each process calls this function.

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
        UserError: unusable run directory, data or checkpoint (one-line message).
        TrainingDiverged: a non-finite loss or gradient; the last good checkpoint is kept.
    """
    tc = cfg.train
    info = distributed.setup(tc.device)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    try:
        return _train(cfg, tc, info, run_dir, resume, train_set, val_set, progress)
    finally:
        distributed.cleanup(info)


def _barrier(info: distributed.DistInfo) -> None:
    if info.enabled:
        torch.distributed.barrier()


def _train(cfg: ExperimentConfig, tc: TrainConfig, info: distributed.DistInfo, run_dir: Path,
           resume: bool, train_set: Dataset | None, val_set: Dataset | None,
           progress: bool | None) -> TrainResult:
    device = info.device
    _check_run_dir(run_dir, cfg, resume)
    _barrier(info)
    if info.is_main:
        _create_run_dir(run_dir, cfg)
        ckpt_io.remove_stale_temporaries(run_dir)
    _barrier(info)

    if train_set is None:
        from hvrnn.data import build_dataset

        train_set = build_dataset(cfg.data, "train")
    validating = tc.val_every > 0 or tc.image_every > 0
    if val_set is None and validating and info.is_main:
        from hvrnn.data import build_dataset

        val_set = build_dataset(cfg.data, "test")
    val_batches: list[Tensor] = []
    if val_set is not None and info.is_main:
        n_val = min(len(val_set), max(1, tc.val_batches) * tc.batch_size)
        loader = DataLoader(Subset(val_set, range(n_val)), batch_size=tc.batch_size)
        val_batches = [b[0] if isinstance(b, (list, tuple)) else b for b in loader]

    # Same initial weights on every process (DDP also broadcasts rank 0's).
    model = build_initial_model(cfg).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate(0, tc, info.world_size),
                                 betas=tuple(tc.betas), weight_decay=tc.weight_decay)
    noise_gen = torch.Generator(device=device).manual_seed(tc.seed + 1_000_003)
    # Datasets that draw on the fly should differ between processes.
    _seed_all(tc.seed + 7919 * info.rank)

    step = 0
    last = ckpt_io.latest_checkpoint(run_dir) if resume else None
    if last is not None:
        state = ckpt_io.read_checkpoint(last)
        ckpt_io.check_compatible(state, cfg, last)
        model.load_state_dict(state["model"])
        if state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        if state.get("world_size", 1) != info.world_size and info.is_main:
            warnings.warn(f"resuming a run trained on {state.get('world_size')} processes with "
                          f"{info.world_size}: the data order changes from here", stacklevel=2)
        rng = state.get("rng") or {}
        if info.rank == 0 or state.get("world_size", 1) != info.world_size:
            # Global RNG states were saved by rank 0; other ranks re-seed from the step.
            ckpt_io.restore_rng(rng, noise_gen if "noise" in rng else None)
        else:
            _seed_all(tc.seed + 7919 * info.rank + step)
            if "noise" in rng:
                noise_gen.set_state(rng["noise"])
        del state

    net: nn.Module = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if tc.compile:
        net = torch.compile(net)

    plan = BatchPlan(train_set, tc.batch_size, tc.seed, info.world_size, info.rank)
    batches = _batches(train_set, plan, step, cfg.data.num_workers, tc.seed,
                       pin=device.type == "cuda")
    params = [p for p in model.parameters() if p.requires_grad]
    global_batch = tc.batch_size * info.world_size
    frames_per_step = global_batch * cfg.data.seq_len

    log = MetricsLog(run_dir / "metrics.jsonl") if info.is_main else None
    tb = _TensorBoard(run_dir / "tb", info.is_main)
    if log is not None:
        log.write({"kind": "start", "step": step, "resumed": last is not None,
                   "world_size": info.world_size, "time": time.time()})
    from tqdm.auto import tqdm

    bar = tqdm(total=tc.max_steps, initial=step, disable=(not info.is_main) or
               (None if progress is None else not progress), desc="train", unit="step",
               dynamic_ncols=True)
    stop = _StopFlag()
    stop.install()
    status, saved = "finished", last
    train_metrics: dict[str, float] = {}
    val_metrics: dict[str, float] = {}
    t_window, steps_window = time.perf_counter(), 0

    def save(step_now: int) -> Path | None:
        if not info.is_main:
            return None
        state = ckpt_io.make_checkpoint(
            model=model, optimizer=optimizer, step=step_now, cfg=cfg,
            rng=ckpt_io.capture_rng(noise_gen), world_size=info.world_size,
            sampler=dict(zip(("epoch", "batch"), plan.position(step_now), strict=True),
                         seed=tc.seed),
            metrics=train_metrics)
        return ckpt_io.save_checkpoint(state, run_dir, keep=tc.keep_checkpoints)

    try:
        while step < tc.max_steps:
            video = next(batches).to(device, non_blocking=True)
            lr = learning_rate(step, tc, info.world_size)
            for group in optimizer.param_groups:
                group["lr"] = lr
            beta = kl_weight(step, tc.beta, tc.beta_warmup_steps)
            # Noise of the whole global batch, then this process's rows (see BatchPlan).
            eps_all = latent_noise(cfg.model, global_batch, video.shape[1] - cfg.model.n_ctx,
                                   noise_gen, device)
            eps = [e[info.rank::info.world_size] for e in eps_all]

            terms = train_step(net, video, cfg, beta, eps, device)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if tc.grad_clip > 0:
                grad_norm = nn.utils.clip_grad_norm_(params, tc.grad_clip)
            else:
                grad_norm = nn.utils.get_total_norm([p.grad for p in params
                                                     if p.grad is not None])
            finite = torch.isfinite(terms["loss"]) & torch.isfinite(grad_norm)
            flags = distributed.all_reduce_max(
                torch.stack([(~finite).float(), torch.tensor(float(stop.raised),
                                                             device=finite.device)]), info)
            if flags[0] > 0:
                where = f"; the last good checkpoint is {str(saved)!r}" if saved else \
                    "; no checkpoint was written yet"
                raise TrainingDiverged(_diagnose(terms, grad_norm, model, step + 1) + where)
            optimizer.step()
            step += 1
            steps_window += 1
            bar.update(1)

            if step % tc.log_every == 0 or step == tc.max_steps:
                names = sorted(terms)
                values = distributed.all_reduce_mean(
                    torch.stack([terms[k].detach().float() for k in names]), info)
                elapsed = time.perf_counter() - t_window
                train_metrics = {k: float(v) for k, v in zip(names, values.tolist(),
                                                             strict=True)}
                train_metrics.update(grad_norm=float(grad_norm), lr=lr, beta=beta,
                                     fps=frames_per_step * steps_window / max(elapsed, 1e-9))
                t_window, steps_window = time.perf_counter(), 0
                if log is not None:
                    log.write({"kind": "train", "step": step, "time": time.time(),
                               **train_metrics})
                    tb.scalars("train", train_metrics, step)
                bar.set_postfix(loss=f"{train_metrics['loss']:.4g}",
                                fps=f"{train_metrics['fps']:.0f}", refresh=False)

            do_val = tc.val_every > 0 and (step % tc.val_every == 0 or step == tc.max_steps)
            do_img = tc.image_every > 0 and step % tc.image_every == 0
            if info.is_main and val_batches and (do_val or do_img):
                metrics, example = validate(model, val_batches if do_val else val_batches[:1],
                                            cfg, device)
                if do_val:
                    val_metrics = metrics
                    log.write({"kind": "val", "step": step, "time": time.time(), **metrics})
                    tb.scalars("val", metrics, step)
                    bar.write(f"step {step}: val nelbo {metrics['nelbo']:.4g}, "
                              f"ssim best-of-{tc.val_n_samples} {metrics['ssim_best']:.3f}")
                if do_img:
                    _write_images(example, run_dir, step, tb)
                t_window, steps_window = time.perf_counter(), 0

            if flags[1] > 0:
                status = "interrupted"
                saved = save(step) or saved
                break
            if step % tc.checkpoint_every == 0 or step == tc.max_steps:
                saved = save(step) or saved
    except TrainingDiverged:
        status = "diverged"
        raise
    finally:
        stop.restore()
        bar.close()
        tb.close()
        if log is not None:
            log.write({"kind": "end", "step": step, "status": status, "time": time.time()})
            log.close()
    if status == "interrupted" and info.is_main:
        print(f"interrupted at step {step}; checkpoint {saved}; continue with --resume",
              file=sys.stderr)
    return TrainResult(run_dir=run_dir, step=step, status=status, checkpoint=saved,
                       train_metrics=train_metrics, val_metrics=val_metrics)


def format_result(result: TrainResult) -> str:
    """A short human summary of a finished run."""
    parts = [f"{result.status} at step {result.step}; run directory {result.run_dir}"]
    if result.checkpoint is not None:
        parts.append(f"checkpoint {result.checkpoint}")
    if result.train_metrics:
        parts.append(f"train loss {result.train_metrics.get('loss', math.nan):.4g}")
    if result.val_metrics:
        parts.append(f"val nelbo {result.val_metrics.get('nelbo', math.nan):.4g}, ssim "
                     f"best {result.val_metrics.get('ssim_best', math.nan):.3f}")
    return "; ".join(parts)
