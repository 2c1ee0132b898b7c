"""Prior / posterior network for one latent level (docs/design.md section 3.4).

Built once per level and role; the hierarchical VRNN hands it the up-sampled upper-level
latents (dense connectivity) already concatenated.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from hvrnn.distributions import DiagonalGaussian
from hvrnn.layers import ConvLSTMCell, InitNet, LSTMState


class LatentNet(nn.Module):
    """1x1 conv + GN -> ConvLSTM -> [concat upper-level latents] -> 1x1 conv + GN head.

    The last GroupNorm starts with weight 0 and bias ~ N(0, 1e-3^2) (docs/design.md section 3.7),
    so at initialisation every head gives mean ~0 and variance ~softplus(0) = 0.693.

    Args:
        width: channels of the encoder stage it reads (also its ConvLSTM width).
        resolution: spatial size r of the latent map.
        channels: latent channels C_l.
        dense_channels: total channels of the upper-level latents concatenated before the head.
    """

    def __init__(self, width: int, resolution: int, channels: int, dense_channels: int,
                 n_ctx: int, *, groups: int, lstm_groups: int, latent_groups: int,
                 center_tap: bool, var_floor: float):
        super().__init__()
        self.resolution, self.channels, self.var_floor = resolution, channels, var_floor
        self.dense_channels = dense_channels
        self.in_conv = nn.Conv2d(width, width, 1)
        self.in_norm = nn.GroupNorm(latent_groups, width)
        self.lstm = ConvLSTMCell(width, width, lstm_groups, sees_1x1=resolution == 1,
                                 center_tap=center_tap)
        self.head = nn.Conv2d(width + dense_channels, 2 * channels, 1)
        self.head_norm = nn.GroupNorm(latent_groups, 2 * channels)
        self.init_net = InitNet(width, n_ctx, width, groups, latent_groups)
        nn.init.zeros_(self.head_norm.weight)
        nn.init.normal_(self.head_norm.bias, std=1e-3)

    def init_state(self, ctx: Tensor) -> LSTMState:
        """ctx: (B, K, width, r, r) context features -> ConvLSTM state."""
        return LSTMState(*self.init_net(ctx))

    def _gates(self, x: Tensor) -> Tensor:
        return self.lstm.input_gates(self.in_norm(self.in_conv(x)))

    def _dist(self, h: Tensor, upper: Tensor | None) -> DiagonalGaussian:
        h = h.float()
        if upper is not None:
            h = torch.cat([h, upper.float()], dim=1)
        # The head, the softplus and everything downstream stay in float32 under autocast
        # (log(softplus(.)) underflows early in half precision; docs/design.md section 7).
        with torch.autocast(h.device.type, enabled=False):
            raw = self.head_norm(self.head(h))
        return DiagonalGaussian.from_raw(raw, dim=1, var_floor=self.var_floor)

    def forward(self, x: Tensor, state: LSTMState, upper: Tensor | None
                ) -> tuple[DiagonalGaussian, LSTMState]:
        """Whole sequence. x: (B, T, width, r, r); upper: (B, T, dense_channels, r, r) or None.

        Returns a DiagonalGaussian with (B, T, C_l, r, r) parameters and the last state.
        """
        b = x.shape[0]
        gx = rearrange(self._gates(rearrange(x, "b t c h w -> (b t) c h w")),
                       "(b t) c h w -> b t c h w", b=b)
        hs = []
        for g in gx.unbind(1):  # unbind: one gradient buffer, not one per step
            state = self.lstm.step(g, state)
            hs.append(state.h)
        h = rearrange(torch.stack(hs, 1), "b t c h w -> (b t) c h w")
        if upper is not None:
            upper = rearrange(upper, "b t c h w -> (b t) c h w")
        dist = self._dist(h, upper).map(lambda p: rearrange(p, "(b t) c h w -> b t c h w", b=b))
        return dist, state

    def step(self, x: Tensor, state: LSTMState, upper: Tensor | None
             ) -> tuple[DiagonalGaussian, LSTMState]:
        """One step. x: (B, width, r, r); upper: (B, dense_channels, r, r) or None
        -> (B, C_l, r, r) parameters and the new state."""
        state = self.lstm.step(self._gates(x), state)
        return self._dist(state.h, upper), state
