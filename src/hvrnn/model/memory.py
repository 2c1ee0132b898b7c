"""How much memory the model of a config needs, checked before it is built.

The model is built on the meta device (shapes only, no memory), so a config whose model cannot
fit is refused with its size instead of failing inside an allocation. The estimate counts what
certainly has to be held: float32 weights for sampling and evaluation; weights, gradients and
Adam's two moments (4 x the weights) for training. Activations come on top.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from hvrnn.config import ModelConfig
from hvrnn.errors import ResourceError

BYTES_PER_VALUE = 4  # float32
COPIES = {True: 4, False: 1}  # training: weights, gradients, Adam m and v; else weights


def parameter_count(cfg: ModelConfig) -> int:
    """Parameters of the model of ``cfg``, counted on the meta device (nothing allocated)."""
    from hvrnn.model import build_model

    with torch.device("meta"):
        model = build_model(cfg)
    return sum(p.numel() for p in model.parameters())


def device_memory(device: torch.device) -> int | None:
    """Total memory of ``device`` in bytes (physical memory for the CPU), None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type != "cpu":
        return None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def describe_need(parameters: int, training: bool) -> str:
    """``"12,345 parameters: at least 49.4 MB to train (...)"``."""
    need = parameters * BYTES_PER_VALUE * COPIES[training]
    what = ("to train (float32 weights, gradients and Adam's two moments, before activations)"
            if training else "for its float32 weights")
    return f"the model has {parameters:,} parameters and needs at least {_gb(need)} {what}"


def check_memory(cfg: ModelConfig, device: torch.device, training: bool) -> int:
    """Refuse a model that cannot fit in the memory of ``device``; returns its parameters.

    Raises:
        ResourceError: the estimate (module docstring) exceeds the device's total memory.
    """
    parameters = parameter_count(cfg)
    total = device_memory(device)
    need = parameters * BYTES_PER_VALUE * COPIES[training]
    if total is not None and need > total:
        raise ResourceError(f"{describe_need(parameters, training)}; the {device.type} device "
                            f"has {_gb(total)} in all",
                            hint="choose smaller model settings (model.n_z, model.base_channels,"
                                 " model.max_channels, ...)")
    return parameters


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed allocation (CPU or GPU)."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                              or "out of memory" in text.lower())


@contextmanager
def allocating(cfg: ModelConfig, training: bool) -> Iterator[None]:
    """Turn a failed allocation inside the block into :class:`ResourceError` with the size of
    the model of ``cfg``."""
    try:
        yield
    except Exception as exc:
        if not out_of_memory(exc):
            raise
        first = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ResourceError(f"out of memory ({first}); "
                            f"{describe_need(parameter_count(cfg), training)}") from None
