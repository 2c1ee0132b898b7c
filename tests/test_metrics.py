"""PSNR, SSIM, reductions and the Frechet distance against scikit-image, SciPy and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from hvrnn import metrics
from hvrnn.metrics.reduce import StreamingReducer, bootstrap_ci, select_samples
from hvrnn.metrics.ssim import SSIM_VARIANTS, gaussian_win_size


def _structured(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Smooth gradients plus hard-edged squares, quantised to uint8 levels, (..., C, H, W)."""
    *lead, c, h, w = shape
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    out = np.empty(shape)
    for idx in np.ndindex(*lead, c):
        img = 0.5 * (np.sin(6 * xx * rng.uniform(0.5, 2)) * yy + 1)
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        img[y0:y0 + h // 3, x0:x0 + w // 3] = rng.uniform()
        out[idx] = img
    return np.round(np.clip(out, 0, 1) * 255) / 255


def _pairs(channels: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(channels)
    shape = (2, 3, channels, 24, 30)
    a = rng.random(shape)
    b = np.clip(a + 0.2 * rng.standard_normal(shape), 0, 1)
    s1 = _structured(rng, shape)
    s2 = np.round(np.clip(s1 + 0.05 * rng.standard_normal(shape), 0, 1) * 255) / 255
    return [(a, b), (s1, s2), (s1, rng.random(shape))]


def _skimage_ssim(x: np.ndarray, y: np.ndarray, variant: str) -> float:
    """x, y: (C, H, W)."""
    kwargs = {"skimage": {"data_range": 1.0},
              "gaussian": {"data_range": 1.0, "gaussian_weights": True, "sigma": 1.5,
                           "use_sample_covariance": False},
              "legacy": {"data_range": 2.0}}[variant]
    return structural_similarity(x.transpose(1, 2, 0), y.transpose(1, 2, 0), channel_axis=2,
                                 **kwargs)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("variant", ["skimage", "gaussian", "legacy"])
def test_ssim_matches_skimage(channels: int, variant: str) -> None:
    for a, b in _pairs(channels):
        ours = metrics.ssim(torch.tensor(a), torch.tensor(b), variant=variant).numpy()
        ref = np.array([[_skimage_ssim(a[i, t], b[i, t], variant) for t in range(a.shape[1])]
                        for i in range(a.shape[0])])
        assert ours.shape == (2, 3)
        np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)


def test_ssim_float32_input_and_variants_together() -> None:
    a, b = _pairs(3)[1]
    ta, tb = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    both = metrics.ssim_variants(ta, tb, ("skimage", "legacy", "gaussian"))
    for name, vals in both.items():
        ref = [[_skimage_ssim(a[i, t].astype(np.float32), b[i, t].astype(np.float32), name)
                for t in range(3)] for i in range(2)]
        np.testing.assert_allclose(vals.numpy(), ref, atol=1e-4)
    # data_range 2 shrinks the constants' weight less, so legacy SSIM is higher on noisy pairs.
    assert (both["legacy"] > both["skimage"]).all()


def test_ssim_identity_and_window_checks() -> None:
    x = torch.rand(1, 2, 3, 16, 16)
    np.testing.assert_allclose(metrics.ssim(x, x).numpy(), 1.0, atol=1e-12)
    assert gaussian_win_size(1.5) == SSIM_VARIANTS["gaussian"].win_size == 11
    with pytest.raises(ValueError, match="smaller than"):
        metrics.ssim(torch.rand(1, 1, 1, 10, 10), torch.rand(1, 1, 1, 10, 10), "gaussian")
    with pytest.raises(ValueError, match="unknown variant"):
        metrics.ssim(x, x, "fast")


@pytest.mark.parametrize("channels", [1, 3])
def test_psnr_matches_skimage(channels: int) -> None:
    for a, b in _pairs(channels):
        ours = metrics.psnr(torch.tensor(a), torch.tensor(b)).numpy()
        per_ch = metrics.psnr(torch.tensor(a), torch.tensor(b), variant="per_channel").numpy()
        for i in range(2):
            for t in range(3):
                ref = peak_signal_noise_ratio(a[i, t], b[i, t], data_range=1.0)
                ref_ch = np.mean([peak_signal_noise_ratio(a[i, t, c], b[i, t, c], data_range=1.0)
                                  for c in range(channels)])
                assert ours[i, t] == pytest.approx(ref, abs=1e-9)
                assert per_ch[i, t] == pytest.approx(ref_ch, abs=1e-9)


def test_psnr_closed_form_and_identity() -> None:
    target = torch.full((2, 4, 3, 8, 8), 0.25, dtype=torch.float64)
    # A constant offset d gives MSE d^2, so PSNR = -20 log10(d).
    for d in (0.1, 0.02):
        np.testing.assert_allclose(metrics.psnr(target + d, target).numpy(), -20 * np.log10(d),
                                   rtol=1e-9)
    same = metrics.psnr(target, target)
    assert torch.isinf(same).all() and (same > 0).all()


# --------------------------------------------------------------------------------------------
# Reductions
# --------------------------------------------------------------------------------------------


def test_select_samples_hand_made() -> None:
    # Sequence 0: sample 2 has the best mean although sample 1 has the best single frame.
    v = torch.tensor([[[0.1, 0.2, 0.3], [0.9, 0.0, 0.0], [0.5, 0.5, 0.5]],
                      [[0.4, 0.4, 0.4], [0.4, 0.4, 0.4], [0.1, 0.1, 0.2]]])
    sel = select_samples(v, higher_is_better=True)
    assert sel["best_index"].tolist() == [2, 0]  # tie in sequence 1 -> first index
    assert sel["worst_index"].tolist() == [0, 2]
    np.testing.assert_allclose(sel["best"].numpy(), [[0.5, 0.5, 0.5], [0.4, 0.4, 0.4]])
    np.testing.assert_allclose(sel["mean"].numpy(), v.double().mean(1).numpy())
    low = select_samples(v, higher_is_better=False)  # LPIPS: lower is better
    assert low["best_index"].tolist() == [0, 2] and low["worst_index"].tolist() == [2, 0]
    with_nan = v.clone()
    with_nan[0, 2, 0] = float("nan")
    assert select_samples(with_nan, True)["best_index"][0] == 1  # mean 0.3 > 0.2
    assert select_samples(with_nan, True)["worst_index"][0] == 2


def test_streaming_equals_in_memory() -> None:
    gen = torch.Generator().manual_seed(0)
    s, n, t = 23, 7, 5
    ssim_v = torch.rand(s, n, t, generator=gen)
    lpips_v = torch.rand(s, n, t, generator=gen)
    red = StreamingReducer({"ssim": True, "lpips": False}, n_boot=200, seed=3)
    for start, stop in ((0, 4), (4, 5), (5, 16), (16, 23)):
        red.update({"ssim": ssim_v[start:stop], "lpips": lpips_v[start:stop]})
    res = red.result()
    assert red.n_sequences == s
    for name, vals, higher in (("ssim", ssim_v, True), ("lpips", lpips_v, False)):
        x = vals.double().numpy()
        avg = x.mean(-1)  # (S, N)
        pick = avg.argmax(1) if higher else avg.argmin(1)
        worst = avg.argmin(1) if higher else avg.argmax(1)
        ref = {"best": x[np.arange(s), pick], "mean": x.mean(1), "worst": x[np.arange(s), worst]}
        for sel, curves in ref.items():
            out = res[name][sel]
            per_seq = curves.mean(1)
            assert out["mean"] == pytest.approx(per_seq.mean(), abs=1e-12)
            assert out["std"] == pytest.approx(per_seq.std(), abs=1e-12)
            np.testing.assert_allclose(out["per_frame_mean"], curves.mean(0), atol=1e-12)
            np.testing.assert_allclose(out["per_frame_std"], curves.std(0), atol=1e-12)
            assert tuple(out["ci95"]) == bootstrap_ci(per_seq, 200, 3)
            assert out["ci95"][0] <= out["mean"] <= out["ci95"][1]
        assert np.array_equal(red.best_index(name), pick)
    ssim_res = res["ssim"]
    assert ssim_res["best"]["mean"] >= ssim_res["mean"]["mean"] >= ssim_res["worst"]["mean"]
    assert res["lpips"]["best"]["mean"] <= res["lpips"]["worst"]["mean"]


def test_streaming_rejects_inconsistent_blocks() -> None:
    red = StreamingReducer(["psnr"])
    red.update({"psnr": torch.rand(2, 3, 4)})
    with pytest.raises(ValueError, match="N=5"):
        red.update({"psnr": torch.rand(2, 5, 4)})
    with pytest.raises(ValueError, match="expected values"):
        red.update({"ssim": torch.rand(2, 3, 4)})


def test_bootstrap_interval_is_seeded_and_sane() -> None:
    x = np.random.default_rng(0).normal(5.0, 1.0, size=400)
    lo, hi = bootstrap_ci(x, 2000, seed=1)
    assert bootstrap_ci(x, 2000, seed=1) == (lo, hi)
    # The normal-theory half width is 1.96 * sigma / sqrt(n) ~= 0.098.
    assert lo < x.mean() < hi and 0.15 < hi - lo < 0.25


# --------------------------------------------------------------------------------------------
# Frechet distance
# --------------------------------------------------------------------------------------------


def _scipy_reference(mu1, s1, mu2, s2) -> float:
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_frechet_closed_form_diagonal(method: str) -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method)
    assert got == pytest.approx(expected, rel=1e-10)
    # 1-d Gaussians: (m1 - m2)^2 + (s1 - s2)^2.
    assert metrics.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]], method=method) == (
        pytest.approx(4.0 + 1.0))


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_frechet_matches_scipy_on_full_covariances(method: str) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 16)), rng.normal(size=(150, 16)) @ rng.normal(size=(16, 16))
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0) + 0.5, np.cov(y, rowvar=False)
    ref = _scipy_reference(mu1, s1, mu2, s2)
    assert metrics.frechet_distance(mu1, s1, mu2, s2, method=method) == pytest.approx(ref,
                                                                                      rel=1e-8)
    # torch inputs are accepted and computed in float64.
    t = [torch.tensor(v, dtype=torch.float32) for v in (mu1, s1, mu2, s2)]
    assert metrics.frechet_distance(*t, method=method) == pytest.approx(ref, rel=1e-4)


