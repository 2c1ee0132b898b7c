"""Metric inputs: uint8 frames, out-of-range floats, FVD's minimum clip length, the I3D resize."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import Tensor, nn

from hvrnn import metrics
from hvrnn.metrics.i3d import I3D, TorchScriptI3D
from hvrnn.metrics.lpips import BACKBONE_FILES, HEAD_CHANNELS, load_lpips


def _video(a: np.ndarray) -> Tensor:
    """(H, W) uint8 -> (1, 1, 1, H, W) tensor."""
    return torch.from_numpy(a)[None, None, None]


def _random_pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(61)
    return (rng.integers(0, 256, (32, 32), dtype=np.uint8),
            rng.integers(0, 256, (32, 32), dtype=np.uint8))


# --------------------------------------------------------------------------------------------
# uint8 frames are divided by 255
# --------------------------------------------------------------------------------------------


def test_psnr_of_uint8_frames_one_grey_level_apart() -> None:
    a = np.full((32, 32), 100, dtype=np.uint8)
    b = a + 1
    ours = float(metrics.psnr(_video(a), _video(b)))
    ref = peak_signal_noise_ratio(a, b)  # uint8: data_range 255
    assert ours == pytest.approx(ref, abs=1e-9)
    # MSE = 1 grey level^2, so PSNR = 20 log10(255) = 48.13 dB.
    assert ours == pytest.approx(20 * math.log10(255), abs=1e-9)
    assert round(ours, 2) == 48.13


def test_psnr_of_a_random_uint8_pair() -> None:
    a, b = _random_pair()
    ours = float(metrics.psnr(_video(a), _video(b)))
    ref = peak_signal_noise_ratio(a, b)
    assert ours == pytest.approx(ref, abs=1e-9)
    assert round(ref, 2) == 7.56
    # The silent mistake this prevents: 0..255 values treated as [0, 1] give ref - 48.13 dB.
    wrong = 10 * math.log10(1 / np.mean((a.astype(float) - b) ** 2))
    assert round(wrong, 2) == -40.57
    with pytest.raises(ValueError, match=r"found \[0, 255\]"):
        metrics.psnr(_video(a).double(), _video(b).double())


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_of_uint8_frames_equals_skimage_on_uint8(channels: int) -> None:
    rng = np.random.default_rng(channels)
    a = rng.integers(0, 256, (2, 3, channels, 24, 30), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    ours = metrics.ssim(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    ref = [[structural_similarity(a[i, t].transpose(1, 2, 0), b[i, t].transpose(1, 2, 0),
                                  channel_axis=2) for t in range(3)] for i in range(2)]
    np.testing.assert_allclose(ours, ref, atol=1e-9, rtol=0)
    x, y = _random_pair()
    assert float(metrics.ssim(_video(x), _video(y))) == pytest.approx(
        structural_similarity(x, y), abs=1e-9)


@pytest.fixture(scope="module")
def lpips_model(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("lpips")
    gen = torch.Generator().manual_seed(0)
    from test_metrics_lpips import _alex_checkpoint

    torch.save(_alex_checkpoint(gen), d / BACKBONE_FILES["alex"])
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen)
                for i, c in enumerate(HEAD_CHANNELS["alex"])}, d / "alex.pth")
    return load_lpips("alex", d)


def test_lpips_of_uint8_frames_equals_floats_divided_by_255(lpips_model) -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 256, (2, 2, 3, 32, 32), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, (2, 2, 3, 32, 32), dtype=torch.uint8, generator=g)
    ours = metrics.lpips(a, b, weights=lpips_model)
    ref = metrics.lpips(a.double() / 255, b.double() / 255, weights=lpips_model)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match=r"lpips: pred: float values must lie in \[0, 1\]"):
        metrics.lpips(a.float(), b.float() / 255, weights=lpips_model)


def _fvd_calls(lpips_model) -> dict[str, object]:
    """Every public function that takes frames, as f(pred, target)."""
    det = _Detector()
    return {
        "psnr": lambda p, t: metrics.psnr(p, t),
        "ssim": lambda p, t: metrics.ssim(p, t),
        "ssim_variants": lambda p, t: metrics.ssim_variants(p, t, ("skimage", "legacy")),
        "lpips": lambda p, t: metrics.lpips(p, t, weights=lpips_model),
        "i3d_preprocess": lambda p, t: metrics.i3d_preprocess(p, size=None),
        "i3d_features": lambda p, t: metrics.i3d_features(p, det, size=None),
        "fvd": lambda p, t: metrics.fvd(t, p, i3d=det, size=None),
    }


@pytest.mark.filterwarnings("ignore:Matrix is singular")
@pytest.mark.parametrize("name", ["psnr", "ssim", "ssim_variants", "lpips", "i3d_preprocess",
                                  "i3d_features", "fvd"])
@pytest.mark.parametrize("bad, found", [(lambda x: x * 255, "[0, 255]"),
                                        (lambda x: x * 2 - 1, "[-1, 1]"),
                                        (lambda x: x.masked_fill(x > 0.9, math.nan), "NaN")])
def test_every_metric_rejects_floats_outside_the_unit_range(lpips_model, name, bad,
                                                            found) -> None:
    good = torch.zeros(2, 9, 3, 32, 32)
    good[:, :, :, 4:8, 4:8] = 1.0
    good[0, 0, 0, 0, 0] = 0.25
    call = _fvd_calls(lpips_model)[name]
    call(good, good)  # in range: accepted
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\], found " + found.replace(
            "[", r"\[").replace("]", r"\]")):
        call(bad(good), good)


def test_rounding_outside_the_unit_range_is_accepted() -> None:
    x = torch.full((1, 1, 1, 8, 8), 0.5)
    y = x.clone()
    y[..., 0, 0] = 1 + 1e-6
    y[..., 0, 1] = -1e-6
    assert torch.isfinite(metrics.psnr(x, y)).all()
    with pytest.raises(ValueError, match="dtype torch.int64"):
        metrics.psnr(x.long(), y.long())


# --------------------------------------------------------------------------------------------
# FVD: at least 9 frames
# --------------------------------------------------------------------------------------------


class _Detector(nn.Module):
    """A stand-in I3D with the TorchScript call convention: (B, 3, T, H, W) -> (B, 6)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = True) -> Tensor:
        self.calls += 1
        return torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4))], dim=1)


