"""How much memory the model of a config needs, checked before it is built.

The model is built on the meta device (shapes only, no memory), so a config whose model cannot
fit is refused with its size instead of failing inside an allocation. The estimate counts what
certainly has to be held: float32 weights for sampling and evaluation; weights, gradients and
Adam's two moments (4 x the weights) for training. For training, the activations that the
backward pass keeps are added (:func:`training_activations`): the training terms of a batch of
one clip with one and with two predicted frames are run on the meta device, the bytes of every
tensor saved for backward are summed, and the sum is extrapolated linearly to the config's
predicted frames and batch (exact for the recurrent models, whose saved tensors grow by the same
amount each step). The training process is refused if the total exceeds the device's memory,
and warned about if it exceeds the memory available now (on Linux).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from hvrnn.config import ModelConfig
from hvrnn.errors import ResourceError
from hvrnn.model.base import StepContext

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


def check_memory(cfg: ModelConfig, device: torch.device, training: bool,
                 activations: int = 0, batch: str = "") -> int:
    """Refuse a model that cannot fit in the memory of ``device``; returns its parameters.

    Args:
        activations: bytes the backward pass keeps (:func:`training_activations`), added to
            the weights' need; ``batch`` says for which batch (for the message).

    Raises:
        ResourceError: the estimate (module docstring) exceeds the device's total memory.
    """
    parameters = parameter_count(cfg)
    total = device_memory(device)
    need = parameters * BYTES_PER_VALUE * COPIES[training] + activations
    what = describe_need(parameters, training)
    if activations:
        what = (f"the model has {parameters:,} parameters; a training step needs about "
                f"{_gb(need)}: {_gb(need - activations)} of float32 weights, gradients and "
                f"Adam's two moments and {_gb(activations)} of activations for "
                f"{batch or 'a batch'}")
    if total is not None and need > total:
        raise ResourceError(f"{what}; the {device.type} device has {_gb(total)} in all",
                            hint="choose a smaller train.batch_size or smaller model settings "
                                 "(model.base_channels, model.max_channels, ...), or set "
                                 "model.activation_checkpointing=all")
    free = available_memory(device)
    if activations and free is not None and need > free:
        warnings.warn(f"{what}; the {device.type} device has only {_gb(free)} available now",
                      stacklevel=2)
    return parameters


def available_memory(device: torch.device) -> int | None:
    """Memory of ``device`` available now in bytes (``MemAvailable`` for the CPU on Linux;
    free memory for CUDA), None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class _NoAutocast(contextlib.nullcontext):
    """``torch.autocast`` while the meta-device pass runs: the meta device has no autocast
    dtype, and the estimate is of float32 activations anyway."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()


_ACTIVATIONS: dict[str, int | None] = {}


def _saved_bytes(model: Any, cfg: Any, batch: int, frames: int) -> int:
    """Bytes of the tensors (not the weights) that the training terms of ``batch`` clips with
    ``frames`` predicted frames save for backward, on the meta device."""
    from unittest import mock

    weights = {id(p) for p in model.parameters()}
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if id(t) not in weights:
            total += t.numel() * t.element_size()
        return t

    d = cfg.data
    video = torch.zeros(batch, d.n_ctx + frames, d.channels, d.image_size, d.image_size,
                        device="meta")
    eps = [torch.zeros(batch, frames, *shape, device="meta")
           for shape in getattr(model, "latent_shapes", None) or ()] or None
    with mock.patch.object(torch, "autocast", _NoAutocast), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.training_terms(video, cfg.loss, StepContext(noise=eps), forward=model)
    return total


def training_activations(cfg: Any, device: torch.device) -> int | None:
    """Bytes of activations one training step of ``cfg`` (an ExperimentConfig) keeps for
    backward on ``device``, per process (``train.batch_size`` clips of ``data.n_ctx +
    data.n_pred`` frames; halved under bf16 autocast, ``train.amp``); None where the
    meta-device pass is not possible (a model kind whose forward needs real values): then only
    the weights are checked."""
    key = repr((cfg.model, cfg.data.n_ctx, cfg.data.n_pred, cfg.data.channels,
                cfg.data.image_size, cfg.train.batch_size, cfg.train.amp, cfg.loss))
    if key not in _ACTIVATIONS:
        from hvrnn.model import build_model

        try:
            with torch.device("meta"):
                model = build_model(cfg.model)
            model.train()
            one, two = (_saved_bytes(model, cfg, 1, t) for t in (1, 2))
            per_clip = one + (two - one) * (cfg.data.n_pred - 1)
            _ACTIVATIONS[key] = max(0, per_clip) * cfg.train.batch_size
        except Exception:  # noqa: BLE001  (an estimate only: the weights are still checked)
            _ACTIVATIONS[key] = None
    value = _ACTIVATIONS[key]
    amp = cfg.train.amp
    if value is not None and (amp == "bf16" or (amp == "auto" and device.type == "cuda")):
        value //= 2
    return value


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
