"""Structural similarity (Wang et al., 2004) per frame, with batched torch convolutions
(docs/design.md section 6.3).

The values reproduce ``skimage.metrics.structural_similarity`` (scikit-image >= 0.19) on each
channel of each frame, averaged over channels. uint8 frames are divided by 255 first, so the
``"skimage"`` value of uint8 frames equals scikit-image's SSIM of the uint8 images with its
default ``data_range=255``:

- ``"skimage"``: the scikit-image defaults with ``data_range=1``: a 7x7 uniform window,
  ``K1=0.01``, ``K2=0.03``, sample covariances (variance times ``N / (N - 1)``, N = 49).
- ``"gaussian"``: ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False`` with
  ``data_range=1``: the 11x11 Gaussian window of Wang et al. (2004).
- ``"legacy"``: the ``"skimage"`` setting with ``data_range=2``, which old scikit-image
  (``compare_ssim``, as used by SVG) silently chose for float images; it inflates SSIM.

Like scikit-image, the SSIM map is averaged only over the interior where the window lies fully
inside the image (a border of ``(win_size - 1) // 2`` pixels is cropped), so the filter's
border mode never matters and a 'valid' convolution gives the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from hvrnn.metrics.inputs import unit_range


@dataclass(frozen=True)
class SSIMVariant:
    """Parameters of one SSIM variant (names follow scikit-image's arguments)."""

    name: str
    data_range: float
    gaussian_weights: bool
    use_sample_covariance: bool
    win_size: int = 7
    sigma: float = 1.5
    k1: float = 0.01
    k2: float = 0.03


_CHUNK = 1024  # single-channel images filtered at once

SSIM_VARIANTS: dict[str, SSIMVariant] = {
    "skimage": SSIMVariant("skimage", 1.0, gaussian_weights=False, use_sample_covariance=True),
    # truncate=3.5 and sigma=1.5 give scikit-image's 11-tap window (radius int(3.5*1.5+0.5)).
    "gaussian": SSIMVariant("gaussian", 1.0, gaussian_weights=True, use_sample_covariance=False,
                            win_size=11),
    "legacy": SSIMVariant("legacy", 2.0, gaussian_weights=False, use_sample_covariance=True),
}


def _window_1d(v: SSIMVariant, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(win_size,) separable filter taps that sum to 1."""
    if v.gaussian_weights:
        r = (v.win_size - 1) // 2
        x = torch.arange(-r, r + 1, dtype=dtype, device=device)
        w = torch.exp(-0.5 * (x / v.sigma) ** 2)
    else:
        w = torch.ones(v.win_size, dtype=dtype, device=device)
    return w / w.sum()


def _local_moments(x: Tensor, y: Tensor, v: SSIMVariant) -> tuple[Tensor, ...]:
    """Local means, variances and covariance over the valid interior.

    x, y: (N, H, W) images. Returns ux, uy, vx, vy, vxy, each (N, H - w + 1, W - w + 1).
    """
    maps = torch.stack([x, y, x * x, y * y, x * y], dim=1)  # (N, 5, H, W)
    k = v.win_size
    if v.gaussian_weights:
        w = _window_1d(v, x.dtype, x.device)
        maps = F.conv2d(maps, w.view(1, 1, 1, k).expand(5, 1, 1, k), groups=5)  # along W
        maps = F.conv2d(maps, w.view(1, 1, k, 1).expand(5, 1, k, 1), groups=5)  # along H
    else:
        # A separable box filter; average pooling is several times faster than conv2d on CPU.
        maps = F.avg_pool2d(F.avg_pool2d(maps, (1, k), stride=1), (k, 1), stride=1)
    ux, uy, uxx, uyy, uxy = maps.unbind(1)
    n = k * k
    cov_norm = n / (n - 1) if v.use_sample_covariance else 1.0
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    return ux, uy, vx, vy, vxy


def _ssim_from_moments(moments: tuple[Tensor, ...], v: SSIMVariant) -> Tensor:
    """(N,) mean SSIM over the interior for one variant's constants."""
    ux, uy, vx, vy, vxy = moments
    c1 = (v.k1 * v.data_range) ** 2
    c2 = (v.k2 * v.data_range) ** 2
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return (num / den).mean(dim=(-2, -1))


def ssim_variants(pred: Tensor, target: Tensor,
                  variants: tuple[str | SSIMVariant, ...] = ("skimage",),
                  dtype: torch.dtype = torch.float64) -> dict[str, Tensor]:
    """Several SSIM variants at once; variants with the same window share the filtering.

    Args:
        pred: (B, T, C, H, W) floats in [0, 1], or uint8 (divided by 255).
        target: (B, T, C, H, W), same rule.
        variants: names from :data:`SSIM_VARIANTS`, or :class:`SSIMVariant` objects (the
            parameters of a metric convention, :mod:`hvrnn.metrics.conventions`).
        dtype: computation precision; float64 (default) matches scikit-image to ~1e-12.

    Returns:
        ``{variant name: (B, T)}`` SSIM per frame, the mean over channels of each channel's SSIM.

    Raises:
        ValueError: shapes differ or are not 5-d, frames smaller than a window, an unknown
            variant, or float values outside [0, 1] (the range found is named).
    """
    if pred.shape != target.shape or pred.dim() != 5:
        raise ValueError(f"ssim: pred {tuple(pred.shape)} and target {tuple(target.shape)} "
                         "must both be (B, T, C, H, W)")
    chosen: list[SSIMVariant] = []
    for v in variants:
        if isinstance(v, SSIMVariant):
            chosen.append(v)
        elif v in SSIM_VARIANTS:
            chosen.append(SSIM_VARIANTS[v])
        else:
            raise ValueError(f"ssim: unknown variant {v!r}; expected one of "
                             f"{tuple(SSIM_VARIANTS)}")
    pred = unit_range(pred, "ssim: pred")
    target = unit_range(target, "ssim: target")
    b, t, c, h, w = pred.shape
    for v in chosen:
        if min(h, w) < v.win_size:
            raise ValueError(f"ssim: frames of {h}x{w} are smaller than the {v.win_size}x"
                             f"{v.win_size} window of variant {v.name!r}")
    x = rearrange(pred, "b t c h w -> (b t c) h w")
    y = rearrange(target, "b t c h w -> (b t c) h w")
    parts: dict[str, list[Tensor]] = {v.name: [] for v in chosen}
    # Chunks of single-channel images bound the memory of the five filtered maps.
    for start in range(0, x.shape[0], _CHUNK):
        xc = x[start:start + _CHUNK].to(dtype)
        yc = y[start:start + _CHUNK].to(dtype)
        cache: dict[tuple[bool, bool, int, float], tuple[Tensor, ...]] = {}
        for v in chosen:
            key = (v.gaussian_weights, v.use_sample_covariance, v.win_size, v.sigma)
            if key not in cache:
                cache[key] = _local_moments(xc, yc, v)
            parts[v.name].append(_ssim_from_moments(cache[key], v))
    out: dict[str, Tensor] = {}
    for v in chosen:
        per_channel = rearrange(torch.cat(parts[v.name]), "(b t c) -> b t c", b=b, t=t, c=c)
        out[v.name] = per_channel.mean(-1).to(torch.float64)
    return out


def ssim(pred: Tensor, target: Tensor, variant: str = "skimage") -> Tensor:
    """SSIM of every frame (see the module docstring for the variants).

    Args:
        pred: (B, T, C, H, W) floats in [0, 1], or uint8 (divided by 255).
        target: (B, T, C, H, W), same rule.
        variant: ``"skimage"`` (default, data_range=1), ``"gaussian"`` or ``"legacy"``.

    Returns:
        (B, T) float64.
    """
    return ssim_variants(pred, target, (variant,))[variant]


def gaussian_win_size(sigma: float, truncate: float = 3.5) -> int:
    """Window size scikit-image uses for ``gaussian_weights=True``: ``2 * int(t*s + 0.5) + 1``."""
    return 2 * int(truncate * sigma + 0.5) + 1

