"""The networks of SAVP (Lee et al., arXiv 1804.01523) as its released code builds them
(alexlee-gk/video_prediction, ``savp_model.py``, ``ops.py``, ``rnn_ops.py``, the spectral-norm
discriminators), for :mod:`hvrnn.model.savp`: its building blocks, the generator cell
(:class:`SAVPGenerator`), the posterior's pair encoder and the video discriminator.

Layout is channels-first; "instance norm" is a per-channel, per-frame normalisation with a gain
and a bias (GroupNorm with one channel per group, eps 1e-6 as the original). Convolutions and
dense layers start from a truncated normal of std 0.02 and zero biases, as the original.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

if TYPE_CHECKING:
    from hvrnn.model.savp import SAVPConfig

RELU_SHIFT = 1e-12  # the original's lower bound of CDNA kernel entries
LSTMStateT = tuple[Tensor, Tensor]  # an LSTM's (c, h)


def init_normal(module: nn.Module) -> nn.Module:
    """Truncated-normal (std 0.02, +-2 std) weights and zero biases for every conv / dense."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, 0.0, 0.02, -0.04, 0.04)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def instance_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(channels, channels, eps=1e-6)


def tile(z: Tensor, like: Tensor) -> Tensor:
    """(B, Z) -> (B, Z, H, W) with the spatial size of ``like``."""
    return z[:, :, None, None].expand(-1, -1, *like.shape[-2:])


class LSTMCell(nn.Module):
    """TensorFlow's basic LSTM cell: one kernel over [x, h], forget bias 1, gates i, j, f, o.
    (B, in) -> h (B, units); state (c, h)."""

    def __init__(self, c_in: int, units: int):
        super().__init__()
        self.units = units
        self.linear = nn.Linear(c_in + units, 4 * units)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor,
                                                                                    Tensor]]:
        c, h = state
        i, j, f, o = self.linear(torch.cat([x, h], 1)).chunk(4, 1)
        c = c * torch.sigmoid(f + 1.0) + torch.sigmoid(i) * torch.tanh(j)
        h = torch.tanh(c) * torch.sigmoid(o)
        return h, (c, h)


class ConvLSTMCell(nn.Module):
    """SAVP's normalised convolutional LSTM (``BasicConv2DLSTMCell``): a 5x5 convolution
    without bias over [x, h], instance norm of the four gate maps, forget bias 1, instance norm
    of the new cell state; h = tanh(c) * sigmoid(o)."""

    def __init__(self, c_in: int, filters: int, kernel: int = 5):
        super().__init__()
        self.filters = filters
        self.conv = nn.Conv2d(c_in + filters, 4 * filters, kernel, padding=kernel // 2,
                              bias=False)
        self.norm_gates = instance_norm(4 * filters)
        self.norm_cell = instance_norm(filters)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor,
                                                                                    Tensor]]:
        c, h = state
        i, j, f, o = self.norm_gates(self.conv(torch.cat([x, h], 1))).chunk(4, 1)
        c = self.norm_cell(c * torch.sigmoid(f + 1.0) + torch.sigmoid(i) * torch.tanh(j))
        h = torch.tanh(c) * torch.sigmoid(o)
        return h, (c, h)


