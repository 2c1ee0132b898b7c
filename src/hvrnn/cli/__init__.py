"""The ``hvrnn`` command: argument parsing only; each subcommand calls one library function.

One module per command (``info``, ``data``, ``train``, ``sample``, ``evaluate``, ``compare``,
``weights``, ``demo``), each with ``add_parser(subparsers)`` and the handler it registers. A user
error (bad config, missing file, corrupt checkpoint, unwritable folder) prints one line
``error: ...`` to stderr and exits with status 2. Heavy modules are imported inside the
handlers, so ``hvrnn --help`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

# OpenMP threads that spin while waiting make every step many times slower as soon as another
# process shares the cores (seen: 40 s instead of 1.5 s per step on 2 busy cores). Must be set
# before torch is imported; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1
# Modules of this package, one per command.
COMMANDS = ("info", "data", "train", "sample", "evaluate", "compare", "weights", "demo")


class Parser(argparse.ArgumentParser):
    """Argument errors as one ``error: ...`` line (exit 2), like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {message} (see '{self.prog} --help')\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``hvrnn`` parser with every subcommand registered (``argv`` is not needed; it is
    accepted for callers of earlier versions)."""
    from hvrnn import __version__

    parser = Parser(prog="hvrnn", description="Hierarchical conditional VRNNs for stochastic "
                    "video prediction: prepare data, train, sample and evaluate.")
    parser.add_argument("--version", action="version", version=f"hvrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=Parser)
    for command in COMMANDS:
        importlib.import_module(f"hvrnn.cli.{command}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hvrnn`` console script. Returns the exit status."""
    from hvrnn.errors import UserError
    from hvrnn.log import enable_console_logging

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or an argument error already printed
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USER_ERROR
    enable_console_logging()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        where = f" {exc.filename!r}" if exc.filename else ""
        print(f"error: cannot access{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        from hvrnn.training.engine import TrainingDiverged

        if isinstance(exc, TrainingDiverged):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        raise
