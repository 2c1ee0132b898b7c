"""Named evaluation protocols and the scoring of checkpoints or prediction files (SPEC 6).

A protocol fixes the test sequences (dataset, split, order, how many), the horizons, the number
of samples per sequence, the metric variants and the seed; its id and full definition are stored
with every result. Scoring streams over sequences: per-frame metrics of a block of sequences go
into a :class:`~hvrnn.metrics.reduce.StreamingReducer` and only per-sequence curves are kept.

Outputs written to ``out_dir``:

- ``metrics.json``: protocol, implementations (name, variant, weights SHA-256), library version,
  checkpoint or predictions hash, and per metric best/mean/worst of N with mean, std and a
  bootstrap 95% interval over sequences. LPIPS and FVD read ``"skipped: no weights"`` when
  their networks were not given; they are never replaced by a number.
- ``per_frame.csv``: per predicted frame, the mean (and std) over sequences of each selection.
- ``curves.png``: the same curves.
- ``predictions.npz`` (checkpoint evaluation only): the scored uint8 samples and context, in the
  format :func:`evaluate_predictions_file` reads.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from hvrnn.errors import UserError

FVD_FRAMES = ("context+pred", "pred")


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol (SPEC 6).

    Attributes:
        id: the name results are filed under, e.g. ``bair64-c2-p28-n100``.
        dataset: ``data.name`` of the test set; ``data_root`` its default prepared folder.
        image_size, channels: frame size and channels.
        n_ctx, n_pred: context frames given, frames predicted and scored.
        n_samples: samples drawn per test sequence (N of best-of-N).
        split: the split scored; sequences ``0 .. max_sequences - 1`` in dataset order
            (``max_sequences = 0``: all of them). Test windows start at frame 0.
        fvd_frames: frames in each FVD video: ``"context+pred"`` (ground-truth context then
            the prediction, SPEC 9 A8) or ``"pred"``.
        fvd_rounds: FVD repetitions, each with one random sample per sequence.
        i3d_size: frame side fed to I3D (224 for FVD; 0 keeps the frame size, tests only).
        ssim_variant, psnr_variant: see :func:`hvrnn.metrics.ssim` / :func:`~hvrnn.metrics.psnr`.
        lpips_net: LPIPS backbone.
        seed: seed of the sampling generator, the FVD rounds and the bootstrap.
    """

    id: str
    dataset: str
    image_size: int
    channels: int
    n_ctx: int
    n_pred: int
    n_samples: int
    data_root: str = ""
    split: str = "test"
    max_sequences: int = 0
    fvd_frames: str = "context+pred"
    fvd_rounds: int = 100
    i3d_size: int = 224
    ssim_variant: str = "skimage"
    psnr_variant: str = "global"
    lpips_net: str = "alex"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PROTOCOLS: dict[str, Protocol] = {p.id: p for p in (
    Protocol("smmnist64-c5-p20-n100", "smmnist", 64, 1, 5, 20, 100, data_root="data/smmnist"),
    Protocol("bair64-c2-p28-n100", "bair", 64, 3, 2, 28, 100, data_root="data/bair"),
    Protocol("cityscapes128-c2-p28-n100", "cityscapes", 128, 3, 2, 28, 100, split="val",
             data_root="data/cityscapes128"),
    Protocol("kth64-c10-p30-n100", "kth", 64, 1, 10, 30, 100, data_root="data/kth"),
    # The CPU demo: 32x32 SM-MNIST, 2 -> 10 frames, 10 samples, 64 sequences.
    Protocol("smmnist32-c2-p10-n10", "smmnist", 32, 1, 2, 10, 10, max_sequences=64,
             fvd_rounds=10, data_root="data/smmnist32"),
)}


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The protocol with this id (or the object itself); unknown ids raise UserError."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


def protocol_data_config(protocol: Protocol, root: str | Path | None = None) -> Any:
    """The ``DataConfig`` of the protocol's test clips (``n_ctx + n_pred`` frames)."""
    from hvrnn.config import DataConfig

    return DataConfig(name=protocol.dataset, root=str(root or protocol.data_root),
                      image_size=protocol.image_size, channels=protocol.channels,
                      n_ctx=protocol.n_ctx, n_pred=protocol.n_pred, num_workers=0)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    from hvrnn.metrics.lpips import sha256_file as _sha

    return _sha(path)


# --------------------------------------------------------------------------------------------
# Scoring core
# --------------------------------------------------------------------------------------------

SKIPPED = "skipped: no weights"


