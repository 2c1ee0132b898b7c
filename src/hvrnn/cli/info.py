"""``hvrnn info CONFIG [key=value ...] [--json]``: parameter counts of a config."""

from __future__ import annotations

import argparse
from typing import Any

from hvrnn.cli.common import FORMATTER, add_config_arguments


def run(args: argparse.Namespace) -> int:
    import json

    from hvrnn.config import load_config
    from hvrnn.info import format_info, model_info

    info = model_info(load_config(args.config, args.overrides))
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("info", formatter_class=FORMATTER, help="parameter counts of a config",
                       description="Build the model of CONFIG and print its parameter count "
                                   "per component and in total.")
    add_config_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
    return p
