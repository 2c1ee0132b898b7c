"""Convolutional blocks (docs/design.md section 3.1).

All of them act on single frames (N, C, H, W); callers fold time into the batch, so every
normalisation is per frame and never leaks across time.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConvOn1x1(nn.Conv2d):
    """A same-padded ``kernel`` x ``kernel`` convolution whose input is always a 1x1 map.

    On a 1x1 map only the centre tap of a k x k kernel ever meets an input pixel; the others
    multiply padding. With ``center_tap`` the convolution is built as 1x1 (the same function,
    1/k^2 of the weights), initialised with the fan-in of the full kernel so that the initial
    distribution is unchanged (docs/design.md section 3.10); without it, it keeps the k x k
    kernel of the official code, whose other taps are inert (see ``inert_weights``).

    Attributes:
        nominal_kernel: k, the kernel size the convolution stands for.
    """

    def __init__(self, cin: int, cout: int, kernel: int, *, bias: bool = True,
                 center_tap: bool = False):
        built = 1 if center_tap else kernel
        super().__init__(cin, cout, built, padding=built // 2, bias=bias)
        self.nominal_kernel = kernel
        if center_tap and kernel > 1:
            with torch.no_grad():  # default bound is 1/sqrt(fan_in); use the k*k fan-in instead
                self.weight.mul_(1.0 / kernel)
                if bias:
                    self.bias.mul_(1.0 / kernel)

    @property
    def inert_weights(self) -> int:
        """Weights that never receive a gradient: all taps but the centre one of each kernel."""
        taps = self.kernel_size[0] * self.kernel_size[1]
        return self.weight.numel() // taps * (taps - 1)


def conv2d(cin: int, cout: int, kernel: int, *, bias: bool = True, sees_1x1: bool = False,
           center_tap: bool = False) -> nn.Conv2d:
    """A same-padded convolution; :class:`ConvOn1x1` when its input is always a 1x1 map."""
    if sees_1x1:
        return ConvOn1x1(cin, cout, kernel, bias=bias, center_tap=center_tap)
    return nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias)


class ResBlock(nn.Module):
    """Pre-activation residual block: ``shortcut(x) + scale * dx`` with
    ``dx = GN(conv3x3_nobias(lrelu(GN(conv3x3(lrelu(x))))))``; hidden width min(fin, fout)."""

    def __init__(self, fin: int, fout: int, groups: int = 4, scale: float = 0.1,
                 sees_1x1: bool = False, center_tap: bool = False):
        super().__init__()
        hid = min(fin, fout)
        self.scale = scale
        self.conv_0 = conv2d(fin, hid, 3, sees_1x1=sees_1x1, center_tap=center_tap)
        self.norm_0 = nn.GroupNorm(groups, hid)
        self.conv_1 = conv2d(hid, fout, 3, bias=False, sees_1x1=sees_1x1, center_tap=center_tap)
        self.norm_1 = nn.GroupNorm(groups, fout)
        self.shortcut = nn.Conv2d(fin, fout, 1, bias=False) if fin != fout else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        dx = self.norm_0(self.conv_0(self.act(x)))
        dx = self.norm_1(self.conv_1(self.act(dx)))
        return self.shortcut(x) + self.scale * dx


class ConvNormAct(nn.Sequential):
    """conv (with bias) -> GroupNorm -> LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int = 4):
        super().__init__(nn.Conv2d(cin, cout, kernel, padding=kernel // 2),
                         nn.GroupNorm(groups, cout), nn.LeakyReLU(0.2))


class UpConv(nn.Sequential):
    """Transposed conv (k4) -> GroupNorm -> LeakyReLU(0.2). ``from_1x1``: 1x1 -> 4x4 (s1, p0);
    otherwise the resolution doubles (s2, p1)."""

    def __init__(self, cin: int, cout: int, groups: int = 4, from_1x1: bool = False):
        stride, pad = (1, 0) if from_1x1 else (2, 1)
        super().__init__(nn.ConvTranspose2d(cin, cout, 4, stride, pad),
                         nn.GroupNorm(groups, cout), nn.LeakyReLU(0.2))


class InitNet(nn.Module):
    """Initial ConvLSTM state from the K context feature maps (docs/design.md sections 3.1, 3.5).

    ``(B, K, C, H, W)`` -> concat on channels (K*C) -> 1x1 ConvNormAct -> 1x1 conv (2*hid)
    -> GroupNorm(out_groups); first half is h0, second half c0.
    """

    def __init__(self, cin: int, n_ctx: int, hid: int, groups: int = 4, out_groups: int = 1):
        super().__init__()
        k = cin * n_ctx
        self.net = nn.Sequential(ConvNormAct(k, k, 1, groups), nn.Conv2d(k, 2 * hid, 1),
                                 nn.GroupNorm(out_groups, 2 * hid))

    def forward(self, ctx: Tensor) -> tuple[Tensor, Tensor]:
        b, k, c, h, w = ctx.shape
        h0, c0 = self.net(ctx.reshape(b, k * c, h, w)).chunk(2, dim=1)  # (B, hid, H, W) each
        return h0, c0
