"""The latent levels of the hierarchical VRNN: the prior / posterior network of one level
(docs/design.md section 3.4), dense connectivity, and the one loop over the levels.

:class:`LatentNet` is built once per level and role; :func:`latent_levels` runs the nets of
every level, coarsest first, handing each head the up-sampled upper-level latents
(:func:`dense_input`) already concatenated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

from hvrnn.distributions import DiagonalGaussian
from hvrnn.layers import ConvLSTMCell, InitNet, LSTMState
from hvrnn.model.encoder import Features


def upsample_nearest(z: Tensor, size: int) -> Tensor:
    """Nearest-neighbour up-sampling of (..., C, r, r) to (..., C, size, size), r | size."""
    r = z.shape[-1]
    if r == size:
        return z
    if r == 1:
        return z.expand(*z.shape[:-2], size, size)
    return z.repeat_interleave(size // r, dim=-2).repeat_interleave(size // r, dim=-1)


def dense_input(z_upper: list[Tensor], resolution: int) -> Tensor | None:
    """Dense connectivity: the same step's upper-level latents z_t^<l for level l's head.

    Args:
        z_upper: z_t^1 .. z_t^{l-1}, each (..., C_j, r_j, r_j) (with or without a T axis).
        resolution: r_l.

    Returns:
        (..., sum_j C_j, r_l, r_l) float32: each latent up-sampled (nearest neighbour) to r_l,
        concatenated on channels; None for the top level (nothing above it).
    """
    if not z_upper:
        return None
    return torch.cat([upsample_nearest(z.float(), resolution) for z in z_upper], dim=-3)


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


@dataclass
class LevelPass:
    """The latent levels of one pass, coarsest first: per level the prior and (when the
    posterior ran) the posterior, the latent drawn, and the nets' new recurrent states."""

    prior: list[DiagonalGaussian] = field(default_factory=list)
    posterior: list[DiagonalGaussian] = field(default_factory=list)
    z: list[Tensor] = field(default_factory=list)
    prior_states: list[LSTMState] = field(default_factory=list)
    posterior_states: list[LSTMState] = field(default_factory=list)


# How a level's latent is drawn: (level, prior, posterior or None) -> z.
Draw = Callable[[int, DiagonalGaussian, DiagonalGaussian | None], Tensor]


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def level_step(net: LatentNet, feats: Tensor, state: LSTMState, z_upper: list[Tensor],
               over_time: bool) -> tuple[DiagonalGaussian, LSTMState]:
    """One latent net: over the sequence, feats (B, T, C_r, r, r) of the frames it reads and
    z_upper the upper levels' (B, T, C_j, r_j, r_j) samples it is densely connected to; or one
    step, the same without T."""
    upper = dense_input(z_upper, net.resolution)
    return net(feats, state, upper) if over_time else net.step(feats, state, upper)


def latent_levels(prior: Sequence[LatentNet], posterior: Sequence[LatentNet], prior_dense: bool,
                  prev: Features, cur: Features | None, draw: Draw, *, over_time: bool,
                  ctx: Features | None = None, prior_states: list[LSTMState] | None = None,
                  posterior_states: list[LSTMState] | None = None,
                  run: Callable[..., Any] = _call) -> LevelPass:
    """The latent hierarchy of one pass, coarsest level first (supplementary Eqs. 7, 8): level
    l's prior net ``prior[l]`` reads E(x_{t-1}) and, with ``prior_dense``, z_t^<l; its
    posterior net, when ``cur`` = E(x_t) is given, reads E(x_t) and z_t^<l; ``draw`` picks
    z_t^l from them. Training, one-step predictions and the step API of
    :class:`~hvrnn.model.hvrnn.HierarchicalVRNN` all run this loop.

    Args:
        prior, posterior: one net per level, coarsest first; level l at ``prior[l].resolution``.
        prev, cur: {r: features}, (B, T, C_r, r, r) when ``over_time`` else (B, C_r, r, r).
        ctx: {r: (B, K, C_r, r, r)} context features that each net starts from, or None to
            continue from ``prior_states`` and ``posterior_states``, the ConvLSTM state of each
            level's net.
        run: calls :func:`level_step` (activation checkpointing wraps it).
    """
    out = LevelPass()
    for level, p_net in enumerate(prior):
        r = p_net.resolution
        upper = list(out.z)  # z^<l, a copy: a recomputation must see the list as it is now
        q = None
        if cur is not None:  # q(z_t^l | z_t^<l, x_<=t, c)
            net = posterior[level]
            start = net.init_state(ctx[r]) if ctx is not None else posterior_states[level]
            q, q_state = run(level_step, net, cur[r], start, upper, over_time)
            out.posterior.append(q)
            out.posterior_states.append(q_state)
        start = p_net.init_state(ctx[r]) if ctx is not None else prior_states[level]
        p, p_state = run(level_step, p_net, prev[r], start, upper if prior_dense else [],
                         over_time)
        out.prior.append(p)  # p(z_t^l | [z_t^<l], x_<t, c)
        out.prior_states.append(p_state)
        out.z.append(draw(level, p, q))  # z_t^l: (B, [T,] C_l, r, r)
    return out


__all__ = ["Draw", "LatentNet", "LevelPass", "dense_input", "latent_levels", "level_step",
           "upsample_nearest"]