def _as_tensor(a: np.ndarray | Tensor) -> Tensor:
    """A tensor view of an array (copied only if read-only, which torch cannot wrap)."""
    if isinstance(a, Tensor):
        return a
    a = np.asarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def _to_video(frames: np.ndarray | Tensor, device: torch.device,
              dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 (..., T, H, W, C) -> (..., T, C, H, W) in [0, 1] on ``device``."""
    x = _as_tensor(frames).to(device)
    return rearrange(x, "... t h w c -> ... t c h w").to(dtype) / 255.0


class _Scorer:
    """Accumulates per-frame metrics and FVD embeddings block by block of sequences."""

    def __init__(self, protocol: Protocol, lpips_weights: Any, i3d_weights: Any,
                 device: torch.device, batch_frames: int = 2048) -> None:
        from hvrnn import metrics
        from hvrnn.metrics.reduce import StreamingReducer

        self.p, self.device, self.batch_frames = protocol, device, batch_frames
        self.ssim_names = [protocol.ssim_variant]
        if protocol.ssim_variant != "legacy":
            self.ssim_names.append("legacy")  # SPEC 6.3: always report the legacy value too
        self.lpips_model = None
        if lpips_weights:
            self.lpips_model = (lpips_weights if isinstance(lpips_weights, metrics.LPIPS)
                                else metrics.load_lpips(protocol.lpips_net, lpips_weights))
            self.lpips_model = self.lpips_model.to(device)
        self.i3d = None
        if i3d_weights:
            self.i3d = (i3d_weights if isinstance(i3d_weights, torch.nn.Module)
                        else metrics.load_i3d(i3d_weights, device))
        directions = {"psnr": True, "ssim": True}
        if "legacy" in self.ssim_names[1:]:
            directions["ssim_legacy"] = True
        if self.lpips_model is not None:
            directions["lpips"] = False
        self.reducer = StreamingReducer(directions, seed=protocol.seed)
        self.real_feats: list[np.ndarray] = []
        self.fake_feats: list[np.ndarray] = []
        self.n_samples: int | None = None

    def add(self, samples: np.ndarray | Tensor, targets: np.ndarray | Tensor,
            context: np.ndarray | Tensor | None) -> None:
        """samples uint8 (b, N, T, H, W, C); targets uint8 (b, T, H, W, C); context (b, K, ...)."""
        from hvrnn import metrics

        b, n, t = samples.shape[:3]
        self.n_samples = n
        pred_u8 = rearrange(_as_tensor(samples),
                            "b n t h w c -> (b n) t h w c")
        true_u8 = _as_tensor(targets)  # (b, T, H, W, C)
        rows = max(1, self.batch_frames // t)  # samples per metric call
        parts: dict[str, list[Tensor]] = {}
        for s in range(0, b * n, rows):
            idx = torch.arange(s, min(b * n, s + rows))
            # uint8 -> float64 in [0, 1] chunk by chunk: exact values, bounded memory.
            x = _to_video(pred_u8[idx], self.device, torch.float64)
            y = _to_video(true_u8[idx // n], self.device, torch.float64)
            out = {"psnr": metrics.psnr(x, y, self.p.psnr_variant)}
            ssims = metrics.ssim_variants(x, y, tuple(self.ssim_names))
            out["ssim"] = ssims[self.p.ssim_variant]
            if "ssim_legacy" in self.reducer.metrics:
                out["ssim_legacy"] = ssims["legacy"]
            if self.lpips_model is not None:
                out["lpips"] = metrics.lpips(x, y, self.p.lpips_net, weights=self.lpips_model)
            for k, v in out.items():
                parts.setdefault(k, []).append(v.cpu())
        values = {k: rearrange(torch.cat(v), "(b n) t -> b n t", b=b, n=n)
                  for k, v in parts.items()}
        self.reducer.update(values)
        if self.i3d is not None:
            self._add_fvd(pred_u8, true_u8, context, b, n)

    def _add_fvd(self, pred_u8: Tensor, true_u8: Tensor, context: np.ndarray | Tensor | None,
                 b: int, n: int) -> None:
        """pred_u8 (b*N, T, H, W, C), true_u8 (b, T, H, W, C), context (b, K, H, W, C) uint8."""
        from hvrnn import metrics

        if self.p.fvd_frames == "context+pred":
            if context is None:
                raise UserError("FVD with fvd_frames='context+pred' needs the ground-truth "
                                "context frames")
            ctx = _as_tensor(context)  # (b, K, H, W, C)
            real = torch.cat([ctx, true_u8], dim=1)
            fake = torch.cat([ctx.repeat_interleave(n, dim=0), pred_u8], dim=1)
        else:
            real, fake = true_u8, pred_u8
        size = self.p.i3d_size or None
        # i3d_features converts uint8 (B, T, H, W, C) batch by batch.
        self.real_feats.append(metrics.i3d_features(real, self.i3d, size=size))
        feats = metrics.i3d_features(fake, self.i3d, size=size)
        self.fake_feats.append(feats.reshape(b, n, -1))

    def implementations(self) -> dict[str, Any]:
        from hvrnn.metrics.ssim import SSIM_VARIANTS

        impl: dict[str, Any] = {
            "psnr": {"function": "hvrnn.metrics.psnr", "variant": self.p.psnr_variant,
                     "data_range": 1.0},
            "ssim": {"function": "hvrnn.metrics.ssim", "variant": self.p.ssim_variant,
                     "parameters": dataclasses.asdict(SSIM_VARIANTS[self.p.ssim_variant])},
        }
        if "ssim_legacy" in self.reducer.metrics:
            impl["ssim_legacy"] = {"function": "hvrnn.metrics.ssim", "variant": "legacy",
                                   "parameters": dataclasses.asdict(SSIM_VARIANTS["legacy"])}
        if self.lpips_model is not None:
            impl["lpips"] = {"function": "hvrnn.metrics.lpips", "version": "0.1",
                             "net": self.p.lpips_net,
                             "weights_sha256": dict(self.lpips_model.weights_sha256)}
        else:
            impl["lpips"] = SKIPPED
        if self.i3d is not None:
            impl["fvd"] = {"function": "hvrnn.metrics.fvd_rounds",
                           "network": "I3D Kinetics-400, 400 logits averaged over time",
                           "format": getattr(self.i3d, "format", "module"),
                           "weights_sha256": getattr(self.i3d, "weights_sha256", None),
                           "frames": self.p.fvd_frames, "i3d_size": self.p.i3d_size,
                           "rounds": self.p.fvd_rounds, "frechet": "scipy.linalg.sqrtm float64"}
        else:
            impl["fvd"] = SKIPPED
        return impl

    def results(self) -> dict[str, Any]:
        from hvrnn import metrics

        out: dict[str, Any] = dict(self.reducer.result())
        if "lpips" not in out:
            out["lpips"] = SKIPPED
        if self.i3d is not None:
            real = np.concatenate(self.real_feats)
            fake = np.concatenate(self.fake_feats)
            out["fvd"] = metrics.fvd_rounds(real, fake, self.p.fvd_rounds, seed=self.p.seed)
        else:
            out["fvd"] = SKIPPED
        return out


def _check_out_dir(out_dir: str | Path, force: bool) -> Path:
    out = Path(out_dir)
    if (out / "metrics.json").exists() and not force:
        raise UserError(f"{str(out / 'metrics.json')!r} already exists; pass --force "
                        "(force=True) to overwrite it or choose another output folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_outputs(out: Path, scorer: _Scorer, protocol: Protocol, n_sequences: int,
                   extra: dict[str, Any], wall: float) -> dict[str, Any]:
    from hvrnn import __version__

    results = {
        "protocol_id": protocol.id,
        "protocol": protocol.to_dict(),
        "hvrnn_version": __version__,
        "n_sequences": n_sequences,
        "n_samples": scorer.n_samples,
        "n_pred": protocol.n_pred,
        "implementations": scorer.implementations(),
        "metrics": scorer.results(),
        "wall_seconds": round(wall, 2),
        **extra,
    }
    if scorer.n_samples != protocol.n_samples:
        results["note"] = (f"scored {scorer.n_samples} samples per sequence; the protocol "
                           f"asks for {protocol.n_samples}")
    # Strict JSON: a non-finite value (the PSNR of a perfect prediction is +inf) is written as
    # null and listed under "non_finite", so every JSON parser reads the file.
    non_finite: list[str] = []
    strict = _finite_or_null(results, "", non_finite) | {"non_finite": non_finite}
    (out / "metrics.json").write_text(json.dumps(strict, indent=2, allow_nan=False))
    _write_csv(out / "per_frame.csv", results["metrics"], protocol)
    _write_plot(out / "curves.png", results["metrics"], protocol)
    return strict


def _curve_metrics(res: dict[str, Any]) -> list[str]:
    return [m for m, v in res.items() if isinstance(v, dict) and "best" in v]


def _write_csv(path: Path, res: dict[str, Any], protocol: Protocol) -> None:
    names = _curve_metrics(res)
    header = ["t"]
    for m in names:
        for s in ("best", "mean", "worst"):
            header += [f"{m}_{s}", f"{m}_{s}_std"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for t in range(protocol.n_pred):
            row: list[Any] = [protocol.n_ctx + t + 1]  # 1-based frame index in the clip
            for m in names:
                for s in ("best", "mean", "worst"):
                    row += [repr(res[m][s]["per_frame_mean"][t]),
                            repr(res[m][s]["per_frame_std"][t])]
            w.writerow(row)


def _write_plot(path: Path, res: dict[str, Any], protocol: Protocol) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _curve_metrics(res)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    t = np.arange(protocol.n_ctx + 1, protocol.n_ctx + protocol.n_pred + 1)
    for ax, m in zip(axes[0], names, strict=True):
        for s, style in (("best", "-"), ("mean", "--"), ("worst", ":")):
            mean = np.asarray(res[m][s]["per_frame_mean"])
            ax.plot(t, mean, style, label=f"{s} of N")
            if s == "best":
                std = np.asarray(res[m][s]["per_frame_std"])
                ax.fill_between(t, mean - std, mean + std, alpha=0.2)
        ax.set_title(m)
        ax.set_xlabel("frame")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.suptitle(protocol.id)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="seq", disable=None, file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Predictions arrays and files
# --------------------------------------------------------------------------------------------


def _finite_or_null(obj, path: str, found: list[str]):
    """Copy of ``obj`` with NaN / +-inf floats replaced by None; their key paths go to ``found``."""
    if isinstance(obj, dict):
        return {k: _finite_or_null(v, f"{path}.{k}" if path else str(k), found)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(v, f"{path}[{i}]", found) for i, v in enumerate(obj)]
    if isinstance(obj, float) and not math.isfinite(obj):
        found.append(f"{path}={obj}")
        return None
    return obj


def evaluate_predictions(samples_uint8: np.ndarray, targets_uint8: np.ndarray,
                         context_uint8: np.ndarray | None, protocol: str | Protocol,
                         out_dir: str | Path, lpips_weights: Any = None, i3d_weights: Any = None,
                         *, force: bool = False, device: str = "cpu", chunk: int = 4,
                         extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score predictions held in memory and write metrics.json, per_frame.csv, curves.png.

    Args:
        samples_uint8: (S, N, T_pred, H, W, C) uint8 generated frames.
        targets_uint8: (S, T_pred, H, W, C) uint8 ground-truth future frames.
        context_uint8: (S, K, H, W, C) uint8 ground-truth context (needed for FVD with
            ``fvd_frames="context+pred"``), or None.
        protocol: a protocol id or :class:`Protocol`.
        out_dir: output folder; an existing metrics.json needs ``force=True``.
        lpips_weights: LPIPS weights (see :func:`hvrnn.metrics.lpips`); None skips LPIPS.
        i3d_weights: I3D weights (see :func:`hvrnn.metrics.load_i3d`); None skips FVD.
        device: where metrics are computed.
        chunk: sequences scored at once.
        extra: more top-level entries for metrics.json (e.g. a checkpoint hash).

    Returns:
        The dictionary written to metrics.json.
    """
    p = get_protocol(protocol)
    samples = np.asarray(samples_uint8)
    targets = np.asarray(targets_uint8)
    _check_array("samples", samples, (None, None, p.n_pred, p.image_size, p.image_size,
                                      p.channels), p)
    s = samples.shape[0]
    _check_array("targets", targets, (s, p.n_pred, p.image_size, p.image_size, p.channels), p)
    if context_uint8 is not None:
        _check_array("context", np.asarray(context_uint8),
                     (s, p.n_ctx, p.image_size, p.image_size, p.channels), p)

    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        for i in range(0, s, chunk):
            ctx = None if context_uint8 is None else np.asarray(context_uint8[i:i + chunk])
            yield samples[i:i + chunk], targets[i:i + chunk], ctx

    return _score_blocks(blocks(), s, p, out_dir, lpips_weights, i3d_weights, force=force,
                         device=device, extra=extra or {})


def _score_blocks(blocks: Iterator[tuple[Any, Any, Any]], n_sequences: int, p: Protocol,
                  out_dir: str | Path, lpips_weights: Any, i3d_weights: Any, *, force: bool,
                  device: str, extra: dict[str, Any]) -> dict[str, Any]:
    out = _check_out_dir(out_dir, force)
    t0 = time.time()
    dev = _device(device)
    scorer = _Scorer(p, lpips_weights, i3d_weights, dev)
    with _progress(n_sequences, f"scoring {p.id}") as bar:
        for samples, targets, context in blocks:
            scorer.add(samples, targets, context)
            bar.update(samples.shape[0])
    return _write_outputs(out, scorer, p, n_sequences, extra, time.time() - t0)


def _device(name: str) -> torch.device:
    from hvrnn.distributed import resolve_device

    return resolve_device(name)


def _check_array(key: str, arr: np.ndarray, expected: tuple[int | None, ...], p: Protocol,
                 source: str = "") -> None:
    where = f"{source}: " if source else ""
    shown = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
    if arr.dtype != np.uint8:
        raise UserError(f"{where}{key!r} has dtype {arr.dtype}, expected uint8 {shown}")
    if arr.ndim != len(expected) or any(e is not None and a != e
                                        for a, e in zip(arr.shape, expected, strict=False)):
        raise UserError(f"{where}{key!r} has shape {tuple(arr.shape)}, expected {shown} for "
                        f"protocol {p.id}")


class _NpyInZip:
    """Reads an array stored in an .npz member sequentially, a block of rows at a time."""

    def __init__(self, path: Path, key: str) -> None:
        self.zip = zipfile.ZipFile(path)
        self.file = self.zip.open(f"{key}.npy")
        version = np.lib.format.read_magic(self.file)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(self.file)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(self.file)
        if fortran:
            raise UserError(f"{str(path)!r}: {key!r} is stored in Fortran order; save it with "
                            "numpy.savez from a C-ordered array")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def read(self, rows: int) -> np.ndarray:
        data = self.file.read(rows * self.row_bytes)
        n = len(data) // self.row_bytes
        return np.frombuffer(data, dtype=self.dtype).reshape(n, *self.shape[1:])

    def close(self) -> None:
        self.file.close()
        self.zip.close()


def _open_npz(path: Path) -> dict[str, _NpyInZip]:
    if not path.is_file():
        raise UserError(f"predictions file {str(path)!r} does not exist")
    try:
        with zipfile.ZipFile(path) as z:
            names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
    except zipfile.BadZipFile:
        raise UserError(f"{str(path)!r} is not an .npz file") from None
    if "samples" not in names:
        raise UserError(f"predictions file {str(path)!r} has no 'samples' array (it holds: "
                        f"{', '.join(names) or 'nothing'})")
    return {k: _NpyInZip(path, k) for k in ("samples", "context") if k in names}


def _ground_truth(p: Protocol, data_root: str | Path | None, dataset: Any = None) -> Any:
    """The protocol's test clips as a map-style dataset of (T, C, H, W) float in [0, 1]."""
    if dataset is not None:
        return dataset
    from hvrnn.data import build_dataset

    return build_dataset(protocol_data_config(p, data_root), split=p.split)


def _n_sequences(p: Protocol, available: int) -> int:
    return min(available, p.max_sequences) if p.max_sequences else available


def _clips_uint8(dataset: Any, start: int, stop: int, p: Protocol) -> np.ndarray:
    """(stop - start, K + T, H, W, C) uint8 ground-truth clips."""
    clips = []
    for i in range(start, stop):
        item = dataset[i]
        clip = torch.as_tensor(item[0] if isinstance(item, (tuple, list)) else item)
        expected = (p.n_ctx + p.n_pred, p.channels, p.image_size, p.image_size)
        if tuple(clip.shape) != expected:
            raise UserError(f"test clip {i} of {p.dataset!r} has shape {tuple(clip.shape)}, "
                            f"expected {expected} for protocol {p.id}")
        clips.append((clip.clamp(0, 1) * 255).round().to(torch.uint8))
    return rearrange(torch.stack(clips), "s t c h w -> s t h w c").numpy()


def evaluate_predictions_file(npz_path: str | Path, protocol_id: str | Protocol,
                              out_dir: str | Path, data_root: str | Path | None = None,
                              lpips_weights: Any = None, i3d_weights: Any = None, *,
                              targets: np.ndarray | str | Path | None = None,
                              dataset: Any = None, max_sequences: int | None = None,
                              force: bool = False, device: str = "cpu",
                              chunk: int = 4) -> dict[str, Any]:
    """Score a predictions file (API.md) against the protocol's ground truth.

    The file holds ``samples`` uint8 (sequences, N, T_pred, H, W, C) and optionally
    ``context`` uint8 (sequences, K, H, W, C); sequence i must be test sequence i of the
    protocol (checked against ``context`` when present). The file is read block by block.

    Args:
        npz_path: the predictions file.
        protocol_id: a protocol id or :class:`Protocol`.
        out_dir: output folder (existing metrics.json needs ``force=True``).
        data_root: prepared test data (default: the protocol's ``data_root``).
        lpips_weights, i3d_weights: optional metric weights (None skips LPIPS / FVD).
        targets: ground-truth clips instead of the dataset: uint8 (sequences, K + T_pred, H, W,
            C), or an .npz path holding them as ``videos``.
        dataset: a map-style dataset of (K + T_pred, C, H, W) float clips instead of
            ``build_dataset``.
        max_sequences: score only the first sequences (recorded in the protocol).

    Returns:
        The dictionary written to metrics.json.
    """
    p = get_protocol(protocol_id)
    if max_sequences:
        p = dataclasses.replace(p, max_sequences=int(max_sequences))
    path = Path(npz_path)
    arrays = _open_npz(path)
    samples_r = arrays["samples"]
    context_r = arrays.get("context")
    try:
        if targets is not None:
            if not isinstance(targets, np.ndarray):
                targets = _load_targets(Path(targets))
            _check_array("targets", targets, (None, p.n_ctx + p.n_pred, p.image_size,
                                              p.image_size, p.channels), p)
            available = targets.shape[0]

            def clips(a: int, b: int) -> np.ndarray:
                return targets[a:b]
        else:
            gt = _ground_truth(p, data_root, dataset)
            available = len(gt)

            def clips(a: int, b: int) -> np.ndarray:
                return _clips_uint8(gt, a, b, p)
        s = _n_sequences(p, available)
        expected = (s, None, p.n_pred, p.image_size, p.image_size, p.channels)
        _check_array("samples", _Shape(samples_r), expected, p, str(path))
        if context_r is not None:
            _check_array("context", _Shape(context_r),
                         (s, p.n_ctx, p.image_size, p.image_size, p.channels), p, str(path))

        def blocks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            for a in range(0, s, chunk):
                b = min(s, a + chunk)
                clip = clips(a, b)
                ctx, fut = clip[:, :p.n_ctx], clip[:, p.n_ctx:]
                if context_r is not None:
                    given = context_r.read(b - a)
                    bad = np.abs(given.astype(np.int16) - ctx.astype(np.int16)).reshape(
                        b - a, -1).max(axis=1) > 1
                    if bad.any():
                        i = a + int(np.argmax(bad))
                        raise UserError(f"{str(path)!r}: 'context' of sequence {i} differs from "
                                        f"test sequence {i} of protocol {p.id}; predictions must "
                                        "follow the protocol's test order")
                yield samples_r.read(b - a), fut, ctx

        extra = {"predictions_file": str(path), "predictions_sha256": sha256_file(path),
                 "checkpoint_sha256": None}
        return _score_blocks(blocks(), s, p, out_dir, lpips_weights, i3d_weights, force=force,
                             device=device, extra=extra)
    finally:
        for r in arrays.values():
            r.close()


class _Shape:
    """Shape/dtype view of a lazily read array, for :func:`_check_array`."""

    def __init__(self, reader: _NpyInZip) -> None:
        self.shape, self.dtype, self.ndim = reader.shape, reader.dtype, len(reader.shape)


def _load_targets(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"targets file {str(path)!r} does not exist")
    with np.load(path) as z:
        if "videos" not in z:
            raise UserError(f"targets file {str(path)!r} has no 'videos' array (it holds: "
                            f"{', '.join(z.files)})")
        return z["videos"]


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


class _NpzStreamWriter:
    """Writes ``samples`` row blocks into an .npz as they come; ``context`` at the end."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        self.file = self.zip.open("samples.npy", "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                  "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_2_0(self.file, header)
        self.context: list[np.ndarray] = []

    def write(self, samples: np.ndarray, context: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(samples, dtype=np.uint8).tobytes())
        self.context.append(context)

    def close(self) -> None:
        self.file.close()
        with self.zip.open("context.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.concatenate(self.context))
        self.zip.close()


def evaluate_checkpoint(checkpoint_path: str | Path, protocol_id: str | Protocol,
                        out_dir: str | Path, data_root: str | Path | None = None,
                        n_samples: int | None = None, max_sequences: int | None = None,
                        device: str = "cpu", lpips_weights: Any = None, i3d_weights: Any = None,
                        *, batch_size: int = 0, temperature: float = 1.0, force: bool = False,
                        save_predictions: bool = True, dataset: Any = None,
                        sampler: Callable[..., Tensor] | None = None) -> dict[str, Any]:
    """Sample from a checkpoint on the protocol's test set and score the samples.

    For each block of test sequences: draw N samples of ``n_pred`` frames from the ground-truth
    context (one ``torch.Generator`` seeded with the protocol seed, on ``device``), quantise to
    uint8 (round, SPEC 6.2), score them, and compute the teacher-forced negative ELBO and the
    KL per level on the same clips.

    Args:
        checkpoint_path: a checkpoint file or run directory.
        protocol_id: a protocol id or :class:`Protocol`.
        out_dir: output folder (existing metrics.json needs ``force=True``).
        data_root: prepared test data (default: the checkpoint config's ``data.root``).
        n_samples: samples per sequence (default: the protocol's; recorded in the protocol).
        max_sequences: score only the first sequences (recorded in the protocol).
        device: ``cpu``, ``cuda`` or ``auto``.
        lpips_weights, i3d_weights: optional metric weights (None skips LPIPS / FVD).
        batch_size: sequences sampled together (0: the config's ``eval.batch_size``).
        temperature: prior variance multiplier (1 for the protocol).
        save_predictions: also write ``predictions.npz`` (samples and context, uint8).
        dataset: test clips to use instead of ``build_dataset`` (tests, custom data).
        sampler: replaces :func:`hvrnn.sampling.sample` (same signature).

    Returns:
        The dictionary written to metrics.json, with ``checkpoint_sha256`` and ``elbo``.
    """
    from hvrnn.checkpoint import _resolve, load_checkpoint
    from hvrnn.objective import elbo_terms

    p = get_protocol(protocol_id)
    if n_samples:
        p = dataclasses.replace(p, n_samples=int(n_samples))
    if max_sequences:
        p = dataclasses.replace(p, max_sequences=int(max_sequences))
    out = _check_out_dir(out_dir, force)
    dev = _device(device)
    ckpt_file = _resolve(checkpoint_path)
    model, cfg = load_checkpoint(ckpt_file, device=dev)
    for key, have, want in (("n_ctx", cfg.data.n_ctx, p.n_ctx),
                            ("image_size", cfg.data.image_size, p.image_size),
                            ("channels", cfg.data.channels, p.channels)):
        if have != want:
            raise UserError(f"checkpoint {str(ckpt_file)!r} has data.{key}={have} but protocol "
                            f"{p.id} needs {want}")
    if sampler is None:
        from hvrnn.sampling import sample as sampler
    gt = _ground_truth(p, data_root or cfg.data.root, dataset)
    s = _n_sequences(p, len(gt))
    bs = batch_size or cfg.eval.batch_size
    generator = torch.Generator(device=dev).manual_seed(p.seed)
    elbo_sums: dict[str, float] = {}
    writer = None
    if save_predictions:
        writer = _NpzStreamWriter(out / "predictions.npz",
                                  (s, p.n_samples, p.n_pred, p.image_size, p.image_size,
                                   p.channels))

    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for a in range(0, s, bs):
            b = min(s, a + bs)
            clip = _clips_uint8(gt, a, b, p)  # (b, K + T, H, W, C)
            video = _to_video(clip, dev)  # (b, K + T, C, H, W)
            with torch.no_grad():
                samples = sampler(model, video[:, :p.n_ctx], horizon=p.n_pred,
                                  n_samples=p.n_samples, generator=generator,
                                  temperature=temperature)
                # Teacher-forced ELBO; the posterior noise comes from a seeded global RNG.
                with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                    torch.manual_seed(p.seed + a)
                    terms = elbo_terms(model(video), video[:, p.n_ctx:], model.likelihood)
            for k, v in terms.items():
                elbo_sums[k] = elbo_sums.get(k, 0.0) + float(v) * (b - a)
            samples_u8 = (samples.clamp(0, 1) * 255).round().to(torch.uint8)
            samples_u8 = rearrange(samples_u8, "b n t c h w -> b n t h w c").cpu().numpy()
            if writer is not None:
                writer.write(samples_u8, clip[:, :p.n_ctx])
            yield samples_u8, clip[:, p.n_ctx:], clip[:, :p.n_ctx]

    t0 = time.time()
    scorer = _Scorer(p, lpips_weights, i3d_weights, dev)
    was_training = model.training
    model.eval()
    try:
        with _progress(s, f"sampling and scoring {p.id}") as bar:
            for samples_u8, fut, ctx in blocks():
                scorer.add(samples_u8, fut, ctx)
                bar.update(samples_u8.shape[0])
    finally:
        model.train(was_training)
        if writer is not None:
            writer.close()
    elbo = {k: v / s for k, v in elbo_sums.items() if k != "loss"}
    extra = {"checkpoint": str(ckpt_file), "checkpoint_sha256": sha256_file(ckpt_file),
             "elbo": {"per_clip_mean": elbo, "likelihood": model.likelihood,
                      "frames_scored": p.n_pred, "note": "teacher-forced (posterior) pass on "
                      "the same test clips; nats per clip, KL per level summed over frames"},
             "temperature": temperature, "model_config": cfg.to_dict()}
    if save_predictions:
        extra["predictions_file"] = str(out / "predictions.npz")
    return _write_outputs(out, scorer, p, s, extra, time.time() - t0)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``hvrnn evaluate``; the handler is stored as ``args.func``."""
    p = subparsers.add_parser(
        "evaluate", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="score a checkpoint or a predictions file on a named protocol",
        description="Sample from CHECKPOINT on the protocol's test set and score the samples, "
        "or score a predictions .npz (samples uint8 (sequences, N, T_pred, H, W, C), optional "
        "context). Writes metrics.json, per_frame.csv and curves.png. LPIPS and FVD run only "
        f"when their weights are given. Protocols: {', '.join(PROTOCOLS)}.")
    p.add_argument("checkpoint", nargs="?", help="checkpoint file or run directory")
    p.add_argument("--protocol", required=True, help="protocol id")
    p.add_argument("--predictions", metavar="FILE.npz", help="score this file instead")
    p.add_argument("--targets", metavar="FILE.npz",
                   help="ground-truth clips (key 'videos', uint8 (sequences, K+T, H, W, C)) "
                   "instead of the prepared dataset (with --predictions)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: eval/<protocol> next "
                   "to the checkpoint, or next to the predictions file)")
    p.add_argument("--data-root", metavar="DIR", help="prepared test data")
    p.add_argument("--n-samples", type=int, help="samples per sequence (checkpoint only)")
    p.add_argument("--max-sequences", type=int, help="score only the first N sequences")
    p.add_argument("--lpips-weights", metavar="P", help="LPIPS backbone file or folder")
    p.add_argument("--i3d-weights", metavar="P", help="I3D TorchScript or state dict")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--batch-size", type=int, default=0, help="sequences per sampling batch "
                   "(0: the checkpoint's eval.batch_size)")
    p.add_argument("--no-save-predictions", action="store_true",
                   help="do not write predictions.npz (checkpoint only)")
    p.add_argument("--force", action="store_true", help="overwrite an existing metrics.json")
    p.set_defaults(func=run_evaluate_command)
    return p


def run_evaluate_command(args: argparse.Namespace) -> int:
    """Handler of ``hvrnn evaluate``: calls the library functions and prints a summary."""
    if bool(args.checkpoint) == bool(args.predictions):
        raise UserError("give either a CHECKPOINT or --predictions FILE.npz (not both)")
    get_protocol(args.protocol)
    if args.predictions:
        out = args.out or str(Path(args.predictions).parent / f"eval-{args.protocol}")
        result = evaluate_predictions_file(
            args.predictions, args.protocol, out, data_root=args.data_root,
            lpips_weights=args.lpips_weights, i3d_weights=args.i3d_weights,
            targets=args.targets, max_sequences=args.max_sequences, force=args.force,
            device=args.device)
    else:
        if args.targets:
            raise UserError("--targets is only used with --predictions")
        ckpt = Path(args.checkpoint)
        base = ckpt if ckpt.is_dir() else ckpt.parent.parent
        out = args.out or str(base / "eval" / args.protocol)
        result = evaluate_checkpoint(
            args.checkpoint, args.protocol, out, data_root=args.data_root,
            n_samples=args.n_samples, max_sequences=args.max_sequences, device=args.device,
            lpips_weights=args.lpips_weights, i3d_weights=args.i3d_weights,
            batch_size=args.batch_size, force=args.force,
            save_predictions=not args.no_save_predictions)
    print(format_summary(result))
    print(f"results: {Path(out) / 'metrics.json'}")
    return 0


def format_summary(result: dict[str, Any]) -> str:
    """A few lines: best/mean of N for each metric, FVD, negative ELBO."""
    lines = [f"protocol {result['protocol_id']}: {result['n_sequences']} sequences x "
             f"{result['n_samples']} samples"]
    for name, res in result["metrics"].items():
        if isinstance(res, str):
            lines.append(f"  {name:12s} {res}")
        elif "best" in res:
            b, m = res["best"], res["mean"]
            lines.append(f"  {name:12s} best {b['mean']:.4f} +- {b['std']:.4f}   "
                         f"mean {m['mean']:.4f} +- {m['std']:.4f}")
        else:
            lines.append(f"  {name:12s} {res['mean']:.2f} +- {res['std']:.2f} "
                         f"({res['rounds']} rounds)")
    if "elbo" in result:
        nelbo = result["elbo"]["per_clip_mean"].get("nelbo", math.nan)
        lines.append(f"  {'neg. ELBO':12s} {nelbo:.2f} nats per clip")
    return "\n".join(lines)