def test_fvd_from_features_self_and_shift() -> None:
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(64, 8))
    assert abs(metrics.fvd_from_features(feats, feats)) < 1e-8
    # Shifting every vector by c changes only the mean term: ||c||^2.
    assert metrics.fvd_from_features(feats, feats + 2.0) == pytest.approx(4.0 * 8, rel=1e-8)
    # Fewer vectors than dimensions: singular covariances still give a finite value near 0.
    few = rng.normal(size=(5, 20))
    assert abs(metrics.fvd_from_features(few, few)) < 1e-3


def test_fvd_rounds_seeded() -> None:
    rng = np.random.default_rng(3)
    real = rng.normal(size=(40, 6))
    fake = real[:, None, :] + rng.normal(scale=0.5, size=(40, 4, 6))
    r1 = metrics.fvd_rounds(real, fake, n_rounds=10, seed=5)
    assert r1 == metrics.fvd_rounds(real, fake, n_rounds=10, seed=5)
    assert r1["rounds"] == 10 and len(r1["values"]) == 10
    assert r1["mean"] == pytest.approx(np.mean(r1["values"]))
    pick = np.random.default_rng(5).integers(0, 4, size=40)
    assert r1["values"][0] == pytest.approx(metrics.fvd_from_features(real,
                                                                      fake[np.arange(40), pick]))
    # Identical samples: every round gives the same (near zero) value.
    same = metrics.fvd_rounds(real, np.repeat(real[:, None], 3, axis=1), n_rounds=4)
    assert same["std"] < 1e-9 and abs(same["mean"]) < 1e-8
