"""Normalised ConvLSTM cell (docs/design.md section 3.1).

It is split so that the input-to-hidden convolution can run over every time step at once and
only the recurrent half steps.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from einops import rearrange
from torch import Tensor, nn

from hvrnn.layers.conv import conv2d


class LSTMState(NamedTuple):
    h: Tensor  # (B, hid, H, W)
    c: Tensor  # (B, hid, H, W), the normalised cell


class ConvLSTMCell(nn.Module):
    """``g = GN(conv_x(x)) + GN(conv_h(h))``, gates in the order (input, forget, output,
    candidate); ``c' = GN(f*c + i*tanh(cand))``, ``h' = o * tanh(c')``."""

    def __init__(self, cin: int, hid: int, groups: int = 16, kernel: int = 3,
                 sees_1x1: bool = False, center_tap: bool = False):
        super().__init__()
        self.hid = hid
        self.ih = conv2d(cin, 4 * hid, kernel, sees_1x1=sees_1x1, center_tap=center_tap)
        self.ih_norm = nn.GroupNorm(groups, 4 * hid)
        self.hh = conv2d(hid, 4 * hid, kernel, sees_1x1=sees_1x1, center_tap=center_tap)
        self.hh_norm = nn.GroupNorm(groups, 4 * hid)
        self.c_norm = nn.GroupNorm(groups, hid)

    def input_gates(self, x: Tensor) -> Tensor:
        """x: (N, cin, H, W) -> (N, 4*hid, H, W); N may fold batch and time together."""
        return self.ih_norm(self.ih(x))

    def step(self, gx: Tensor, state: LSTMState) -> LSTMState:
        """One recurrent step from precomputed input gates ``gx`` (B, 4*hid, H, W)."""
        g = gx + self.hh_norm(self.hh(state.h))
        i, f, o, u = g.chunk(4, dim=1)
        c = self.c_norm(torch.sigmoid(f) * state.c + torch.sigmoid(i) * torch.tanh(u))
        return LSTMState(torch.sigmoid(o) * torch.tanh(c), c)

    def forward(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """Run a whole sequence. x: (B, T, cin, H, W) -> hidden states (B, T, hid, H, W)."""
        b = x.shape[0]
        gx = rearrange(self.input_gates(rearrange(x, "b t c h w -> (b t) c h w")),
                       "(b t) c h w -> b t c h w", b=b)
        hs = []
        # unbind, not gx[:, t]: the backward of T selects would allocate and zero T copies of
        # the whole gate tensor (quadratic in T); unbind's backward stacks once.
        for g in gx.unbind(1):
            state = self.step(g, state)
            hs.append(state.h)
        return torch.stack(hs, dim=1), state
