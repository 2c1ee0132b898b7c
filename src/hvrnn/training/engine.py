"""One training step and the loop that calls the run's hooks at their cadences.

:func:`train_step` is everything that happens to one batch; :func:`fit` repeats it and calls
the log, validation, image and checkpoint hooks of :class:`~hvrnn.training.hooks.RunHooks`.
Nothing here knows the model kind: the loss comes from the model's
:meth:`~hvrnn.model.VideoModel.training_terms` and every parameter group of the model has its
own optimiser in the :class:`~hvrnn.training.state.TrainState`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from hvrnn import accel, distributed
from hvrnn.config import ExperimentConfig
from hvrnn.distributed import DistInfo
from hvrnn.model import StepContext, latent_noise
from hvrnn.objective import kl_weight
from hvrnn.training.schedules import learning_rate
from hvrnn.training.state import TrainState


class TrainingDiverged(RuntimeError):
    """A loss term or the gradient became NaN or infinite; the message names which."""


@dataclass
class StepResult:
    """What one step did: the terms of the batch (``loss`` minimised), the gradient norm of
    each updated parameter group (before clipping), the learning rate and KL weight used, and
    whether every process agreed to stop after it."""

    terms: dict[str, Tensor]
    grad_norms: dict[str, Tensor]
    lr: float
    beta: float
    stop: bool


def loss_key(group: str) -> str:
    """The term minimised by the optimiser of ``group``: ``loss``, or ``loss/<group>``."""
    return "loss" if group == "model" else f"loss/{group}"


def autocast_enabled(device: torch.device, amp: str) -> bool:
    """Whether ``train.amp`` asks for bf16 autocast on ``device`` (``auto``: on CUDA only)."""
    return amp == "bf16" or (amp == "auto" and device.type == "cuda")


def autocast_forward(net: nn.Module, device: torch.device, amp: str) -> Callable[..., Any]:
    """``net``'s forward under bf16 autocast when ``train.amp`` asks for it
    (:func:`autocast_enabled`). Only the forward pass is autocast; heads, variances and the KL
    stay float32."""
    enabled = autocast_enabled(device, amp)

    def forward(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled):
            return net(*args, **kwargs)

    return forward


def _backward(state: TrainState, terms: dict[str, Tensor], grad_clip: float
              ) -> dict[str, Tensor]:
    """Gradients of each group's loss, clipped if asked; returns the norm per group."""
    losses = {name: terms[loss_key(name)] for name in state.optimizers
              if loss_key(name) in terms}
    for opt in state.optimizers.values():
        opt.zero_grad(set_to_none=True)
    several = len(losses) > 1
    for i, (name, loss) in enumerate(losses.items()):
        # With several losses each reaches only the parameters of its own group.
        loss.backward(inputs=state.groups[name] if several else None,
                      retain_graph=several and i < len(losses) - 1)
    norms = {}
    for name in losses:
        params = state.groups[name]
        norms[name] = (nn.utils.clip_grad_norm_(params, grad_clip) if grad_clip > 0 else
                       nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
    return norms


def diagnose(terms: dict[str, Tensor], grad_norms: dict[str, Tensor], model: nn.Module,
             step: int) -> str:
    """Which term or which gradients went non-finite at ``step``, in one sentence."""
    bad = [f"{k}={v.item()}" for k, v in terms.items() if not torch.isfinite(v)]
    if bad:
        good = [f"{k}={v.item():.4g}" for k, v in terms.items()
                if torch.isfinite(v) and (k == "nll" or k.startswith("kl/"))]
        return (f"non-finite loss at step {step}: {', '.join(bad)}"
                + (f" (finite: {', '.join(good)})" if good else ""))
    norms = ", ".join(f"{v.item()}" if len(grad_norms) == 1 else f"{k} {v.item()}"
                      for k, v in grad_norms.items())
    names = [n for n, p in model.named_parameters()
             if p.grad is not None and not torch.isfinite(p.grad).all()]
    return (f"non-finite gradient at step {step} (norm {norms}) with a finite loss "
            f"{terms['loss'].item():.4g}; first parameters with bad gradients: "
            f"{', '.join(names[:3]) or 'on another process'}")


def train_step(state: TrainState, forward: Callable[..., Any], video: Tensor,
               cfg: ExperimentConfig, dist: DistInfo, stop_requested: bool = False
               ) -> StepResult:
    """One optimisation step on a batch: learning rate and KL weight of the step, posterior
    noise, the model's training terms, backward, clipping, the finite check, the update.

    Args:
        state: the run's state; its ``step`` is incremented.
        forward: the model's forward as the step runs it (DDP, compile, autocast).
        video: (B, K + T, C, H, W) in [0, 1] on the training device.
        stop_requested: this process was asked to stop; agreed with the others in the same
            collective as the finite check.

    Raises:
        TrainingDiverged: a non-finite loss or gradient on any process (nothing is updated).
    """
    tc = cfg.train
    lr = learning_rate(state.step, tc, dist.world_size)
    state.set_learning_rate(lr)
    beta = kl_weight(state.step, cfg.loss.kl_beta, cfg.loss.kl_warmup_steps)
    # Noise of the whole global batch, then this process's rows (see BatchPlan).
    eps_all = latent_noise(state.model, tc.batch_size * dist.world_size,
                           video.shape[1] - state.model.n_ctx, state.noise, dist.device)
    eps = [e[dist.rank::dist.world_size] for e in eps_all]
    ctx = StepContext(step=state.step, kl_weight=beta, noise=eps,
                      autocast=autocast_enabled(dist.device, tc.amp))
    terms = state.model.training_terms(video, cfg.loss, ctx, forward=forward)
    norms = _backward(state, terms, tc.grad_clip)
    finite = torch.stack([torch.isfinite(terms[loss_key(n)]) & torch.isfinite(v)
                          for n, v in norms.items()]).all()
    flags = distributed.all_reduce_max(
        torch.stack([(~finite).float(), torch.tensor(float(stop_requested),
                                                     device=finite.device)]), dist)
    if accel.device_finite_check(tc.finite_check, tc.fused_optimizer, dist.device):
        return _deferred_update(state, flags, terms, norms, lr, beta, dist, stop_requested)
    if flags[0] > 0:
        raise TrainingDiverged(diagnose(terms, norms, state.model, state.step + 1))
    for name in norms:
        state.optimizers[name].step()
    state.step += 1
    return StepResult(terms, norms, lr, beta, bool(flags[1] > 0))


@dataclass
class PendingFlags:
    """The flags (non-finite, stop) of step ``step`` on their way to the host."""

    host: Tensor
    event: Any
    step: int
    terms: dict[str, Tensor]
    norms: dict[str, Tensor]


def _deferred_update(state: TrainState, flags: Tensor, terms: dict[str, Tensor],
                     norms: dict[str, Tensor], lr: float, beta: float, dist: DistInfo,
                     stop_requested: bool) -> StepResult:
    """``train.finite_check=device``: every fused optimiser skips the update on the device
    when ``flags[0]`` is set (``found_inf``: no parameter, moment or step count changes), the
    flags are copied to the host without blocking, and the previous step's flags are read
    (the device is then one step ahead of the host, never waiting for it)."""
    for name in norms:
        opt = state.optimizers[name]
        opt.found_inf = flags[0].float()  # type: ignore[attr-defined]
        opt.step()
    state.step += 1
    cuda = flags.device.type == "cuda"
    host = flags.to("cpu", non_blocking=cuda)
    event = None
    if cuda:
        event = torch.cuda.Event()
        event.record()
    previous, state.pending = state.pending, PendingFlags(host, event, state.step, terms, norms)
    stop = settle(previous, state.model)
    return StepResult(terms, norms, lr, beta, stop or (stop_requested and not dist.enabled))


def settle(pending: PendingFlags | None, model: nn.Module) -> bool:
    """Read a step's deferred flags; returns its agreed stop flag.

    Raises:
        TrainingDiverged: that step was not finite (its update was skipped on the device).
    """
    if pending is None:
        return False
    if pending.event is not None:
        pending.event.synchronize()
    if pending.host[0] > 0:
        raise TrainingDiverged(diagnose(pending.terms, pending.norms, model, pending.step)
                               + " (the update of that step was skipped on the device)")
    return bool(pending.host[1] > 0)


def settle_state(state: TrainState) -> bool:
    """Read the flags of the last step, if the host has not yet (before a checkpoint, a
    validation or the end of the loop). Raises TrainingDiverged as :func:`settle`."""
    pending, state.pending = state.pending, None
    return settle(pending, state.model)


def due(step: int, every: int, last: int | None = None) -> bool:
    """A cadence: every ``every`` steps (never if 0), and at step ``last`` if given."""
    return every > 0 and (step % every == 0 or step == last)


class Hooks(Protocol):
    """What :func:`fit` calls (implemented by :class:`~hvrnn.training.hooks.RunHooks`)."""

    def after_step(self, state: TrainState, result: StepResult) -> None: ...
    def log(self, state: TrainState, result: StepResult) -> None: ...
    def validate(self, state: TrainState, record: bool, images: bool) -> None: ...
    def checkpoint(self, state: TrainState) -> None: ...
    def diverged(self, message: str) -> str: ...


def fit(state: TrainState, forward: Callable[..., Any], batches: Iterator[Tensor],
        hooks: Hooks, cfg: ExperimentConfig, dist: DistInfo,
        stop_requested: Callable[[], bool]) -> str:
    """Train until ``train.max_steps`` or the ``train.max_minutes`` budget; returns
    ``"finished"`` or ``"interrupted"`` (a stop was requested: the state is checkpointed first).
    A run that ends on its time budget is logged, validated and checkpointed like one that
    reaches ``max_steps``.

    Raises:
        TrainingDiverged: see :func:`train_step`; the message names the last good checkpoint.
    """
    tc = cfg.train
    deadline = time.monotonic() + tc.max_minutes * 60 if tc.max_minutes > 0 else None
    while state.step < tc.max_steps:
        video = next(batches).to(dist.device, non_blocking=True)
        out_of_time = deadline is not None and time.monotonic() >= deadline
        try:
            result = train_step(state, forward, video, cfg, dist,
                                stop_requested() or out_of_time)
        except TrainingDiverged as exc:
            raise TrainingDiverged(hooks.diverged(str(exc))) from None
        hooks.after_step(state, result)
        step = state.step
        if state.pending is not None and (result.stop or due(step, tc.log_every) or
                                          due(step, tc.val_every) or due(step, tc.image_every)
                                          or due(step, tc.checkpoint_every, tc.max_steps)):
            try:  # the host reads the last step's flags before it looks at the state
                result.stop = settle_state(state) or result.stop
            except TrainingDiverged as exc:
                raise TrainingDiverged(hooks.diverged(str(exc))) from None
        last = step if result.stop and out_of_time else tc.max_steps  # the final step
        if due(step, tc.log_every, last):
            hooks.log(state, result)
        validate, images = due(step, tc.val_every, last), due(step, tc.image_every, last)
        if validate or images:
            hooks.validate(state, record=validate, images=images)
        if result.stop:
            hooks.checkpoint(state)
            return "finished" if out_of_time else "interrupted"
        if due(step, tc.checkpoint_every, tc.max_steps):
            hooks.checkpoint(state)
    return "finished"
