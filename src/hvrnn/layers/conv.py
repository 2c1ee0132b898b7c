"""Convolutional blocks (SPEC 3.1). All of them act on single frames (N, C, H, W); callers fold
time into the batch, so every normalisation is per frame and never leaks across time."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv2d(cin: int, cout: int, kernel: int, *, bias: bool = True, sees_1x1: bool = False,
           center_tap: bool = False) -> nn.Conv2d:
    """A same-padded convolution.

    A ``kernel``x``kernel`` convolution that only ever sees 1x1 maps uses its centre tap alone.
    With ``center_tap`` it is built as a 1x1 convolution (same function, 1/9 of the weights),
    initialised with the fan-in of the full kernel so the initial distribution is unchanged
    (SPEC 3.10). Such modules are tagged ``sees_1x1`` so the inert weights can be counted.
    """
    if sees_1x1 and center_tap and kernel > 1:
        conv = nn.Conv2d(cin, cout, 1, bias=bias)
        with torch.no_grad():  # default bound is 1/sqrt(fan_in); use the k*k fan-in instead
            conv.weight.mul_(1.0 / kernel)
            if bias:
                conv.bias.mul_(1.0 / kernel)
    else:
        conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias)
    conv.sees_1x1 = sees_1x1
    return conv


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
    """Initial ConvLSTM state from the K context feature maps (SPEC 3.1, 3.5).

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
