"""Typed, frozen experiment configuration.

Every option is defined once, here, as a dataclass field with a default. Presets live in
``hvrnn/configs/<name>.yaml`` and only list what differs from these defaults. Dotted overrides
(``model.n_z=20``) are applied on load. Unknown keys and wrong types raise :class:`ConfigError`
naming the key; nothing is ever changed after construction.

Values derived from others (sequence length, per-stage widths) are properties, never stored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from hvrnn.errors import UserError

PRESET_DIR = Path(__file__).parent / "configs"


class ConfigError(UserError, ValueError):
    """A configuration value is unknown, of the wrong type, or inconsistent."""


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a video model (SPEC section 3).

    ``n_ctx``, ``image_size`` and ``image_channels`` default to 0, meaning "take them from the
    data section" when loaded through :func:`load_config`; a model built directly needs them set.
    """

    kind: str = "hvrnn"
    n_ctx: int = 0
    image_size: int = 0
    image_channels: int = 0
    # Latent hierarchy, coarsest first. The level at resolution 1 has ``n_z`` channels, the
    # others as many channels as the encoder stage of the same resolution, unless
    # ``latent_channels`` lists them explicitly (same length as ``latent_resolutions``).
    latent_resolutions: tuple[int, ...] = (1, 8, 32)
    latent_channels: tuple[int, ...] = ()
    n_z: int = 10
    # Widths: stage i (resolution H / 2^i) has min(base * 2^i, max) * width_mult channels.
    base_channels: int = 64
    max_channels: int = 512
    width_mult: float = 1.0
    # GroupNorm groups: residual/conv blocks, ConvLSTM gates and cell, latent nets + init output.
    gn_groups: int = 4
    gn_groups_lstm: int = 16
    gn_groups_latent: int = 1
    residual_scale: float = 0.1
    prior_dense: bool = True
    center_tap_1x1: bool = True
    var_floor: float = 1e-5
    # Departure from the paper (off in its presets): every decoder block above 1x1 also reads
    # the encoder features of the previous frame at its resolution, so appearance need not pass
    # through the 1x1 bottleneck. Makes small models on a CPU budget draw recognisable frames.
    frame_skips: bool = False
    likelihood: str = "bce"  # bce | l1 | l2
    kl_estimator: str = "analytic"  # analytic | mc
    # Recompute activations in the backward pass: "decoder" (its ConvLSTM blocks) or "all"
    # (also the encoder and every latent net); trades compute for memory.
    activation_checkpointing: str = "none"  # none | decoder | all
    # model.kind=svg_lp only (SVG-LP baseline): frame code width and LSTM sizes.
    g_dim: int = 128
    rnn_size: int = 256
    predictor_layers: int = 2
    posterior_layers: int = 1
    prior_layers: int = 1

    # ---- derived -------------------------------------------------------------------------
    @property
    def stage_resolutions(self) -> tuple[int, ...]:
        """Encoder/decoder resolutions, finest first: H, H/2, ..., 4, then 1."""
        res, out = self.image_size, []
        while res >= 4:
            out.append(res)
            res //= 2
        return (*out, 1)

    def width(self, resolution: int) -> int:
        """Channel width of the encoder stage / decoder block at ``resolution``."""
        res = self.stage_resolutions
        idx = res.index(resolution)
        base = self.base_channels * 2**idx
        return max(1, int(round(min(base, self.max_channels) * self.width_mult)))

    @property
    def level_channels(self) -> tuple[int, ...]:
        if self.latent_channels:
            return tuple(self.latent_channels)
        return tuple(self.n_z if r == 1 else self.width(r) for r in self.latent_resolutions)

    def validate(self) -> None:
        _check(self.n_ctx >= 1, "model.n_ctx", self.n_ctx, "at least 1 context frame")
        _check(self.image_channels >= 1, "model.image_channels", self.image_channels, ">= 1")
        size = self.image_size
        _check(size >= 8 and size & (size - 1) == 0, "model.image_size", size,
               "a power of two >= 8 (the encoder halves it down to 4x4)")
        _check(self.likelihood in ("bce", "l1", "l2"), "model.likelihood", self.likelihood,
               "bce, l1 or l2")
        _check(self.kl_estimator in ("analytic", "mc"), "model.kl_estimator",
               self.kl_estimator, "analytic or mc")
        _check(self.activation_checkpointing in ("none", "decoder", "all"),
               "model.activation_checkpointing", self.activation_checkpointing,
               "none, decoder or all")
        _check(self.var_floor >= 0, "model.var_floor", self.var_floor, ">= 0")
        _check(self.n_z >= 1, "model.n_z", self.n_z, ">= 1")
        _check(self.width_mult > 0, "model.width_mult", self.width_mult, "> 0")
        res = self.latent_resolutions
        _check(len(res) >= 1, "model.latent_resolutions", res, "at least one level")
        _check(list(res) == sorted(set(res)), "model.latent_resolutions", res,
               "strictly increasing (coarsest level first)")
        for r in res:
            _check(r in self.stage_resolutions and r != size, "model.latent_resolutions", res,
                   f"each a decoder resolution below the image size, i.e. in "
                   f"{list(self.stage_resolutions[1:][::-1])}")
        if self.latent_channels:
            _check(len(self.latent_channels) == len(res), "model.latent_channels",
                   self.latent_channels, f"{len(res)} values, one per latent level")
        for r in self.stage_resolutions:
            w = self.width(r)
            _check(w % self.gn_groups == 0, "model.gn_groups", self.gn_groups,
                   f"a divisor of every stage width (width {w} at {r}x{r})")
            _check(w % self.gn_groups_lstm == 0, "model.gn_groups_lstm", self.gn_groups_lstm,
                   f"a divisor of every ConvLSTM width (width {w} at {r}x{r})")
            _check(w % self.gn_groups_latent == 0, "model.gn_groups_latent",
                   self.gn_groups_latent, f"a divisor of every latent-net width ({w})")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it is, and how clips are cut (SPEC section 5)."""

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

    def validate(self) -> None:
        _check(self.n_ctx >= 1, "data.n_ctx", self.n_ctx, "at least 1 context frame")
        _check(self.n_pred >= 1, "data.n_pred", self.n_pred, "at least 1 predicted frame")
        _check(self.channels in (1, 3), "data.channels", self.channels, "1 or 3")
        _check(self.image_size >= 8, "data.image_size", self.image_size, ">= 8")
        _check(self.num_workers >= 0, "data.num_workers", self.num_workers, ">= 0")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and run control (SPEC section 4)."""

    batch_size: int = 16  # per process
    max_steps: int = 200_000
    lr: float = 1e-4
    weight_decay: float = 1e-4  # coupled L2 (torch.optim.Adam), as the official runs
    betas: tuple[float, float] = (0.9, 0.999)
    lr_warmup_steps: int = 0  # linear warm-up to the scaled lr (multi-GPU runs)
    lr_scale_by_batch: bool = True  # linear scaling: lr * global_batch / 16
    beta: float = 1.0
    beta_warmup_steps: int = 0  # 0 = constant beta
    # Free bits (Kingma et al. 2016): in the loss only, each level's KL per predicted frame
    # (batch mean, nats) counts as at least this much, so a level cannot collapse to the prior
    # early. 0 = the plain ELBO (the paper). Reported KL and negative ELBO are never clamped.
    free_bits: float = 0.0
    grad_clip: float = 0.0  # 0 = no clipping (grad norm is still logged)
    amp: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | none
    compile: bool = False
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
        _check(self.batch_size >= 1, "train.batch_size", self.batch_size, ">= 1")
        _check(self.max_steps >= 0, "train.max_steps", self.max_steps, ">= 0")
        _check(self.lr > 0, "train.lr", self.lr, "> 0")
        _check(self.amp in ("auto", "bf16", "none"), "train.amp", self.amp,
               "auto, bf16 or none")
        _check(self.checkpoint_every >= 1, "train.checkpoint_every", self.checkpoint_every,
               ">= 1")
        _check(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, ">= 0")
        _check(self.free_bits >= 0, "train.free_bits", self.free_bits, ">= 0")


