"""Which clips each process reads at every step: a pure function of the step."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from hvrnn.errors import UserError


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


def ignore_stop_signals(worker_id: int = 0) -> None:
    """``worker_init_fn`` of data-loader workers: they ignore SIGINT and SIGTERM.

    Ctrl-C and ``timeout``/``kill -TERM -PGID`` reach every process of the group. The main
    process answers them by saving a checkpoint after the current step; a worker that died of
    them would fail that step instead (``DataLoader worker ... killed by signal``). The main
    process shuts its workers down when it stops, and a worker whose main process is gone
    exits on its own (PyTorch's watchdog), so nothing is left running.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def iterate_batches(dataset: Dataset, plan: BatchPlan, start_step: int, num_workers: int,
                    seed: int, pin: bool) -> Iterator[Tensor]:
    """The batches (B, K + T, C, H, W) of steps ``start_step``, ``start_step + 1``, ... forever."""
    epoch, skip = plan.position(start_step)
    while True:
        batches = plan.epoch_batches(epoch)[skip:]
        if hasattr(dataset, "set_epoch"):  # datasets that draw new clips every epoch
            dataset.set_epoch(epoch)
        # An explicit generator keeps the loader from drawing on the global RNG (which would
        # make a resumed run diverge) and gives workers seeds that depend on the epoch only.
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                            pin_memory=pin, generator=gen,
                            worker_init_fn=ignore_stop_signals if num_workers else None)
        for batch in loader:
            yield batch[0] if isinstance(batch, (list, tuple)) else batch
        epoch, skip = epoch + 1, 0
