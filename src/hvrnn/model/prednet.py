"""PredNet: deep predictive coding networks (Lotter, Kreiman and Cox, ICLR 2017).

A deterministic baseline behind the :class:`~hvrnn.model.base.VideoModel` interface. Layer
l = 0 .. L-1 holds, at time t (frames x_0, x_1, ... of a clip; the paper's Eq. 1-4):

    A_t^0    = x_t                                    the target of the bottom layer
    A_t^l    = MaxPool(ReLU(Conv(E_t^{l-1})))         l > 0
    R_t^l    = ConvLSTM(E_{t-1}^l, R_{t-1}^l, Upsample(R_t^{l+1}))   top layer first
    Ahat_t^l = ReLU(Conv(R_t^l)), and min(Ahat_t^0, pixel_max) at the bottom
    E_t^l    = [ReLU(Ahat_t^l - A_t^l), ReLU(A_t^l - Ahat_t^l)]

Ahat_t^0 is the prediction of x_t, made before x_t is seen. Gates are hard sigmoids
(``clip(0.2 x + 0.5, 0, 1)``, the Keras activation of the original), the candidate and the
output use tanh; every convolution has a bias and Glorot-uniform weights (Keras defaults).
The loss is the mean of E^l per layer and frame, weighted by layer and by time (Eq. 5 of the
paper; the "L0" model weighs only the bottom layer).

Mapping onto the step API: the state after a step holds R, the cell states and every Ahat of
the *pending* prediction. A step reads the previous frame x_{t-1}: it computes the errors of
the pending prediction against it (bottom-up), runs the top-down update and predicts x_t. Fed
its own prediction (the sampler does this from the first predicted frame on), the bottom-layer
error is zero, i.e. the prediction of x_{t-1} stands for x_{t-1}: the original's extrapolation
mode, with the timing its author describes (coxlab/prednet issue 30).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hvrnn.config import ConfigError, LossConfig, ModelConfig
from hvrnn.config.checks import check
from hvrnn.model.base import (
    RecurrentState,
    StepContext,
    StepOutput,
    VideoModel,
    VRNNOutput,
    count,
)
from hvrnn.model.registry import register_model


def _positive(values: tuple[int, ...], key: str, kind: str) -> None:
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"{key}={list(values)!r} is invalid for model.kind={kind}: expected "
                          "positive integers")


@dataclass(frozen=True)
class PredNetConfig(ModelConfig):
    """PredNet (Lotter, Kreiman and Cox, ICLR 2017), ``model.kind: prednet``.

    Defaults are the 4-layer KITTI model of the original ``kitti_train.py``: A / Ahat
    channels (C, 48, 96, 192) with C the image channels, R channels equal to them, 3x3
    filters everywhere, and the "L0" loss (layer weights 1, 0, 0, 0). Time weights follow the
    same file: 0 for the first frame of a clip, 1 / (N - 1) for the N - 1 others.

    PredNet predicts frames in [0, 1] directly (no pixel likelihood, no latent), so the shared
    ``base_channels``, ``max_channels``, ``width_mult`` and ``gn_groups`` settings of
    :class:`~hvrnn.config.ModelConfig` and the ELBO settings of the ``loss`` section
    (``likelihood``, ``kl_estimator``, ``kl_beta``, ``free_bits``) do not apply to it;
    docs/models.md lists the published settings behind every preset.
    """

    kind: str = "prednet"
    stack_sizes: tuple[int, ...] = (48, 96, 192)  # A / Ahat channels of layers 1 .. L-1
    r_stack_sizes: tuple[int, ...] = ()  # R channels of layers 0 .. L-1; () = (C, *stack_sizes)
    a_filter_sizes: tuple[int, ...] = (3, 3, 3)  # layers 1 .. L-1
    ahat_filter_sizes: tuple[int, ...] = (3, 3, 3, 3)
    r_filter_sizes: tuple[int, ...] = (3, 3, 3, 3)
    layer_loss_weights: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)
    pixel_max: float = 1.0  # the bottom prediction is min(Ahat_0, pixel_max)
    # Train in the extrapolation mode: from the first predicted frame on the model reads its
    # own previous prediction, and the loss is 0.5 * the mean absolute error of the frames
    # after the first (the original kitti_extrap_finetune.py).
    extrap_finetune: bool = False

    @property
    def layers(self) -> int:
        return len(self.stack_sizes) + 1

    @property
    def a_channels(self) -> tuple[int, ...]:
        """A / Ahat channels per layer, the image's first."""
        return (self.image_channels, *self.stack_sizes)

    @property
    def r_channels(self) -> tuple[int, ...]:
        return tuple(self.r_stack_sizes) if self.r_stack_sizes else self.a_channels

    def validate(self) -> None:
        kind, n = self.kind, self.layers
        _positive(self.stack_sizes, "model.stack_sizes", kind)
        for key, want in (("r_stack_sizes", n if self.r_stack_sizes else 0),
                          ("a_filter_sizes", n - 1), ("ahat_filter_sizes", n),
                          ("r_filter_sizes", n), ("layer_loss_weights", n)):
            value = getattr(self, key)
            check(len(value) == want, f"model.{key}", list(value),
                  f"{want} values for the {n} layers of model.stack_sizes"
                  + (" (or [] for the A channels)" if key == "r_stack_sizes" else ""))
        if self.r_stack_sizes:
            _positive(self.r_stack_sizes, "model.r_stack_sizes", kind)
        for key in ("a_filter_sizes", "ahat_filter_sizes", "r_filter_sizes"):
            value = getattr(self, key)
            check(all(k >= 1 and k % 2 == 1 for k in value), f"model.{key}", list(value),
                  "odd filter sizes")
        check(all(w >= 0 for w in self.layer_loss_weights) and any(self.layer_loss_weights),
              "model.layer_loss_weights", list(self.layer_loss_weights),
              "non-negative weights, not all zero")
        check(self.pixel_max > 0, "model.pixel_max", self.pixel_max, "> 0")
        size = self.image_size
        check(size % 2 ** (n - 1) == 0, "data.image_size", size,
              f"a multiple of {2 ** (n - 1)} for a {n}-layer PredNet (each layer halves it)")

    def check_clip_length(self, n_pred: int) -> None:
        check(self.n_ctx + n_pred >= 2, "data.n_pred", n_pred,
              "at least 2 frames per clip (the first frame is not scored)")


