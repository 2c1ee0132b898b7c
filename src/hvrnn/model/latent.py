"""Prior / posterior network for one latent level (SPEC 3.4). Built once per level and role."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from hvrnn.distributions import DiagonalGaussian
from hvrnn.layers import ConvLSTMCell, InitNet, LSTMState


def upsample_to(z: Tensor, size: int) -> Tensor:
    """Nearest-neighbour up-sampling of (N, C, r, r) to (N, C, size, size)."""
    if z.shape[-1] == size:
        return z
    if z.shape[-1] == 1:
        return z.expand(-1, -1, size, size)
    return F.interpolate(z, size=(size, size), mode="nearest")


class LatentNet(nn.Module):
    """1x1 conv + GN -> ConvLSTM -> [concat up-sampled upper-level latents] -> 1x1 conv + GN.

    The last GroupNorm starts with weight 0 and bias ~ N(0, 1e-3^2) (SPEC 3.7), so at
    initialisation every head gives mean ~0 and variance ~softplus(0) = 0.693.

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

    def _dist(self, h: Tensor, dense: list[Tensor]) -> DiagonalGaussian:
        h = h.float()
        if dense:
            h = torch.cat([h] + [upsample_to(z.float(), self.resolution) for z in dense], dim=1)
        # The head, the softplus and everything downstream stay in float32 under autocast
        # (log(softplus(.)) underflows early in half precision; SPEC 8.4).
        with torch.autocast(h.device.type, enabled=False):
            raw = self.head_norm(self.head(h))
        return DiagonalGaussian.from_raw(raw, dim=1, var_floor=self.var_floor)

    def forward(self, x: Tensor, state: LSTMState, dense: list[Tensor]
                ) -> tuple[DiagonalGaussian, LSTMState]:
        """Whole sequence. x: (B, T, width, r, r); dense: [(B, T, C_j, r_j, r_j)] upper levels.

        Returns a DiagonalGaussian with (B, T, C_l, r, r) parameters and the last state.
        """
        b, t = x.shape[:2]
        gx = rearrange(self._gates(rearrange(x, "b t c h w -> (b t) c h w")),
                       "(b t) c h w -> b t c h w", b=b)
        hs = []
        for g in gx.unbind(1):  # unbind: one gradient buffer, not one per step
            state = self.lstm.step(g, state)
            hs.append(state.h)
        h = rearrange(torch.stack(hs, 1), "b t c h w -> (b t) c h w")
        dense = [rearrange(z, "b t c h w -> (b t) c h w") for z in dense]
        dist = self._dist(h, dense).map(lambda p: rearrange(p, "(b t) c h w -> b t c h w", b=b))
        return dist, state

    def step(self, x: Tensor, state: LSTMState, dense: list[Tensor]
             ) -> tuple[DiagonalGaussian, LSTMState]:
        """One step. x: (B, width, r, r); dense: [(B, C_j, r_j, r_j)] -> (B, C_l, r, r) params."""
        state = self.lstm.step(self._gates(x), state)
        return self._dist(state.h, dense), state
