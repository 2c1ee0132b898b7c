"""Speed options applied to a built model from outside it: none changes the function computed
beyond float rounding (tests/test_accel.py states the tolerances and checks them).

* :func:`compile_cells`: ``torch.compile`` of every ConvLSTM's per-frame recurrent step
  (:meth:`hvrnn.layers.ConvLSTMCell.step`), the code that the teacher-forced unroll and the
  step-wise sampler run once per frame and per cell. On a GPU a small model is bound by kernel
  launches there; compiling fuses the gate arithmetic and the GroupNorms into a few kernels,
  and mode ``reduce-overhead`` replays them as CUDA graphs. The compiled function is the very
  method the plain path calls, so the CPU tests check the same code the GPU runs.
* :func:`to_channels_last`: 4-D weights in the channels_last memory format (convolutions then
  produce channels_last activations).
* :func:`group_norm_in_bf16`: GroupNorm (and so the ConvLSTM gates after it) in bf16 under
  bf16 autocast instead of autocast's float32 round trip.
* :func:`adam_options`: ``fused=True`` for ``torch.optim.Adam`` (one kernel per device for
  the whole update; it also takes the device-side finite flag, ``found_inf``).

The ``auto`` value of an option means "on where it pays": on CUDA, off on the CPU
(docs/benchmarks.md has the CPU measurements behind each default).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hvrnn.layers.convlstm import ConvLSTMCell


def cpu_bf16_native() -> bool:
    """Whether this CPU has oneDNN's bf16 kernels (AVX-512 and newer). Without them, bf16
    autocast on the CPU is emulated: a training step of the ``smmnist32`` recipe takes about 15
    times as long as in float32 on a 2-core AVX2 AMD EPYC (docs/benchmarks.md)."""
    return bool(torch.backends.mkldnn.is_available()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def enabled(value: str, device: torch.device | str) -> bool:
    """An ``auto | enabled | disabled`` option on ``device``: auto is on for CUDA only."""
    if value == "auto":
        return torch.device(device).type == "cuda"
    return value == "enabled"


def compile_cells(model: nn.Module, mode: str = "default", backend: str = "inductor",
                  dynamic: bool | None = None) -> int:
    """Replace every :class:`~hvrnn.layers.ConvLSTMCell`'s ``step`` in ``model`` by its
    ``torch.compile`` (an instance attribute: the weights, ``state_dict`` and checkpoints are
    untouched; compiling twice is a no-op). Compilation happens at the first call of each cell
    (and again for a new batch size, after which the batch dimension is dynamic).

    Args:
        mode: torch.compile mode ("default", "reduce-overhead" for CUDA graphs, ...).
        backend: torch.compile backend ("inductor"; "aot_eager" traces without generating code,
            which the tests use to check the captured graph quickly).
        dynamic: torch.compile's ``dynamic``.

    Returns:
        The number of cells compiled.
    """
    cells = [c for c in model.modules() if isinstance(c, ConvLSTMCell) and "step" not in vars(c)]
    for cell in cells:
        kwargs: dict[str, Any] = {"backend": backend, "dynamic": dynamic}
        if backend == "inductor":
            kwargs["mode"] = mode
        cell.step = torch.compile(cell.step, **kwargs)
    raise_recompile_limit(8 * len(cells))
    return len(cells)


def raise_recompile_limit(n: int) -> None:
    """Let dynamo keep at least ``n`` compiled versions of one function. Every cell shares the
    code of ``ConvLSTMCell.step``, and each width, resolution and batch is another version;
    past dynamo's default limit (8) the remaining cells would silently run uncompiled."""
    import torch._dynamo.config as dynamo

    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                 "accumulated_cache_size_limit"):
        if hasattr(dynamo, name) and getattr(dynamo, name) < n:
            setattr(dynamo, name, n)


def uncompile_cells(model: nn.Module) -> None:
    """Undo :func:`compile_cells` (the class's plain ``step`` again)."""
    for cell in model.modules():
        if isinstance(cell, ConvLSTMCell):
            vars(cell).pop("step", None)


def _group_norm_keeping_dtype(norm: nn.GroupNorm, x: Tensor) -> Tensor:
    """GroupNorm in the input's dtype when it is a half type (bf16 under autocast), instead of
    autocast's float32 round trip; float32 inputs take the module's own path."""
    if x.dtype not in (torch.bfloat16, torch.float16):
        return nn.GroupNorm.forward(norm, x)
    with torch.autocast(x.device.type, enabled=False):
        weight = None if norm.weight is None else norm.weight.to(x.dtype)
        bias = None if norm.bias is None else norm.bias.to(x.dtype)
        return F.group_norm(x, norm.num_groups, weight, bias, norm.eps)


def group_norm_in_bf16(model: nn.Module) -> int:
    """Let every ``nn.GroupNorm`` of ``model`` run in bf16 when its input is bf16
    (``train.amp_group_norm=bf16``): autocast otherwise computes GroupNorm in float32 and hands
    float32 to the ConvLSTM gates, a cast before and after every normalisation. The statistics
    are still accumulated in float32 inside the kernel; inputs that are float32 (the latent
    heads, which run outside autocast) are unchanged. Returns the number of layers changed."""
    n = 0
    for norm in model.modules():
        if isinstance(norm, nn.GroupNorm) and "forward" not in vars(norm):
            norm.forward = partial(_group_norm_keeping_dtype, norm)
            n += 1
    return n


def to_channels_last(model: nn.Module) -> nn.Module:
    """The model's 4-D parameters and buffers in the channels_last memory format (in place)."""
    return model.to(memory_format=torch.channels_last)


def adam_options(fused: str, device: torch.device | str) -> dict[str, Any]:
    """Keyword arguments of ``torch.optim.Adam`` for ``train.fused_optimizer`` on ``device``."""
    return {"fused": True} if enabled(fused, device) else {}


def device_finite_check(finite_check: str, fused: str, device: torch.device | str) -> bool:
    """Whether ``train.finite_check`` decides on the device (needs the fused optimiser)."""
    if finite_check == "auto":
        return enabled(fused, device) and torch.device(device).type == "cuda"
    return finite_check == "device"


def prepare_model(model: nn.Module, device: torch.device | str, *,
                  channels_last: str = "disabled", compile_cells_mode: str | None = None
                  ) -> nn.Module:
    """Apply the memory format and (if a mode is given) the compiled cells; returns ``model``."""
    if enabled(channels_last, device):
        to_channels_last(model)
    if compile_cells_mode is not None:
        compile_cells(model, compile_cells_mode)
    return model


__all__ = ["adam_options", "compile_cells", "cpu_bf16_native", "device_finite_check", "enabled",
           "group_norm_in_bf16", "prepare_model", "to_channels_last", "uncompile_cells"]
