"""Video prediction metrics: pure tensor functions returning per-frame values (B, T).

Images are floats in [0, 1] or uint8 (divided by 255); floats outside [0, 1] raise
(:mod:`hvrnn.metrics.inputs`). ``psnr`` and ``ssim`` need nothing else; ``lpips`` and ``fvd``
load pretrained networks from explicit local paths or the weights cache (:mod:`hvrnn.weights`)
and raise :class:`hvrnn.errors.WeightsError` when they are missing. Reductions over samples and
sequences live in :mod:`hvrnn.metrics.reduce`.
"""

from __future__ import annotations

from hvrnn.metrics.fvd import (
    RESIZE_MODES,
    frechet_distance,
    fvd,
    fvd_from_features,
    fvd_rounds,
    gaussian_stats,
    i3d_features,
    i3d_preprocess,
    resize_frames,
)
from hvrnn.metrics.i3d import I3D, MIN_FRAMES, load_i3d
from hvrnn.metrics.lpips import LPIPS, extract_lpips_heads, load_lpips, lpips
from hvrnn.metrics.psnr import PSNR_VARIANTS, psnr
from hvrnn.metrics.reduce import StreamingReducer, bootstrap_ci, select_samples, summarize
from hvrnn.metrics.ssim import SSIM_VARIANTS, ssim, ssim_variants

__all__ = [
    "I3D",
    "LPIPS",
    "MIN_FRAMES",
    "PSNR_VARIANTS",
    "RESIZE_MODES",
    "SSIM_VARIANTS",
    "StreamingReducer",
    "bootstrap_ci",
    "extract_lpips_heads",
    "frechet_distance",
    "fvd",
    "fvd_from_features",
    "fvd_rounds",
    "gaussian_stats",
    "i3d_features",
    "i3d_preprocess",
    "load_i3d",
    "load_lpips",
    "lpips",
    "psnr",
    "resize_frames",
    "select_samples",
    "ssim",
    "ssim_variants",
    "summarize",
]
