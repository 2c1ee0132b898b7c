"""The state of a training run: the model, one optimiser per parameter group, the latent-noise
generator and the step; built from the config, restored from a checkpoint, written to one.

Exact resumption. Everything random is either a function of the step or stored in the
checkpoint: the data order comes from :class:`~hvrnn.training.batches.BatchPlan`, the posterior
noise from :attr:`TrainState.noise`, which draws the noise of the *global* batch on every
process (so 2 processes with batch B reproduce 1 process with batch 2B), and the torch / numpy /
python RNG states (used by datasets that draw on the fly) are saved and restored.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hvrnn import accel
from hvrnn import checkpoint as ckpt_io
from hvrnn.config import ExperimentConfig
from hvrnn.distributed import DistInfo
from hvrnn.errors import CheckpointError
from hvrnn.log import logger
from hvrnn.model import VideoModel, build_model
from hvrnn.rng import capture_rng, restore_rng
from hvrnn.sources import load_model
from hvrnn.training.schedules import learning_rate

NOISE_SEED_OFFSET = 1_000_003
RANK_SEED_STRIDE = 7919


def seed_all(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_initial_model(cfg: ExperimentConfig) -> VideoModel:
    """The model a run starts from: built right after seeding every RNG with ``train.seed``."""
    seed_all(cfg.train.seed)
    return build_model(cfg.model)


def load_initial_weights(model: VideoModel, source: str) -> None:
    """The model weights of the checkpoint ``source`` (``train.init_from``: a checkpoint, a run
    directory or ``pretrained:<name>``).

    Raises:
        CheckpointError: unreadable, or its weights do not fit the model (naming the key).
    """
    trained, _ = load_model(source)
    try:
        ckpt_io.load_state_checked(model, trained.state_dict(), source)
    except CheckpointError as exc:
        raise CheckpointError(f"train.init_from={source!r}: its weights do not fit this model "
                              f"({exc})") from None


@dataclass
class TrainState:
    """Model, optimisers (one per parameter group of the model), noise generator and step.

    Attributes:
        model: the unwrapped model, in training mode, on the training device.
        optimizers: ``torch.optim.Adam`` per name of :meth:`VideoModel.parameter_groups`.
        groups: the parameters of each optimiser.
        noise: the generator of the posterior noise.
        step: optimisation steps completed.
    """

    model: VideoModel
    optimizers: dict[str, torch.optim.Optimizer]
    groups: dict[str, list[nn.Parameter]]
    noise: torch.Generator
    step: int = 0
    restored_from: Path | None = field(default=None)
    # The flags of the last step while the host has not read them (train.finite_check=device).
    pending: Any = field(default=None)

    @classmethod
    def create(cls, cfg: ExperimentConfig, dist: DistInfo) -> TrainState:
        """A fresh state: the same initial weights on every process (DDP also broadcasts rank
        0's), then the global RNGs seeded differently per process (datasets that draw on the
        fly should differ between processes)."""
        tc = cfg.train
        model = build_initial_model(cfg).to(dist.device)
        if tc.init_from:
            load_initial_weights(model, tc.init_from)
        model.train()
        accel.prepare_model(model, dist.device, channels_last=tc.channels_last)
        groups = model.parameter_groups()
        optimizers = {name: torch.optim.Adam(params, lr=learning_rate(0, tc, dist.world_size),
                                             betas=tuple(tc.adam_betas),
                                             weight_decay=tc.weight_decay,
                                             **accel.adam_options(tc.fused_optimizer,
                                                                  dist.device))
                      for name, params in groups.items()}
        noise = torch.Generator(device=dist.device).manual_seed(tc.seed + NOISE_SEED_OFFSET)
        seed_all(tc.seed + RANK_SEED_STRIDE * dist.rank)
        return cls(model, optimizers, groups, noise)

    def restore(self, path: Path, cfg: ExperimentConfig, dist: DistInfo) -> None:
        """Continue from the checkpoint at ``path``: weights, optimisers, step and RNG states.

        Raises:
            CheckpointError: unreadable, or written with another config (naming the key).
        """
        state = ckpt_io.read_checkpoint(path)
        ckpt_io.check_compatible(state, cfg, path)
        self.model.load_state_dict(state["model"])
        for name, opt_state in ckpt_io.optimizer_states(state).items():
            self.optimizers[name].load_state_dict(opt_state)
        self.step, self.restored_from = int(state["step"]), path
        saved_world = state.get("world_size", 1)
        if saved_world != dist.world_size and dist.is_main:
            logger.warning(f"resuming a run trained on {saved_world} processes with "
                           f"{dist.world_size}: the data order changes from here")
        rng = state.get("rng") or {}
        if dist.rank == 0 or saved_world != dist.world_size:
            # Global RNG states were saved by rank 0; other ranks re-seed from the step.
            restore_rng(rng, self.noise if "noise" in rng else None)
        else:
            seed_all(cfg.train.seed + RANK_SEED_STRIDE * dist.rank + self.step)
            if "noise" in rng:
                self.noise.set_state(rng["noise"])

    def set_learning_rate(self, lr: float) -> None:
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr

    def to_checkpoint(self, cfg: ExperimentConfig, dist: DistInfo, sampler: dict[str, int],
                      metrics: dict[str, float]) -> dict[str, Any]:
        """The checkpoint dict of this state (:func:`hvrnn.checkpoint.make_checkpoint`)."""
        return ckpt_io.make_checkpoint(
            model=self.model, optimizers=self.optimizers, step=self.step, cfg=cfg,
            rng=capture_rng(self.noise), world_size=dist.world_size, sampler=sampler,
            metrics=metrics)
