"""Metric conventions: how each paper's code computes PSNR, SSIM and best of N, as named data.

Published PSNR/SSIM numbers of video prediction papers are computed with different SSIM windows,
data ranges, channel handling, PSNR definitions and selections of the best sample; the same
predictions score 0.42 under one SSIM and 0.51 under another. A :class:`Convention` states every
one of those choices; :func:`convention_scores` computes per-frame values under it and
:func:`hvrnn.metrics.reduce.select_samples` (``mode=``) reduces them as the paper's code does.

Each registered convention reproduces its reference code to 1e-6 on the fixtures in
``tests/fixtures/conventions`` (values obtained by running that code; docs/evaluation.md lists
them with the differences):

========== =========================================================================
``skimage`` scikit-image ``structural_similarity`` / ``peak_signal_noise_ratio`` defaults with
            ``data_range=1`` (hvrnn's own default).
``svg``     SVG (Denton & Fergus 2018), ``utils.eval_seq``: scikit-image 0.14 ``compare_ssim``
            on floats (7x7 uniform window, data range 2) and ``compare_psnr`` per channel.
``svg_finn`` SVG's ``utils.finn_eval_seq`` (the SSIM of Finn et al. 2016 and Babaeizadeh et al.
            2018): 11x11 Gaussian window, population covariance, PSNR per channel.
``svg_per_frame`` ``svg`` with the best sample chosen at every frame (curves of best-of-N).
``srvp``    SRVP (Franceschi et al. 2020) ``test.py`` + ``metrics/ssim.py``; SLAMP (Akan et al.
            2021) uses the same files (``slamp`` is an alias).
``savp``    SAVP (Lee et al. 2018) ``video_prediction/metrics.py``: ``tf.image.ssim`` (11x11
            Gaussian window, population covariance, data range 1) and ``tf.image.psnr`` (MSE
            over all pixels and channels of a frame).
``mcvd``    MCVD (Voleti et al. 2022) ``runners/ncsn_runner.py``: frames truncated to uint8
            (Moving MNIST: rounded to 0/1 first), SSIM of the luma (PIL ``L``) with scikit-image's
            Gaussian window, PSNR of the clip's mean MSE.
``openstl`` OpenSTL (Tan et al. 2023) ``openstl/core/metrics.py``: scikit-image SSIM on floats
            (data range 2, as scikit-image <= 0.19 chose), global PSNR per frame.
========== =========================================================================
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from einops import reduce
from torch import Tensor

from hvrnn.metrics.inputs import unit_range
from hvrnn.metrics.ssim import SSIMVariant, ssim_variants

SSIM_WINDOWS = ("uniform", "gaussian")
COVARIANCES = ("sample", "population")
CHANNEL_MODES = ("mean", "luma")
PSNR_MODES = ("global", "per_channel", "clip_mse")
BEST_OF = ("sequence", "frame")
TO_UINT8 = ("none", "round", "truncate")
BINARIZE = ("none", "mnist")
FRAMES = ("pred",)
# Datasets on which a convention with ``binarize="mnist"`` rounds frames to 0/1.
MNIST_DATASETS = ("smmnist", "mmnist", "moving_mnist")


@dataclass(frozen=True)
class Convention:
    """How one codebase computes PSNR and SSIM and picks the best of N samples.

    Attributes:
        name: registry key, stamped beside every number computed under it.
        reference: the code this convention reproduces (repository, file, function).
        ssim_window: ``"uniform"`` (box) or ``"gaussian"``.
        ssim_win_size: window side in pixels (7 uniform; 11 for a Gaussian of sigma 1.5).
        ssim_sigma: Gaussian standard deviation (ignored for uniform windows).
        ssim_covariance: ``"sample"`` (variances times N / (N - 1), scikit-image's default) or
            ``"population"`` (Wang et al. 2004).
        ssim_data_range: L of the constants C1 = (0.01 L)^2, C2 = (0.03 L)^2, in units of
            [0, 1] frames (2: what scikit-image <= 0.19 chose for float images).
        ssim_channels: ``"mean"`` (SSIM of each channel, averaged) or ``"luma"`` (SSIM of
            PIL's ITU-R 601 luma ``L = (19595 R + 38470 G + 7471 B + 2^15) >> 16`` of uint8
            frames; grey frames are unchanged).
        psnr: ``"global"`` (MSE over all pixels and channels of a frame), ``"per_channel"``
            (the mean of each channel's PSNR) or ``"clip_mse"`` (a sequence's PSNR is that
            of its frames' mean MSE; per-frame curves show each frame's global PSNR).
        best_of: ``"sequence"`` (the sample best on average over the frames, per metric) or
            ``"frame"`` (the best sample at each frame).
        to_uint8: what happens to [0, 1] floats before SSIM: ``"none"`` (scored as floats),
            ``"round"`` or ``"truncate"`` (``(float32(x) * 255).byte()``, torchvision's
            ``ToPILImage``). Frames stored as uint8 are the same under all three.
        binarize: ``"mnist"``: on Moving MNIST datasets, frames are rounded to 0/1 before SSIM.
        frames: the frames scored: ``"pred"``, the predicted ones (every convention).
        note: what the reference code does beyond the above (how it stores samples, NaN).
    """

    name: str
    reference: str
    ssim_window: str = "uniform"
    ssim_win_size: int = 7
    ssim_sigma: float = 1.5
    ssim_covariance: str = "sample"
    ssim_data_range: float = 1.0
    ssim_channels: str = "mean"
    psnr: str = "global"
    best_of: str = "sequence"
    to_uint8: str = "none"
    binarize: str = "none"
    frames: str = "pred"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def ssim_variant(self) -> SSIMVariant:
        """The SSIM parameters as an :class:`~hvrnn.metrics.ssim.SSIMVariant`."""
        return SSIMVariant(f"{self.name}", self.ssim_data_range,
                           gaussian_weights=self.ssim_window == "gaussian",
                           use_sample_covariance=self.ssim_covariance == "sample",
                           win_size=self.ssim_win_size, sigma=self.ssim_sigma)

    def check(self) -> list[str]:
        """Every invalid field, one message each (empty when valid)."""
        problems = []
        for field, allowed in (("ssim_window", SSIM_WINDOWS), ("ssim_covariance", COVARIANCES),
                               ("ssim_channels", CHANNEL_MODES), ("psnr", PSNR_MODES),
                               ("best_of", BEST_OF), ("to_uint8", TO_UINT8),
                               ("binarize", BINARIZE), ("frames", FRAMES)):
            if getattr(self, field) not in allowed:
                problems.append(f"{field} must be one of {', '.join(allowed)}, got "
                                f"{getattr(self, field)!r}")
        if not isinstance(self.ssim_win_size, int) or self.ssim_win_size < 3 or \
                self.ssim_win_size % 2 == 0:
            problems.append(f"ssim_win_size must be an odd integer >= 3, got "
                            f"{self.ssim_win_size!r}")
        for field in ("ssim_sigma", "ssim_data_range"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                problems.append(f"{field} must be a positive number, got {value!r}")
        return problems


_GAUSS = {"ssim_window": "gaussian", "ssim_win_size": 11, "ssim_sigma": 1.5,
          "ssim_covariance": "population"}

CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    Convention("skimage", "scikit-image >= 0.19 structural_similarity(data_range=1) and "
               "peak_signal_noise_ratio(data_range=1) on whole frames",
               to_uint8="round",
               note="hvrnn's default; samples are rounded to uint8 before scoring"),
    Convention("svg", "github.com/edenton/svg utils.py eval_seq (skimage.measure.compare_ssim, "
               "compare_psnr per channel), generate_svg_lp.py best of N by mean SSIM",
               ssim_data_range=2.0, psnr="per_channel",
               note="scores float predictions; old scikit-image chose data_range 2 for floats"),
    Convention("svg_per_frame", "svg with the best of N chosen at every frame",
               ssim_data_range=2.0, psnr="per_channel", best_of="frame",
               note="the per-frame maximum over samples, as plotted in curves of best-of-N"),
    Convention("svg_finn", "github.com/edenton/svg utils.py finn_eval_seq, finn_ssim, finn_psnr",
               psnr="per_channel", **_GAUSS,
               note="a NaN SSIM counts as -1 (never for frames in [0, 1])"),
    Convention("srvp", "github.com/edouardelasalles/srvp test.py + metrics/ssim.py ssim_loss "
               "(SLAMP, github.com/kaanakan/slamp, uses the same files)",
               psnr="per_channel", **_GAUSS,
               note="scores float predictions clamped to [0, 1] in float32; stores samples as "
                    "x.mul(255).byte() (truncated)"),
    Convention("savp", "github.com/alexlee-gk/video_prediction video_prediction/metrics.py "
               "(tf.image.ssim, tf.image.psnr, max_val 1), models/base_model.py best of N by "
               "the mean over the frames, per metric",
               **_GAUSS,
               note="scores float predictions (float32, not clipped); tf.image.ssim is the "
                    "algorithm of srvp's ssim.py, its PSNR pools the channels' MSE"),
    Convention("mcvd", "github.com/voletiv/mcvd-pytorch runners/ncsn_runner.py (video "
               "prediction test loop: F.mse_loss, ToPILImage, skimage structural_similarity"
               "(gaussian_weights=True, use_sample_covariance=False, data_range=255))",
               ssim_channels="luma", psnr="clip_mse", to_uint8="truncate", binarize="mnist",
               **_GAUSS, note="MSE on the float frames; best of N = max over samples of the "
                              "clip's value"),
    Convention("openstl", "github.com/chengtan9907/OpenSTL openstl/core/metrics.py metric() "
               "(skimage structural_similarity multichannel, PSNR in float32)",
               ssim_data_range=2.0,
               note="deterministic models: one sample; mean over sequences and frames"),
)}
ALIASES = {"slamp": "srvp", "finn": "svg_finn"}
# scikit-image's SSIM with data range 2 (metrics.ssim variant "legacy"), reported beside every
# convention as ``ssim_legacy``; not a registered convention.
LEGACY = Convention("ssim_legacy", "hvrnn.metrics.ssim(variant='legacy')", ssim_data_range=2.0)


def get_convention(name: str | Convention) -> Convention:
    """The registered convention ``name`` (or an alias such as ``slamp``), or the object itself.

    Raises:
        ValueError: an unknown name (the known ones are listed).
    """
    if isinstance(name, Convention):
        return name
    key = ALIASES.get(name, name)
    if key not in CONVENTIONS:
        raise ValueError(f"unknown metric convention {name!r}; known: "
                         f"{', '.join([*CONVENTIONS, *ALIASES])}")
    return CONVENTIONS[key]


def luma_uint8(frames: Tensor) -> Tensor:
    """PIL's ``convert("L")`` of uint8 RGB frames: (..., 3, H, W) -> (..., 1, H, W) uint8,
    ``(19595 R + 38470 G + 7471 B + 32768) >> 16`` (Pillow's ``L24`` rounding). Grey input
    (one channel) is returned unchanged."""
    if frames.shape[-3] == 1:
        return frames
    r, g, b = frames.to(torch.int64).unbind(-3)
    return ((r * 19595 + g * 38470 + b * 7471 + 32768) >> 16).to(torch.uint8).unsqueeze(-3)


def _input_key(conv: Convention, binary: bool, frames: Tensor) -> tuple:
    """What the convention does to frames before SSIM, as a key: conventions with equal keys
    see equal frames (on uint8 frames rounding and truncating change nothing)."""
    luma = conv.ssim_channels == "luma" and frames.shape[-3] == 3
    step = "none" if frames.dtype == torch.uint8 and not luma and not binary else conv.to_uint8
    return step, luma, binary


def _ssim_input(x: Tensor, key: tuple) -> Tensor:
    """Frames as a convention's SSIM sees them (``key`` from :func:`_input_key`)."""
    step, luma, binary = key
    if step == "none" and not luma and not binary:
        return x
    if x.dtype == torch.uint8:
        x32 = x.to(torch.float32) / 255  # as ToTensor / a loader dividing by 255
    else:
        x32 = x.to(torch.float32)
    if binary:
        x32 = torch.round(x32)
    if step == "truncate":
        q = (x32 * 255).to(torch.uint8)
    elif step == "round" or luma:
        q = torch.round(x32 * 255).to(torch.uint8)
    else:
        return x32.to(torch.float64)
    if luma:
        q = luma_uint8(q)
    return q.to(torch.float64) / 255


def convention_scores(pred: Tensor, target: Tensor, conventions: list[Convention] | tuple,
                      dataset: str = "") -> dict[str, dict[str, Tensor]]:
    """Per-frame PSNR and SSIM under several conventions, sharing what they share (frames
    prepared the same way are filtered once per window).

    Args:
        pred: (B, T, C, H, W) floats in [0, 1], or uint8 (divided by 255).
        target: (B, T, C, H, W), same rule.
        conventions: :class:`Convention` objects or names.
        dataset: the protocol's dataset name; conventions with ``binarize="mnist"`` round
            frames to 0/1 on :data:`MNIST_DATASETS`.

    Returns:
        ``{convention name: {"psnr": (B, T), "ssim": (B, T)}}`` float64, plus ``"mse"``
        (B, T) for ``psnr="clip_mse"`` conventions (their sequence value is
        ``10 log10(1 / mean MSE)``, see :func:`hvrnn.metrics.reduce.select_samples`).

    Raises:
        ValueError: shapes differ or are not 5-d, floats outside [0, 1], frames smaller than a
            window, an unknown convention.
    """
    convs = [get_convention(c) for c in conventions]
    if pred.shape != target.shape or pred.dim() != 5:
        raise ValueError(f"conventions: pred {tuple(pred.shape)} and target "
                         f"{tuple(target.shape)} must both be (B, T, C, H, W)")
    xf = unit_range(pred, "conventions: pred", torch.float64)
    yf = unit_range(target, "conventions: target", torch.float64)
    err = (xf - yf) ** 2
    mse_frame = reduce(err, "b t c h w -> b t", "mean")
    mse_channel = reduce(err, "b t c h w -> b t c", "mean")
    groups: dict[tuple, list[Convention]] = {}
    for conv in convs:
        binary = conv.binarize == "mnist" and dataset in MNIST_DATASETS
        groups.setdefault(_input_key(conv, binary, pred), []).append(conv)
    ssims: dict[str, Tensor] = {}
    for key, members in groups.items():
        x, y = _ssim_input(pred, key), _ssim_input(target, key)
        ssims.update(ssim_variants(x, y, tuple(c.ssim_variant() for c in members)))
    out: dict[str, dict[str, Tensor]] = {}
    for conv in convs:
        if conv.psnr == "per_channel":
            psnr = (10.0 * torch.log10(1.0 / mse_channel)).mean(-1)
        else:
            psnr = 10.0 * torch.log10(1.0 / mse_frame)
        out[conv.name] = {"psnr": psnr, "ssim": ssims[conv.name]}
        if conv.psnr == "clip_mse":
            out[conv.name]["mse"] = mse_frame
    return out


def stroke_iou(pred: Tensor, target: Tensor, threshold: float = 0.5) -> Tensor:
    """Intersection over union of the strokes of binary-like frames (hvrnn's own score for
    Moving MNIST, where an all-black frame wins SSIM but scores 0 here).

    Args:
        pred, target: (B, T, C, H, W) floats in [0, 1] or uint8.
        threshold: a pixel is stroke when its value is >= threshold (in [0, 1] units).

    Returns:
        (B, T) float64: |P and G| / |P or G| over the frame's pixels and channels; 1 when
        neither frame has a stroke pixel.
    """
    if pred.shape != target.shape or pred.dim() != 5:
        raise ValueError(f"stroke_iou: pred {tuple(pred.shape)} and target "
                         f"{tuple(target.shape)} must both be (B, T, C, H, W)")
    p = unit_range(pred, "stroke_iou: pred", torch.float64) >= threshold
    g = unit_range(target, "stroke_iou: target", torch.float64) >= threshold
    inter = (p & g).flatten(2).sum(-1).to(torch.float64)
    union = (p | g).flatten(2).sum(-1).to(torch.float64)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def format_conventions() -> str:
    """Every registered convention with its fields, one block each."""
    blocks = []
    for c in CONVENTIONS.values():
        fields = {k: v for k, v in c.to_dict().items() if k != "name"}
        blocks.append(f"{c.name}\n" + "\n".join(f"  {k:16s} {v}" for k, v in fields.items()))
    return "\n".join(blocks)
