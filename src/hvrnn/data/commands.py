"""The ``hvrnn data`` command that prepares a folder, as recorded in its manifest, and the
advice that names it when the folder must be prepared again."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"


def command_args(dataset: str, *positional: Any, **options: Any) -> list[str]:
    """``["data", dataset, *positional, "--opt", "value", ...]``: the arguments of ``hvrnn``
    that prepare a dataset (option names with dashes; True: a flag; False or None: left out)."""
    args = ["data", dataset, *(str(p) for p in positional)]
    for key, value in options.items():
        if value is None or value is False:
            continue
        args.append("--" + key.replace("_", "-"))
        if value is not True:
            args.append(str(value))
    return args


def prepare_args(manifest: Mapping[str, Any]) -> list[str]:
    """The recorded preparation arguments (older manifests: parsed from ``prepare_command``),
    without ``--out`` and ``--force``; empty when unknown."""
    if isinstance(manifest.get("prepare_args"), list):
        return [str(a) for a in manifest["prepare_args"]]
    try:
        words = shlex.split(str(manifest.get("prepare_command", "")))
    except ValueError:
        return []
    if words[:2] != ["hvrnn", "data"]:
        return []
    out, skip = [], False
    for word in words[1:]:
        if skip:
            skip = False
        elif word == "--out":
            skip = True
        elif word != "--force":
            out.append(word)
    return out


def fix_command(folder: str | Path, manifest_or_args: Mapping[str, Any] | list[str],
                changes: Mapping[str, Any] | None = None) -> str:
    """The shell command that prepares ``folder`` again with its original arguments (and
    ``changes``, e.g. ``{"--seq-len": 40}``), quoted for the shell; "" when unknown."""
    args = list(manifest_or_args) if isinstance(manifest_or_args, list) else \
        prepare_args(manifest_or_args)
    if not args:
        return ""
    for option, value in (changes or {}).items():
        if option in args:
            args[args.index(option) + 1] = str(value)
        else:
            args += [option, str(value)]
    lead = 2
    while lead < len(args) and not args[lead].startswith("--"):
        lead += 1
    return shlex.join(["hvrnn", *args[:lead], "--out", str(folder), *args[lead:], "--force"])


def again(folder: str | Path, manifest: Mapping[str, Any], changes: Mapping[str, Any] | None
          = None) -> str:
    """``"prepare the folder again with: <command>"``, or "" when the command is unknown."""
    command = fix_command(folder, manifest, changes)
    return f"prepare it again with: {command}" if command else ""


__all__ = ["MANIFEST_NAME", "again", "command_args", "fix_command", "prepare_args"]
