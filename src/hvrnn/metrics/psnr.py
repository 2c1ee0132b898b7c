"""Peak signal-to-noise ratio per frame (docs/design.md section 6.3)."""

from __future__ import annotations

import torch
from einops import reduce
from torch import Tensor

from hvrnn.metrics.inputs import unit_range

PSNR_VARIANTS = ("global", "per_channel")


def _check_pair(pred: Tensor, target: Tensor, name: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"{name}: pred {tuple(pred.shape)} and target {tuple(target.shape)} "
                         "must have the same shape")
    if pred.dim() != 5:
        raise ValueError(f"{name}: expected (B, T, C, H, W) videos, got {tuple(pred.shape)}")


def psnr(pred: Tensor, target: Tensor, variant: str = "global") -> Tensor:
    """PSNR in dB of every frame, with a data range of 1.

    Args:
        pred: (B, T, C, H, W) floats in [0, 1], or uint8 (divided by 255; the uint8 result
            equals scikit-image's ``peak_signal_noise_ratio`` on the uint8 frames).
        target: (B, T, C, H, W), same rule.
        variant: ``"global"``: ``10 log10(1 / MSE)`` with the MSE over all pixels and channels
            (scikit-image's ``peak_signal_noise_ratio(data_range=1)`` on the whole frame).
            ``"per_channel"``: the mean over channels of each channel's PSNR (what SVG's
            evaluation script reports for colour frames).

    Returns:
        (B, T) float64. A frame identical to its target has MSE 0 and PSNR ``+inf``, as in
        scikit-image; reductions over such frames stay ``inf``.

    Raises:
        ValueError: shapes differ or are not 5-d; float values outside [0, 1] (the message
            names the range found; see :mod:`hvrnn.metrics.inputs`).
    """
    _check_pair(pred, target, "psnr")
    pred = unit_range(pred, "psnr: pred", torch.float64)
    target = unit_range(target, "psnr: target", torch.float64)
    if variant not in PSNR_VARIANTS:
        raise ValueError(f"psnr: unknown variant {variant!r}; expected one of {PSNR_VARIANTS}")
    err = (pred - target) ** 2  # (B, T, C, H, W)
    # torch divides by zero without a warning: MSE 0 gives +inf.
    if variant == "global":
        mse = reduce(err, "b t c h w -> b t", "mean")
        return 10.0 * torch.log10(1.0 / mse)
    mse = reduce(err, "b t c h w -> b t c", "mean")
    return (10.0 * torch.log10(1.0 / mse)).mean(-1)
