"""Learning-rate schedule: a pure function of the step (the KL weight is
:func:`hvrnn.objective.kl_weight`)."""

from __future__ import annotations

from hvrnn.config import TrainConfig

REFERENCE_BATCH = 16  # lr 1e-4 is tuned for a global batch of 16 (docs/design.md section 4)


def learning_rate(step: int, cfg: TrainConfig, world_size: int = 1) -> float:
    """Learning rate for the update that follows ``step`` completed steps.

    With several processes and ``lr_scale_by_batch``, the linear scaling rule of the official
    runs gives ``lr * batch_size * world_size / 16``, reached linearly from ``lr`` over
    ``lr_warmup_steps``. A single process uses ``lr`` as given. With ``lr_decay_steps =
    (start, end)`` the rate then moves linearly to ``lr_final`` (scaled the same way) between
    those steps (a drop at ``start`` when they are equal): the step decay of PredNet's
    ``kitti_train.py`` and the linear decay of SAVP.
    """
    scale = 1.0
    if cfg.lr_scale_by_batch and world_size > 1:
        scale = cfg.batch_size * world_size / REFERENCE_BATCH
    target = cfg.lr * scale
    start, end = cfg.lr_decay_steps
    if end > 0 and step >= start:
        done = 1.0 if end == start else min(1.0, (step - start) / (end - start))
        target += (cfg.lr_final * scale - target) * done
    if cfg.lr_warmup_steps > 0 and step < cfg.lr_warmup_steps:
        return cfg.lr + (target - cfg.lr) * step / cfg.lr_warmup_steps
    return target
