"""Frechet video distance (Unterthiner et al., 2018; docs/design.md section 6.5).

Pipeline: videos (B, T, C, H, W) in [0, 1] -> bilinear resize of every frame to 224x224, values
to [-1, 1], grey repeated to 3 channels, layout (B, 3, T, 224, 224) -> I3D (Kinetics-400) ->
400-d logits per video -> Gaussian fit (mean, covariance) per set -> Frechet distance in float64.

For the N-samples protocol the embeddings of every generated video are computed once;
:func:`fvd_rounds` then draws one sample per sequence per round (seeded) and reports the mean
and standard deviation of FVD over rounds.

``scipy.linalg.sqrtm`` on 400x400 matrices is much faster single-threaded when many processes
share a machine; set ``OPENBLAS_NUM_THREADS=1`` (or ``OMP_NUM_THREADS=1``) if it is slow.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from hvrnn.io.frames import to_float
from hvrnn.metrics.i3d import load_i3d

I3D_SIZE = 224


def i3d_preprocess(videos: Tensor, size: int | None = I3D_SIZE) -> Tensor:
    """Map videos to I3D's input.

    Args:
        videos: (B, T, C, H, W) in [0, 1], C = 1 or 3.
        size: frame side after bilinear resizing (``align_corners=False``, no antialiasing);
            ``None`` keeps the input size (for quick tests only; not comparable to FVD).

    Returns:
        (B, 3, T, size, size) float32 in [-1, 1].
    """
    if videos.dim() != 5 or videos.shape[2] not in (1, 3):
        raise ValueError(f"fvd: expected (B, T, C, H, W) videos with C in (1, 3), got "
                         f"{tuple(videos.shape)}")
    b = videos.shape[0]
    x = rearrange(videos.float(), "b t c h w -> (b t) c h w")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x * 2 - 1
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return rearrange(x, "(b t) c h w -> b c t h w", b=b).contiguous()


@torch.no_grad()
def i3d_features(videos: Tensor, i3d: nn.Module, batch_size: int = 8,
                 size: int | None = I3D_SIZE) -> np.ndarray:
    """I3D embeddings of a set of videos.

    Args:
        videos: (B, T, C, H, W) in [0, 1] (or uint8 (B, T, H, W, C), converted here).
        i3d: a module from :func:`hvrnn.metrics.i3d.load_i3d` (or any (B, 3, T, H, W) ->
            (B, D) callable).
        batch_size: videos per forward pass.
        size: see :func:`i3d_preprocess`.

    Returns:
        (B, D) float64 array (D = 400 for Kinetics-400 I3D).
    """
    try:
        device = next(i3d.parameters()).device
    except (StopIteration, AttributeError):
        device = torch.device("cpu")
    out = []
    for s in range(0, videos.shape[0], batch_size):
        batch = videos[s:s + batch_size]
        if batch.dtype == torch.uint8:  # converted batch by batch to bound memory
            batch = to_float(batch)
        x = i3d_preprocess(batch, size).to(device)
        out.append(i3d(x).double().cpu().numpy())
    if not out:
        return np.zeros((0, 400))
    return np.concatenate(out)


def gaussian_stats(feats: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, float64 (N >= 2)."""
    f = np.asarray(feats.cpu() if isinstance(feats, Tensor) else feats, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"fvd: need at least 2 feature vectors of shape (N, D), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray | Tensor, sigma1: np.ndarray | Tensor,
                     mu2: np.ndarray | Tensor, sigma2: np.ndarray | Tensor,
                     eps: float = 1e-6, method: str = "sqrtm") -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    ``d = ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``.

    Args:
        mu1, mu2: (D,) means. sigma1, sigma2: (D, D) covariances.
        eps: if the matrix square root is not finite (near-singular covariances), ``eps * I``
            is added to both covariances and it is recomputed (the usual FID/FVD remedy).
        method: ``"sqrtm"`` (scipy.linalg.sqrtm of sigma1 @ sigma2, imaginary parts from
            rounding dropped, as the reference implementations do) or ``"eigh"`` (the
            symmetric form ``tr((s1^(1/2) sigma2 s1^(1/2))^(1/2))`` via eigendecompositions,
            negative eigenvalues from rounding clipped to 0).

    Returns:
        The distance as a Python float.

    Raises:
        ValueError: shapes disagree, or sqrtm returns a large imaginary component.
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(_np(m), dtype=np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(_np(s), dtype=np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"frechet_distance: shapes mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 "
                         f"{mu2.shape}, sigma2 {s2.shape} do not agree")
    diff = mu1 - mu2
    if method not in ("sqrtm", "eigh"):
        raise ValueError(f"frechet_distance: unknown method {method!r}; use 'sqrtm' or 'eigh'")
    with _single_threaded_blas():
        if method == "sqrtm":
            tr_covmean = _trace_sqrt_product_scipy(s1, s2, eps)
        else:
            tr_covmean = _trace_sqrt_product_eigh(s1, s2)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def _single_threaded_blas() -> contextlib.AbstractContextManager:
    """One BLAS thread while taking matrix roots, if threadpoolctl is installed.

    Multi-threaded OpenBLAS can be 50x slower on 400x400 matrices when other processes load
    the CPU; without threadpoolctl set OPENBLAS_NUM_THREADS=1 before starting Python.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _np(x: np.ndarray | Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, Tensor) else x


def _trace_sqrt_product_scipy(s1: np.ndarray, s2: np.ndarray, eps: float) -> float:
    from scipy import linalg

    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            worst = np.max(np.abs(covmean.imag))
            raise ValueError(f"frechet_distance: sqrtm has an imaginary component {worst:.3g}; "
                             "the covariances are far from positive semi-definite")
        covmean = covmean.real
    return float(np.trace(covmean))


def _trace_sqrt_product_eigh(s1: np.ndarray, s2: np.ndarray) -> float:
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    w2 = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w2, 0, None)).sum())


def fvd_from_features(real_feats: np.ndarray | Tensor, fake_feats: np.ndarray | Tensor,
                      method: str = "sqrtm") -> float:
    """FVD between two sets of embeddings, (N_real, D) and (N_fake, D)."""
    mu1, s1 = gaussian_stats(real_feats)
    mu2, s2 = gaussian_stats(fake_feats)
    return frechet_distance(mu1, s1, mu2, s2, method=method)


def fvd(real_videos: Tensor, fake_videos: Tensor, i3d: str | Path | nn.Module | None = None,
        batch_size: int = 8, size: int | None = I3D_SIZE) -> float:
    """FVD between two sets of videos.

    Args:
        real_videos: (B1, T, C, H, W) in [0, 1].
        fake_videos: (B2, T, C, H, W) in [0, 1].
        i3d: path to I3D weights (TorchScript or state dict, see :func:`load_i3d`) or a loaded
            module.
        batch_size: videos per I3D forward pass.
        size: frame side fed to I3D (224 for FVD; ``None`` only for tests).

    Raises:
        WeightsError: no I3D weights (never a placeholder value).
    """
    model = i3d if isinstance(i3d, nn.Module) else load_i3d(i3d)
    real = i3d_features(real_videos, model, batch_size, size)
    fake = i3d_features(fake_videos, model, batch_size, size)
    return fvd_from_features(real, fake)


def fvd_rounds(real_feats: np.ndarray, fake_feats: np.ndarray, n_rounds: int = 100,
               seed: int = 0, method: str = "sqrtm") -> dict[str, float | int | list[float]]:
    """FVD with one random generated sample per sequence, repeated over rounds.

    Args:
        real_feats: (S, D) embeddings of the S real videos.
        fake_feats: (S, N, D) embeddings of the N generated videos of each sequence.
        n_rounds: rounds; each picks one sample per sequence with a NumPy generator seeded
            by ``seed``.

    Returns:
        ``{"mean", "std", "min", "max", "rounds", "values"}`` over rounds (std with ddof=0).
    """
    real_feats = np.asarray(real_feats, dtype=np.float64)
    fake_feats = np.asarray(fake_feats, dtype=np.float64)
    s, n = fake_feats.shape[:2]
    if real_feats.shape[0] != s:
        raise ValueError(f"fvd_rounds: {real_feats.shape[0]} real videos but {s} sequences of "
                         "generated ones")
    mu1, s1 = gaussian_stats(real_feats)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_rounds):
        pick = rng.integers(0, n, size=s)
        mu2, s2 = gaussian_stats(fake_feats[np.arange(s), pick])
        values.append(frechet_distance(mu1, s1, mu2, s2, method=method))
    v = np.asarray(values)
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
            "max": float(v.max()), "rounds": int(n_rounds), "values": [float(x) for x in v]}
