"""SVG's VGG-style frame encoder and decoder (``models/vgg_64.py`` of edenton/svg), used by
SVG-LP on BAIR (``model.frame_network: vgg``).

A "VGG layer" is a 3x3 convolution (padding 1), a normalisation and LeakyReLU(0.2). The encoder
has one block per resolution H, H/2, ..., 8 with max-pooling between them; block i has
``cfg.width(H / 2^i)`` channels (64, 128, 256, 512 at 64x64) and 2 layers for the two finest
resolutions, 3 for the others, as vgg_64; a 4x4 valid convolution, normalisation and tanh
turn the 4x4 features into the code. The decoder mirrors it with nearest-neighbour
up-sampling and the encoder's block outputs as skip connections. GroupNorm
(``model.gn_groups``) replaces BatchNorm, as in the DCGAN pair (docs/model.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from hvrnn.model.svg import SVGLPConfig


def vgg_layer(c_in: int, c_out: int, groups: int) -> nn.Sequential:
    """3x3 conv, GroupNorm, LeakyReLU(0.2) (vgg_64's ``vgg_layer`` with GroupNorm)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1), nn.GroupNorm(groups, c_out),
                         nn.LeakyReLU(0.2))


def _depths(n: int) -> list[int]:
    """Layers per block, finest first: 2, 2, then 3 (vgg_64: c1, c2 two; c3, c4 three)."""
    return [2 if i < 2 else 3 for i in range(n)]


class VGGEncoder(nn.Module):
    """Frame (N, C, H, W) -> code (N, g_dim) in (-1, 1) and skips, finest first."""

    def __init__(self, cfg: SVGLPConfig):
        super().__init__()
        res = cfg.stage_resolutions[:-2]  # H, H/2, ..., 8
        self.widths = [cfg.width(r) for r in res]
        chans, g = [cfg.image_channels, *self.widths], cfg.gn_groups
        self.blocks = nn.ModuleList()
        for i, depth in enumerate(_depths(len(res))):
            layers = [vgg_layer(chans[i], chans[i + 1], g)]
            layers += [vgg_layer(chans[i + 1], chans[i + 1], g) for _ in range(depth - 1)]
            self.blocks.append(nn.Sequential(*layers))
        self.head = nn.Sequential(nn.Conv2d(self.widths[-1], cfg.g_dim, 4, 1, 0),
                                  nn.GroupNorm(g, cfg.g_dim), nn.Tanh())

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        skips = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        return self.head(F.max_pool2d(x, 2)).flatten(1), skips


class VGGDecoder(nn.Module):
    """Code (N, g_dim) and encoder skips -> logits (N, C, H, W); mirrors :class:`VGGEncoder`.

    Block i (coarse to fine) reads the up-sampled features joined with the skip of its
    resolution: a VGG layer from twice the block width to the width, depth - 2 more at the
    width, then one to the next finer block's width; the finest block ends with a 3x3
    transposed convolution to the image channels (vgg_64's ``upc5``; SVG applies a sigmoid,
    here it gives logits).
    """

    def __init__(self, cfg: SVGLPConfig, widths: list[int]):
        super().__init__()
        g, top = cfg.gn_groups, widths[-1]
        self.stem = nn.Sequential(nn.ConvTranspose2d(cfg.g_dim, top, 4, 1, 0),
                                  nn.GroupNorm(g, top), nn.LeakyReLU(0.2))
        self.blocks = nn.ModuleList()
        depths = _depths(len(widths))
        for i in reversed(range(len(widths))):
            w = widths[i]
            layers: list[nn.Module] = [vgg_layer(2 * w, w, g)]
            layers += [vgg_layer(w, w, g) for _ in range(depths[i] - 2)]
            layers.append(vgg_layer(w, widths[i - 1], g) if i > 0 else
                          nn.ConvTranspose2d(w, cfg.image_channels, 3, 1, 1))
            self.blocks.append(nn.Sequential(*layers))

    def forward(self, g: Tensor, skips: list[Tensor]) -> Tensor:
        d = self.stem(g[:, :, None, None])  # 4x4
        for block, skip in zip(self.blocks, skips[::-1], strict=True):
            d = block(torch.cat([F.interpolate(d, scale_factor=2, mode="nearest"), skip], 1))
        return d


__all__ = ["VGGDecoder", "VGGEncoder", "vgg_layer"]