def hard_sigmoid(x: Tensor) -> Tensor:
    """Keras' hard sigmoid: clip(0.2 x + 0.5, 0, 1) (torch's uses slope 1/6)."""
    return (0.2 * x + 0.5).clamp(0.0, 1.0)


def _conv(c_in: int, c_out: int, k: int, gates: int = 1) -> nn.Conv2d:
    """'same' convolution with zero bias and Glorot-uniform weights; with ``gates`` > 1 the
    output holds that many separate convolutions of ``c_out / gates`` channels, each
    initialised with its own fan-out (as the original's one convolution per gate)."""
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    for w in conv.weight.data.chunk(gates, 0):
        nn.init.xavier_uniform_(w)
    nn.init.zeros_(conv.bias)
    return conv


@dataclass
class PredNetState(RecurrentState):
    """Carried between steps; batch rows are ``b * n_samples + s``.

    Attributes:
        feats_prev: the previous frame (B, C, H, W), or None.
        posterior: () when made for teacher-forced steps, else None (PredNet has no
            posterior; the field keeps the interface).
        r, c: R and cell states per layer, (B, R_l, H / 2^l, W / 2^l).
        ahat: the pending predictions per layer, (B, A_l, H / 2^l, W / 2^l); ``ahat[0]`` is
            the predicted frame.
    """

    r: list[Tensor]
    c: list[Tensor]
    ahat: list[Tensor]


@dataclass
class PredNetOutput(VRNNOutput):
    """:class:`VRNNOutput` (``frames`` set) with what the loss needs.

    Attributes:
        errors: (B, N, L) mean of E^l per frame of the whole clip (context included).
        all_frames: (B, N, C, H, W) the prediction of every frame of the clip.
    """

    errors: Tensor | None = None
    all_frames: Tensor | None = None


