"""Messages of the library: ``logging.getLogger("hvrnn")``, and a handler that keeps progress bars
intact.

The library only logs; the ``hvrnn`` command installs :class:`TqdmHandler` with
:func:`enable_console_logging`. In Python, call it too (or configure ``logging`` as you like) to
see the progress messages of training and evaluation.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

logger = logging.getLogger("hvrnn")


class TqdmHandler(logging.Handler):
    """Writes records to stderr through ``tqdm.write``, above any progress bar being drawn."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001  (logging must never raise)
            self.handleError(record)


def enable_console_logging(level: int = logging.INFO) -> None:
    """Show the library's messages of ``level`` and above on stderr (installed once)."""
    if not any(isinstance(h, TqdmHandler) for h in logger.handlers):
        handler = TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


# Seconds between two progress lines when stderr is not a terminal (a log file, a batch job).
PROGRESS_SECONDS_DEFAULT = 30.0


def progress_seconds() -> float:
    """``$HVRNN_PROGRESS_SECONDS`` (a number >= 0), else :data:`PROGRESS_SECONDS_DEFAULT`."""
    import math
    import os

    try:
        value = float(os.environ.get("HVRNN_PROGRESS_SECONDS", PROGRESS_SECONDS_DEFAULT))
    except ValueError:
        return PROGRESS_SECONDS_DEFAULT
    return value if math.isfinite(value) and value >= 0 else PROGRESS_SECONDS_DEFAULT


class _Lines:
    """A file for tqdm that turns its in-place updates (``\\r...``) into whole lines, from
    ``seconds`` after its start on (short work stays quiet); a line the same as the one before,
    as the bar's closing refresh, is not repeated."""

    def __init__(self, seconds: float) -> None:
        import time

        self.last, self.start, self.seconds, self.clock = "", time.monotonic(), seconds, \
            time.monotonic

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text and text != self.last and self.clock() - self.start >= self.seconds:
            sys.stderr.write(text + "\n")
            self.last = text

    def flush(self) -> None:
        sys.stderr.flush()


def progress(iterable: Any = None, *, total: float | None = None, desc: str = "",
             unit: str = "it", enabled: bool | None = None, **kwargs: Any) -> Any:
    """A progress bar on stderr (a ``tqdm``): drawn in place on a terminal; elsewhere (a log
    file, a pipe, a batch job) one line every :func:`progress_seconds` seconds and one at the
    end, once the work has lasted that long, so that long work is never silent (and short work
    prints nothing). ``enabled=False`` hides it, ``True``
    shows it even where output is not a terminal (``None``: shown in either form)."""
    from tqdm import tqdm

    if enabled is False:
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=True, **kwargs)
    terminal = sys.stderr.isatty()
    if terminal:
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, **kwargs)
    seconds = progress_seconds()
    kwargs.pop("dynamic_ncols", None)
    kwargs.pop("leave", None)
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=_Lines(seconds), ascii=True,
                ncols=100, mininterval=seconds, maxinterval=max(seconds, 0.1), miniters=1,
                **kwargs)
