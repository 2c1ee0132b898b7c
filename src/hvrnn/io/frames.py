"""The conversion between float frames and uint8 frames, written once.

Models, losses and metrics see float frames ``(..., C, H, W)`` in [0, 1]; files hold uint8 frames
``(..., H, W, C)``. Quantisation rounds to the nearest grey level (what the evaluation protocol
scores, docs/design.md section 6).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from hvrnn.errors import NonFiniteError


def non_finite_summary(frames: Tensor) -> str | None:
    """Which frames hold NaN or infinite values, in words; None when all are finite.

    Samples ``(B, S, T, C, H, W)`` are counted by sample and sequence, clips
    ``(B, T, C, H, W)`` by clip, anything else by value.
    """
    bad = ~torch.isfinite(frames.detach())
    if not bool(bad.any()):
        return None
    if frames.dim() == 6:
        per_sample = bad.flatten(2).any(-1)  # (B, S)
        return (f"{int(per_sample.sum())} of {per_sample.numel()} samples of "
                f"{int(per_sample.any(1).sum())} of {per_sample.shape[0]} sequences")
    if frames.dim() == 5:
        per_clip = bad.flatten(1).any(-1)
        return f"{int(per_clip.sum())} of {per_clip.numel()} clips"
    return f"{int(bad.sum())} of {bad.numel()} values"


def to_uint8(frames: Tensor, what: str = "frames") -> np.ndarray:
    """float ``(..., C, H, W)`` in [0, 1] -> uint8 ``(..., H, W, C)`` on the CPU.

    Values are clamped to [0, 1], scaled by 255 and rounded (half to even, as ``torch.round``).

    Raises:
        NonFiniteError: some values are NaN or infinite (a cast would turn them into arbitrary
            grey levels); the message says how many samples of how many sequences (``what``
            names the frames).
    """
    where = non_finite_summary(frames)
    if where is not None:
        raise NonFiniteError(f"{what} hold NaN or infinite values: {where} are affected; "
                             "nothing was written")
    x = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    return rearrange(x, "... c h w -> ... h w c").numpy()


def to_float(frames: np.ndarray | Tensor, dtype: torch.dtype = torch.float32,
             device: torch.device | str | None = None) -> Tensor:
    """uint8 ``(..., H, W, C)`` -> float ``(..., C, H, W)`` in [0, 1].

    Args:
        frames: a NumPy array (a read-only one, such as a memory map, is copied first) or a
            uint8 tensor.
        dtype: of the result (float64 keeps every grey level exact for the metrics).
        device: where the result lives (the uint8 data are moved before the conversion).
    """
    if isinstance(frames, Tensor):
        x = frames
    else:
        a = np.asarray(frames)
        x = torch.from_numpy(a if a.flags.writeable and a.flags.c_contiguous
                             else np.array(a, copy=True, order="C"))
    if device is not None:
        x = x.to(device)
    return uint8_to_float(rearrange(x, "... h w c -> ... c h w"), dtype)


def uint8_to_float(frames: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 grey levels ``k`` -> float ``k / 255`` in [0, 1], the layout unchanged.

    The scale of :func:`to_float` (which also moves channels first), for tensors that are
    already ``(..., C, H, W)``, such as uint8 frames handed to a metric function.
    """
    return frames.to(dtype) / 255.0


def read_image(source: Any, where: str, error: type[Exception], mode: str = "RGB"
               ) -> np.ndarray:
    """An image file (a path or a binary file object) as a uint8 array in PIL ``mode``.

    Every way a file can fail to be an image is one ``error`` naming ``where``: damaged or
    foreign data (``OSError``, ``ValueError``, ``SyntaxError`` from PIL's parsers) and an image
    whose header declares more than twice ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (PIL's
    ``DecompressionBombError``, raised before any pixel is decoded).
    """
    from PIL import Image

    try:
        with Image.open(source) as im:
            return np.asarray(im.convert(mode))
    except Image.DecompressionBombError as exc:
        raise error(f"'{where}' is too large an image to decode: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise error(f"cannot read image '{where}': {exc}") from None
