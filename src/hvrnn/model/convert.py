"""Deprecated place of :func:`hvrnn.layers.convert.to_center_taps` (3x3 weights on 1x1 maps ->
the centre-tap layout); the name still resolves here, with a DeprecationWarning."""

from __future__ import annotations

import warnings
from typing import Any

from hvrnn.layers import convert


def __getattr__(name: str) -> Any:
    if name != "to_center_taps":
        raise AttributeError(f"module 'hvrnn.model.convert' has no attribute {name!r}")
    warnings.warn("hvrnn.model.convert.to_center_taps is deprecated; use "
                  "hvrnn.layers.convert.to_center_taps", DeprecationWarning, stacklevel=2)
    return convert.to_center_taps
