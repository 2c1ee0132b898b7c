"""The error boundary of every command: what the user caused becomes one line, exit status 2.

:func:`user_error_line` maps each kind of exception that comes from the user's input or
environment to one line ``<what> '<path>': <reason>``:

- :class:`~hvrnn.errors.UserError` and its kinds (config, data, checkpoint, weights, lock,
  non-finite values, devices, memory, missing packages): their own message, and their hint when
  the running command has the options the hint names;
- ``OSError`` of the file system on a user's path: a full disk or quota (ENOSPC, EDQUOT), a
  read-only file system (EROFS), permissions (EACCES, EPERM), a file where a folder is expected
  and the reverse (ENOTDIR, EISDIR, EEXIST), a missing path (ENOENT), a name too long, a loop of
  links, an I/O error of the device; all but the full or read-only disk only when the error
  names a path (one that does not comes from hvrnn's own code);
- a damaged or foreign file that a reader let through (a broken zip or compressed stream,
  text that is not UTF-8, YAML that does not parse);
- a failed allocation (out of memory) and a missing optional package (the extra to install).

Anything else is a bug: it is not caught, so its traceback is shown.
"""

from __future__ import annotations

import argparse
import errno
import zipfile
import zlib
from typing import Any

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout closed it

# File-system errors caused by the user's paths or machine, with what they advise.
_WRITE_ERRNOS = {errno.ENOSPC: "free some space or write elsewhere",
                 errno.EDQUOT: "free some space or write elsewhere",
                 errno.EFBIG: "write elsewhere",
                 errno.EROFS: "write to a folder on a writable file system"}
_ACCESS_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                  errno.ENOENT, errno.ENAMETOOLONG, errno.ELOOP, errno.EIO, errno.ENXIO,
                  errno.ETXTBSY, errno.EMLINK}


def one_line(text: str) -> str:
    """``text`` on one line. A message that crossed a process boundary (a data loader worker
    re-raises its exception with the worker's traceback inside) keeps its last line. A
    message listing several mistakes (``"...\nerror: ..."``, e.g. a protocol file) keeps one
    line per mistake."""
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return "\nerror: ".join(" ".join(part.split()) for part in text.split("\nerror: "))


def _has_option(args: argparse.Namespace | None, option: str) -> bool:
    return args is not None and hasattr(args, option.lstrip("-").replace("-", "_"))


def _user_error(exc: Any, args: argparse.Namespace | None) -> str:
    """A UserError's message, with its hint if the running command has the hint's options."""
    hint, options = getattr(exc, "hint", ""), getattr(exc, "hint_options", ())
    if hint and not all(_has_option(args, o) for o in options):
        return one_line(getattr(exc, "message", str(exc)))
    return one_line(str(exc))


def _os_error(exc: OSError) -> str | None:
    if exc.errno not in _WRITE_ERRNOS and exc.errno not in _ACCESS_ERRNOS:
        return None
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    if path is None and exc.errno not in _WRITE_ERRNOS:
        return None  # a missing or unreadable what? Without a path it is ours: a traceback
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "failed")
    verb = "cannot write" if exc.errno in _WRITE_ERRNOS else "cannot access"
    where = f" '{path}'" if path is not None else ""
    advice = _WRITE_ERRNOS.get(exc.errno or 0)
    return f"{verb}{where}: {reason}" + (f"; {advice}" if advice else "")


def _damaged_file(exc: BaseException) -> str | None:
    import yaml

    if isinstance(exc, UnicodeDecodeError):
        from hvrnn.io.files import reason

        return f"cannot read a file: {reason(exc)}"
    if isinstance(exc, (zipfile.BadZipFile, zlib.error)):
        return f"cannot read a damaged archive: {one_line(str(exc))}"
    if isinstance(exc, yaml.YAMLError):
        from hvrnn.config.loading import yaml_error

        return f"invalid YAML: {yaml_error(exc)}"
    return None


def _missing_package(exc: ImportError) -> str | None:
    from hvrnn.errors import EXTRAS, missing_package

    name = (exc.name or "").split(".")[0]
    if name in EXTRAS:
        return str(missing_package(name, "this command"))
    if "FFMPEG" in str(exc):
        return str(missing_package("imageio_ffmpeg", "writing MP4 videos"))
    return None


def _out_of_memory(exc: BaseException) -> bool:
    """A failed allocation (as :func:`hvrnn.memory.out_of_memory`, without torch)."""
    text = str(exc)
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                           or "out of memory" in text.lower()))


def user_error_line(exc: BaseException, args: argparse.Namespace | None = None
                    ) -> tuple[int, str] | None:
    """``(exit status, line)`` for an exception the user caused, None for a bug."""
    from hvrnn.errors import UserError

    if isinstance(exc, UserError):
        return EXIT_USER_ERROR, _user_error(exc, args)
    if type(exc).__name__ == "TrainingDiverged":
        return EXIT_FAILURE, one_line(str(exc))
    line: str | None = None
    if isinstance(exc, ImportError):
        line = _missing_package(exc)
    elif isinstance(exc, OSError):
        line = _os_error(exc)
    elif _out_of_memory(exc):
        line = f"out of memory: {one_line(str(exc))[:200] or type(exc).__name__}"
    else:
        line = _damaged_file(exc)
    return None if line is None else (EXIT_USER_ERROR, line)
