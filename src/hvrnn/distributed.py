"""torch.distributed set-up for ``torchrun`` launches, and no-ops for a single process.

``torchrun --nproc_per_node=G -m hvrnn.cli train CONFIG`` (or several nodes with ``--nnodes``)
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; this module
reads them, joins the process group (NCCL on CUDA, gloo on CPU) and picks the device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from hvrnn.errors import ResourceError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``.

    Raises:
        ResourceError: an unknown device name, or a device this machine or this build of torch
            does not have (``cuda`` with a CPU-only torch, ``cuda:3`` with one GPU).
    """
    from hvrnn.config.checks import DEVICE_PATTERN

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    if not DEVICE_PATTERN.match(name):
        raise ResourceError(f"device {name!r} is unknown: expected auto, cpu, cuda, cuda:N or "
                            "mps")
    device = torch.device(name)
    if device.type == "cuda":
        _check_cuda(name, device)
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    elif device.type == "mps" and not (torch.backends.mps.is_available()):
        raise ResourceError(f"device {name!r} is not available on this machine",
                            hint="use --device cpu or auto")
    return device


def _check_cuda(name: str, device: torch.device) -> None:
    if torch.version.cuda is None:
        raise ResourceError(f"device {name!r}: this build of torch ({torch.__version__}) has no "
                            "CUDA support", hint="use --device cpu or auto, or install a CUDA "
                            "build of torch")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ResourceError(f"device {name!r}: no CUDA device is visible", hint="use --device "
                            "cpu or auto (or check CUDA_VISIBLE_DEVICES and the driver)")
    if device.index is not None and device.index >= count:
        raise ResourceError(f"device {name!r}: this machine has {count} CUDA device(s), "
                            f"cuda:0 to cuda:{count - 1}")


def setup(device: str = "auto") -> DistInfo:
    """Join the process group if launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (the train config's ``device``).

    Returns:
        This process's :class:`DistInfo`; a single process gets rank 0 of 1 and no group.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def cleanup(info: DistInfo) -> None:
    """Leave the process group (if this module joined one)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every process (nothing to wait for with a single process)."""
    if info.enabled:
        dist.barrier()


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean over processes of a tensor (returned unchanged for a single process)."""
    if not info.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / info.world_size


def all_reduce_max(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Element-wise max over processes (flags such as "stop now" or "loss is not finite")."""
    if not info.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values
