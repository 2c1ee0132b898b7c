"""LPIPS v0.1: standard checkpoint layouts load, invariants hold, a manual reference agrees."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hvrnn import metrics, weights
from hvrnn.errors import WeightsError
from hvrnn.metrics.lpips import BACKBONE_FILES, HEAD_CHANNELS, LPIPS, load_lpips

# torchvision's AlexNet `features`: (index, out, in, kernel, stride, padding) of each conv.
ALEX_CONVS = ((0, 64, 3, 11, 4, 2), (3, 192, 64, 5, 1, 2), (6, 384, 192, 3, 1, 1),
              (8, 256, 384, 3, 1, 1), (10, 256, 256, 3, 1, 1))
VGG_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
VGG_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def _alex_checkpoint(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A state dict with torchvision's AlexNet keys and shapes (classifier included)."""
    sd = {}
    for idx, c_out, c_in, k, _, _ in ALEX_CONVS:
        fan_in = c_in * k * k
        sd[f"features.{idx}.weight"] = torch.randn(c_out, c_in, k, k, generator=gen) * (
            2 / fan_in) ** 0.5
        sd[f"features.{idx}.bias"] = 0.01 * torch.randn(c_out, generator=gen)
    sd["classifier.1.weight"] = torch.zeros(8, 4)  # extra entries must be ignored
    sd["classifier.1.bias"] = torch.zeros(8)
    return sd


def _vgg_checkpoint(gen: torch.Generator) -> dict[str, torch.Tensor]:
    sd, c_in = {}, 3
    for idx, c_out in zip(VGG_CONV_INDICES, VGG_WIDTHS, strict=True):
        sd[f"features.{idx}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen) * (
            2 / (9 * c_in)) ** 0.5
        sd[f"features.{idx}.bias"] = torch.zeros(c_out)
        c_in = c_out
    return sd


def _heads(net: str, gen: torch.Generator) -> dict[str, torch.Tensor]:
    # Real v0.1 heads are non-negative, which makes LPIPS a (squared) weighted distance.
    return {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen)
            for i, c in enumerate(HEAD_CHANNELS[net])}


@pytest.fixture(scope="module")
def weight_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("lpips")
    gen = torch.Generator().manual_seed(0)
    torch.save(_alex_checkpoint(gen), d / BACKBONE_FILES["alex"])
    torch.save(_heads("alex", gen), d / "alex.pth")
    torch.save(_vgg_checkpoint(gen), d / BACKBONE_FILES["vgg"])
    torch.save(_heads("vgg", gen), d / "vgg.pth")
    return d


