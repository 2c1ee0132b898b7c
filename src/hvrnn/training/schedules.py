"""Learning-rate schedule: a pure function of the step (the KL weight is
:func:`hvrnn.objective.kl_weight`)."""

from __future__ import annotations

from hvrnn.config import TrainConfig

REFERENCE_BATCH = 16  # lr 1e-4 is tuned for a global batch of 16 (docs/design.md section 4)


def learning_rate(step: int, cfg: TrainConfig, world_size: int = 1) -> float:
    """Learning rate for the update that follows ``step`` completed steps.

    With several processes and ``lr_scale_by_batch``, the linear scaling rule of the official
    runs gives ``lr * batch_size * world_size / 16``, reached linearly from ``lr`` over
    ``lr_warmup_steps``. A single process uses ``lr`` as given.
    """
    target = cfg.lr
    if cfg.lr_scale_by_batch and world_size > 1:
        target = cfg.lr * cfg.batch_size * world_size / REFERENCE_BATCH
    if cfg.lr_warmup_steps > 0 and step < cfg.lr_warmup_steps:
        return cfg.lr + (target - cfg.lr) * step / cfg.lr_warmup_steps
    return target
