"""What a run writes as it goes: ``metrics.jsonl`` and TensorBoard events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from hvrnn.log import logger


class MetricsLog:
    """Append-only JSONL file; one flushed line per record (a killed run loses at most one)."""

    def __init__(self, path: Path):
        self.path = path
        needs_newline = path.exists() and path.stat().st_size > 0 and \
            not path.read_bytes().endswith(b"\n")
        self.file = open(path, "a")  # noqa: SIM115  (kept open for the whole run)
        if needs_newline:
            self.file.write("\n")

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_metrics(run_dir: str | Path, kind: str = "train") -> list[dict[str, Any]]:
    """Records of one kind from ``metrics.jsonl``, one per step (the latest written, so steps
    repeated after a resume count once), sorted by step. Unparseable lines are skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    by_step: dict[int, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and rec.get("kind") == kind and "step" in rec:
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
