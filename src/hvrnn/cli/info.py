"""``hvrnn info CONFIG [key=value ...] [--json]``: parameter counts of a config;
``hvrnn info --presets``: every preset."""

from __future__ import annotations

import argparse
from typing import Any

from hvrnn.cli.common import FORMATTER, add_config_arguments


def run(args: argparse.Namespace) -> int:
    import json

    from hvrnn.config import load_config
    from hvrnn.errors import UserError
    from hvrnn.info import format_info, format_presets, model_info, presets_info

    if args.presets:
        rows = presets_info()
        print(json.dumps(rows, indent=2) if args.json else format_presets(rows))
        return 0
    if args.config is None:
        raise UserError("give a CONFIG (a preset name or YAML file), or --presets")
    info = model_info(load_config(args.config, args.overrides))
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("info", formatter_class=FORMATTER, help="parameter counts of a config",
                       description="Build the model of CONFIG and print its parameter count "
                                   "per component and in total; --presets lists every preset "
                                   "with its model kind, frame size and parameter count.")
    add_config_arguments(p, optional=True)
    p.add_argument("--presets", action="store_true", help="list every preset and exit")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
    return p
