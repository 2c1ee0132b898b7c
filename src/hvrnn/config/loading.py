"""Reading configs: presets and YAML files, dotted overrides, type checks, and writing them back.

Presets live in ``hvrnn/configs/<name>.yaml`` and list only what differs from the defaults; a
preset may start from another with ``base: <preset>``. Values are checked against the field
types; unknown keys and wrong types raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from hvrnn.config.checks import ConfigError
from hvrnn.config.loss import LossConfig
from hvrnn.config.migration import migrate, rename_keys, renamed_key
from hvrnn.config.models import ModelConfig, model_config_class, model_kinds
from hvrnn.config.sections import DataConfig, EvalConfig, ExperimentConfig, TrainConfig
from hvrnn.io.files import read_text, write_atomically

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"
SECTIONS = {"data": DataConfig, "loss": LossConfig, "train": TrainConfig, "eval": EvalConfig}
# Loss settings that describe the model (its pixel likelihood), not the training.
KIND_LOSS_KEYS = ("likelihood", "kl_estimator")


# --------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------


def _coerce_scalar(value: Any, tp: type, key: str) -> Any:
    expected = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}[tp]
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str) or value is None}[tp]
    if not ok:
        raise ConfigError(f"{key}={value!r} has the wrong type: expected {expected}")
    return float(value) if tp is float else ("" if value is None else value)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated field type, or raise ConfigError."""
    origin = typing.get_origin(tp)
    if tp in (bool, int, float, str):
        return _coerce_scalar(value, tp, key)
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


def _unknown_key(cls: type, key: str, names: set[str], prefix: str) -> ConfigError:
    where = f"{prefix}.{key}"
    others = [] if prefix != "model" else [
        kind for kind in model_kinds() if (other := model_config_class(kind)) is not cls
        and key in {f.name for f in dataclasses.fields(other)}]
    if others:
        return ConfigError(f"{where!r} is not a setting of model.kind={cls().kind} (it belongs "
                           f"to model.kind={', '.join(others)})")
    close = sorted(n for n in names if n.startswith(key[:3]))
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(f"unknown config key {where!r}{hint}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix} must be a mapping, got {data!r}")
    settable = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("derived")}
    for k in data:
        if k not in settable:
            raise _unknown_key(cls, k, set(settable), prefix)
    hints = typing.get_type_hints(cls)
    return cls(**{name: _coerce(data[name], hints[name], f"{prefix}.{name}")
                  for name in settable if name in data})


def _build_experiment(data: dict[str, Any]) -> ExperimentConfig:
    known = {"name", "model", *SECTIONS}
    for k in data:
        if k not in known:
            raise ConfigError(f"unknown config key {k!r} (sections: {', '.join(sorted(known))})")
    model = data.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError(f"model must be a mapping, got {model!r}")
    sections = {name: _build(cls, data.get(name), name) for name, cls in SECTIONS.items()}
    sections["model"] = _build(model_config_class(model.get("kind", ModelConfig.kind)), model,
                               "model")
    return ExperimentConfig(name=_coerce(data.get("name", "experiment"), str, "name"),
                            **sections)


# --------------------------------------------------------------------------------------------
# Sources and overrides
# --------------------------------------------------------------------------------------------


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
        raise ConfigError(f"override {item!r}: cannot parse the value: {yaml_error(exc)}"
                          ) from None
    return renamed_key(key).split("."), value


def _apply_override(data: dict[str, Any], item: str) -> None:
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


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def yaml_error(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: the problem and where (line and column, 1-based)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def _read_yaml(path: Path) -> dict[str, Any]:
    text = read_text(path, "config file", ConfigError)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {yaml_error(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping")
    return data


def _source(name_or_path: str | Path) -> tuple[str, dict[str, Any], str]:
    """(identity, raw dict, default name) of a preset name or a YAML path. A bare name is a
    preset unless a file of that name exists (a folder named like a preset, such as a run
    directory, does not hide the preset)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file() or "/" in str(name_or_path) or \
            (p.exists() and not (PRESET_DIR / f"{name_or_path}.yaml").exists()):
        if not p.exists():
            raise ConfigError(f"config file '{p}' does not exist")
        return str(p.resolve()), _read_yaml(p), p.stem
    preset = PRESET_DIR / f"{name_or_path}.yaml"
    if not preset.exists():
        raise ConfigError(
            f"unknown config {str(name_or_path)!r}: not a file and not a preset "
            f"({', '.join(preset_names())})")
    return str(preset.resolve()), _read_yaml(preset), str(name_or_path)


def resolve_source(name_or_path: str | Path, _chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """Raw dict of a preset name or a YAML path, ``base: <preset>`` chains followed.

    Old key names are brought to their current place in each file before it is merged with its
    base (:func:`~hvrnn.config.migration.rename_keys`). A preset that sets another
    ``model.kind`` than its base does not inherit the base's model section, nor its pixel
    likelihood and KL estimator (``loss.likelihood``, ``loss.kl_estimator``): the settings of
    one kind do not apply to another.

    Raises:
        ConfigError: a missing or unreadable source, or a chain of ``base:`` that comes back to
            a config already in it (the cycle named).
    """
    identity, data, default_name = _source(name_or_path)
    if identity in _chain:
        names = [Path(c).name for c in (*_chain[_chain.index(identity):], identity)]
        raise ConfigError(f"config '{Path(identity).name}' is its own base: "
                          f"{' -> '.join(names)} (base: chains must end)")
    data = rename_keys(data)
    name = data.get("name", default_name)  # a derived preset keeps its own name
    base = data.pop("base", None)
    if base:
        if not isinstance(base, str):
            raise ConfigError(f"base={base!r} in '{identity}' is invalid: expected a preset "
                              "name or a YAML path")
        parent = resolve_source(base, (*_chain, identity))
        kind = (data.get("model") or {}).get("kind")
        if kind is not None and kind != (parent.get("model") or {}).get("kind", ModelConfig.kind):
            parent.pop("model", None)
            if isinstance(parent.get("loss"), dict):
                for key in KIND_LOSS_KEYS:
                    parent["loss"].pop(key, None)
        data = _deep_merge(parent, data)
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


def config_from_dict(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), *,
                     warn: bool = True) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from a plain dict.

    Dicts of earlier layouts are migrated first (:mod:`hvrnn.config.migration`); ``warn``
    controls the deprecation messages of old key names.
    """
    data = migrate(data, warn)
    for item in overrides:
        _apply_override(data, item)
    cfg = _build_experiment(migrate(data, warn))
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
    """Write ``cfg`` as YAML to ``path``, atomically."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
