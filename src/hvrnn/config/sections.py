"""The data, train and eval sections, and the experiment that holds them with the model and
loss sections.

Every option is defined once, here, in :mod:`hvrnn.config.loss`, in
:mod:`hvrnn.config.models` (the settings every model kind shares) or in a kind's own module
(``hvrnn.model.<kind>``), as a dataclass field with a default. Values derived from others
(sequence length, the model's image geometry) are computed, never read from a file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hvrnn.config.checks import ConfigError, check, check_device, check_numbers
from hvrnn.config.loss import LossConfig
from hvrnn.config.models import Geometry, ModelConfig, model_config_class

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it is, and how clips are cut (docs/data.md). The image geometry
    (``n_ctx``, ``image_size``, ``channels``) is set here only; the model gets it from here."""

    name: str = "smmnist"  # smmnist | bair | cityscapes | kth | videos
    root: str = "data/smmnist"
    image_size: int = 64
    channels: int = 1
    n_ctx: int = 5
    n_pred: int = 10
    num_digits: int = 2  # smmnist only
    deterministic: bool = False  # smmnist: no random bounce (classic Moving MNIST)
    train_length: int = 0  # items per training epoch; 0 = dataset default
    seed: int = 0
    num_workers: int = 2

    @property
    def seq_len(self) -> int:
        return self.n_ctx + self.n_pred

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.n_ctx, self.image_size, self.channels)

    def validate(self) -> None:
        check(self.n_ctx >= 1, "data.n_ctx", self.n_ctx, "at least 1 context frame")
        check(self.n_pred >= 1, "data.n_pred", self.n_pred, "at least 1 predicted frame")
        check(self.channels in (1, 3), "data.channels", self.channels, "1 or 3")
        check(self.image_size >= 8, "data.image_size", self.image_size, ">= 8")
        check(0 <= self.num_workers <= 256, "data.num_workers", self.num_workers,
              "from 0 (load in the main process) to 256 loader processes")
        check(self.num_digits >= 1, "data.num_digits", self.num_digits, ">= 1")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and run control (docs/design.md section 4, docs/training.md)."""

    batch_size: int = 16  # per process
    max_steps: int = 200_000
    # Wall-clock budget of one invocation in minutes (0 = none): training stops after the step
    # that crosses it, validates, checkpoints and records "finished"; --resume starts a new one.
    max_minutes: float = 0.0
    lr: float = 1e-4
    weight_decay: float = 1e-4  # coupled L2 (torch.optim.Adam), as the official runs
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_warmup_steps: int = 0  # linear warm-up to the scaled lr (multi-GPU runs)
    lr_scale_by_batch: bool = True  # linear scaling: lr * global_batch / 16
    # Decay: the lr goes linearly from its value at step start to lr_final * (its scaling)
    # at step end, and stays there; start == end drops it at once. (0, 0) = no decay.
    lr_decay_steps: tuple[int, int] = (0, 0)
    lr_final: float = 0.0
    # Start from the model weights of this checkpoint file or run directory (optimisers
    # fresh), e.g. to fine-tune a trained model in another mode; "" = a fresh initialisation.
    init_from: str = ""
    grad_clip: float = 0.0  # 0 = no clipping (grad norm is still logged)
    amp: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | none
    compile: bool = False
    # Speed options (docs/training.md, "Speed options"); none changes the function computed
    # beyond float rounding. What torch.compile covers when compile is on: "model" (the whole
    # forward) or "cells" (each ConvLSTM's per-frame recurrent step, the code of the unroll
    # that runs T times, also in sampling); its mode: "default", "reduce-overhead" (CUDA
    # graphs), "max-autotune", "max-autotune-no-cudagraphs".
    compile_scope: str = "model"
    compile_mode: str = "default"
    # Adam as one fused kernel per device (torch.optim.Adam(fused=True)): auto = on CUDA.
    fused_optimizer: str = "auto"  # auto | enabled | disabled
    # Where the finite check of each step is decided: "host" reads it before the update (one
    # host-device synchronisation per step); "device" skips a non-finite step inside the fused
    # optimiser (found_inf) and the host reads the flag one step later, raising
    # TrainingDiverged then; auto = device where the optimiser is fused on CUDA.
    finite_check: str = "auto"  # auto | host | device
    # GroupNorm under bf16 autocast: "float32" (autocast's rule: a float32 round trip) or
    # "bf16" (in the input's dtype, statistics accumulated in float32; the heads stay float32)
    amp_group_norm: str = "float32"
    channels_last: str = "disabled"  # channels_last memory format: auto | enabled | disabled
    # SM-MNIST training clips generated on the training device, the whole batch at once, by the
    # rules of the CPU generator (hvrnn.data.smmnist_device); other clips than the CPU loader's
    # (another random stream), drawn from the same distribution, a function of seed and step.
    data_on_device: bool = False
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 1000
    log_every: int = 50
    val_every: int = 1000
    val_batches: int = 2
    val_n_samples: int = 5
    image_every: int = 1000
    keep_checkpoints: int = 3

    def validate(self) -> None:
        check(self.batch_size >= 1, "train.batch_size", self.batch_size, ">= 1")
        check(self.max_steps >= 0, "train.max_steps", self.max_steps, ">= 0")
        check(self.max_minutes >= 0, "train.max_minutes", self.max_minutes, ">= 0")
        check(0 < self.lr <= 1, "train.lr", self.lr, "a learning rate in (0, 1]")
        check(all(0 <= b < 1 for b in self.adam_betas), "train.adam_betas",
              list(self.adam_betas), "two values in [0, 1), e.g. [0.9, 0.999]")
        start, end = self.lr_decay_steps
        check(0 <= start <= end, "train.lr_decay_steps", list(self.lr_decay_steps),
              "[start, end] with 0 <= start <= end")
        check(self.lr_final >= 0, "train.lr_final", self.lr_final, ">= 0")
        check(self.amp in ("auto", "bf16", "none"), "train.amp", self.amp, "auto, bf16 or none")
        check(self.compile_scope in ("model", "cells"), "train.compile_scope",
              self.compile_scope, "model or cells")
        check(self.compile_mode in COMPILE_MODES, "train.compile_mode", self.compile_mode,
              ", ".join(COMPILE_MODES))
        for key in ("fused_optimizer", "channels_last"):
            check(getattr(self, key) in ("auto", "enabled", "disabled"), f"train.{key}",
                  getattr(self, key), "auto, enabled or disabled")
        check(self.amp_group_norm in ("float32", "bf16"), "train.amp_group_norm",
              self.amp_group_norm, "float32 or bf16")
        check(self.finite_check in ("auto", "host", "device"), "train.finite_check",
              self.finite_check, "auto, host or device")
        check(not (self.finite_check == "device" and self.fused_optimizer == "disabled"),
              "train.finite_check", self.finite_check,
              "host or auto with train.fused_optimizer=disabled (the device check skips a step "
              "inside the fused optimiser)")
        check(self.checkpoint_every >= 1, "train.checkpoint_every", self.checkpoint_every, ">= 1")
        check(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, ">= 0")
        check(self.val_n_samples >= 1, "train.val_n_samples", self.val_n_samples, ">= 1")
        check_device("train.device", self.device)


@dataclass(frozen=True)
class EvalConfig:
    """Defaults of ``hvrnn sample`` and ``hvrnn evaluate`` (docs/evaluation.md). A value of 0 or
    "" leaves the choice to the protocol (or to the command line)."""

    protocol: str = ""  # the protocol id of this experiment (hvrnn.evaluation.PROTOCOLS)
    n_samples: int = 0  # samples per sequence; 0 = the protocol's
    horizon: int = 0  # frames drawn by `hvrnn sample`; 0 = data.n_pred
    temperature: float = 1.0  # prior variance multiplier when sampling
    batch_size: int = 8  # sequences per sampling batch
    seed: int = 0  # seed of the validation samples drawn during training
    max_sequences: int = 0  # score only the first sequences; 0 = the protocol's
    # LPIPS weights folder or backbone file; "" = the weights cache (hvrnn weights fetch) if it
    # holds them, else no LPIPS
    lpips_weights: str = ""
    i3d_weights: str = ""  # I3D weights; "" = the weights cache if it holds them, else no FVD
    # torch.compile each ConvLSTM's per-frame step for sampling (train.compile_scope=cells);
    # its mode as train.compile_mode. Same samples up to float rounding.
    compile: bool = False
    compile_mode: str = "default"

    def validate(self) -> None:
        check(self.n_samples >= 0, "eval.n_samples", self.n_samples, ">= 0")
        check(self.horizon >= 0, "eval.horizon", self.horizon, ">= 0")
        check(self.temperature >= 0, "eval.temperature", self.temperature, ">= 0")
        check(self.max_sequences >= 0, "eval.max_sequences", self.max_sequences, ">= 0")
        check(self.batch_size >= 1, "eval.batch_size", self.batch_size, ">= 1")
        check(self.compile_mode in COMPILE_MODES, "eval.compile_mode", self.compile_mode,
              ", ".join(COMPILE_MODES))


def default_model() -> ModelConfig:
    """The default model section: the hierarchical VRNN's (``model.kind: hvrnn``), its class
    looked up by kind (:func:`~hvrnn.config.models.model_config_class` imports its module)."""
    return model_config_class(ModelConfig.kind)()


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment. Construction hands the data section's image geometry to the model
    section (also after ``dataclasses.replace``), so the two can never disagree."""

    name: str = "experiment"
    model: ModelConfig = field(default_factory=default_model)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if self.model.geometry != self.data.geometry:
            object.__setattr__(self, "model",
                               dataclasses.replace(self.model, geometry=self.data.geometry))

    def validate(self) -> None:
        for name in ("data", "model", "loss", "train", "eval"):  # finite and in range
            check_numbers(getattr(self, name), name)
        self.data.validate()
        self.model.validate()
        self.model.check_clip_length(self.data.n_pred)
        self.loss.validate()
        self.model.check_loss(self.loss)
        self.train.validate()
        check(not self.train.data_on_device or self.data.name == "smmnist",
              "train.data_on_device", self.train.data_on_device,
              f"false for data.name {self.data.name!r} (it generates SM-MNIST on the device)")
        self.eval.validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists for tuples), without derived fields: what files store."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not f.metadata.get("derived")}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


__all__ = ["ConfigError", "DataConfig", "EvalConfig", "ExperimentConfig", "LossConfig",
           "TrainConfig"]
