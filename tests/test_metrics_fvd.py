"""I3D checkpoints (pytorch-i3d layout and TorchScript) and FVD on small videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from hvrnn import metrics
from hvrnn.errors import WeightsError
from hvrnn.metrics.i3d import I3D, load_i3d

# Spot checks against the InceptionI3d module of piergiaj/pytorch-i3d.
STANDARD_SHAPES = {
    "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
    "Conv3d_1a_7x7.bn.running_var": (64,),
    "Conv3d_2b_1x1.conv3d.weight": (64, 64, 1, 1, 1),
    "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
    "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
    "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3),
    "Mixed_4b.b2a.conv3d.weight": (16, 480, 1, 1, 1),
    "Mixed_4f.b3b.bn.weight": (128,),
    "Mixed_5c.b1b.conv3d.weight": (384, 192, 3, 3, 3),
    "Mixed_5c.b3b.conv3d.weight": (128, 832, 1, 1, 1),
    "logits.conv3d.weight": (400, 1024, 1, 1, 1),
    "logits.conv3d.bias": (400,),
}


def _randomised_i3d(seed: int = 0) -> I3D:
    gen = torch.Generator().manual_seed(seed)
    model = I3D()
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("i3d") / "rgb_imagenet.pt"
    state = _randomised_i3d().state_dict()
    # Checkpoints saved by older PyTorch have no num_batches_tracked entries.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)
    return path


def _videos(n: int, seed: int, t: int = 16, c: int = 3, size: int = 64) -> Tensor:
    return torch.rand(n, t, c, size, size, generator=torch.Generator().manual_seed(seed))


def test_i3d_state_dict_layout() -> None:
    state = I3D().state_dict()
    for key, shape in STANDARD_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("logits.bn") for k in state)
    assert sum(v.numel() for k, v in state.items() if "running" not in k
               and "num_batches" not in k) == 12_697_264


def test_i3d_round_trip(i3d_file: Path) -> None:
    loaded = load_i3d(i3d_file)
    assert loaded.format == "state_dict" and len(loaded.weights_sha256) == 64
    reference = _randomised_i3d()
    x = metrics.i3d_preprocess(_videos(2, 1), size=None)  # (2, 3, 16, 64, 64)
    assert x.shape == (2, 3, 16, 64, 64)
    with torch.no_grad():
        out = loaded(x)
        torch.testing.assert_close(out, reference(x))
    assert out.shape == (2, 400) and torch.isfinite(out).all()
    # The embedding depends on the video content.
    with torch.no_grad():
        assert not torch.allclose(out[0], out[1])


def test_i3d_bad_files(tmp_path: Path, i3d_file: Path) -> None:
    with pytest.raises(WeightsError, match="i3d_torchscript.pt"):
        load_i3d(None)
    with pytest.raises(WeightsError, match="do not exist"):
        load_i3d(tmp_path / "missing.pt")
    state = torch.load(i3d_file, weights_only=True)
    del state["Mixed_4c.b1b.conv3d.weight"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(WeightsError, match="Mixed_4c.b1b.conv3d.weight"):
        load_i3d(tmp_path / "partial.pt")
    state["Mixed_4c.b1b.conv3d.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(WeightsError, match="has shape"):
        load_i3d(tmp_path / "shape.pt")
    with pytest.raises(WeightsError):
        metrics.fvd(_videos(2, 0), _videos(2, 1), i3d=None)


def test_preprocess_resizes_scales_and_repeats_grey() -> None:
    grey = torch.zeros(2, 3, 1, 16, 16)
    grey[:, :, :, :, 8:] = 1.0
    x = metrics.i3d_preprocess(grey, size=32)
    assert x.shape == (2, 3, 3, 32, 32)
    assert x.min() == -1 and x.max() == 1
    assert torch.equal(x[:, 0], x[:, 2])
    assert torch.equal(x[..., :15], torch.full_like(x[..., :15], -1.0))
    uniform = metrics.i3d_preprocess(torch.full((1, 2, 3, 10, 10), 0.25))
    assert uniform.shape == (1, 3, 2, 224, 224)
    torch.testing.assert_close(uniform, torch.full_like(uniform, -0.5))


class _ScriptedDetector(nn.Module):
    """Stands in for i3d_torchscript.pt: same call signature, (B, 3, T, H, W) -> (B, 16).

    (The real network returns 400 features; 16 keep the matrix square roots fast.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 16)

    def forward(self, x: Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = False) -> Tensor:
        if rescale or resize or not return_features:
            raise RuntimeError("wrong call convention")
        stats = torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4))], dim=1)  # (B, 6)
        return self.proj(stats)


def test_torchscript_i3d_and_fvd(tmp_path: Path) -> None:
    torch.manual_seed(0)
    detector = _ScriptedDetector()
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(detector).save(str(path))
    model = load_i3d(path)
    assert model.format == "torchscript"
    real = _videos(24, 2, t=9, c=1, size=8)
    feats = metrics.i3d_features(real, model, batch_size=5, size=32)
    with torch.no_grad():
        expected = detector(metrics.i3d_preprocess(real, 32), False, False, True)
    np.testing.assert_allclose(feats, expected.double().numpy(), rtol=1e-6, atol=1e-6)
    # uint8 (B, T, H, W, C) input is converted the same way.
    as_uint8 = (real * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2)
    np.testing.assert_allclose(metrics.i3d_features(as_uint8, model, size=32), feats, atol=1e-2)
    # FVD of a set against itself is ~0; against brighter videos it is clearly larger.
    assert abs(metrics.fvd(real, real, i3d=path, size=32)) < 1e-6
    brighter = (real + 0.3).clamp(0, 1)
    assert metrics.fvd(real, brighter, i3d=model, size=32) > 0.1


def test_i3d_features_from_state_dict(i3d_file: Path) -> None:
    videos = _videos(3, 3, t=9, size=32)
    model = load_i3d(i3d_file)
    feats = metrics.i3d_features(videos, model, batch_size=2, size=None)
    assert feats.shape == (3, 400) and feats.dtype == np.float64 and np.isfinite(feats).all()
    with torch.no_grad():
        direct = model(metrics.i3d_preprocess(videos, None)).double().numpy()
    np.testing.assert_allclose(feats, direct, rtol=1e-5, atol=1e-6)  # batching changes nothing