class ConvPool(nn.Module):
    """``conv_pool2d``: a 'same' convolution, then 2x2 average pooling; instance norm, ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
        self.norm = instance_norm(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(F.avg_pool2d(self.conv(x), 2)))


class UpConv(nn.Module):
    """``upsample_conv2d``: bilinear 2x up-sampling, a 3x3 convolution; instance norm, ReLU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = instance_norm(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return F.relu(self.norm(self.conv(x)))


class ConvHead(nn.Module):
    """3x3 conv to ``ngf`` channels, instance norm, ReLU, then a 3x3 conv to ``c_out``
    (the scratch-image and mask heads); ``extra`` channels join before the last conv."""

    def __init__(self, c_in: int, ngf: int, c_out: int, extra: int = 0):
        super().__init__()
        self.hidden = nn.Sequential(nn.Conv2d(c_in, ngf, 3, padding=1), instance_norm(ngf),
                                    nn.ReLU())
        self.out = nn.Conv2d(ngf + extra, c_out, 3, padding=1)

    def forward(self, x: Tensor, extra: list[Tensor] | None = None) -> Tensor:
        return self.out(torch.cat([self.hidden(x), *(extra or [])], 1))


def symmetric_pad(x: Tensor, p: int) -> Tensor:
    """Pad the last two axes by ``p`` mirroring the edge pixel too (TensorFlow's SYMMETRIC)."""
    x = torch.cat([x[..., :p].flip(-1), x, x[..., -p:].flip(-1)], -1)
    return torch.cat([x[..., :p, :].flip(-2), x, x[..., -p:, :].flip(-2)], -2)


def normalise_kernels(raw: Tensor) -> Tensor:
    """CDNA kernels (B, K, k, k) from raw values plus the identity kernel: ReLU-shifted to be
    positive, then each kernel normalised to sum 1 (the original's kernel normalisation)."""
    k = raw.shape[-1]
    identity = torch.zeros(k, k, dtype=raw.dtype, device=raw.device)
    identity[k // 2, k // 2] = 1.0
    kernels = F.relu(raw + identity - RELU_SHIFT) + RELU_SHIFT
    return kernels / kernels.sum((-2, -1), keepdim=True)


def apply_cdna(image: Tensor, kernels: Tensor) -> Tensor:
    """Each of the K per-sample kernels (B, K, k, k) applied to every channel of ``image``
    (B, C, H, W) as a cross-correlation with symmetric padding -> (B, K, C, H, W)."""
    b, c, h, w = image.shape
    k = kernels.shape[-1]
    patches = F.unfold(symmetric_pad(image, k // 2), k).view(b, c, k * k, h * w)
    out = torch.einsum("bcpn,bkp->bkcn", patches, kernels.flatten(2))
    return out.view(b, kernels.shape[1], c, h, w)


class PairEncoder(nn.Module):
    """The posterior q(z_t | x_{t-1}, x_t) (``networks.encoder`` with the z heads): a frame
    pair (B, 2C, H, W) -> 4x4 stride-2 convs (nef, 2 nef, 4 nef; leaky ReLU 0.2, instance norm
    after the first), global average pooling, dense mean and log-variance (clipped to
    [-10, 10]). With ``recurrent`` (the original's ``use_e_rnn``), a dense layer to 4 nef and
    an LSTM of 4 nef cells over the pairs come before the heads: q(z_t | x_{<=t})."""

    def __init__(self, channels: int, nef: int, n_z: int, layers: int = 3,
                 recurrent: bool = False):
        super().__init__()
        widths = [nef * min(2 ** i, 4) for i in range(layers)]
        blocks: list[nn.Module] = [nn.Conv2d(2 * channels, widths[0], 4, 2, 1),
                                   nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            blocks += [nn.Conv2d(c_in, c_out, 4, 2, 1), instance_norm(c_out), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*blocks)
        width = 4 * nef if recurrent else widths[-1]
        self.embed = nn.Linear(widths[-1], width) if recurrent else None
        self.rnn = LSTMCell(width, width) if recurrent else None
        self.mu = nn.Linear(width, n_z)
        self.log_var = nn.Linear(width, n_z)

    def features(self, pairs: Tensor) -> Tensor:
        """(N, 2C, H, W) -> (N, 4 nef): the pooled convolutional features."""
        return self.body(pairs).mean((-2, -1))

    def zero_state(self, like: Tensor) -> tuple[Tensor, Tensor]:
        z = like.new_zeros(like.shape[0], self.rnn.units)
        return z, z

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.mu(h), self.log_var(h).clamp(-10.0, 10.0)


class VideoDiscriminator(nn.Module):
    """SAVP's spectral-normalised 3D-conv video discriminator (``video_sn_discriminator``):
    clips (B, C, L, H, W) -> one logit per clip.

    Seven 3D convolutions padded by 1 (3^3 stride 1 and 4^3 strides (1,2,2), (1,2,2), (2,2,2),
    widths ndf, 2 ndf, 2 ndf, 4 ndf, 4 ndf, 8 ndf, 8 ndf), leaky ReLU 0.1, then a dense layer;
    spectral normalisation (one power iteration per call) on every weight.
    """

    def __init__(self, channels: int, ndf: int, clip_length: int, image_size: int):
        super().__init__()
        specs = [(channels, ndf, 3, 1), (ndf, 2 * ndf, 4, (1, 2, 2)), (2 * ndf, 2 * ndf, 3, 1),
                 (2 * ndf, 4 * ndf, 4, (1, 2, 2)), (4 * ndf, 4 * ndf, 3, 1),
                 (4 * ndf, 8 * ndf, 4, 2), (8 * ndf, 8 * ndf, 3, 1)]
        layers: list[nn.Module] = []
        for c_in, c_out, k, stride in specs:
            layers += [spectral_norm(init_normal(nn.Conv3d(c_in, c_out, k, stride, 1))),
                       nn.LeakyReLU(0.1)]
        self.body = nn.Sequential(*layers)
        t_out = (clip_length - 4) // 2 + 1
        self.fc = spectral_norm(init_normal(nn.Linear(8 * ndf * t_out * (image_size // 8) ** 2,
                                                      1)))

    def forward(self, clips: Tensor) -> Tensor:
        return self.fc(self.body(clips).flatten(1)).squeeze(1)


class SAVPGenerator(nn.Module):
    """The convolutional-LSTM encoder-decoder with CDNA kernels, masks and a scratch image;
    one step per call (:meth:`forward`)."""

    def __init__(self, cfg: SAVPConfig):
        super().__init__()
        n, ngf, nz, c = cfg.levels, cfg.ngf, cfg.n_z, cfg.image_channels
        enc = [ngf * 2 ** i for i in range(n)]
        dec = [ngf * 2 ** (n - 2 - i) if i < n - 1 else ngf for i in range(n)]
        self.rnn_z = LSTMCell(nz, nz)
        self.down = nn.ModuleList([ConvPool((2 * c if i == 0 else enc[i - 1]) + nz, w,
                                            5 if i == 0 else 3) for i, w in enumerate(enc)])
        self.down_lstm = nn.ModuleList([ConvLSTMCell(w + nz, w) for w in enc])
        ins = [enc[-1]] + [dec[i - 1] + enc[n - 1 - i] for i in range(1, n)]
        self.up = nn.ModuleList([UpConv(i + nz, w) for i, w in zip(ins, dec, strict=True)])
        self.up_lstm = nn.ModuleList([ConvLSTMCell(w + nz, w) for w in dec[:-1]])
        k, kernels = cfg.cdna_kernel_size, cfg.cdna_kernels
        self.cdna = nn.Linear(enc[-1] * (cfg.image_size >> n) ** 2, kernels * k * k)
        self.scratch = ConvHead(ngf, ngf, c)
        self.n_images = kernels + 3  # transformed, previous, first, scratch
        self.masks = ConvHead(ngf, ngf, self.n_images, extra=self.n_images * c)
        self.kernel_shape = (kernels, k, k)
        self.widths = enc + dec[:-1]

    def zero_state(self, first: Tensor) -> tuple[list[LSTMStateT], LSTMStateT]:
        """Zero states of every ConvLSTM and of the latent LSTM (the original's)."""
        b, size = first.shape[0], first.shape[-1]
        sizes = [size >> (i + 1) for i in range(len(self.down))]
        sizes += [size >> (len(self.down) - 1 - i) for i in range(len(self.up_lstm))]
        conv = [(first.new_zeros(b, w, s, s),) * 2 for w, s in zip(self.widths, sizes,
                                                                    strict=True)]
        nz = self.rnn_z.units
        return conv, (first.new_zeros(b, nz), first.new_zeros(b, nz))

    def forward(self, image: Tensor, first: Tensor, z: Tensor, conv: list[LSTMStateT],
                rnn_z: LSTMStateT) -> tuple[Tensor, list[LSTMStateT], LSTMStateT]:
        """One frame from the previous one (B, C, H, W), c_1 and z (B, n_z).

        Returns (frame (B, C, H, W) in [0, 1], ConvLSTM states, latent-LSTM state).
        """
        za, rnn_z = self.rnn_z(z, rnn_z)
        h, skips, new = torch.cat([image, first], 1), [], []
        for down, lstm, state in zip(self.down, self.down_lstm, conv, strict=False):
            x = down(torch.cat([h, tile(za, h)], 1))
            h, s = lstm(torch.cat([x, tile(za, x)], 1), state)
            skips.append(h)
            new.append(s)
        n = len(self.down)
        for i, up in enumerate(self.up):
            x = h if i == 0 else torch.cat([h, skips[n - 1 - i]], 1)
            h = up(torch.cat([x, tile(za, x)], 1))
            if i < len(self.up_lstm):
                h, s = self.up_lstm[i](torch.cat([h, tile(za, h)], 1), conv[n + i])
                new.append(s)
        kernels = normalise_kernels(self.cdna(skips[-1].flatten(1)).view(-1, *self.kernel_shape))
        scratch = torch.sigmoid(self.scratch(h))
        images = [*apply_cdna(image, kernels).unbind(1), image, first, scratch]
        masks = torch.softmax(self.masks(h, images), 1)  # (B, M, H, W)
        frame = sum(masks[:, m:m + 1] * img for m, img in enumerate(images))
        return frame, new, rnn_z


def gan_loss(logits: Tensor, real: bool, kind: str) -> Tensor:
    """The original's ``gan_loss``: mean sigmoid cross-entropy against 1 (real) or 0 (``gan``),
    or the mean squared distance to it (``lsgan``)."""
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if kind == "lsgan":
        return ((logits - target) ** 2).mean()
    return F.binary_cross_entropy_with_logits(logits, target)


__all__ = ["ConvHead", "ConvLSTMCell", "ConvPool", "LSTMCell", "LSTMStateT", "PairEncoder",
           "SAVPGenerator", "UpConv", "VideoDiscriminator", "apply_cdna", "gan_loss",
           "init_normal", "instance_norm", "normalise_kernels", "symmetric_pad", "tile"]
