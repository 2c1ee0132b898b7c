"""Frechet video distance (Unterthiner et al., 2018, "Towards Accurate Generative Models of
Video"; docs/design.md section 6.5).

Pipeline: videos (B, T, C, H, W) in [0, 1] (or uint8) -> bilinear resize of every frame to
224x224, values to [-1, 1], grey repeated to 3 channels, layout (B, 3, T, 224, 224) -> I3D
(Kinetics-400) -> 400-d logits per video -> Gaussian fit (mean, covariance) per set -> Frechet
distance in float64. Clips need at least 9 frames (:data:`hvrnn.metrics.i3d.MIN_FRAMES`).

The resize is a named choice (``resize=``), because the two common conventions give different
FVDs on small frames:

- ``"tf1"`` (default): TensorFlow 1's ``tf.image.resize_bilinear`` with its defaults
  (``align_corners=False``, no half-pixel centres): output pixel ``i`` reads input position
  ``i * in / out``, interpolating linearly between the two neighbouring pixels (the last one
  repeated at the edge). This is what the FVD reference implementation
  (google-research ``frechet_video_distance.py``, ``preprocess``) does.
- ``"torch"``: ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``:
  half-pixel centres, output pixel ``i`` reads ``(i + 0.5) * in / out - 0.5``.

A bright pixel at (16, 16) of a 32x32 frame peaks at (112, 112) with ``"tf1"`` and at
(115, 115) with ``"torch"``.

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

from hvrnn.metrics.i3d import check_frames, load_i3d
from hvrnn.metrics.inputs import unit_range

I3D_SIZE = 224
RESIZE_MODES = ("tf1", "torch")


def _tf1_resize_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in) float64 weights of TF1 ``resize_bilinear`` along one axis.

    Row ``i`` puts ``1 - f`` on input ``floor(s)`` and ``f`` on ``min(floor(s) + 1, n_in - 1)``
    with ``s = i * n_in / n_out`` and ``f = s - floor(s)``.
    """
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, lo), 1 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m


