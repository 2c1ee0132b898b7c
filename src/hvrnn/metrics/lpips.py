"""LPIPS v0.1 (Zhang et al., 2018), self-contained: neither torchvision nor ``lpips`` is needed.

Two files are needed. They are loaded from explicit paths, or, when no path is given, from the
weights cache (:mod:`hvrnn.weights`; ``hvrnn weights fetch lpips`` downloads and verifies them);
nothing is downloaded while a metric runs:

1. The **backbone**: torchvision's ImageNet checkpoint of AlexNet (``alexnet-owt-7be5be79.pth``)
   or VGG16 (``vgg16-397923af.pth``). Only the ``features.*`` entries are used; the feature
   extractors below reproduce torchvision's ``features`` module layout, so the keys
   (``features.0.weight``, ``features.3.bias``, ...) load unchanged.
2. The **linear heads** of LPIPS v0.1: ``alex.pth`` / ``vgg.pth`` with keys
   ``lin0.model.1.weight`` ... ``lin4.model.1.weight`` of shape (1, C_l, 1, 1). They ship inside
   the ``lpips`` package (``lpips/weights/v0.1/``) and the ``torchmetrics`` wheel
   (``torchmetrics/functional/image/lpips_models/``); :func:`extract_lpips_heads` copies them
   out of either wheel without installing it.

The ``weights`` argument of :func:`lpips` / :func:`load_lpips` is None (the weights cache), a
directory holding both files (the backbone under its torchvision file name or any
``alexnet*.pth`` / ``vgg16*.pth``, the heads as ``alex.pth`` / ``vgg.pth``), or the backbone
file itself, with the heads then given by ``heads=`` or found as ``alex.pth`` / ``vgg.pth`` next
to it.

Computation (as ``lpips.LPIPS(net=..., version="0.1")``): inputs in [-1, 1] (ours are mapped
from [0, 1]; grey frames are repeated to 3 channels), the scaling layer
``(x - shift) / scale``, five ReLU feature maps, each unit-normalised over channels
(``f / (||f||_2 + 1e-10)``), squared differences weighted by the 1x1 heads, averaged over space
and summed over the five layers.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from einops import rearrange
from torch import Tensor, nn

from hvrnn.errors import WeightsError
from hvrnn.io.files import reason, sha256_file
from hvrnn.metrics.inputs import unit_range

LPIPS_NETS = ("alex", "vgg")
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
BACKBONE_GLOBS = {"alex": "alexnet*.pth", "vgg": "vgg16*.pth"}
BACKBONE_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
HEAD_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# Paths of the v0.1 heads inside the two wheels that ship them.
HEAD_MEMBERS = (
    "torchmetrics/functional/image/lpips_models/{net}.pth",
    "lpips/weights/v0.1/{net}.pth",
)
# LPIPS scaling layer: maps [-1, 1] inputs to roughly ImageNet-normalised values.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)

_HOW_TO_GET = ("run `hvrnn weights fetch {names}` (or `hvrnn weights add NAME FILE` with copies "
               "of {url} and the v0.1 heads {net}.pth); see docs/evaluation.md")


def _alexnet_features() -> nn.Sequential:
    """torchvision ``alexnet().features`` (same indices, so the same state-dict keys)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # 0
        nn.ReLU(),  # 1 -> relu1
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),  # 3
        nn.ReLU(),  # 4 -> relu2
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),  # 6
        nn.ReLU(),  # 7 -> relu3
        nn.Conv2d(384, 256, kernel_size=3, padding=1),  # 8
        nn.ReLU(),  # 9 -> relu4
        nn.Conv2d(256, 256, kernel_size=3, padding=1),  # 10
        nn.ReLU(),  # 11 -> relu5
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def _vgg16_features() -> nn.Sequential:
    """torchvision ``vgg16().features`` (13 convs with ReLU, 5 max-pools)."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c_in, int(v), kernel_size=3, padding=1), nn.ReLU()]
            c_in = int(v)
    return nn.Sequential(*layers)


# Ends (exclusive) of the five slices whose outputs LPIPS compares.
_SLICE_ENDS = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30)}


class Backbone(nn.Module):
    """ImageNet feature extractor with torchvision's ``features`` layout.

    Returns the five ReLU activations LPIPS uses (alex: relu1..relu5; vgg: relu1_2, relu2_2,
    relu3_3, relu4_3, relu5_3).
    """

    def __init__(self, net: str) -> None:
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"unknown LPIPS net {net!r}; expected one of {LPIPS_NETS}")
        self.net = net
        self.features = _alexnet_features() if net == "alex" else _vgg16_features()

    def forward(self, x: Tensor) -> list[Tensor]:
        outs, start = [], 0
        for end in _SLICE_ENDS[self.net]:
            for i in range(start, end):
                x = self.features[i](x)
            outs.append(x)
            start = end
        return outs


class LinearHead(nn.Module):
    """LPIPS ``NetLinLayer``: dropout then a 1x1 conv without bias (key ``model.1.weight``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance network. Call with two (N, 3, H, W) batches in [-1, 1] -> (N,)."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        self.net_name = net
        self.net = Backbone(net)
        for i, c in enumerate(HEAD_CHANNELS[net]):
            self.add_module(f"lin{i}", LinearHead(c))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        # Checksums of the files the weights came from (filled by load_lpips).
        self.weights_sha256: dict[str, str] = {}
        self.eval()
        self.requires_grad_(False)

    @property
    def heads(self) -> list[LinearHead]:
        return [getattr(self, f"lin{i}") for i in range(5)]

    def forward(self, x0: Tensor, x1: Tensor) -> Tensor:
        """x0, x1: (N, 3, H, W) in [-1, 1]. Returns (N,) distances."""
        f0 = self.net((x0 - self.shift) / self.scale)
        f1 = self.net((x1 - self.shift) / self.scale)
        total = x0.new_zeros(x0.shape[0])
        for a, b, head in zip(f0, f1, self.heads, strict=True):
            diff = (_unit_normalize(a) - _unit_normalize(b)) ** 2  # (N, C_l, H_l, W_l)
            total = total + head(diff).mean(dim=(1, 2, 3))
        return total


def _unit_normalize(f: Tensor, eps: float = 1e-10) -> Tensor:
    return f / (torch.sqrt((f * f).sum(dim=1, keepdim=True)) + eps)


# --------------------------------------------------------------------------------------------
# Weight files
# --------------------------------------------------------------------------------------------


def resolve_lpips_files(net: str, weights: str | Path | None,
                        heads: str | Path | None = None) -> tuple[Path, Path]:
    """Find the backbone and head files (see the module docstring), or raise WeightsError.

    ``weights=None`` looks in the weights cache; a missing file there raises WeightsError
    naming the ``hvrnn weights fetch`` command.
    """
    from hvrnn import weights as cache

    if net not in LPIPS_NETS:
        raise ValueError(f"unknown LPIPS net {net!r}; expected one of {LPIPS_NETS}")
    how = _HOW_TO_GET.format(url=BACKBONE_URLS[net], net=net,
                             names=" ".join(cache.LPIPS_FILES[net]))
    if weights is None or str(weights) == "":
        backbone_name, head_name = cache.LPIPS_FILES[net]
        folder = cache.require(cache.LPIPS_FILES[net], f"LPIPS ({net})")
        backbone = folder / cache.REGISTRY[backbone_name].filename
        return backbone, Path(heads).expanduser() if heads else (
            folder / cache.REGISTRY[head_name].filename)
    weights = Path(weights).expanduser()
    if weights.is_dir():
        backbone = weights / BACKBONE_FILES[net]
        if not backbone.is_file():
            found = sorted(weights.glob(BACKBONE_GLOBS[net]))
            if not found:
                raise WeightsError(f"LPIPS ({net}): no backbone {BACKBONE_FILES[net]} (or "
                                   f"{BACKBONE_GLOBS[net]}) in {str(weights)!r}; {how}")
            backbone = found[0]
        head_dir = weights
    elif weights.is_file():
        backbone, head_dir = weights, weights.parent
    else:
        raise WeightsError(f"LPIPS ({net}) backbone file {str(weights)!r} does not exist; {how}")
    head_file = Path(heads).expanduser() if heads else head_dir / f"{net}.pth"
    if not head_file.is_file():
        raise WeightsError(f"LPIPS ({net}) linear heads {str(head_file)!r} do not exist; {how}")
    return backbone, head_file


def _load_state(path: Path, what: str) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unreadable file is a user error here)
        raise WeightsError(f"{what} {str(path)!r} cannot be read as a PyTorch state dict: "
                           f"{reason(exc)}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{what} {str(path)!r} does not hold a state dict")
    return state


