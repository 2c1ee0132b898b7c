"""The ``hvrnn`` command: argument parsing only; each subcommand calls one library function.

One module per command (``info``, ``data``, ``train``, ``sample``, ``evaluate``, ``compare``,
``weights``, ``demo``), each with ``add_parser(subparsers)`` and the handler it registers. A user
error (bad config, missing file, corrupt checkpoint, unwritable folder, full disk, ...) prints
one line ``error: ...`` to stderr and exits with status 2 (:mod:`hvrnn.cli.boundary`, the one
error boundary of every command). Heavy modules are imported inside the handlers, so
``hvrnn --help`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from hvrnn.cli.boundary import EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USER_ERROR

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
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE",
                        help="import MODULE before the command: a module that registers a model "
                        "kind of your own (a name, searched in the current folder first, or a "
                        ".py file); may be repeated")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=Parser)
    for command in COMMANDS:
        importlib.import_module(f"hvrnn.cli.{command}").add_parser(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse; ``key=value`` overrides are accepted anywhere, also after options."""
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    if overrides and hasattr(args, "overrides"):
        args.overrides = [*(args.overrides or []), *overrides]
        extra = [a for a in extra if a not in overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hvrnn`` console script. Returns the exit status.

    The one error boundary of every command (:mod:`hvrnn.cli.boundary`): an error the user
    caused prints one line ``error: ...`` to stderr and returns 2 (1 for a diverged training,
    130 for Ctrl-C); a bug raises with its traceback.
    """
    from hvrnn.cli.boundary import user_error_line
    from hvrnn.log import enable_console_logging

    parser = build_parser()
    try:
        args = _parse(parser, argv)
    except SystemExit as exc:  # --help, --version, or an argument error already printed
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USER_ERROR
    enable_console_logging()
    shown = warnings.formatwarning
    warnings.formatwarning = _warning_line
    try:
        with _sigterm_as_interrupt():
            import_modules(args.imports)
            return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        print(f"error: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`hvrnn ... | head`): stop quietly, as a process killed
        # by SIGPIPE would, and keep the interpreter's last flush from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        known = user_error_line(exc, args)
        if known is None:
            raise
        print(f"error: {known[1]}", file=sys.stderr)
        return known[0]
    finally:
        warnings.formatwarning = shown


def import_modules(names: list[str]) -> None:
    """Import each module of ``hvrnn --import``, as ``python -m`` would find it (the current
    folder first); a name ending in ``.py`` is a file, imported from its folder.

    Raises:
        UserError: a module that cannot be found (the name given, and why).
    """
    from hvrnn.errors import UserError

    for name in names:
        folder, module = os.getcwd(), name
        if name.endswith(".py"):
            path = Path(name).resolve()
            if not path.is_file():
                raise UserError(f"--import {name}: no such file")
            folder, module = str(path.parent), path.stem
        if folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not f"{module}.".startswith(f"{exc.name}."):
                raise UserError(f"--import {name}: it imports {exc.name!r}, which is not "
                                "installed") from None
            raise UserError(f"--import {name}: no module named {module!r} in {folder!r} or on "
                            "the Python path") from None


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``, a batch scheduler) stops a command as Ctrl-C does:
    ``KeyboardInterrupt`` runs every clean-up on the way out (temporary files, locks, folders
    a command created), and the exit status is 130 for both. ``hvrnn train`` installs its own
    handler for both signals while it runs (a checkpoint is saved first)."""
    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  line: str | None = None) -> str:
    """Warnings on one line, like errors (a deprecated config key, a short test split)."""
    return f"warning: {' '.join(str(message).split())}\n"


__all__ = ["EXIT_BROKEN_PIPE", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_USER_ERROR",
           "build_parser", "import_modules", "main"]
