"""``hvrnn info CONFIG [key=value ...] [--json]``: parameter counts of a config;
``hvrnn info --presets``: every preset; ``hvrnn info --pretrained``: the shipped models."""

from __future__ import annotations

import argparse
from typing import Any

from hvrnn.cli.common import FORMATTER, add_config_arguments


def format_pretrained(rows: list[dict[str, Any]]) -> str:
    """A table of the shipped models (:func:`hvrnn.pretrained.describe`)."""
    if not rows:
        return "no pretrained models are shipped with this installation"
    lines = []
    for r in rows:
        scores = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in r["metrics"].items() if not isinstance(v, list))
        lines.append(f"{r['reference']:<28} {r['kind']:<8} {r['parameters']:>11,} parameters "
                     f"{r['megabytes']:>6.2f} MB")
        if r["summary"]:
            lines.append(f"    {r['summary']}")
        if scores:
            lines.append(f"    {r['protocol']}: {scores}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import json

    from hvrnn.errors import UserError

    if args.presets or args.pretrained:
        if args.presets:
            from hvrnn.info import format_presets, presets_info

            rows, text = presets_info(), format_presets
        else:
            from hvrnn.pretrained import describe

            rows, text = describe(), format_pretrained
        print(json.dumps(rows, indent=2) if args.json else text(rows))
        return 0
    if args.config is None:
        raise UserError("give a CONFIG (a preset name or YAML file), --presets or --pretrained")
    from hvrnn.config import load_config
    from hvrnn.info import format_info, model_info

    info = model_info(load_config(args.config, args.overrides))
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("info", formatter_class=FORMATTER, help="parameter counts of a config",
                       description="Build the model of CONFIG and print its parameter count "
                                   "per component and in total; --presets lists every preset "
                                   "with its model kind, frame size and parameter count; "
                                   "--pretrained lists the models shipped with hvrnn (usable "
                                   "as pretrained:NAME wherever a checkpoint is accepted).")
    add_config_arguments(p, optional=True)
    p.add_argument("--presets", action="store_true", help="list every preset and exit")
    p.add_argument("--pretrained", action="store_true",
                   help="list the pretrained models shipped with hvrnn and exit")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
    return p
