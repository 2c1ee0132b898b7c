"""Frame conversions used when preparing datasets: cropping, resizing, channel conversion.

All functions take and return uint8 frames ``(N, H, W, C)`` (the on-disk layout).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from hvrnn.errors import DataError

# ITU-R BT.601 luma, the weights of PIL's "L" conversion and of OpenCV's RGB2GRAY.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def center_square(frames: np.ndarray) -> np.ndarray:
    """Crop the centred square of side ``min(H, W)``.

    For a Cityscapes frame (2048 x 1024) this removes 512 columns on each side, as the original
    preprocessing does; for any other width the crop is ``(W - H) // 2`` on the left.

    Args:
        frames: ``(N, H, W, C)``.

    Returns:
        ``(N, S, S, C)`` with ``S = min(H, W)`` (a view, no copy).
    """
    h, w = frames.shape[1:3]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return frames[:, top:top + s, left:left + s]


def resize_frames(frames: np.ndarray, size: int | tuple[int, int], antialias: bool) -> np.ndarray:
    """Bilinear resize of uint8 frames.

    With ``antialias=False`` this is bilinear interpolation with half-pixel centres
    (``align_corners=False``), the sampling grid of OpenCV's ``INTER_LINEAR``; results differ
    from OpenCV by at most one grey level (OpenCV rounds its weights to 11-bit fixed point) and
    are identical for integer down-scaling factors. With ``antialias=True`` the filter support
    grows with the down-scaling factor, as PIL's bilinear resize does.

    Args:
        frames: uint8 ``(N, H, W, C)``.
        size: output side ``S`` or ``(H_out, W_out)``.
        antialias: widen the filter when down-scaling.

    Returns:
        uint8 ``(N, H_out, W_out, C)``, rounded to nearest.
    """
    out_hw = (size, size) if isinstance(size, int) else tuple(size)
    if frames.shape[1:3] == out_hw:
        return np.ascontiguousarray(frames)
    x = torch.from_numpy(np.ascontiguousarray(frames))
    x = rearrange(x, "n h w c -> n c h w").float()
    y = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=antialias)
    y = rearrange(y.round_().clamp_(0, 255).to(torch.uint8), "n c h w -> n h w c")
    return y.contiguous().numpy()


def convert_channels(frames: np.ndarray, channels: int) -> np.ndarray:
    """Convert uint8 frames to 1 (BT.601 luma) or 3 (grey repeated) channels.

    Args:
        frames: ``(N, H, W, C)`` with C in {1, 3, 4} (a 4th alpha channel is dropped).
        channels: 1 or 3.

    Returns:
        ``(N, H, W, channels)`` uint8.
    """
    c = frames.shape[-1]
    if c == 4:
        frames, c = frames[..., :3], 3
    if c == channels:
        return frames
    if c == 1 and channels == 3:
        return np.repeat(frames, 3, axis=-1)
    if c == 3 and channels == 1:
        luma = frames.astype(np.float32) @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)
        return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]
    raise DataError(f"cannot convert frames with {c} channels to {channels}")


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers numerically (``a2`` before ``a10``)."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]
