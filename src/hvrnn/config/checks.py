"""The configuration error and the one-line check every section uses."""

from __future__ import annotations

from typing import Any

from hvrnn.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration value is unknown, of the wrong type, or inconsistent."""


def check(ok: bool, key: str, value: Any, expected: str) -> None:
    """Raise ``ConfigError("<key>=<value> is invalid: expected <expected>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: expected {expected}")