@register_model("prednet", config=PredNetConfig, preset="tiny_prednet")
class PredNet(VideoModel):
    """PredNet; see the module docstring. Deterministic: one sample whatever N is."""

    stochastic = False

    def __init__(self, cfg: PredNetConfig):
        super().__init__(cfg)  # latent_shapes: ()
        a, r, n = cfg.a_channels, cfg.r_channels, cfg.layers
        self.score_term = "extrapolation_error" if cfg.extrap_finetune else "prediction_error"
        self.lstm = nn.ModuleList(
            [_conv(2 * a[i] + r[i] + (r[i + 1] if i < n - 1 else 0), 4 * r[i],
                   cfg.r_filter_sizes[i], gates=4) for i in range(n)])
        self.ahat = nn.ModuleList([_conv(r[i], a[i], cfg.ahat_filter_sizes[i])
                                   for i in range(n)])
        self.a = nn.ModuleList([_conv(2 * a[i], a[i + 1], cfg.a_filter_sizes[i])
                                for i in range(n - 1)])

    # ---- the two halves of a time step ------------------------------------------------------
    def errors(self, ahat: list[Tensor], frame: Tensor) -> list[Tensor]:
        """E^l of the predictions ``ahat`` against ``frame`` (B, C, H, W), bottom-up."""
        a, out = frame, []
        for i, pred in enumerate(ahat):
            e = torch.cat([F.relu(pred - a), F.relu(a - pred)], 1)
            out.append(e)
            if i < len(self.a):
                a = F.max_pool2d(F.relu(self.a[i](e)), 2)
        return out

    def top_down(self, r: list[Tensor], c: list[Tensor], e: list[Tensor]
                 ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """New R and cell states from the previous ones and the errors E_{t-1}, top layer
        first; returns (r, c, ahat) with ahat[0] clipped at ``pixel_max``."""
        n = len(self.lstm)
        r_new: list[Tensor] = [r[0]] * n
        c_new: list[Tensor] = [c[0]] * n
        for i in reversed(range(n)):
            parts = [r[i], e[i]]
            if i < n - 1:
                parts.append(F.interpolate(r_new[i + 1], scale_factor=2, mode="nearest"))
            gi, gf, gc, go = self.lstm[i](torch.cat(parts, 1)).chunk(4, 1)
            c_new[i] = hard_sigmoid(gf) * c[i] + hard_sigmoid(gi) * torch.tanh(gc)
            r_new[i] = hard_sigmoid(go) * torch.tanh(c_new[i])
        ahat = [F.relu(conv(h)) for conv, h in zip(self.ahat, r_new, strict=True)]
        ahat[0] = ahat[0].clamp(max=self.cfg.pixel_max)
        return r_new, c_new, ahat

    def zero_state(self, frame: Tensor) -> PredNetState:
        """The state before the first frame: R, cells and errors zero, then the first
        top-down pass (its prediction of x_0 is made from nothing)."""
        cfg, (b, _, h, w) = self.cfg, frame.shape

        def zeros(channels: tuple[int, ...]) -> list[Tensor]:
            return [frame.new_zeros(b, ch, h >> i, w >> i) for i, ch in enumerate(channels)]

        r, c = zeros(cfg.r_channels), zeros(cfg.r_channels)
        e = zeros(tuple(2 * ch for ch in cfg.a_channels))
        r, c, ahat = self.top_down(r, c, e)
        return PredNetState(feats_prev=None, posterior=None, r=r, c=c, ahat=ahat)

    def observe(self, state: PredNetState, frame: Tensor) -> PredNetState:
        """Errors of the pending prediction against ``frame``, then the next prediction."""
        r, c, ahat = self.top_down(state.r, state.c, self.errors(state.ahat, frame))
        return PredNetState(feats_prev=None, posterior=state.posterior, r=r, c=c, ahat=ahat)

    # ---- the step API -----------------------------------------------------------------------
    def encode_frame(self, frame: Tensor) -> Tensor:
        """PredNet reads raw frames: the frame itself."""
        return frame

    def context_state(self, context: Tensor, posterior: bool) -> PredNetState:
        """State after the context (B, K, C, H, W): every context frame but the last observed,
        the last one cached as ``feats_prev`` (the next step observes it)."""
        state = self.zero_state(context[:, 0])
        for k in range(context.shape[1] - 1):
            state = self.observe(state, context[:, k])
        state.feats_prev = context[:, -1]
        state.posterior = () if posterior else None
        return state

    def advance(self, state: PredNetState, feats_prev: Tensor, feats_next: Tensor | None, *,
                eps: list[Tensor] | None, generator: torch.Generator | None,
                temperature: float, use_mean: bool) -> tuple[PredNetState, StepOutput]:
        """Observe x_{t-1} (B, C, H, W) and predict x_t; no noise is used."""
        new = self.observe(state, feats_prev)
        new.feats_prev = feats_next
        return new, StepOutput(logits=None, frames=new.ahat[0])

    # ---- whole clips ------------------------------------------------------------------------
    def forward(self, video: Tensor, eps: list[Tensor] | None = None, *,
                extrapolate: bool = False) -> PredNetOutput:
        """Pass over ``video`` (B, N, C, H, W) in [0, 1], N = K + T.

        Teacher-forced by default; with ``extrapolate`` the model reads its own prediction
        instead of every frame from x_K on. ``eps`` is ignored (no latents).

        Returns:
            PredNetOutput: ``frames`` (B, T, C, H, W) the predictions of x_K .., ``errors``
            (B, N, L) and ``all_frames`` (B, N, C, H, W) over the whole clip.
        """
        k, n = self.n_ctx, video.shape[1]
        if n <= k:
            raise ValueError(f"video has {n} frames; need more than n_ctx={k}")
        state = self.zero_state(video[:, 0])
        preds, errors = [], []
        for t in range(n):
            # Extrapolating, the pending prediction of x_t stands for x_t.
            actual = state.ahat[0] if extrapolate and t >= k else video[:, t]
            e = self.errors(state.ahat, actual)
            errors.append(torch.stack([x.mean((1, 2, 3)) for x in e], 1))  # (B, L)
            preds.append(state.ahat[0])
            if t < n - 1:
                r, c, ahat = self.top_down(state.r, state.c, e)
                state = PredNetState(feats_prev=None, posterior=None, r=r, c=c, ahat=ahat)
        all_frames = torch.stack(preds, 1)
        return PredNetOutput(logits=None, frames=all_frames[:, k:], errors=torch.stack(errors, 1),
                             all_frames=all_frames)

    def training_terms(self, video: Tensor, loss: LossConfig, ctx: StepContext | None = None,
                       *, forward: Callable[..., Any] | None = None) -> dict[str, Tensor]:
        """The original's losses on a clip (B, N, C, H, W).

        ``prediction_error`` (teacher-forced, Eq. 5): sum over frames t >= 1 with weight
        1 / (N - 1) of sum_l w_l mean(E_t^l), averaged over the batch. With
        ``model.extrap_finetune``, ``extrapolation_error``: the pass reads its own predictions
        from x_K on, and the term is 0.5 * the mean absolute error of the frames after the
        first (``kitti_extrap_finetune.py``; 0.5 matches the split positive / negative
        errors). ``loss`` is the one of the two the config trains on. PredNet's objective is its
        own (its weights are model settings): the ``loss`` section and ``ctx`` are unused.
        """
        extrap = self.cfg.extrap_finetune
        out = (forward or self)(video, extrapolate=extrap)
        n = video.shape[1]
        weights = torch.tensor(self.cfg.layer_loss_weights, device=video.device)
        per_frame = (out.errors.float() * weights).sum(-1)  # (B, N)
        terms = {"prediction_error": per_frame[:, 1:].sum(1).mean() / (n - 1),
                 "mae": (out.frames.float() - video[:, self.n_ctx:].float()).abs().mean()}
        if extrap:
            terms["extrapolation_error"] = 0.5 * (
                out.all_frames[:, 1:].float() - video[:, 1:].float()).abs().mean()
        terms["loss"] = terms[self.score_term]
        return terms

    # ---- introspection ----------------------------------------------------------------------
    def component_parameters(self) -> dict[str, int]:
        counts = {"representation": count(self.lstm.parameters()),  # R: the ConvLSTMs
                  "prediction": count(self.ahat.parameters()),  # Ahat
                  "target": count(self.a.parameters())}  # A
        counts["total"] = count(self.parameters())
        return counts


__all__ = ["PredNet", "PredNetConfig", "PredNetOutput", "PredNetState", "hard_sigmoid"]
