"""The run directory while a run writes it, and how Ctrl-C / SIGTERM stop a run.

:class:`RunDirectory` checks the folder (new or empty, or resumable with the same config),
takes its lock (:class:`~hvrnn.io.locks.FolderLock`: a second ``hvrnn train --resume`` on the
same folder is refused with the PID of the first), creates it with ``config.yaml``, and removes
it again when the run fails before its first record (nothing is left of a run that never
started). :class:`StopFlag` turns the first Ctrl-C or SIGTERM into "save a checkpoint after this
step and stop"; repeats within :data:`GRACE_SECONDS` (a key held down, a nervous hand) and any
during a checkpoint save are absorbed, so the save completes; a later one stops at once, and the
message says that no checkpoint was saved.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from hvrnn import checkpoint as ckpt_io
from hvrnn import distributed
from hvrnn.config import ExperimentConfig, save_config
from hvrnn.distributed import DistInfo
from hvrnn.errors import CheckpointError, UserError
from hvrnn.io.files import check_output_dir, named, read_text
from hvrnn.io.locks import FolderLock

GRACE_SECONDS = 1.0


class StopFlag:
    """Set by SIGINT / SIGTERM; the loop saves a checkpoint and returns at the next step."""

    def __init__(self) -> None:
        self.raised = False
        self.first = 0.0
        self.saving = False
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def _handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if not self.raised:
            self.raised, self.first = True, now
        elif not self.saving and now - self.first > GRACE_SECONDS:
            raise KeyboardInterrupt  # asked again, later: stop at once

    @contextmanager
    def protect(self) -> Iterator[None]:
        """A block (a checkpoint save) that a repeated Ctrl-C does not interrupt."""
        self.saving = True
        try:
            yield
        finally:
            self.saving = False

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def check_run_dir(run_dir: Path, cfg: ExperimentConfig, resume: bool) -> None:
    """Refuse to reuse a non-empty run directory without ``resume``; check a resumed one."""
    if not resume:
        check_output_dir(run_dir, force=False, what="run directory",
                         advice="pass --resume to continue it, or choose another --run-dir")
        return
    if not run_dir.is_dir():
        raise UserError(f"cannot resume: run directory '{run_dir}' does not exist")
    saved = run_dir / "config.yaml"
    if saved.exists():
        try:
            old = yaml.safe_load(read_text(saved, "run config")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"cannot resume: '{saved}' is not valid YAML ({exc})") from None
        if not isinstance(old, dict):
            raise UserError(f"cannot resume: '{saved}' holds a {type(old).__name__}, not a "
                            "config (a mapping of sections)")
        diffs = ckpt_io.config_differences(old, cfg.to_dict())
        if diffs:
            key, a, b = diffs[0]
            raise CheckpointError(f"cannot resume '{run_dir}': it was started with "
                                  f"{key}={a!r} but the config has {key}={b!r}")


def resumed_config(run_dir: Path, cfg: ExperimentConfig, overrides: Sequence[str] = ()
                   ) -> tuple[ExperimentConfig, list[tuple[str, Any, Any]]]:
    """The config a resumed run continues with: the run's own ``config.yaml`` with the
    command line's ``overrides`` applied. ``cfg`` (CONFIG with the same overrides) must agree
    with the run on everything but the run-control keys (:data:`RESUMABLE_KEYS`:
    ``train.max_steps``, ``data.root``, ...), which keep the run's values unless overridden.

    Returns:
        ``(config, kept)``: ``kept`` lists ``(key, the run's value, CONFIG's value)`` for each
        run-control key where the run's own setting was kept over CONFIG's. A run directory
        without ``config.yaml`` gives ``(cfg, [])``.

    Raises:
        UserError: the run's config is unreadable or not a mapping, or differs from CONFIG on
            a key a resumed run may not change.
    """
    from hvrnn.config.loading import config_from_dict

    saved = run_dir / "config.yaml"
    check_run_dir(run_dir, cfg, resume=True)
    if not saved.is_file():
        return cfg, []
    own = yaml.safe_load(read_text(saved, "run config"))
    resumed = config_from_dict(own, list(overrides), warn=False)
    kept = ckpt_io.config_differences(resumed.to_dict(), cfg.to_dict(), ignore=frozenset())
    return resumed, kept


class RunDirectory:
    """The run directory, locked by the main process while the run writes it.

    Args:
        run_dir: the folder.
        cfg: the run's config (``config.yaml``).
        resume: continue the run in it.
        dist: this process.
    """

    def __init__(self, run_dir: Path, cfg: ExperimentConfig, resume: bool,
                 dist: DistInfo) -> None:
        self.path, self.cfg, self.resume, self.dist = run_dir, cfg, resume, dist
        self.lock = FolderLock(run_dir, "run directory") if dist.is_main else None
        self.created = False
        self.made: list[Path] = []  # what open() added to a folder that existed

    def check(self) -> None:
        """Lock a run to resume first (the lock's message is the one that matters), then
        check the folder; nothing is created."""
        if self.lock is not None and self.resume and self.path.is_dir():
            self.lock.acquire()
        try:
            check_run_dir(self.path, self.cfg, self.resume)
        except BaseException:
            self.release()
            raise

    def open(self) -> None:
        """Create the folder, ``checkpoints/`` and ``config.yaml`` (main process), under the
        lock; remove what a killed writer left."""
        distributed.barrier(self.dist)
        if self.dist.is_main:
            self.created = not self.path.exists()
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise named(exc, self.path) from None
            if self.lock.fd is None:
                self.lock.acquire()
            for name, make in (("checkpoints", lambda p: p.mkdir()),
                               ("config.yaml", lambda p: save_config(self.cfg, p))):
                if not (self.path / name).exists():
                    make(self.path / name)
                    self.made.append(self.path / name)
            ckpt_io.remove_stale_temporaries(self.path)
        distributed.barrier(self.dist)

    def abandon(self) -> None:
        """After a failure before the run's first record: remove a folder this run created,
        or what it added to one that existed (``config.yaml``, an empty ``checkpoints/``), so
        that the corrected command finds the folder as it was."""
        if (self.path / "metrics.jsonl").exists():
            return
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            self.created = False
            return
        for path in reversed(self.made):
            try:
                path.rmdir() if path.is_dir() else path.unlink()
            except OSError:  # not empty, or gone: leave it
                pass
        self.made = []

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