def resize_frames(x: Tensor, size: int, resize: str = "tf1") -> Tensor:
    """Bilinear resize of frames to ``size`` x ``size``.

    Args:
        x: (N, C, H, W) float.
        size: output side.
        resize: ``"tf1"`` or ``"torch"`` (see the module docstring).

    Returns:
        (N, C, size, size), same dtype.
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"fvd: unknown resize {resize!r}; expected one of {RESIZE_MODES}")
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if resize == "torch":
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    rows = _tf1_resize_matrix(h, size).to(device=x.device, dtype=x.dtype)  # (size, H)
    cols = _tf1_resize_matrix(w, size).to(device=x.device, dtype=x.dtype)  # (size, W)
    return rows @ x @ cols.T  # (N, C, size, size)


def _channels_first(videos: Tensor) -> Tensor:
    """uint8 (B, T, H, W, C) as stored on disk -> (B, T, C, H, W); other layouts unchanged."""
    if (videos.dtype == torch.uint8 and videos.dim() == 5 and videos.shape[2] not in (1, 3)
            and videos.shape[-1] in (1, 3)):
        return rearrange(videos, "b t h w c -> b t c h w")
    return videos


def i3d_preprocess(videos: Tensor, size: int | None = I3D_SIZE, resize: str = "tf1") -> Tensor:
    """Map videos to I3D's input.

    Args:
        videos: (B, T, C, H, W) floats in [0, 1] or uint8 (divided by 255; uint8 may also be
            laid out (B, T, H, W, C)), C = 1 or 3.
        size: frame side after the bilinear resize (no antialiasing); ``None`` keeps the input
            size (for quick tests only; not comparable to FVD).
        resize: ``"tf1"`` (the FVD reference implementation, default) or ``"torch"``
            (half-pixel centres); see the module docstring.

    Returns:
        (B, 3, T, size, size) float32 in [-1, 1].

    Raises:
        ValueError: wrong shape, unknown ``resize``, or float values outside [0, 1].
    """
    videos = _channels_first(videos)
    if videos.dim() != 5 or videos.shape[2] not in (1, 3):
        raise ValueError(f"fvd: expected (B, T, C, H, W) videos with C in (1, 3), got "
                         f"{tuple(videos.shape)}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"fvd: unknown resize {resize!r}; expected one of {RESIZE_MODES}")
    b = videos.shape[0]
    x = rearrange(unit_range(videos, "fvd: videos", torch.float32),
                  "b t c h w -> (b t) c h w")
    if size is not None:
        x = resize_frames(x, size, resize)
    x = x * 2 - 1
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return rearrange(x, "(b t) c h w -> b c t h w", b=b).contiguous()


@torch.no_grad()
def i3d_features(videos: Tensor, i3d: nn.Module, batch_size: int = 8,
                 size: int | None = I3D_SIZE, resize: str = "tf1") -> np.ndarray:
    """I3D embeddings of a set of videos.

    Args:
        videos: (B, T, C, H, W) floats in [0, 1], or uint8 (B, T, C, H, W) or (B, T, H, W, C)
            (converted batch by batch); T >= 9.
        i3d: a module from :func:`hvrnn.metrics.i3d.load_i3d` (or any (B, 3, T, H, W) ->
            (B, D) callable).
        batch_size: videos per forward pass.
        size, resize: see :func:`i3d_preprocess`.

    Returns:
        (B, D) float64 array (D = 400 for Kinetics-400 I3D).

    Raises:
        ValueError: fewer than 9 frames (before any feature is computed), a wrong shape, or
            float values outside [0, 1].
    """
    videos = _channels_first(videos)
    if videos.dim() != 5:
        raise ValueError(f"fvd: expected (B, T, C, H, W) videos, got {tuple(videos.shape)}")
    check_frames(videos.shape[1])
    if resize not in RESIZE_MODES:
        raise ValueError(f"fvd: unknown resize {resize!r}; expected one of {RESIZE_MODES}")
    if videos.is_floating_point():
        unit_range(videos, "fvd: videos")  # checked once, before any feature is computed
    try:
        device = next(i3d.parameters()).device
    except (StopIteration, AttributeError):
        device = torch.device("cpu")
    out = []
    for s in range(0, videos.shape[0], batch_size):
        x = i3d_preprocess(videos[s:s + batch_size], size, resize).to(device)
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
        batch_size: int = 8, size: int | None = I3D_SIZE, resize: str = "tf1") -> float:
    """FVD between two sets of videos.

    Args:
        real_videos: (B1, T, C, H, W) floats in [0, 1] or uint8, T >= 9, B1 >= 2.
        fake_videos: (B2, T, C, H, W), same rule.
        i3d: path to I3D weights (TorchScript or state dict, see :func:`load_i3d`), a loaded
            module, or None for the weights cache (``hvrnn weights fetch i3d``).
        batch_size: videos per I3D forward pass.
        size: frame side fed to I3D (224 for FVD; ``None`` only for tests).
        resize: ``"tf1"`` (FVD reference implementation) or ``"torch"``; see the module doc.

    Raises:
        WeightsError: no I3D weights (never a placeholder value).
        ValueError: fewer than 9 frames or fewer than 2 videos in a set (checked before any
            feature is computed), or float values outside [0, 1].
    """
    for name, v in (("real_videos", real_videos), ("fake_videos", fake_videos)):
        if v.dim() != 5:
            raise ValueError(f"fvd: {name} must be (B, T, C, H, W), got {tuple(v.shape)}")
        check_frames(v.shape[1])
        if v.shape[0] < 2:
            raise ValueError(f"fvd: {name} holds {v.shape[0]} video(s); a covariance needs at "
                             "least 2")
    model = i3d if isinstance(i3d, nn.Module) else load_i3d(i3d)
    real = i3d_features(real_videos, model, batch_size, size, resize)
    fake = i3d_features(fake_videos, model, batch_size, size, resize)
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
