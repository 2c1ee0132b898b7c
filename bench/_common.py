"""Shared helpers for the benchmark scripts (each prints one JSON object with --json)."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
from pathlib import Path

import torch


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    sys.stdout.flush()


def train_step_process(preset: str, batch_size: int, threads: int, policy: str | None = None,
                       flags: tuple[str, ...] = ()) -> tuple[list[str], dict[str, str]]:
    """The command and environment of one ``bench/train_step.py`` measurement in its own
    process: ``threads`` OpenMP threads, the OpenMP wait ``policy`` (None: the runtime's
    default, whatever this process's environment says), the median of 5 steps after 3 warm-up
    steps, JSON output."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["OMP_NUM_THREADS"] = str(threads)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, str(Path(__file__).parent / "train_step.py"), "--preset", preset,
           "--batch-size", str(batch_size), "--warmup", "3", "--steps", "5", *flags, "--json"]
    return cmd, env
