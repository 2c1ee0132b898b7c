"""Kill -9 at random moments: every checkpoint stays readable and the resumed run reproduces
the losses and weights of an uninterrupted one (``hvrnn train`` on SM-MNIST, tiny sizes)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import TINY_OVERRIDES

from hvrnn import checkpoint as ck
from hvrnn import train as tr

STEPS = 24


def _command(root: str, run_dir: Path, resume: bool) -> list[str]:
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("train.max_steps")] + [
        f"data.root={root}", "data.train_length=64", f"train.max_steps={STEPS}",
        "train.checkpoint_every=2", "train.keep_checkpoints=0"]
    return [sys.executable, "-m", "hvrnn.cli", "train", "tiny", *overrides,
            "--run-dir", str(run_dir)] + (["--resume"] if resume else [])


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _newest_step(run_dir: Path) -> int:
    steps = ck.list_checkpoints(run_dir)
    return int(steps[-1].stem.split("_")[1]) if steps else 0


def test_kill_9_then_resume_reproduces_the_uninterrupted_run(smmnist16_root, tmp_path):
    ref = tmp_path / "reference"
    done = subprocess.run(_command(smmnist16_root, ref, False), env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    seed = random.randrange(10**6)
    rng = random.Random(seed)
    run = tmp_path / "killed"
    kills = 0
    for attempt in range(8):
        before = _newest_step(run)
        proc = subprocess.Popen(_command(smmnist16_root, run, attempt > 0), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if kills < 3:
            # Wait until this process has written a new checkpoint, then kill it at a random
            # moment: mid-step, mid-log or mid-checkpoint.
            deadline = time.time() + 120
            while _newest_step(run) <= before and proc.poll() is None and time.time() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        _, err = proc.communicate(timeout=300)
        for path in ck.list_checkpoints(run) + [ck.latest_checkpoint(run)]:
            ck.read_checkpoint(path)  # raises CheckpointError if any file is torn
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, f"seed {seed}: {err[-2000:]}"
    assert kills >= 2, f"seed {seed}: the run finished before it could be killed twice"

    expected = [(r["step"], r["loss"], r["kl"]) for r in tr.read_metrics(ref)]
    got = [(r["step"], r["loss"], r["kl"]) for r in tr.read_metrics(run)]
    assert len(expected) == STEPS
    assert got == expected, f"seed {seed}"
    a, b = (ck.read_checkpoint(d)["model"] for d in (ref, run))
    assert all(torch.equal(a[k], b[k]) for k in a), f"seed {seed}"
    starts = [line for line in (run / "metrics.jsonl").read_text().splitlines()
              if '"kind": "start"' in line]
    assert len(starts) == kills + 1
