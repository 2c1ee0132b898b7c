"""Move weights between the 3x3 layout of 1x1 maps (the official one) and ``center_tap_1x1``."""

from __future__ import annotations

from torch import Tensor, nn

from hvrnn.layers.conv import ConvOn1x1


def to_center_taps(state_dict: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Adapt a state dict saved with ``center_tap_1x1=False`` to ``model`` (built with it on).

    Every k x k kernel that only sees 1x1 maps keeps its centre tap, which is all it ever used,
    so the converted model computes exactly the same function.
    """
    out = dict(state_dict)
    for name, module in model.named_modules():
        if isinstance(module, ConvOn1x1) and module.kernel_size == (1, 1):
            key = f"{name}.weight"
            w = state_dict[key]
            if w.shape[-1] > 1:
                out[key] = w[..., w.shape[-2] // 2: w.shape[-2] // 2 + 1,
                             w.shape[-1] // 2: w.shape[-1] // 2 + 1].clone()
    return out
