"""The scorer: per-frame metrics and FVD embeddings accumulated block by block of sequences.

Per-frame metrics of a block go into a :class:`~hvrnn.metrics.reduce.StreamingReducer`, which
keeps only per-sequence curves, so N samples x sequences x frames values are never held at once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from hvrnn import metrics
from hvrnn.errors import UserError
from hvrnn.evaluation.protocols import PROTOCOLS, Protocol
from hvrnn.evaluation.request import MetricWeights, Weights
from hvrnn.metrics.conventions import LEGACY, convention_scores, get_convention, stroke_iou
from hvrnn.metrics.reduce import StreamingReducer
from hvrnn.metrics.ssim import SSIM_VARIANTS

SKIPPED = "skipped: no weights"


def _loader_arg(weights: Path) -> Path | None:
    """What the metric loaders take: None for the weights cache's folder (its files are checked
    against their published SHA-256), else the path."""
    from hvrnn import weights as cache

    return None if cache.is_cache(weights) else weights


def check_fvd_inputs(p: Protocol, n_sequences: int, i3d_weights: Weights) -> None:
    """FVD's requirements, checked before any sampling or scoring.

    Raises:
        UserError: FVD is asked for (``i3d_weights`` set) but the protocol's FVD clips have
            fewer than :data:`hvrnn.metrics.i3d.MIN_FRAMES` frames, fewer than 2 sequences are
            scored (a covariance needs 2 embeddings), or ``fvd_resize`` is unknown.
    """
    if i3d_weights is None or "fvd" not in p.metrics:
        return
    from hvrnn.metrics.fvd import RESIZE_MODES
    from hvrnn.metrics.i3d import MIN_FRAMES

    frames = p.n_pred + (p.n_ctx if p.fvd_frames == "context+pred" else 0)
    if frames < MIN_FRAMES:
        raise UserError(f"FVD needs clips of at least {MIN_FRAMES} frames; protocol {p.id} gives "
                        f"{frames} (fvd_frames={p.fvd_frames!r}); drop the I3D weights or "
                        "predict more frames")
    if n_sequences < 2:
        raise UserError(f"FVD needs at least 2 test sequences (a covariance of their "
                        f"embeddings), got {n_sequences}; score more sequences or drop the I3D "
                        "weights")
    if p.fvd_resize not in RESIZE_MODES:
        raise UserError(f"protocol {p.id}: fvd_resize must be one of {RESIZE_MODES}, got "
                        f"{p.fvd_resize!r}")


def fvd_warnings(p: Protocol, n_sequences: int, available: int, i3d_weights: Weights
                 ) -> dict[str, list[str]]:
    """``{"warnings": [...]}`` for metrics.json when FVD is computed on fewer videos than the
    protocol's full test set (``available`` test clips, of which the registered protocol
    scores its own number); else ``{}``."""
    full = PROTOCOLS.get(p.id, p).sequences(available)
    if i3d_weights is None or "fvd" not in p.metrics or n_sequences >= full:
        return {}
    return {"warnings": [
        f"FVD computed from {n_sequences} videos per set, the protocol's full test set has "
        f"{full}; FVD is biased upward on fewer videos and is not comparable with values from "
        "the full set"]}


def _as_tensor(a: np.ndarray | Tensor) -> Tensor:
    """A tensor view of an array (copied only if read-only, which torch cannot wrap)."""
    if isinstance(a, Tensor):
        return a
    a = np.asarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def progress_bar(total: int, desc: str) -> Any:
    """A bar over sequences on stderr (progress lines when stderr is not a terminal)."""
    from hvrnn.log import progress

    return progress(total=total, desc=desc, unit="seq")


def trivial_predictions(name: str, context: Tensor, n_pred: int) -> Tensor:
    """A trivial predictor's frames: uint8 (b, n_pred, H, W, C) from the context (b, K, H, W, C).

    ``copy_last``: the last context frame repeated; ``blank``: all-zero (black) frames;
    ``context_mean``: the rounded per-pixel mean of the context frames, repeated.
    """
    last = context[:, -1:]
    if name == "copy_last":
        frame = last
    elif name == "blank":
        frame = torch.zeros_like(last)
    elif name == "context_mean":
        frame = context.double().mean(1, keepdim=True).round().to(torch.uint8)
    else:
        raise ValueError(f"unknown trivial predictor {name!r}")
    return frame.expand(-1, n_pred, -1, -1, -1)


class Scorer:
    """Accumulates per-frame metrics and FVD embeddings block by block of sequences.

    ``psnr`` and ``ssim`` are computed under the protocol's convention, ``psnr@<name>`` and
    ``ssim@<name>`` under each further one (:mod:`hvrnn.metrics.conventions`); ``ssim_legacy``
    (data range 2) is always reported. The protocol's trivial predictors (``baselines``) are
    scored on the same sequences with the same metrics (not FVD).

    Args:
        protocol: the metric conventions, FVD settings and seed.
        weights: the LPIPS and I3D weights (a path or a loaded module); a metric whose weights
            are None (default: both), or that the protocol does not score, is skipped.
        device: where metrics are computed (default: the CPU).
        batch_frames: frames per metric call (bounds memory).

    Raises:
        UserError: an unknown convention. WeightsError: weights that cannot be loaded.
    """

    def __init__(self, protocol: Protocol, weights: MetricWeights | None = None,
                 device: torch.device | None = None, batch_frames: int = 2048) -> None:
        weights = weights or MetricWeights()
        device = device or torch.device("cpu")
        self.p, self.device, self.batch_frames = protocol, device, batch_frames
        try:
            self.conventions = [get_convention(c) for c in protocol.all_conventions()]
        except ValueError as exc:
            raise UserError(f"protocol {protocol.id}: {exc}") from None
        main = self.conventions[0]
        self.legacy = not (main.ssim_window == "uniform" and main.ssim_data_range == 2)
        self.lpips_model, self.i3d = self._networks(weights)
        self.directions, self.modes, self.stamp = self._metric_keys()
        self.reducer = StreamingReducer(self.directions, seed=protocol.seed, modes=self.modes)
        self.baselines = {name: StreamingReducer(self.directions, seed=protocol.seed,
                                                 modes=self.modes)
                          for name in protocol.baselines}
        self.real_feats: list[np.ndarray] = []
        self.fake_feats: list[np.ndarray] = []
        self.n_samples: int | None = None

    def _networks(self, weights: MetricWeights) -> tuple[Any, Any]:
        """The LPIPS and I3D networks on the device (None where skipped), loaded from paths
        or taken as given."""
        p, device = self.p, self.device
        lpips = weights.lpips if "lpips" in p.metrics else None
        i3d = weights.i3d if "fvd" in p.metrics else None
        if lpips is not None and not isinstance(lpips, torch.nn.Module):
            lpips = metrics.load_lpips(p.lpips_net, _loader_arg(lpips))
        if i3d is not None and not isinstance(i3d, torch.nn.Module):
            i3d = metrics.load_i3d(_loader_arg(i3d), device)
        return (None if lpips is None else lpips.to(device)), i3d

    def _metric_keys(self) -> tuple[dict[str, bool], dict[str, str], dict[str, str]]:
        """Per metric key (``psnr``, ``ssim@svg``, ...): whether higher is better, its
        best-of-N mode, and the convention it is stamped with."""
        directions: dict[str, bool] = {}
        modes: dict[str, str] = {}
        stamp: dict[str, str] = {}
        for i, c in enumerate(self.conventions):
            suffix = "" if i == 0 else f"@{c.name}"
            directions[f"psnr{suffix}"] = directions[f"ssim{suffix}"] = True
            modes[f"psnr{suffix}"] = "clip_mse" if c.psnr == "clip_mse" else c.best_of
            modes[f"ssim{suffix}"] = c.best_of
            stamp[f"psnr{suffix}"] = stamp[f"ssim{suffix}"] = c.name
        if self.legacy:
            directions["ssim_legacy"] = True
        if "stroke_iou" in self.p.metrics:
            directions["stroke_iou"] = True
            stamp["stroke_iou"] = "hvrnn (strokes: pixels >= 0.5)"
        if self.lpips_model is not None:
            directions["lpips"] = False
        return directions, modes, stamp

    def _frame_metrics(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Per-frame values (n, T) of samples x and targets y: uint8 (n, T, C, H, W)."""
        extra = [LEGACY] if self.legacy else []
        scores = convention_scores(x, y, [*self.conventions, *extra], self.p.dataset)
        out: dict[str, Tensor] = {}
        for i, c in enumerate(self.conventions):
            suffix = "" if i == 0 else f"@{c.name}"
            sc = scores[c.name]
            out[f"psnr{suffix}"] = sc["mse"] if c.psnr == "clip_mse" else sc["psnr"]
            out[f"ssim{suffix}"] = sc["ssim"]
        if self.legacy:
            out["ssim_legacy"] = scores[LEGACY.name]["ssim"]
        if "stroke_iou" in self.directions:
            out["stroke_iou"] = stroke_iou(x, y)
        if self.lpips_model is not None:
            out["lpips"] = metrics.lpips(x, y, self.p.lpips_net, weights=self.lpips_model)
        return out

    def _score(self, pred_u8: Tensor, true_u8: Tensor, n: int) -> dict[str, Tensor]:
        """pred_u8 (b*n, T, H, W, C), true_u8 (b, T, H, W, C) uint8 -> {metric: (b, n, T)}."""
        bn, t = pred_u8.shape[:2]
        rows = max(1, self.batch_frames // t)  # samples per metric call
        parts: dict[str, list[Tensor]] = {}
        for s in range(0, bn, rows):
            idx = torch.arange(s, min(bn, s + rows))
            x = rearrange(pred_u8[idx], "n t h w c -> n t c h w").to(self.device)
            y = rearrange(true_u8[idx // n], "n t h w c -> n t c h w").to(self.device)
            for k, v in self._frame_metrics(x, y).items():
                parts.setdefault(k, []).append(v.cpu())
        return {k: rearrange(torch.cat(v), "(b n) t -> b n t", n=n) for k, v in parts.items()}

    def add(self, samples: np.ndarray | Tensor, targets: np.ndarray | Tensor,
            context: np.ndarray | Tensor | None) -> None:
        """samples uint8 (b, N, T, H, W, C); targets uint8 (b, T, H, W, C); context (b, K, ...)."""
        b, n, t = samples.shape[:3]
        self.n_samples = n
        pred_u8 = rearrange(_as_tensor(samples), "b n t h w c -> (b n) t h w c")
        true_u8 = _as_tensor(targets)  # (b, T, H, W, C)
        self.reducer.update(self._score(pred_u8, true_u8, n))
        for name, reducer in self.baselines.items():
            if context is None and name != "blank":
                continue
            ctx = _as_tensor(context) if context is not None else true_u8[:, :1]
            reducer.update(self._score(trivial_predictions(name, ctx, t), true_u8, 1))
        if self.i3d is not None:
            self._add_fvd(pred_u8, true_u8, context, b, n)

    def _add_fvd(self, pred_u8: Tensor, true_u8: Tensor, context: np.ndarray | Tensor | None,
                 b: int, n: int) -> None:
        """pred_u8 (b*N, T, H, W, C), true_u8 (b, T, H, W, C), context (b, K, H, W, C) uint8."""
        if self.p.fvd_frames == "context+pred":
            if context is None:
                raise UserError("FVD with fvd_frames='context+pred' needs the ground-truth "
                                "context frames")
            ctx = _as_tensor(context)  # (b, K, H, W, C)
            real = torch.cat([ctx, true_u8], dim=1)
            fake = torch.cat([ctx.repeat_interleave(n, dim=0), pred_u8], dim=1)
        else:
            real, fake = true_u8, pred_u8
        size, resize = self.p.i3d_size or None, self.p.fvd_resize
        # i3d_features converts uint8 (B, T, H, W, C) batch by batch.
        self.real_feats.append(metrics.i3d_features(real, self.i3d, size=size, resize=resize))
        feats = metrics.i3d_features(fake, self.i3d, size=size, resize=resize)
        self.fake_feats.append(feats.reshape(b, n, -1))

    def implementations(self) -> dict[str, Any]:
        """What computed each metric: function, convention, parameters, weights SHA-256."""
        impl: dict[str, Any] = {}
        for i, c in enumerate(self.conventions):
            suffix = "" if i == 0 else f"@{c.name}"
            impl[f"psnr{suffix}"] = {"function": "hvrnn.metrics.conventions.convention_scores",
                                     "convention": c.name, "psnr": c.psnr,
                                     "best_of": self.modes[f"psnr{suffix}"]}
            impl[f"ssim{suffix}"] = {"function": "hvrnn.metrics.conventions.convention_scores",
                                     "convention": c.name,
                                     "parameters": dataclasses.asdict(c.ssim_variant()),
                                     "channels": c.ssim_channels, "to_uint8": c.to_uint8,
                                     "binarize": c.binarize, "best_of": c.best_of}
        if self.legacy:
            impl["ssim_legacy"] = {"function": "hvrnn.metrics.ssim", "variant": "legacy",
                                   "parameters": dataclasses.asdict(SSIM_VARIANTS["legacy"])}
        if "stroke_iou" in self.directions:
            impl["stroke_iou"] = {"function": "hvrnn.metrics.conventions.stroke_iou",
                                  "threshold": 0.5, "convention": "hvrnn's own"}
        impl["lpips"] = SKIPPED if self.lpips_model is None else {
            "function": "hvrnn.metrics.lpips", "version": "0.1", "net": self.p.lpips_net,
            "weights_sha256": dict(self.lpips_model.weights_sha256)}
        impl["fvd"] = SKIPPED if self.i3d is None else {
            "function": "hvrnn.metrics.fvd_rounds",
            "network": "I3D Kinetics-400, 400 logits averaged over time",
            "format": getattr(self.i3d, "format", "module"),
            "weights_sha256": getattr(self.i3d, "weights_sha256", None),
            "frames": self.p.fvd_frames, "i3d_size": self.p.i3d_size,
            "resize": self.p.fvd_resize, "rounds": self.p.fvd_rounds,
            "frechet": "scipy.linalg.sqrtm float64"}
        return impl

    def _stamped(self, res: dict[str, Any]) -> dict[str, Any]:
        """Reducer results with the convention's name beside each metric's numbers."""
        return {k: ({**v, "convention": self.stamp[k]} if k in self.stamp else v)
                for k, v in res.items()}

    def results(self) -> dict[str, Any]:
        """Per metric: best/mean/worst summaries and curves; FVD over rounds."""
        out: dict[str, Any] = self._stamped(dict(self.reducer.result()))
        if "lpips" not in out:
            out["lpips"] = SKIPPED
        if self.i3d is not None:
            real = np.concatenate(self.real_feats)
            fake = np.concatenate(self.fake_feats)
            out["fvd"] = metrics.fvd_rounds(real, fake, self.p.fvd_rounds, seed=self.p.seed)
        else:
            out["fvd"] = SKIPPED
        return out

    def baseline_results(self) -> dict[str, Any]:
        """Per trivial predictor (one sample per sequence): the metrics of :meth:`results`
        without FVD; predictors that needed a context that was not given are left out."""
        return {name: self._stamped(dict(r.result())) for name, r in self.baselines.items()
                if r.n_sequences}
