"""Reductions of per-frame metric values over samples and sequences (docs/design.md section 6.4).

Per sequence and metric, with values (N samples, T frames):

- **best of N**: the sample whose value averaged over frames is best (max for SSIM/PSNR, min
  for LPIPS; ties go to the lowest sample index); its per-frame curve is kept.
- **mean of N**: the average over all samples, per frame.
- **worst of N**: the sample with the worst frame-averaged value.

Over sequences: mean, standard deviation (ddof=0) and a seeded percentile-bootstrap 95%
interval of the mean, for each of best/mean/worst; plus per-frame curves (mean and std over
sequences).

:class:`StreamingReducer` accepts (B, N, T) blocks of sequences and keeps only (T,) curves per
sequence, so N x sequences x frames values are never held at once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

SELECTIONS = ("best", "mean", "worst")
# Which direction is better for each known metric.
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ssim_legacy": True, "ssim_gaussian": True,
                    "stroke_iou": True,
                    "lpips": False}


SELECTION_MODES = ("sequence", "frame", "clip_mse")


def select_samples(values: Tensor, higher_is_better: bool, mode: str = "sequence"
                   ) -> dict[str, Tensor]:
    """Best, mean and worst of N for each sequence.

    Args:
        values: (B, N, T) per-frame metric of N samples of B sequences; for
            ``mode="clip_mse"`` the per-frame MSE (the metric is then PSNR).
        higher_is_better: True for SSIM/PSNR, False for LPIPS.
        mode: ``"sequence"``: best/worst judged on the frame-averaged value;
            ``"frame"``: the best (worst) sample at every frame; ``"clip_mse"``: a sample's
            value is ``10 log10(1 / mean MSE over frames)`` (MCVD's PSNR), best = highest.

    Returns:
        ``{"best": (B, T), "mean": (B, T), "worst": (B, T), "best_index": (B,),
        "worst_index": (B,), "value_best": (B,), "value_mean": (B,), "value_worst": (B,)}``:
        per-frame curves (PSNR per frame for ``clip_mse``) and the per-sequence values that
        are averaged over sequences.
    """
    if values.dim() != 3:
        raise ValueError(f"expected (B, N, T) values, got {tuple(values.shape)}")
    if mode not in SELECTION_MODES:
        raise ValueError(f"unknown selection mode {mode!r}; expected one of {SELECTION_MODES}")
    v = values.double()
    if mode == "clip_mse":
        seq = 10.0 * torch.log10(1.0 / v.mean(-1))  # (B, N)
        v = 10.0 * torch.log10(1.0 / v)
        higher_is_better = True
    else:
        seq = v.mean(-1)  # (B, N)
    score = seq if higher_is_better else -seq
    # argmax returns the first maximal index; NaN frames count as the worst possible value.
    score = torch.nan_to_num(score, nan=-torch.inf)
    best = score.argmax(-1)  # (B,)
    worst = (-score).argmax(-1)  # (B,)
    rows = torch.arange(v.shape[0])
    out = {"best": v[rows, best], "mean": v.mean(1), "worst": v[rows, worst],
           "best_index": best, "worst_index": worst}
    if mode == "frame":
        frame = v if higher_is_better else -v
        frame = torch.nan_to_num(frame, nan=-torch.inf)
        out["best"] = v.gather(1, frame.argmax(1, keepdim=True)).squeeze(1)
        out["worst"] = v.gather(1, (-frame).argmax(1, keepdim=True)).squeeze(1)
    if mode == "clip_mse":
        out.update(value_best=seq[rows, best], value_mean=seq.mean(1),
                   value_worst=seq[rows, worst])
    else:
        out.update(value_best=out["best"].mean(-1), value_mean=out["mean"].mean(-1),
                   value_worst=out["worst"].mean(-1))
    return out


def bootstrap_ci(x: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``x`` (1-d), with a seeded generator."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def summarize(per_sequence: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, object]:
    """``{"mean", "std", "ci95": [lo, hi], "n"}`` of per-sequence values (1-d)."""
    x = np.asarray(per_sequence, dtype=np.float64)
    # PSNR of a perfect prediction is +inf; the std and interval of such a set are NaN.
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = bootstrap_ci(x, n_boot, seed)
        mean, std = float(x.mean()), float(x.std())
    return {"mean": mean, "std": std, "ci95": [lo, hi], "n": int(x.size)}


@dataclass
class _MetricState:
    higher_is_better: bool
    mode: str = "sequence"
    curves: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {s: [] for s in SELECTIONS})  # each: list of (B, T) blocks
    values: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {s: [] for s in SELECTIONS})  # each: list of (B,) blocks
    best_index: list[np.ndarray] = field(default_factory=list)


class StreamingReducer:
    """Accumulates best/mean/worst-of-N curves sequence block by sequence block.

    Example:
        >>> red = StreamingReducer({"ssim": True, "lpips": False})
        >>> red.update({"ssim": ssim_vals, "lpips": lpips_vals})   # each (B, N, T)
        >>> red.result()["ssim"]["best"]["mean"]

    Args:
        higher_is_better: metric name -> direction. Names in :data:`HIGHER_IS_BETTER` may be
            given as a list instead.
        n_boot, seed: bootstrap settings for the 95% interval.
        modes: metric name -> selection mode of :func:`select_samples` (default
            ``"sequence"``).
    """

    def __init__(self, higher_is_better: dict[str, bool] | list[str] | tuple[str, ...],
                 n_boot: int = 1000, seed: int = 0, modes: dict[str, str] | None = None
                 ) -> None:
        if not isinstance(higher_is_better, dict):
            higher_is_better = {m: HIGHER_IS_BETTER[m] for m in higher_is_better}
        modes = modes or {}
        self.metrics = {m: _MetricState(h, modes.get(m, "sequence"))
                        for m, h in higher_is_better.items()}
        self.n_boot, self.seed = n_boot, seed
        self.n_sequences = 0
        self.n_samples: int | None = None
        self.n_frames: int | None = None

    def update(self, values: dict[str, Tensor]) -> None:
        """Add a block of sequences: ``{metric: (B, N, T)}``, same B, N, T for every metric."""
        if set(values) != set(self.metrics):
            raise ValueError(f"expected values for {sorted(self.metrics)}, got {sorted(values)}")
        shapes = {tuple(v.shape) for v in values.values()}
        if len(shapes) != 1:
            raise ValueError(f"all metrics need the same (B, N, T) shape, got {shapes}")
        b, n, t = shapes.pop()
        if self.n_samples is None:
            self.n_samples, self.n_frames = n, t
        elif (n, t) != (self.n_samples, self.n_frames):
            raise ValueError(f"block has N={n}, T={t}; earlier blocks had N={self.n_samples}, "
                             f"T={self.n_frames}")
        for name, v in values.items():
            state = self.metrics[name]
            sel = select_samples(v, state.higher_is_better, state.mode)
            for s in SELECTIONS:
                state.curves[s].append(sel[s].cpu().numpy())
                state.values[s].append(sel[f"value_{s}"].cpu().numpy())
            state.best_index.append(sel["best_index"].cpu().numpy())
        self.n_sequences += b

    def curves(self, metric: str, selection: str) -> np.ndarray:
        """(S, T) per-sequence curves of one selection."""
        blocks = self.metrics[metric].curves[selection]
        return np.concatenate(blocks) if blocks else np.zeros((0, self.n_frames or 0))

    def best_index(self, metric: str) -> np.ndarray:
        """(S,) index of the selected best sample of every sequence."""
        blocks = self.metrics[metric].best_index
        return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)

    def result(self) -> dict[str, dict[str, dict[str, object]]]:
        """Per metric and selection: summary over sequences plus per-frame curves.

        Returns:
            ``{metric: {"best"|"mean"|"worst": {"mean", "std", "ci95", "n",
            "per_frame_mean": [T], "per_frame_std": [T]}}}``.
        """
        if self.n_sequences == 0:
            raise ValueError("no sequences were added")
        out: dict[str, dict[str, dict[str, object]]] = {}
        for name in self.metrics:
            out[name] = {}
            for s in SELECTIONS:
                c = self.curves(name, s)  # (S, T)
                summary = summarize(np.concatenate(self.metrics[name].values[s]),
                                    self.n_boot, self.seed)
                with np.errstate(invalid="ignore"):
                    summary["per_frame_mean"] = c.mean(axis=0).tolist()
                    summary["per_frame_std"] = c.std(axis=0).tolist()
                out[name][s] = summary
        return out
