"""ConvLSTM decoder, the likelihood network p(x_t | z_<=t, x_<t, c) (docs/design.md section 3.3).

One ConvLSTM block per resolution, coarse to fine; each latent level is concatenated to the input
of the block of its resolution.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from hvrnn.layers import ConvLSTMCell, ConvNormAct, InitNet, LSTMState, UpConv
from hvrnn.model.encoder import Features, features_1x1

if TYPE_CHECKING:
    from hvrnn.model.hvrnn import HVRNNConfig


class DecoderBlock(nn.Module):
    """[concat latent] -> ConvLSTM -> up-sampling (or, at full resolution, the output head)."""

    def __init__(self, cfg: HVRNNConfig, resolution: int, cin: int, latent_ch: int,
                 next_resolution: int | None):
        super().__init__()
        hid = cfg.width(resolution)
        self.resolution = resolution
        # model.frame_skips: the encoder features of x_{t-1} at this resolution join the input
        # (the 1x1 block reads them already as its only frame input).
        self.skip_ch = cfg.width(resolution) if cfg.frame_skips and resolution > 1 else 0
        self.lstm = ConvLSTMCell(cin + latent_ch + self.skip_ch, hid, cfg.gn_groups_lstm,
                                 sees_1x1=resolution == 1, center_tap=cfg.center_tap_1x1)
        if next_resolution is None:  # full resolution: ConvNormAct 3x3 then 3x3 conv to C
            self.out = nn.Sequential(ConvNormAct(hid, hid, 3, cfg.gn_groups),
                                     nn.Conv2d(hid, cfg.image_channels, 3, padding=1))
        else:
            self.out = UpConv(hid, cfg.width(next_resolution), cfg.gn_groups,
                              from_1x1=resolution == 1)

    def forward(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """Whole sequence: x (B, T, cin + latent, r, r) -> (B, T, C_next, r_next, r_next)."""
        h, state = self.lstm(x, state)
        out = self.out(rearrange(h, "b t c h w -> (b t) c h w"))
        return rearrange(out, "(b t) c h w -> b t c h w", b=x.shape[0]), state

    def step(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """One step: x (B, cin + latent, r, r) -> (B, C_next, r_next, r_next)."""
        state = self.lstm.step(self.lstm.input_gates(x), state)
        return self.out(state.h), state

    def block_input(self, x: Tensor, feats: Features, z: dict[int, Tensor]) -> Tensor:
        """The block's input: x, then the latent of its resolution, then (``frame_skips``) the
        encoder features of x_{t-1}; concatenated on channels (axis -3, with or without T)."""
        parts = [x]
        if self.resolution in z:
            parts.append(z[self.resolution].to(x.dtype))
        if self.skip_ch:
            parts.append(feats[self.resolution].to(x.dtype))
        return torch.cat(parts, dim=-3) if len(parts) > 1 else x


class ConvLSTMDecoder(nn.Module):
    """Input at step t: the 1x1 features of x_{t-1}; output: logits of x_t (pre-sigmoid).

    With ``model.frame_skips`` every block above 1x1 also reads the encoder features of x_{t-1}
    at its own resolution (a departure from the paper's decoder, whose only frame input is the
    1x1 feature; off in the paper presets, see docs/design.md section 7).
    """

    def __init__(self, cfg: HVRNNConfig):
        super().__init__()
        res = cfg.stage_resolutions[::-1]  # coarse to fine: (1, 4, 8, ..., H)
        latent = dict(zip(cfg.latent_resolutions, cfg.level_channels, strict=True))
        self.resolutions = res
        self.activation_checkpointing = cfg.activation_checkpointing in ("decoder", "all")
        blocks, inits = [], []
        for i, r in enumerate(res):
            cin = cfg.width(r)  # 1x1 block: encoder features; else: the previous UpConv output
            nxt = res[i + 1] if i + 1 < len(res) else None
            blocks.append(DecoderBlock(cfg, r, cin, latent.get(r, 0), nxt))
            inits.append(InitNet(cfg.width(r), cfg.n_ctx, cfg.width(r), cfg.gn_groups,
                                 cfg.gn_groups_latent))
        self.blocks = nn.ModuleList(blocks)
        self.init_nets = nn.ModuleList(inits)

    def init_state(self, ctx: Features) -> list[LSTMState]:
        """ctx: {resolution: (B, K, C_r, r, r)} -> one state per block."""
        return [LSTMState(*net(ctx[r])) for r, net in zip(self.resolutions, self.init_nets,
                                                          strict=True)]

    def forward(self, feats: Features, z: dict[int, Tensor], states: list[LSTMState]
                ) -> tuple[Tensor, list[LSTMState]]:
        """Whole sequence, layer-major.

        Args:
            feats: encoder features of x_{t-1}, {r: (B, T, C_r, r, r)}; the 1x1 entry is the
                input, the others are read only with ``frame_skips``.
            z: latents {r: (B, T, C_l, r, r)}.

        Returns logits (B, T, C, H, W) and the final states.
        """
        out_states = []
        x = features_1x1(feats)
        for block, state in zip(self.blocks, states, strict=True):
            x = block.block_input(x, feats, z)
            if self.activation_checkpointing and torch.is_grad_enabled():
                x, state = checkpoint(block, x, state, use_reentrant=False)
            else:
                x, state = block(x, state)
            out_states.append(state)
        return x, out_states

    def step(self, feats: Features, z: dict[int, Tensor], states: list[LSTMState]
             ) -> tuple[Tensor, list[LSTMState]]:
        """One step. feats: {r: (B, C_r, r, r)} of x_{t-1}; z: {r: (B, C_l, r, r)}
        -> logits (B, C, H, W)."""
        out_states = []
        x = features_1x1(feats)
        for block, state in zip(self.blocks, states, strict=True):
            x, state = block.step(block.block_input(x, feats, z), state)
            out_states.append(state)
        return x, out_states