def _copy_checked(module: nn.Module, state: dict[str, Tensor], prefix: str, path: Path,
                  what: str) -> None:
    """Load ``prefix``-keys of ``state`` into ``module``; every module key must be present."""
    own = module.state_dict()
    for key, value in own.items():
        src = state.get(prefix + key)
        if src is None:
            raise WeightsError(f"{what} {str(path)!r} lacks key {prefix + key!r}")
        if tuple(src.shape) != tuple(value.shape):
            raise WeightsError(f"{what} {str(path)!r}: {prefix + key!r} has shape "
                               f"{tuple(src.shape)}, expected {tuple(value.shape)}")
    module.load_state_dict({k: state[prefix + k] for k in own})


def load_lpips(net: str = "alex", weights: str | Path | None = None,
               heads: str | Path | None = None) -> LPIPS:
    """Build LPIPS v0.1 and load its backbone and heads from local files.

    Args:
        net: ``"alex"`` or ``"vgg"``.
        weights: None (the weights cache, files checked against their published SHA-256),
            a directory holding both files, or the backbone file.
        heads: the head file, when it is neither in ``weights`` nor next to it.

    Raises:
        WeightsError: a file is missing, unreadable or lacks a standard key (named).
    """
    from hvrnn import weights as cache

    backbone_file, head_file = resolve_lpips_files(net, weights, heads)
    model = LPIPS(net)
    _copy_checked(model.net.features, _load_state(backbone_file, "LPIPS backbone"), "features.",
                  backbone_file, "LPIPS backbone")
    head_state = _load_state(head_file, "LPIPS heads")
    for i, head in enumerate(model.heads):
        _copy_checked(head, head_state, f"lin{i}.", head_file, "LPIPS heads")
    model.weights_sha256 = {"backbone": sha256_file(backbone_file),
                            "heads": sha256_file(head_file)}
    if weights is None or str(weights) == "":  # files from the cache must be the published ones
        backbone_name, head_name = cache.LPIPS_FILES[net]
        cache.check_pinned(backbone_name, model.weights_sha256["backbone"])
        if not heads:
            cache.check_pinned(head_name, model.weights_sha256["heads"])
    return model


