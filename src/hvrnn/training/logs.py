"""What a run writes as it goes: ``metrics.jsonl`` and TensorBoard events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from hvrnn.io.files import named
from hvrnn.log import logger


def error_line(exc: BaseException) -> str:
    """An exception in one line, for the ``error`` of a run's end record."""
    from hvrnn.errors import UserError

    if isinstance(exc, OSError) and exc.strerror:
        path = exc.filename2 if exc.filename2 is not None else exc.filename
        return f"{exc.strerror}" + (f": '{path}'" if path is not None else "")
    text = str(exc)
    if "Original Traceback" in text:  # raised in a data loader worker: its own last line
        text = [line for line in text.splitlines() if line.strip()][-1].split(": ", 1)[-1]
    text = " ".join(text.split())
    return text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text}"


def _records(path: Path) -> list[dict[str, Any]]:
    records = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
    return records


KILLED = ("the process stopped without recording how the run ended (killed with SIGKILL, "
          "out of memory, or the machine stopped)")


def run_status(run_dir: str | Path) -> dict[str, Any]:
    """How the last session of a run ended, from ``metrics.jsonl``: its ``end`` record
    (``status`` finished, interrupted or failed, with ``error`` and ``checkpoint``), or
    ``{"status": "running"}`` while a process holds the run directory's lock, or
    ``{"status": "failed", "error": <killed>}`` when the last session started and has no end
    record; ``{"status": "new"}`` for a run with no record."""
    from hvrnn.io.locks import holder

    records = [r for r in _records(Path(run_dir) / "metrics.jsonl")
               if r.get("kind") in ("start", "end")]
    if not records:
        return {"status": "new"}
    if records[-1]["kind"] == "end":
        return records[-1]
    if holder(run_dir) is not None:
        return {"status": "running", "step": records[-1].get("step")}
    return {"kind": "end", "status": "failed", "error": KILLED}


class MetricsLog:
    """Append-only JSONL file; one flushed line per record (a killed run loses at most one).

    Opening the log of a run whose last session has no end record (it was killed) first
    records that session's end as ``failed``, so that the file never claims more than it
    knows.
    """

    def __init__(self, path: Path):
        self.path = path
        needs_newline = path.exists() and path.stat().st_size > 0 and \
            not path.read_bytes().endswith(b"\n")
        records = list(_records(path))
        sessions = [r for r in records if r.get("kind") in ("start", "end")]
        self.file = open(path, "a")  # noqa: SIM115  (kept open for the whole run)
        if needs_newline:
            self.file.write("\n")
        if sessions and sessions[-1]["kind"] == "start":
            # The killed session's last record says how far it got and when.
            last = records[-1]
            self.write({"kind": "end", "status": "failed", "error": KILLED,
                        "step": last.get("step"), "time": last.get("time"),
                        "recorded_later": True})

    def write(self, record: dict[str, Any]) -> None:
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as exc:
            raise named(exc, self.path) from None

    def close(self) -> None:
        self.file.close()


def training_minutes(run_dir: str | Path) -> dict[int, float]:
    """Wall-clock minutes of training at each step logged in ``metrics.jsonl``: the time from
    its session's ``start`` record to the record, plus the whole of every earlier session (a
    killed one up to its last record); gaps between sessions do not count. A step logged by two
    sessions (a resume from an earlier checkpoint) takes the later one's."""
    minutes: dict[int, float] = {}
    done, start, last = 0.0, None, None
    for rec in _records(Path(run_dir) / "metrics.jsonl"):
        if "time" not in rec:  # an end recorded later, for a killed session
            continue
        if rec.get("kind") == "start":
            if start is not None and last is not None:
                done += (last - start) / 60
            start = last = rec["time"]
        elif start is not None:
            last = rec["time"]
            if "step" in rec:
                minutes[int(rec["step"])] = done + (last - start) / 60
    return minutes


def read_metrics(run_dir: str | Path, kind: str = "train") -> list[dict[str, Any]]:
    """Records of one kind from ``metrics.jsonl``, one per step (the latest written, so steps
    repeated after a resume count once), sorted by step. Unparseable lines are skipped."""
    by_step: dict[int, dict[str, Any]] = {}
    for rec in _records(Path(run_dir) / "metrics.jsonl"):
        if rec.get("kind") == kind and "step" in rec:
            by_step[int(rec["step"])] = rec
    return [by_step[s] for s in sorted(by_step)]


class TensorBoard:
    """A ``SummaryWriter`` when enabled and installed; every call is a no-op otherwise."""

    def __init__(self, folder: Path, enabled: bool):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.warning("tensorboard is not installed: logging to metrics.jsonl only "
                           "(pip install hvrnn[viz])")
            return
        self.writer = SummaryWriter(str(folder))

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def video(self, tag: str, video: Tensor, step: int) -> None:
        if self.writer is None:
            return
        try:
            self.writer.add_video(tag, video, step, fps=4)
        except ImportError:  # moviepy missing: the PNG grid and GIF on disk remain
            pass

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
