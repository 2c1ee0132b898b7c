"""Config dicts of earlier layouts, brought to the current one.

Three changes are handled, for files written by hand and for the configs stored in run folders
and checkpoints alike:

- ``train.beta`` and ``train.betas`` are now ``train.kl_beta`` and ``train.adam_betas``; the old
  names still work, with a deprecation message.
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
from hvrnn.config.models import MODEL_CONFIGS
from hvrnn.config.sections import DataConfig

RENAMED = {"train.beta": "train.kl_beta", "train.betas": "train.adam_betas"}
GEOMETRY_KEYS = {"n_ctx": "n_ctx", "image_size": "image_size", "image_channels": "channels"}


def renamed_key(key: str, warn: bool = True) -> str:
    """The current name of a dotted key (``train.beta`` -> ``train.kl_beta``)."""
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
    data = copy.deepcopy(data)
    for old, new in RENAMED.items():
        section, old_key = old.split(".")
        values = data.get(section)
        if isinstance(values, dict) and old_key in values:
            new_key = renamed_key(old, warn).split(".")[1]
            if new_key in values:
                raise ConfigError(f"{old} and {new} are the same setting; give only {new}")
            values[new_key] = values.pop(old_key)
    model = data.get("model")
    if not isinstance(model, dict):
        return data
    old_layout = all(k in model for k in GEOMETRY_KEYS)  # every dict written before
    data_section = data.get("data") if isinstance(data.get("data"), dict) else {}
    for mkey, dkey in GEOMETRY_KEYS.items():
        if mkey in model:
            value = model.pop(mkey)
            given = data_section.get(dkey, getattr(DataConfig(), dkey))
            if value not in (0, given):
                raise ConfigError(f"model.{mkey}={value} disagrees with data.{dkey}={given}; "
                                  f"set only data.{dkey}")
    cls = MODEL_CONFIGS.get(model.get("kind", "hvrnn"))
    if old_layout and cls is not None:
        own = {f.name for f in dataclasses.fields(cls)}
        for key in [k for k in model if k not in own]:
            del model[key]
    return data
