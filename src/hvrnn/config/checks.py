"""The configuration error, the one-line check of a value, and the check every number gets.

Every number of a config (and every element of a tuple of numbers) must be finite and lie in
``[0, INT_MAX]`` (integers) or ``[0, FLOAT_MAX]`` (floats), unless its field's metadata gives
its own ``"range": (low, high)``; :func:`check_numbers` enforces it for every section of every
model kind, so a new setting is covered without further code. Tighter limits of single settings
(``train.lr > 0``) are checked by each section's ``validate``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from hvrnn.errors import UserError

INT_MAX = 2**31 - 1
FLOAT_MAX = 1e6
# Device names accepted by train.device, --device: auto, cpu, mps, cuda, cuda:N.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")


class ConfigError(UserError, ValueError):
    """A configuration value is unknown, of the wrong type, or inconsistent."""


def check(ok: bool, key: str, value: Any, expected: str) -> None:
    """Raise ``ConfigError("<key>=<value> is invalid: expected <expected>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: expected {expected}")


def _shown(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def number_range(field: dataclasses.Field, value: float | int) -> tuple[float, float]:
    """The allowed ``(low, high)`` of a numeric field's values."""
    low, high = field.metadata.get("range", (0, None))
    if high is None:
        high = INT_MAX if isinstance(value, int) else FLOAT_MAX
    return low, high


def check_numbers(section: Any, prefix: str) -> None:
    """Every number of a config section finite and in its range (see the module docstring).

    Raises:
        ConfigError: naming the key, its value and the range.
    """
    for f in dataclasses.fields(section):
        if f.metadata.get("derived"):
            continue
        value = getattr(section, f.name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            key = f"{prefix}.{f.name}"
            if not math.isfinite(v):
                raise ConfigError(f"{key}={_shown(value)!r} is invalid: expected a finite "
                                  "number")
            low, high = number_range(f, v)
            if not low <= v <= high:
                raise ConfigError(f"{key}={_shown(value)!r} is out of range: expected "
                                  f"{'values' if isinstance(value, tuple) else 'a value'} "
                                  f"from {_num(low)} to {_num(high)}")


def check_device(key: str, value: str) -> None:
    """A device name: ``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``."""
    check(bool(DEVICE_PATTERN.match(value)), key, value, "auto, cpu, mps, cuda or cuda:N")