def test_i3d_needs_nine_frames_in_project_network() -> None:
    # ceil(T / 8) time steps reach the 2-step 'VALID' pool: T = 9 is the shortest valid clip.
    assert [t for t in range(1, 18) if math.ceil(t / 8) >= 2][0] == metrics.MIN_FRAMES == 9
    net = I3D().eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 9, 32, 32)).shape == (1, 400)
        with pytest.raises(ValueError, match="at least 9 frames, got 8"):
            net(torch.zeros(1, 3, 8, 32, 32))


def test_i3d_needs_nine_frames_torchscript(tmp_path: Path) -> None:
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(_Detector()).save(str(path))
    model = metrics.load_i3d(path)
    assert isinstance(model, TorchScriptI3D)
    assert model(torch.zeros(2, 3, 9, 16, 16)).shape == (2, 6)
    with pytest.raises(ValueError, match="at least 9 frames, got 8"):
        model(torch.zeros(2, 3, 8, 16, 16))


def test_fvd_checks_frames_before_any_feature() -> None:
    det = _Detector()
    short = torch.rand(4, 8, 1, 16, 16)
    with pytest.raises(ValueError, match="at least 9 frames, got 8"):
        metrics.i3d_features(short, det, size=None)
    with pytest.raises(ValueError, match="at least 9 frames, got 8"):
        metrics.fvd(short, short, i3d=det, size=None)
    as_uint8 = (short * 255).to(torch.uint8).permute(0, 1, 3, 4, 2)  # (B, T, H, W, C)
    with pytest.raises(ValueError, match="at least 9 frames, got 8"):
        metrics.i3d_features(as_uint8, det, size=None)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.fvd(torch.rand(1, 9, 1, 16, 16), torch.rand(3, 9, 1, 16, 16), i3d=det,
                    size=None)
    assert det.calls == 0


# --------------------------------------------------------------------------------------------
# The I3D resize: TF1 resize_bilinear (reference) or half-pixel centres
# --------------------------------------------------------------------------------------------


def _tf1_resize_numpy(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TensorFlow 1 ``resize_bilinear`` (align_corners=False, half_pixel_centers=False), pixel
    by pixel: output (i, j) reads input (i * H / out_h, j * W / out_w)."""
    h, w = img.shape
    out = np.empty((out_h, out_w))
    for i in range(out_h):
        y = i * h / out_h
        y0 = int(np.floor(y))
        y1, dy = min(y0 + 1, h - 1), y - y0
        for j in range(out_w):
            x = j * w / out_w
            x0 = int(np.floor(x))
            x1, dx = min(x0 + 1, w - 1), x - x0
            top = img[y0, x0] + (img[y0, x1] - img[y0, x0]) * dx
            bottom = img[y1, x0] + (img[y1, x1] - img[y1, x0]) * dx
            out[i, j] = top + (bottom - top) * dy
    return out


@pytest.mark.parametrize("shape", [(32, 32), (64, 48), (13, 29)])
def test_tf1_resize_matches_numpy_reference(shape: tuple[int, int]) -> None:
    img = np.random.default_rng(0).random(shape)
    video = torch.tensor(img, dtype=torch.float32)[None, None, None]  # (1, 1, 1, H, W)
    ours = metrics.i3d_preprocess(video, size=224, resize="tf1")  # (1, 3, 1, 224, 224)
    ref = _tf1_resize_numpy(img, 224, 224) * 2 - 1
    for c in range(3):
        np.testing.assert_allclose(ours[0, c, 0].numpy(), ref, atol=1e-6, rtol=0)


def test_bright_pixel_lands_where_each_convention_puts_it() -> None:
    frame = torch.zeros(1, 1, 1, 32, 32)
    frame[..., 16, 16] = 1.0
    peaks = {}
    for mode in ("tf1", "torch"):
        x = metrics.i3d_preprocess(frame, size=224, resize=mode)[0, 0, 0]
        flat = int(x.argmax())
        peaks[mode] = (flat // 224, flat % 224)
        assert float(x.max()) == pytest.approx(1.0, abs=1e-6)  # read exactly there: weight 1
    # tf1: 112 * 32 / 224 = 16; torch: (115 + 0.5) * 32 / 224 - 0.5 = 16.
    assert peaks == {"tf1": (112, 112), "torch": (115, 115)}
    ref = _tf1_resize_numpy(frame[0, 0, 0].double().numpy(), 224, 224)
    assert np.unravel_index(ref.argmax(), ref.shape) == (112, 112)
    with pytest.raises(ValueError, match="unknown resize"):
        metrics.i3d_preprocess(frame, resize="area")


def test_i3d_features_passes_the_resize_choice() -> None:
    det = _Detector()
    videos = torch.rand(3, 9, 1, 20, 20, generator=torch.Generator().manual_seed(1))
    tf1 = metrics.i3d_features(videos, det, size=64, resize="tf1")
    half = metrics.i3d_features(videos, det, size=64, resize="torch")
    with torch.no_grad():
        np.testing.assert_allclose(tf1, det(metrics.i3d_preprocess(videos, 64, "tf1")).double(),
                                   rtol=1e-6)
    assert not np.allclose(tf1, half)
