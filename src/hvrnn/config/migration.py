"""Config dicts of earlier layouts, brought to the current one.

Four changes are handled, for files written by hand and for the configs stored in run folders
and checkpoints alike:

- ``train.beta`` and ``train.betas`` are now ``loss.kl_beta`` and ``train.adam_betas``; the old
  names still work, with a deprecation message.
- The loss settings are one ``loss`` section: ``model.likelihood``, ``model.kl_estimator``,
  ``train.kl_beta``, ``train.beta_warmup_steps`` (now ``loss.kl_warmup_steps``),
  ``train.free_bits`` and ``train.rollout_*`` still work, with a deprecation message.
- The image geometry lives in the data section only. ``model.n_ctx``, ``model.image_size`` and
  ``model.image_channels`` (0 = "take it from data") are dropped when they agree with the data
  section and refused, naming both keys, when they do not.
- Configs written before the per-kind model sections held every kind's keys in one model
  section; keys that are not settings of the config's kind are dropped from such configs.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import Any

from hvrnn.config.checks import ConfigError
from hvrnn.config.models import ModelConfig, model_config_class
from hvrnn.config.sections import DataConfig

RENAMED = {
    "train.beta": "loss.kl_beta", "train.betas": "train.adam_betas",
    "model.likelihood": "loss.likelihood", "model.kl_estimator": "loss.kl_estimator",
    "train.kl_beta": "loss.kl_beta", "train.beta_warmup_steps": "loss.kl_warmup_steps",
    "train.free_bits": "loss.free_bits", "train.rollout_inputs": "loss.rollout_inputs",
    "train.rollout_warmup_steps": "loss.rollout_warmup_steps",
    "train.rollout_from": "loss.rollout_from",
}
GEOMETRY_KEYS = {"n_ctx": "n_ctx", "image_size": "image_size", "image_channels": "channels"}


def renamed_key(key: str, warn: bool = True) -> str:
    """The current name of a dotted key (``train.beta`` -> ``loss.kl_beta``)."""
    new = RENAMED.get(key)
    if new is None:
        return key
    if warn:
        warnings.warn(f"config key {key} is deprecated; use {new}", FutureWarning, stacklevel=4)
    return new


def migrate(data: dict[str, Any], warn: bool = True) -> dict[str, Any]:
    """A copy of a raw config dict in the current layout.

    Args:
        data: the dict read from YAML (sections as nested dicts).
        warn: emit a deprecation message for each old key name (off for stored configs, which
            the user cannot change).

    Raises:
        ConfigError: an old geometry key disagrees with the data section, or a key is given
            under both its old and its new name.
    """
    model = copy.deepcopy(data).get("model")
    old_layout = isinstance(model, dict) and all(k in model for k in GEOMETRY_KEYS)
    data = rename_keys(copy.deepcopy(data), warn)
    model = data.get("model")
    if not isinstance(model, dict):
        return data
    data_section = data.get("data") if isinstance(data.get("data"), dict) else {}
    for mkey, dkey in GEOMETRY_KEYS.items():
        if mkey in model:
            value = model.pop(mkey)
            given = data_section.get(dkey, getattr(DataConfig(), dkey))
            if value not in (0, given):
                raise ConfigError(f"model.{mkey}={value} disagrees with data.{dkey}={given}; "
                                  f"set only data.{dkey}")
    if old_layout:  # every dict written before per-kind model sections
        try:
            cls = model_config_class(model.get("kind", ModelConfig.kind))
        except ConfigError:
            return data  # building the section names the unknown kind
        own = {f.name for f in dataclasses.fields(cls)}
        for key in [k for k in model if k not in own]:
            del model[key]
    return data


def rename_keys(data: dict[str, Any], warn: bool = True) -> dict[str, Any]:
    """``data`` (changed in place and returned) with every old key name (:data:`RENAMED`) moved
    to its current section and name.

    Raises:
        ConfigError: a setting given under two of its names.
    """
    moved: dict[str, str] = {}  # new key -> the old key its value came from
    for old, new in RENAMED.items():
        section, old_key = old.split(".")
        values = data.get(section)
        if isinstance(values, dict) and old_key in values:
            new_section, new_key = renamed_key(old, warn).split(".")
            target = data.setdefault(new_section, {})
            if not isinstance(target, dict):
                continue  # the section itself is wrong; building it names the error
            if new_key in target:
                raise ConfigError(f"{old} and {moved.get(new, new)} are the same setting; "
                                  f"give only {new}")
            target[new_key] = values.pop(old_key)
            moved[new] = old
    return data
