"""Video prediction metrics: pure tensor functions returning per-frame values (B, T).

``psnr`` and ``ssim`` need nothing else; ``lpips`` and ``fvd`` load pretrained networks from
explicit local paths and raise :class:`hvrnn.errors.WeightsError` when they are missing.
Reductions over samples and sequences live in :mod:`hvrnn.metrics.reduce`.
"""

from __future__ import annotations

from hvrnn.metrics.fvd import (
    frechet_distance,
    fvd,
    fvd_from_features,
    fvd_rounds,
    gaussian_stats,
    i3d_features,
    i3d_preprocess,
)
from hvrnn.metrics.i3d import I3D, load_i3d
from hvrnn.metrics.lpips import LPIPS, extract_lpips_heads, load_lpips, lpips
from hvrnn.metrics.psnr import PSNR_VARIANTS, psnr
from hvrnn.metrics.reduce import StreamingReducer, bootstrap_ci, select_samples, summarize
from hvrnn.metrics.ssim import SSIM_VARIANTS, ssim, ssim_variants

__all__ = [
    "I3D",
    "LPIPS",
    "PSNR_VARIANTS",
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
    "select_samples",
    "ssim",
    "ssim_variants",
    "summarize",
]
