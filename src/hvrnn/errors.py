"""Exceptions that the command line turns into one ``error: ...`` line and exit status 2.

Every :class:`UserError` names what it refused (a value, a file, a folder) and why. A fix-it
suggestion that asks to pass an option of the running command (``pass --force``) goes into
``hint`` with the options it needs in ``hint_options``: the command line shows the hint only when
the command that runs has those options (``hvrnn demo`` has no ``--force``).
"""

from __future__ import annotations

import re

# "pass --force", "use --resume", "choose another --out": options of the command that runs.
_OPTION_ADVICE = re.compile(r"\b(?:pass|use|add|choose another|give)\s+(--[a-z][a-z0-9-]*)")


def options_in(hint: str) -> tuple[str, ...]:
    """The options of the running command that a hint asks for (``"pass --force"`` ->
    ``("--force",)``); options inside a complete ``hvrnn ...`` command line are not counted."""
    own = re.split(r"\bhvrnn\s+\w", hint)[0]
    return tuple(dict.fromkeys(_OPTION_ADVICE.findall(own)))


class UserError(Exception):
    """Bad input from the user: a file, key or value that cannot be used (named in the message).

    Args:
        message: what was refused and why, in one sentence.
        hint: what to do instead (appended after ``"; "``).
        hint_options: options of the running command the hint relies on (default: those it
            names after "pass", "use", "add", "choose another" or "give").
    """

    def __init__(self, message: str = "", *, hint: str = "",
                 hint_options: tuple[str, ...] | None = None) -> None:
        super().__init__(f"{message}; {hint}" if hint else message)
        self.message, self.hint = message, hint
        self.hint_options = options_in(hint) if hint_options is None else tuple(hint_options)


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, unsafe, or belongs to another configuration."""


class DataError(UserError):
    """A dataset is missing, truncated, corrupt, or does not match its manifest."""


class WeightsError(UserError, FileNotFoundError):
    """Pretrained weights that a metric needs are not available."""


class LockedError(UserError):
    """A folder is being written by another process (named with its PID)."""


class NonFiniteError(UserError, ValueError):
    """Values that must be finite (samples, weights, settings) are NaN or infinite."""


class ResourceError(UserError):
    """The machine cannot run what was asked: no such device, too little memory, or a missing
    optional package (the message names the extra to install)."""


# Optional packages: the extra of ``pip install 'hvrnn[EXTRA]'`` that brings each (by module).
EXTRAS = {"imageio": ("imageio", "viz"), "imageio_ffmpeg": ("imageio-ffmpeg", "viz"),
          "matplotlib": ("matplotlib", "viz"), "tensorboard": ("tensorboard", "viz"),
          "moviepy": ("moviepy", "viz"), "scipy": ("scipy", "metrics"),
          "threadpoolctl": ("threadpoolctl", "metrics"), "av": ("av", "data"),
          "tfrecord": ("tfrecord", "data")}


def missing_package(module: str, purpose: str) -> ResourceError:
    """The error of an optional package that is not installed, naming the extra to install."""
    package, extra = EXTRAS.get(module.split(".")[0], (module, "all"))
    return ResourceError(f"{purpose} needs the Python package '{package}', which is not "
                         f"installed", hint=f"install it with: pip install 'hvrnn[{extra}]'")


def require(*modules: str, purpose: str) -> None:
    """Import each optional module now, so that a missing one is reported before any work.

    Raises:
        ResourceError: the first module that cannot be imported (``imageio_ffmpeg`` also needs
            its ffmpeg executable), with the ``pip install 'hvrnn[extra]'`` that brings it.
    """
    import importlib

    for name in modules:
        try:
            module = importlib.import_module(name)
            if name == "imageio_ffmpeg":
                module.get_ffmpeg_exe()
        except (ImportError, RuntimeError):
            raise missing_package(name, purpose) from None
