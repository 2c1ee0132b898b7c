"""Frame encoder (docs/design.md section 3.2), shared by the decoder, the priors and the
posteriors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from hvrnn.layers import ResBlock

if TYPE_CHECKING:
    from hvrnn.model.hvrnn import HVRNNConfig

Features = dict[int, Tensor]
"""Encoder features of frames by resolution: ``{r: (..., C_r, r, r)}`` for every stage."""


def features_1x1(feats: Features) -> Tensor:
    """The 1x1 features (stage E5): the decoder's frame input and the top latent level's."""
    return feats[1]


class FrameEncoder(nn.Module):
    """Per-frame feature pyramid. Stage outputs are the raw residual stream (no activation).

    For 64x64: E0 (64ch, 64x64), E1 (128, 32), E2 (256, 16), E3 (512, 8), E4 (512, 4),
    E5 (512, 1). The 1x1 stage is a 4x4 max-pool (global max) followed by two ResBlocks.
    """

    def __init__(self, cfg: HVRNNConfig):
        super().__init__()
        res = cfg.stage_resolutions  # finest first, e.g. (64, 32, 16, 8, 4, 1)
        self.resolutions = res
        g, s, ct = cfg.gn_groups, cfg.residual_scale, cfg.center_tap_1x1
        stages = []
        for i, r in enumerate(res):
            w = cfg.width(r)
            if i == 0:
                blocks = [nn.Conv2d(cfg.image_channels, w, 1), ResBlock(w, w, g, s)]
            elif r == 1:
                w_in = cfg.width(res[i - 1])
                blocks = [nn.MaxPool2d(4, 1), ResBlock(w_in, w, g, s, sees_1x1=True, center_tap=ct),
                          ResBlock(w, w, g, s, sees_1x1=True, center_tap=ct)]
            else:
                w_in = cfg.width(res[i - 1])
                blocks = [nn.MaxPool2d(2, 2), ResBlock(w_in, w, g, s), ResBlock(w, w, g, s)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> Features:
        """x: (N, C, H, W) in [0, 1] -> {resolution: (N, C_r, r, r)} for every stage."""
        feats = {}
        for r, stage in zip(self.resolutions, self.stages, strict=True):
            x = stage(x)
            feats[r] = x
        return feats
