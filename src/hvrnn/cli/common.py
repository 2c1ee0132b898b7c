"""Arguments shared by several commands, and the checked types of every number and device.

Every numeric option of the command line is declared with :func:`integer` or :func:`number`:
the parser refuses a value that is not finite or not in range (one ``error:`` line, exit 2)
before any work starts. ``tests/test_reliability_properties.py`` checks that no numeric option
is declared otherwise.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from hvrnn.config.checks import DEVICE_PATTERN, INT_MAX


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that names an option's default once: appended as ``(default: X)`` only when the
    help text does not already say what the default is, and never for a flag (its default is
    off) or an option without a default (None)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        unset = action.default is None or action.default is False \
            or action.default == argparse.SUPPRESS  # (0 is a default to show, not "off")
        if unset or "default" in text.lower():
            return text
        return super()._get_help_string(action)


FORMATTER = Formatter


def _show(bound: float) -> str:
    """A bound as a person writes it: 2147483647, 10000000, 0.5, 1e+30."""
    if float(bound).is_integer() and abs(bound) < 1e15:
        return str(int(bound))
    return f"{bound:g}"


class Checked:
    """An argparse ``type``: parses a number and checks its range (``low``/``high``
    inclusive, ``above`` exclusive); carries its limits for the help and the tests."""

    def __init__(self, kind: type, low: float | None = None, high: float | None = None,
                 above: float | None = None, below: float | None = None) -> None:
        self.kind, self.low, self.high, self.above, self.below = kind, low, high, above, below
        self.__name__ = kind.__name__  # argparse names the type in its messages

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        parts = []
        # The tighter of each pair of bounds (``> 0`` says all that ``>= 0`` would).
        if self.above is not None and (self.low is None or self.above >= self.low):
            parts.append(f"> {_show(self.above)}")
        elif self.low is not None:
            parts.append(f">= {_show(self.low)}")
        if self.below is not None and (self.high is None or self.below <= self.high):
            parts.append(f"< {_show(self.below)}")
        elif self.high is not None:
            parts.append(f"<= {_show(self.high)}")
        return f"{what} {' and '.join(parts)}".strip()

    def accepts(self, value: float) -> bool:
        return (math.isfinite(value)
                and (self.low is None or value >= self.low)
                and (self.high is None or value <= self.high)
                and (self.above is None or value > self.above)
                and (self.below is None or value < self.below))

    def __call__(self, text: str) -> int | float:
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}") from None
        if not self.accepts(value):
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}")
        return value


def integer(low: int = 0, high: int = INT_MAX) -> Callable[[str], int]:
    """An integer option in ``[low, high]``."""
    return Checked(int, low, high)


def number(low: float | None = 0.0, high: float | None = 1e6, above: float | None = None,
           below: float | None = None) -> Callable[[str], float]:
    """A finite float option in ``[low, high]`` (and ``> above``, ``< below`` if given)."""
    return Checked(float, low, high, above, below)


def device(text: str) -> str:
    """A device name (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``); whether this machine
    has it is checked when the command starts, before it writes anything."""
    if not DEVICE_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def add_config_arguments(p: argparse.ArgumentParser, optional: bool = False) -> None:
    """CONFIG (``optional``: it may be left out) and dotted key=value overrides (accepted
    anywhere on the command line, also after options)."""
    p.add_argument("config", metavar="CONFIG", nargs="?" if optional else None,
                   help="preset name (e.g. tiny, bair64) or YAML")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted overrides, e.g. train.batch_size=8 model.n_z=20")


def metric_weights(given: str | None, skip: bool, metric: str, names: tuple[str, ...],
                   notes: dict[str, str]) -> Any:
    """The weights argument of one metric for ``hvrnn evaluate`` and ``hvrnn compare``: False
    (``--no-...``), the given path, ``FROM_CACHE`` when the cache holds every file, else None
    with a note naming the fetch command (``notes[metric]``)."""
    if skip:
        return False
    if given:
        return given
    from hvrnn import weights
    from hvrnn.evaluation.request import FROM_CACHE

    missing = [n for n in names if weights.cached(n) is None]
    if not missing:
        return FROM_CACHE
    notes[metric] = (f"note: {metric.upper()} skipped: "
                     f"{', '.join(weights.REGISTRY[n].filename for n in missing)} not in the "
                     f"weights cache; run `{weights.fetch_command(missing)}`")
    return None
