"""The run directory's lock and what ``metrics.jsonl`` records at the end of a run: finished,
interrupted (Ctrl-C, also pressed three times at once; or stopped without saving) or failed
(an exception; a process killed with SIGKILL, recorded when the run is next opened)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_OVERRIDES
from helpers import child_env

from hvrnn import checkpoint as ck
from hvrnn import train as tr
from hvrnn.cli import main
from hvrnn.errors import LockedError
from hvrnn.io.locks import LOCK_NAME, FolderLock, holder
from hvrnn.training import logs, rundir


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


class _Signals(torch.utils.data.Dataset):
    """Wraps a dataset; reading item ``trigger`` sends ``count`` SIGINTs to this process, as
    fast as a hand on Ctrl-C (all within a millisecond)."""

    def __init__(self, base, trigger: int, count: int) -> None:
        self.base, self.trigger, self.count, self.fired = base, trigger, count, False

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        if i == self.trigger and not self.fired:
            self.fired = True
            for _ in range(self.count):
                os.kill(os.getpid(), signal.SIGINT)
        return self.base[i]


def _trigger(cfg, train_set, step: int) -> int:
    return tr.BatchPlan(train_set, cfg.train.batch_size, cfg.train.seed).epoch_batches(0)[
        step - 1][0]


def test_three_ctrl_c_at_once_still_save_the_interrupt_checkpoint(tiny_config, fake_data,
                                                                   tmp_path):
    train_set, _ = fake_data
    data = _Signals(train_set, _trigger(tiny_config, train_set, 2), count=3)
    result = tr.train(tiny_config, tmp_path / "run", train_set=data)
    assert result.status == "interrupted" and result.step < tiny_config.train.max_steps
    assert ck.read_checkpoint(result.checkpoint)["step"] == result.step
    end = _records(tmp_path / "run")[-1]
    assert end == {**end, "kind": "end", "status": "interrupted", "step": result.step,
                   "checkpoint": str(result.checkpoint)}
    assert "error" not in end


def test_ctrl_c_after_the_grace_period_stops_and_says_nothing_was_saved(
        tiny_config, fake_data, tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "GRACE_SECONDS", 0.0)
    train_set, _ = fake_data
    data = _Signals(train_set, _trigger(tiny_config, train_set, 5), count=2)
    with pytest.raises(KeyboardInterrupt, match="without saving a checkpoint.*step_00000003"):
        tr.train(tiny_config, tmp_path / "run", train_set=data)
    end = _records(tmp_path / "run")[-1]
    assert end["status"] == "interrupted" and "without saving" in end["error"]
    assert ck.read_checkpoint(tmp_path / "run")["step"] == 3  # the last one saved is whole


def test_stop_flag_absorbs_repeats_and_never_cuts_a_save(monkeypatch):
    clock = iter([10.0, 10.05, 10.08, 12.0, 12.5])
    monkeypatch.setattr(rundir.time, "monotonic", lambda: next(clock))
    flag = rundir.StopFlag()
    for _ in range(3):  # three Ctrl-C within 0.1 s: one request to stop
        flag._handle(signal.SIGINT, None)
    assert flag.raised
    with flag.protect():
        flag._handle(signal.SIGINT, None)  # during a save: absorbed
    with pytest.raises(KeyboardInterrupt):
        flag._handle(signal.SIGINT, None)  # later, outside a save: stop now


def test_an_exception_is_recorded_as_failed_with_its_line(tiny_config, fake_data, tmp_path,
                                                          monkeypatch):
    from hvrnn.training import engine

    real = engine.train_step

    def breaks(state, *args, **kwargs):
        if state.step == 2:
            raise RuntimeError("the device fell over")
        return real(state, *args, **kwargs)

    monkeypatch.setattr(engine, "train_step", breaks)
    with pytest.raises(RuntimeError):
        tr.train(tiny_config, tmp_path / "run", train_set=fake_data[0])
    end = _records(tmp_path / "run")[-1]
    assert end["kind"] == "end" and end["status"] == "failed" and end["step"] == 2
    assert end["error"] == "RuntimeError: the device fell over"
    assert logs.run_status(tmp_path / "run")["status"] == "failed"
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_run_that_fails_before_it_starts_leaves_no_run_directory(tiny_config, fake_data,
                                                                    tmp_path, monkeypatch):
    from hvrnn.training import state

    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                           "allocate 4000000000000 bytes")

    monkeypatch.setattr(state, "build_initial_model", no_memory)
    with pytest.raises(Exception, match="out of memory.*parameters"):
        tr.train(tiny_config, tmp_path / "run", train_set=fake_data[0])
    assert not (tmp_path / "run").exists()


def test_folder_lock_names_the_holder_and_outlives_no_process(tmp_path):
    first = FolderLock(tmp_path, "run directory").acquire()
    with pytest.raises(LockedError, match=rf"in use by process {os.getpid()}\b"):
        FolderLock(tmp_path, "run directory").acquire()
    assert holder(tmp_path) == os.getpid()
    first.release()
    assert holder(tmp_path) is None and not (tmp_path / LOCK_NAME).exists()
    # A lock file left by a process that no longer runs is not in the way.
    (tmp_path / LOCK_NAME).write_text("999999999\nhvrnn train tiny\n")
    with FolderLock(tmp_path, "run directory"):
        assert holder(tmp_path) == os.getpid()


def _command(root: str, run: Path, steps: int, resume: bool = False) -> list[str]:
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("train.max_steps")] + [
        f"data.root={root}", "data.train_length=64", f"train.max_steps={steps}",
        "train.checkpoint_every=1"]
    return ["train", "tiny", *overrides, "--run-dir", str(run), *(["--resume"] * resume)]


def test_second_resume_is_refused_then_kill_9_is_recorded_and_the_lock_recovered(
        smmnist16_root, tmp_path, capsys):
    run = tmp_path / "run"
    env = child_env()
    proc = subprocess.Popen([sys.executable, "-m", "hvrnn.cli",
                             *_command(smmnist16_root, run, 100_000)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not ck.list_checkpoints(run) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert ck.list_checkpoints(run), "the first process never wrote a checkpoint"
        # A second writer is refused with the first one's PID, and changes nothing.
        code = main(_command(smmnist16_root, run, 100_000, resume=True))
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1
        assert f"in use by process {proc.pid}" in err
        assert logs.run_status(run)["status"] == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    # Killed: no end record was possible; the status says what happened.
    status = logs.run_status(run)
    assert status["status"] == "failed" and "stopped without recording" in status["error"]
    step = ck.read_checkpoint(run)["step"]
    # The lock of the dead process is not in the way; the file records the kill first.
    assert main(_command(smmnist16_root, run, step + 1, resume=True)) == 0
    kinds = [(r["kind"], r.get("status")) for r in _records(run) if r["kind"] != "train"]
    assert kinds == [("start", None), ("end", "failed"), ("start", None), ("end", "finished")]
    assert logs.run_status(run)["status"] == "finished"


def test_a_killed_sessions_end_records_how_far_it_got_and_when(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"kind": "start", "step": 0, "time": 10.0},
            {"kind": "end", "step": 20, "status": "interrupted", "time": 50.0},
            {"kind": "start", "step": 20, "time": 60.0},
            {"kind": "train", "step": 40, "time": 80.0},
            {"kind": "train", "step": 70, "time": 95.5}]  # then kill -9
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    logs.MetricsLog(path).close()
    end = json.loads(path.read_text().splitlines()[-1])
    assert end["kind"] == "end" and end["status"] == "failed" and end["recorded_later"]
    assert (end["step"], end["time"]) == (70, 95.5)


def test_training_minutes_leave_out_the_gaps_between_sessions(tmp_path):
    rows = [{"kind": "start", "step": 0, "time": 0.0},
            {"kind": "train", "step": 10, "time": 60.0},
            {"kind": "train", "step": 20, "time": 120.0},  # then killed
            {"kind": "end", "status": "failed", "step": 20, "recorded_later": True},
            {"kind": "start", "step": 10, "time": 1000.0},  # resumed from step 10
            {"kind": "train", "step": 20, "time": 1030.0},
            {"kind": "end", "step": 30, "status": "finished", "time": 1090.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # 2 minutes of the killed session, then the resumed one; step 20 is the later session's.
    assert logs.training_minutes(tmp_path) == {10: 1.0, 20: 2.5, 30: 3.5}
