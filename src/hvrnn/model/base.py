"""The interface every model kind implements; training, sampling and evaluation use only this.

A kind subclasses :class:`VideoModel` and writes the parts that are its own: the teacher-forced
``forward``, how a frame is encoded for the step API (:meth:`VideoModel.encode_frame`), the state
after the context (:meth:`VideoModel.context_state`) and one step from encoded frames
(:meth:`VideoModel.advance`). The plumbing around them (the context length check, the repetition
over samples, the cached features of the previous frame) is written once here, in
:meth:`VideoModel.init_state` and :meth:`VideoModel.step`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from hvrnn.config import LossConfig, ModelConfig
from hvrnn.objective import VRNNOutput, elbo_terms


def latent_noise(source: ModelConfig | VideoModel, batch: int, steps: int,
                 generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> list[Tensor]:
    """Standard-normal latent noise, one (batch, steps, C_l, H_l, W_l) tensor per level.

    ``source`` is a model or its config (anything with ``latent_shapes``). Passed as ``eps`` to
    ``forward`` (or sliced per step for ``step``) it fixes the latent samples, e.g. to compare
    both execution paths or to draw the noise of a global batch.
    """
    return [torch.randn(batch, steps, *shape, generator=generator, device=device)
            for shape in source.latent_shapes]


@dataclass
class StepOutput(VRNNOutput):
    """One generated (or teacher-forced) step: the fields of :class:`VRNNOutput` without T,
    i.e. logits or frames (B, C, H, W) and per-level parameters (B, C_l, H_l, W_l)."""


@dataclass(frozen=True)
class StepContext:
    """What the trainer tells a kind's objective about one optimisation step (a kind reads
    what its objective uses; the default scores a clip: step 0, KL weight 1, noise drawn).

    Attributes:
        step: optimisation steps done so far (schedules, seeds).
        kl_weight: the KL weight beta at this step (``loss.kl_beta`` after its warm-up).
        noise: standard-normal posterior noise per latent level, (B, T, C_l, H_l, W_l), or
            None to draw it.
        autocast: whether the trainer's forward runs under bf16 autocast; work the objective
            does outside that forward (a rollout without gradient) follows it.
    """

    step: int = 0
    kl_weight: float = 1.0
    noise: list[Tensor] | None = None
    autocast: bool = False


S = TypeVar("S", bound="RecurrentState")


def _map_tensors(fn: Callable[[Tensor], Tensor], obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return fn(obj)
    if obj is None:
        return None
    if isinstance(obj, dict):
        return {k: _map_tensors(fn, v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a NamedTuple
        return type(obj)(*(_map_tensors(fn, v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(fn, v) for v in obj)
    raise TypeError(f"cannot map over {type(obj).__name__} in a recurrent state")


@dataclass
class RecurrentState:
    """What a model carries from one step to the next; batch rows are ``b * n_samples + s``.

    Every kind's state is a dataclass deriving from this one; its fields hold tensors, lists,
    tuples or dicts of tensors, or None.

    Attributes:
        feats_prev: the encoded previous frame x_{t-1} as :meth:`VideoModel.encode_frame`
            returns it, or None if the caller must pass ``x_prev`` to the next step.
        posterior: the posterior's recurrent state, or None when the state was made without it
            (teacher-forced steps need it).
    """

    feats_prev: Any
    posterior: Any

    def map(self: S, fn: Callable[[Tensor], Tensor]) -> S:
        """Apply ``fn`` to every tensor (e.g. repeat along the batch, move to a device)."""
        return dataclasses.replace(self, **{f.name: _map_tensors(fn, getattr(self, f.name))
                                            for f in dataclasses.fields(self)})


class VideoModel(nn.Module, ABC):
    """A conditional video model: K context frames in, a distribution over future frames out.

    Subclasses are registered with :func:`hvrnn.model.registry.register_model` and built from
    their config section alone.

    Attributes:
        cfg: the model section the model was built from.
        n_ctx: context frames K the model was built for.
        latent_shapes: (C_l, H_l, W_l) of the latent of one step, per level (empty for a
            deterministic kind).
        stochastic: False for a kind whose prediction is a function of the context (PredNet):
            it gives one sample whatever N is asked for (:meth:`distinct_samples`), which the
            sampler and the evaluation read; best, mean and worst of N then coincide.
        score_term: the teacher-forced term (of :meth:`training_terms`) that measures how well
            the model fits a clip, lower is better: ``nelbo`` for latent-variable models. Logs
            and evaluation summaries report it.
    """

    n_ctx: int
    latent_shapes: tuple[tuple[int, int, int], ...]
    stochastic: bool = True
    score_term: str = "nelbo"

    def __init__(self, cfg: ModelConfig) -> None:
        """Validate the config section (with its image geometry) and keep it as ``cfg``."""
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.n_ctx = cfg.n_ctx
        self.latent_shapes = cfg.latent_shapes

    # ---- what a kind writes --------------------------------------------------------------
    @abstractmethod
    def forward(self, video: Tensor, eps: list[Tensor] | None = None) -> VRNNOutput:
        """Teacher-forced pass. video: (B, K + T, C, H, W) in [0, 1]; scores frames K..K+T-1.

        ``eps``: optional standard-normal noise per level, (B, T, C_l, H_l, W_l), for the
        posterior samples (used to check the step API against this pass).
        """

    @abstractmethod
    def encode_frame(self, frame: Tensor) -> Any:
        """Features of one frame (B, C, H, W) in [0, 1], as :meth:`advance` reads them."""

    @abstractmethod
    def context_state(self, context: Tensor, posterior: bool) -> RecurrentState:
        """State after the context (B, K, C, H, W), with ``feats_prev`` = the features of the
        last context frame, and the posterior state only if ``posterior``."""

    @abstractmethod
    def advance(self, state: RecurrentState, feats_prev: Any, feats_next: Any | None, *,
                eps: list[Tensor] | None, generator: torch.Generator | None,
                temperature: float, use_mean: bool) -> tuple[RecurrentState, StepOutput]:
        """One step from the encoded previous frame and, when teacher-forced, the encoded
        next frame (then latents come from the posterior). Arguments as in :meth:`step`."""

    # ---- the step API, written once --------------------------------------------------------
    def init_state(self, context: Tensor, n_samples: int = 1, posterior: bool = False
                   ) -> RecurrentState:
        """Recurrent state from context (B, K, C, H, W) in [0, 1].

        The context is encoded once; the N samples then repeat along the batch: row
        ``b * n_samples + s`` is sample s of sequence b. ``posterior`` also initialises the
        posterior (needed by teacher-forced steps).
        """
        if context.shape[1] != self.n_ctx:
            raise ValueError(f"context has {context.shape[1]} frames; the model was built for "
                             f"n_ctx={self.n_ctx}")
        state = self.context_state(context, posterior)
        if n_samples > 1:
            state = state.map(lambda t: t.repeat_interleave(n_samples, dim=0))
        return state

    def step(self, state: RecurrentState, x_prev: Tensor | None = None,
             x_next: Tensor | None = None, *, generator: torch.Generator | None = None,
             eps: list[Tensor] | None = None, temperature: float = 1.0,
             use_mean: bool = False) -> tuple[RecurrentState, StepOutput]:
        """Advance one frame.

        Args:
            state: from :meth:`init_state` or a previous step.
            x_prev: (B, C, H, W) the previous frame; ``None`` reuses the features cached in
                ``state`` (the last context frame right after ``init_state``, the true next
                frame after a teacher-forced step).
            x_next: (B, C, H, W) the true next frame; if given, latents come from the posterior
                (teacher forcing), otherwise from the prior.
            generator, eps: source of the latent noise (explicit ``eps`` wins), eps as
                [(B, C_l, H_l, W_l)] per level.
            temperature: multiplies the prior variance. use_mean: latents = means.

        Returns:
            (new_state, StepOutput) with ``logits`` (B, C, H, W).
        """
        if x_prev is not None:
            feats_prev = self.encode_frame(x_prev)
        elif state.feats_prev is not None:
            feats_prev = state.feats_prev
        else:
            raise ValueError("step() needs x_prev: the state holds no features of x_{t-1}")
        feats_next = None
        if x_next is not None:
            if state.posterior is None:
                raise ValueError("teacher-forced step() needs init_state(..., posterior=True)")
            feats_next = self.encode_frame(x_next)
        return self.advance(state, feats_prev, feats_next, eps=eps, generator=generator,
                            temperature=temperature, use_mean=use_mean)

    def distinct_samples(self, n_samples: int) -> int:
        """How many different futures asking for ``n_samples`` per context can give: all of
        them for a stochastic kind, one for a deterministic kind."""
        return n_samples if self.stochastic else 1

    # ---- training ----------------------------------------------------------------------------
    @abstractmethod
    def training_terms(self, video: Tensor, loss: LossConfig, ctx: StepContext | None = None,
                       *, forward: Callable[..., Any] | None = None) -> dict[str, Tensor]:
        """The kind's objective: named scalar terms of one batch. The trainer minimises
        ``loss`` with the optimiser of the ``"model"`` parameter group and ``loss/<group>``
        with any other (:meth:`parameter_groups`); a group whose loss is absent is not updated
        at this step. Evaluation reports them with the default ``ctx``.

        A latent-variable kind returns :func:`elbo_objective`'s terms.

        Args:
            video: (B, K + T, C, H, W) in [0, 1].
            loss: the ``loss`` section (a kind with its own objective may ignore it).
            ctx: the step (:class:`StepContext`); None: ``StepContext()``.
            forward: runs this model's ``forward`` (the trainer passes one that goes through
                DDP, ``torch.compile`` and autocast); default ``self``.
        """

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters per optimiser, by name. One group, ``"model"``, by default; a
        kind trained with several losses (an adversarial one, say) declares more."""
        return {"model": [p for p in self.parameters() if p.requires_grad]}

    # ---- introspection -----------------------------------------------------------------------
    def component_parameters(self) -> dict[str, int]:
        """Parameter count per named component (for ``hvrnn info``)."""
        return {"total": count(self.parameters())}

    def inert_parameters(self) -> int:
        """Parameters that can never receive a gradient (3x3 taps that only see 1x1 maps)."""
        return 0


def elbo_objective(model: VideoModel, video: Tensor, loss: LossConfig,
                   ctx: StepContext | None = None, forward: Callable[..., Any] | None = None,
                   **inputs: Any) -> dict[str, Tensor]:
    """The objective of a latent-variable kind: the teacher-forced pass (``forward`` or the
    model, with the posterior noise ``ctx.noise`` and ``inputs``) and the terms of
    :func:`hvrnn.objective.elbo_terms` with the KL weight ``ctx.kl_weight``."""
    ctx = ctx or StepContext()
    out = (forward or model)(video, eps=ctx.noise, **inputs)
    # Heads, variances and the KL are float32 inside the model and objective.
    return elbo_terms(out, video[:, model.n_ctx:], loss.likelihood, loss.kl_estimator,
                      ctx.kl_weight, loss.free_bits)


def count(parameters: Iterable[nn.Parameter]) -> int:
    """Number of scalar parameters."""
    return sum(p.numel() for p in parameters)