@dataclass(frozen=True)
class EvalConfig:
    """Sampling and scoring defaults (SPEC section 6)."""

    protocol: str = ""  # a protocol id from hvrnn.evaluate.PROTOCOLS; "" = derived from data
    n_samples: int = 100
    horizon: int = 0  # 0 = data.n_pred
    temperature: float = 1.0
    batch_size: int = 8  # sequences per sampling batch
    seed: int = 0
    max_sequences: int = 0  # 0 = the whole test split
    lpips_weights: str = ""
    i3d_weights: str = ""

    def validate(self) -> None:
        _check(self.n_samples >= 1, "eval.n_samples", self.n_samples, ">= 1")
        _check(self.horizon >= 0, "eval.horizon", self.horizon, ">= 0")
        _check(self.temperature >= 0, "eval.temperature", self.temperature, ">= 0")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        self.data.validate()
        self.model.validate()
        self.train.validate()
        self.eval.validate()
        for mkey, dkey in (("n_ctx", "n_ctx"), ("image_size", "image_size"),
                           ("image_channels", "channels")):
            mv, dv = getattr(self.model, mkey), getattr(self.data, dkey)
            if mv != dv:
                raise ConfigError(
                    f"model.{mkey}={mv} disagrees with data.{dkey}={dv}; set only data.{dkey}")

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: expected {expected}")


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated field type, or raise ConfigError."""
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} has the wrong type: expected true/false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} has the wrong type: expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} has the wrong type: expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if value is None:
            return ""
        raise ConfigError(f"{key}={value!r} has the wrong type: expected a string")
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} has the wrong type: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{key}={value!r} has the wrong length: expected {len(args)}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            try:
                return _coerce(value, a, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}={value!r} has the wrong type: expected {tp}")
    raise ConfigError(f"{key}: unsupported field type {tp}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for k in data:
        if k not in names:
            where = f"{prefix}.{k}" if prefix else k
            close = [n for n in names if n.startswith(k[:3])]
            hint = f" (did you mean {', '.join(sorted(close))}?)" if close else ""
            raise ConfigError(f"unknown config key {where!r}{hint}")
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, data[f.name] or {}, key)
        else:
            kwargs[f.name] = _coerce(data[f.name], tp, key)
    return cls(**kwargs)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: cannot parse value ({exc})") from None
    return key.split("."), value


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping")
    return data


def resolve_source(name_or_path: str | Path) -> dict[str, Any]:
    """Raw dict of a preset name or a YAML path (``base: <preset>`` chains are followed)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in str(name_or_path):
        if not p.exists():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        data = _read_yaml(p)
        default_name = p.stem
    else:
        preset = PRESET_DIR / f"{name_or_path}.yaml"
        if not preset.exists():
            raise ConfigError(
                f"unknown config {str(name_or_path)!r}: not a file and not a preset "
                f"({', '.join(preset_names())})")
        data = _read_yaml(preset)
        default_name = str(name_or_path)
    name = data.get("name", default_name)  # a derived preset keeps its own name
    base = data.pop("base", None)
    if base:
        data = _deep_merge(resolve_source(base), data)
    data["name"] = name
    return data


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def config_from_dict(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()
                     ) -> ExperimentConfig:
    """Build, link and validate an :class:`ExperimentConfig` from a plain dict."""
    data = _deep_merge({}, data)
    for item in overrides:
        path, value = _parse_override(item)
        node = data
        for part in path[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = nxt
        node[path[-1]] = value
    cfg = _build(ExperimentConfig, data, "")
    # Link the model to the data it models (computed once, at construction).
    model = cfg.model
    links = {"n_ctx": cfg.data.n_ctx, "image_size": cfg.data.image_size,
             "image_channels": cfg.data.channels}
    fill = {k: v for k, v in links.items() if getattr(model, k) == 0}
    if fill:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(model, **fill))
    cfg.validate()
    return cfg


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()
                ) -> ExperimentConfig:
    """Load a preset (``configs/<name>.yaml``) or YAML file and apply dotted overrides.

    Args:
        name_or_path: preset name such as ``"smmnist64"`` or a path to a YAML file.
        overrides: ``["model.n_z=20", "train.batch_size=8"]``; values are parsed as YAML.

    Returns:
        A frozen, validated :class:`ExperimentConfig`.

    Raises:
        ConfigError: unknown key, wrong type, or an inconsistent value (named in the message).
    """
    return config_from_dict(resolve_source(name_or_path), overrides)


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

