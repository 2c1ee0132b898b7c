"""The one rule for images given to a metric function: [0, 1] floats or uint8.

Every public metric function (:func:`~hvrnn.metrics.psnr`, :func:`~hvrnn.metrics.ssim`,
:func:`~hvrnn.metrics.lpips`, :func:`~hvrnn.metrics.fvd`, :func:`~hvrnn.metrics.i3d_features`,
:func:`~hvrnn.metrics.i3d_preprocess`) passes its images through :func:`unit_range`:

- ``uint8`` tensors are frames as stored on disk and are divided by 255 (the scale
  scikit-image's ``img_as_float`` and ``data_range=255`` imply for uint8 images);
- floating-point tensors must already lie in [0, 1]. Values outside it by more than
  :data:`RANGE_TOLERANCE` (rounding of a computation, not a different scale) raise a
  ``ValueError`` that names the range found, so frames in 0..255 or [-1, 1] are never scored
  silently as if they were in [0, 1]. NaN or infinite values raise as well.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hvrnn.io.frames import uint8_to_float

# Floats may exceed [0, 1] by this much (rounding in a decoder's sigmoid or a resize).
RANGE_TOLERANCE = 1e-4


def unit_range(x: Tensor, where: str, dtype: torch.dtype | None = None) -> Tensor:
    """Return ``x`` as a floating-point tensor in [0, 1], or raise.

    Args:
        x: any shape; uint8 (0..255) or floating point in [0, 1].
        where: ``"function: argument"`` for the error message, e.g. ``"psnr: pred"``.
        dtype: floating dtype of the result; default: float64 for uint8 (k / 255 exact to
            double precision) and the input's own dtype for floats.

    Returns:
        ``x / 255`` for uint8, ``x`` itself (cast to ``dtype`` if given) for floats.

    Raises:
        ValueError: a dtype other than uint8 or floating point; a float value outside
            [-RANGE_TOLERANCE, 1 + RANGE_TOLERANCE]; a NaN or infinite value.
    """
    if x.dtype == torch.uint8:
        return uint8_to_float(x, dtype or torch.float64)
    if not x.is_floating_point():
        raise ValueError(f"{where}: expected uint8 (0..255) or floating-point values in [0, 1], "
                         f"got dtype {x.dtype}")
    if x.numel():
        lo, hi = torch.aminmax(x.detach())
        lo, hi = float(lo), float(hi)
        if not (lo >= -RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE):  # also catches NaN
            bad = "NaN" if lo != lo or hi != hi else f"[{lo:.6g}, {hi:.6g}]"
            raise ValueError(
                f"{where}: float values must lie in [0, 1], found {bad}; divide 0..255 frames by "
                "255, map [-1, 1] frames with (x + 1) / 2, or pass uint8 tensors")
    return x if dtype is None else x.to(dtype)