def _videos(seed: int, c: int = 3, size: int = 32) -> torch.Tensor:
    return torch.rand(2, 3, c, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_invariants(weight_dir: Path, net: str) -> None:
    model = load_lpips(net, weight_dir)
    x, y = _videos(1), _videos(2)
    d_xy = metrics.lpips(x, y, net=net, weights=model)
    assert d_xy.shape == (2, 3) and d_xy.dtype == torch.float64
    assert (d_xy > 0).all()
    torch.testing.assert_close(d_xy, metrics.lpips(y, x, net=net, weights=model))
    assert metrics.lpips(x, x, net=net, weights=model).abs().max() < 1e-10
    # A small perturbation is closer than an unrelated image.
    assert (metrics.lpips(x, (x + 0.02).clamp(0, 1), net=net, weights=model) < d_xy).all()


def test_lpips_weights_as_dir_or_file(weight_dir: Path) -> None:
    x, y = _videos(3), _videos(4)
    from_dir = metrics.lpips(x, y, weights=weight_dir)
    backbone = weight_dir / BACKBONE_FILES["alex"]
    torch.testing.assert_close(from_dir, metrics.lpips(x, y, weights=backbone))
    torch.testing.assert_close(from_dir, metrics.lpips(x, y, weights=backbone,
                                                       heads=weight_dir / "alex.pth"))
    model = load_lpips("alex", weight_dir)
    assert set(model.weights_sha256) == {"backbone", "heads"}
    assert all(len(v) == 64 for v in model.weights_sha256.values())


def test_lpips_grey_is_repeated_to_rgb(weight_dir: Path) -> None:
    model = load_lpips("alex", weight_dir)
    g1, g2 = _videos(5, c=1), _videos(6, c=1)
    torch.testing.assert_close(
        metrics.lpips(g1, g2, weights=model),
        metrics.lpips(g1.expand(-1, -1, 3, -1, -1), g2.expand(-1, -1, 3, -1, -1), weights=model))


def _manual_alex_lpips(sd: dict, heads: dict, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """LPIPS written out op by op from the raw tensors; x: (N, 3, H, W) in [0, 1]."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(x: torch.Tensor) -> list[torch.Tensor]:
        h = ((2 * x - 1) - shift) / scale
        out = []
        for idx, _, _, _, stride, pad in ALEX_CONVS:
            if idx in (3, 6):
                h = F.max_pool2d(h, 3, 2)
            h = F.relu(F.conv2d(h, sd[f"features.{idx}.weight"], sd[f"features.{idx}.bias"],
                                stride=stride, padding=pad))
            out.append(h)
        return out

    total = torch.zeros(x0.shape[0])
    for i, (a, b) in enumerate(zip(feats(x0), feats(x1), strict=True)):
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = heads[f"lin{i}.model.1.weight"].view(1, -1, 1, 1)
        total = total + ((a - b) ** 2 * w).sum(1).mean(dim=(1, 2))
    return total


def test_lpips_matches_manual_reference(weight_dir: Path) -> None:
    sd = torch.load(weight_dir / BACKBONE_FILES["alex"], weights_only=True)
    heads = torch.load(weight_dir / "alex.pth", weights_only=True)
    x, y = _videos(7, size=64), _videos(8, size=64)
    ours = metrics.lpips(x, y, weights=weight_dir).flatten()
    ref = _manual_alex_lpips(sd, heads, x.flatten(0, 1), y.flatten(0, 1)).double()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-7)


def test_lpips_state_dict_layout() -> None:
    keys = LPIPS("alex").state_dict()
    assert keys["net.features.0.weight"].shape == (64, 3, 11, 11)
    assert keys["net.features.10.weight"].shape == (256, 256, 3, 3)
    assert keys["lin2.model.1.weight"].shape == (1, 384, 1, 1)
    vgg = LPIPS("vgg").state_dict()
    assert vgg["net.features.28.weight"].shape == (512, 512, 3, 3)
    assert vgg["lin4.model.1.weight"].shape == (1, 512, 1, 1)


def test_lpips_missing_or_bad_weights(tmp_path: Path, weight_dir: Path) -> None:
    x = _videos(0)
    with pytest.raises(WeightsError, match="alexnet-owt-7be5be79.pth"):
        metrics.lpips(x, x)
    with pytest.raises(WeightsError, match="alexnet-owt-7be5be79.pth"):
        metrics.lpips(x, x, weights=tmp_path)  # empty directory
    with pytest.raises(WeightsError, match="does not exist"):
        metrics.lpips(x, x, weights=tmp_path / "nope.pth")
    backbone = tmp_path / BACKBONE_FILES["alex"]
    backbone.write_bytes((weight_dir / BACKBONE_FILES["alex"]).read_bytes())
    with pytest.raises(WeightsError, match="alex.pth"):  # heads missing next to it
        metrics.lpips(x, x, weights=backbone)
    heads = _heads("alex", torch.Generator().manual_seed(0))
    heads["lin3.model.1.weight"] = torch.rand(1, 7, 1, 1)
    torch.save(heads, tmp_path / "alex.pth")
    with pytest.raises(WeightsError, match="lin3.model.1.weight"):
        metrics.lpips(x, x, weights=tmp_path)
    (tmp_path / "alex.pth").write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be read"):
        metrics.lpips(x, x, weights=tmp_path)


def test_extract_heads_from_wheel(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(1)
    src = tmp_path / "src"
    src.mkdir()
    wheel = tmp_path / "torchmetrics-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for net in ("alex", "vgg"):
            torch.save(_heads(net, gen), src / f"{net}.pth")
            z.write(src / f"{net}.pth", f"torchmetrics/functional/image/lpips_models/{net}.pth")
    out = metrics.extract_lpips_heads(wheel, tmp_path / "cache")
    assert out == {n: tmp_path / "cache" / f"{n}.pth" for n in ("alex", "vgg")}
    for net in ("alex", "vgg"):
        assert out[net].read_bytes() == (src / f"{net}.pth").read_bytes()
    assert metrics.extract_lpips_heads(wheel, tmp_path / "cache") == out  # idempotent
    with pytest.raises(WeightsError, match="no LPIPS v0.1 heads"):
        bad = tmp_path / "empty.whl"
        zipfile.ZipFile(bad, "w").close()
        metrics.extract_lpips_heads(bad, tmp_path / "cache2")


def _find_torchmetrics_wheel() -> str | None:
    """A torchmetrics wheel named by ``HVRNN_TORCHMETRICS_WHEEL`` (never a fixed path)."""
    return os.environ.get("HVRNN_TORCHMETRICS_WHEEL") or None


@pytest.mark.weights
def test_real_heads_from_torchmetrics_wheel(tmp_path: Path, weight_dir: Path) -> None:
    wheel = _find_torchmetrics_wheel()
    if wheel is None:
        pytest.skip("no torchmetrics wheel found (set HVRNN_TORCHMETRICS_WHEEL)")
    out = metrics.extract_lpips_heads(wheel, tmp_path)
    for net in ("alex", "vgg"):
        (tmp_path / BACKBONE_FILES[net]).write_bytes((weight_dir / BACKBONE_FILES[net])
                                                     .read_bytes())
        model = load_lpips(net, tmp_path)
        for i, head in enumerate(model.heads):
            w = head.model[1].weight
            assert w.shape == (1, HEAD_CHANNELS[net][i], 1, 1)
            # The published heads are trained with non-negative weights and are not constant.
            assert (w >= 0).all() and w.std() > 0
        # The wheel ships the published v0.1 heads: the pinned SHA-256 of the weights cache.
        assert model.weights_sha256["heads"] == weights.REGISTRY[f"lpips-{net}"].sha256
    assert set(out) == {"alex", "vgg"}