def extract_lpips_heads(wheel: str | Path, cache_dir: str | Path,
                        nets: tuple[str, ...] = LPIPS_NETS) -> dict[str, Path]:
    """Copy the LPIPS v0.1 head files out of a ``torchmetrics`` or ``lpips`` wheel.

    The wheel is read as a zip archive; nothing is installed or imported. Existing files in
    ``cache_dir`` with the same content are kept; different content raises WeightsError.

    Args:
        wheel: path of ``torchmetrics-*.whl`` (``pip download --no-deps torchmetrics``) or
            ``lpips-*.whl``.
        cache_dir: where ``alex.pth`` / ``vgg.pth`` are written.
        nets: which heads to extract.

    Returns:
        ``{net: path of the extracted file}``.
    """
    wheel, cache_dir = Path(wheel), Path(cache_dir)
    if not wheel.is_file():
        raise WeightsError(f"wheel {str(wheel)!r} does not exist")
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise WeightsError(f"{str(wheel)!r} is not a wheel (zip) file") from None
    out: dict[str, Path] = {}
    with archive:
        names = set(archive.namelist())
        for net in nets:
            member = next((m.format(net=net) for m in HEAD_MEMBERS
                           if m.format(net=net) in names), None)
            if member is None:
                raise WeightsError(f"{str(wheel)!r} holds no LPIPS v0.1 heads for {net!r} "
                                   f"(looked for {[m.format(net=net) for m in HEAD_MEMBERS]})")
            data = archive.read(member)
            cache_dir.mkdir(parents=True, exist_ok=True)
            target = cache_dir / f"{net}.pth"
            if target.exists() and target.read_bytes() != data:
                raise WeightsError(f"{str(target)!r} exists with different content; "
                                   "remove it or choose another cache directory")
            if not target.exists():
                target.write_bytes(data)
            out[net] = target
    return out


# --------------------------------------------------------------------------------------------
# Metric
# --------------------------------------------------------------------------------------------


def lpips(pred: Tensor, target: Tensor, net: str = "alex",
          weights: str | Path | LPIPS | None = None, heads: str | Path | None = None,
          batch_size: int = 256) -> Tensor:
    """LPIPS v0.1 distance of every frame (lower is more similar).

    Args:
        pred: (B, T, C, H, W) floats in [0, 1] or uint8 (divided by 255); C is 1 (repeated
            to 3) or 3.
        target: (B, T, C, H, W), same rule.
        net: ``"alex"`` (docs/design.md section 8, D9) or ``"vgg"``.
        weights: None (the weights cache), a directory with the backbone and heads, the
            backbone file (heads from ``heads=`` or next to it), or an already loaded
            :class:`LPIPS` module.
        heads: the v0.1 head file, when not next to the backbone.
        batch_size: frames per forward pass.

    Returns:
        (B, T) float64 distances.

    Raises:
        WeightsError: weights missing; the message names the files and how to get them.
        ValueError: shapes differ, channels other than 1 or 3, or float values outside [0, 1]
            (the range found is named).
    """
    if pred.shape != target.shape or pred.dim() != 5:
        raise ValueError(f"lpips: pred {tuple(pred.shape)} and target {tuple(target.shape)} "
                         "must both be (B, T, C, H, W)")
    if pred.shape[2] not in (1, 3):
        raise ValueError(f"lpips: expected 1 or 3 channels, got {pred.shape[2]}")
    pred = unit_range(pred, "lpips: pred", torch.float32)
    target = unit_range(target, "lpips: target", torch.float32)
    model = weights if isinstance(weights, LPIPS) else load_lpips(net, weights, heads)
    b, t = pred.shape[:2]
    device = next(model.parameters()).device
    x0 = rearrange(pred, "b t c h w -> (b t) c h w")
    x1 = rearrange(target, "b t c h w -> (b t) c h w")
    out = []
    with torch.no_grad():
        for s in range(0, x0.shape[0], batch_size):
            a = x0[s:s + batch_size].to(device=device, dtype=torch.float32) * 2 - 1
            c = x1[s:s + batch_size].to(device=device, dtype=torch.float32) * 2 - 1
            if a.shape[1] == 1:
                a, c = a.expand(-1, 3, -1, -1), c.expand(-1, 3, -1, -1)
            out.append(model(a, c).double().cpu())
    return rearrange(torch.cat(out), "(b t) -> b t", b=b, t=t)
