"""Messages of the library: ``logging.getLogger("hvrnn")``, and a handler that keeps progress bars
intact.

The library only logs; the ``hvrnn`` command installs :class:`TqdmHandler` with
:func:`enable_console_logging`. In Python, call it too (or configure ``logging`` as you like) to
see the progress messages of training and evaluation.
"""

from __future__ import annotations

import logging
import sys

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
