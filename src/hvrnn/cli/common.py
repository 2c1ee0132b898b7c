"""Arguments shared by several commands."""

from __future__ import annotations

import argparse

FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def add_config_arguments(p: argparse.ArgumentParser, optional: bool = False) -> None:
    """CONFIG (``optional``: it may be left out) and dotted key=value overrides."""
    p.add_argument("config", metavar="CONFIG", nargs="?" if optional else None,
                   help="preset name (e.g. tiny, bair64) or YAML")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted overrides, e.g. train.batch_size=8 model.n_z=20")
