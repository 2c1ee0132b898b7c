"""The training loop: schedules, data order, logging, exact resume, signals, divergence."""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import pytest
import torch
from helpers import replace_section

import hvrnn
from hvrnn import checkpoint as ck
from hvrnn import train as tr
from hvrnn.config import ConfigError
from hvrnn.errors import CheckpointError, UserError


def _params(run_dir):
    return ck.read_checkpoint(ck.latest_checkpoint(run_dir))["model"]


def test_learning_rate_linear_scaling_and_warmup(tiny_config):
    tc = dataclasses.replace(tiny_config.train, lr=1e-4, batch_size=16, lr_warmup_steps=10)
    assert tr.learning_rate(0, tc, 1) == pytest.approx(1e-4)
    assert tr.learning_rate(50, tc, 1) == pytest.approx(1e-4)  # single process: as given
    # 4 processes x 16 = 64 clips: 4 x lr, reached linearly over the warm-up.
    assert tr.learning_rate(0, tc, 4) == pytest.approx(1e-4)
    assert tr.learning_rate(5, tc, 4) == pytest.approx(1e-4 + 0.5 * 3e-4)
    assert tr.learning_rate(10, tc, 4) == pytest.approx(4e-4)
    off = dataclasses.replace(tc, lr_scale_by_batch=False)
    assert tr.learning_rate(10, off, 4) == pytest.approx(1e-4)


def test_learning_rate_decay(tiny_config):
    """A linear decay to lr_final between two steps (SAVP), or a drop when they are equal
    (PredNet), on top of the linear scaling."""
    tc = dataclasses.replace(tiny_config.train, lr=2e-4, lr_final=0.0,
                             lr_decay_steps=(200, 300))
    assert [tr.learning_rate(s, tc) for s in (0, 200, 250, 300, 400)] == pytest.approx(
        [2e-4, 2e-4, 1e-4, 0.0, 0.0])
    drop = dataclasses.replace(tc, lr=1e-3, lr_final=1e-4, lr_decay_steps=(10, 10),
                               batch_size=16)
    assert [tr.learning_rate(s, drop) for s in (9, 10, 11)] == pytest.approx([1e-3, 1e-4, 1e-4])
    assert tr.learning_rate(11, drop, 2) == pytest.approx(2e-4)  # scaled like lr
    with pytest.raises(ConfigError, match=r"train\.lr_decay_steps"):
        hvrnn.load_config("tiny", ["train.lr_decay_steps=[5,2]"])


def test_batch_plan_ranks_partition_the_single_process_batches(fake_data):
    train_set, _ = fake_data
    single = tr.BatchPlan(train_set, 4, seed=3)
    ranks = [tr.BatchPlan(train_set, 2, seed=3, world_size=2, rank=r) for r in range(2)]
    assert single.batches_per_epoch == ranks[0].batches_per_epoch == 8
    for epoch in (0, 1):
        one = single.epoch_batches(epoch)
        two = [r.epoch_batches(epoch) for r in ranks]
        for i, batch in enumerate(one):
            assert sorted(batch) == sorted(two[0][i] + two[1][i])
            assert batch[0::2] == two[0][i] and batch[1::2] == two[1][i]
    assert single.epoch_batches(0) != single.epoch_batches(1)  # reshuffled every epoch
    assert single.position(19) == (2, 3)


def test_loop_logs_checkpoints_and_learns(tiny_config, fake_data, tmp_path):
    cfg = replace_section(tiny_config, "train", max_steps=12, checkpoint_every=4, val_every=6,
                         image_every=12, keep_checkpoints=2, lr=3e-3)
    train_set, val_set = fake_data
    result = tr.train(cfg, tmp_path / "run", train_set=train_set, val_set=val_set)
    assert result.status == "finished" and result.step == 12
    records = tr.read_metrics(result.run_dir)
    assert [r["step"] for r in records] == list(range(1, 13))
    for key in ("loss", "nll", "kl", "kl/level_0", "kl/level_1", "grad_norm", "lr", "fps"):
        assert all(torch.isfinite(torch.tensor(r[key])) for r in records), key
    # The loss is the sum of its terms.
    r = records[-1]
    assert r["loss"] == pytest.approx(r["nll"] + r["beta"] * r["kl"], rel=1e-5)
    assert r["kl"] == pytest.approx(r["kl/level_0"] + r["kl/level_1"], rel=1e-4, abs=1e-6)
    # Fitting a moving square: the loss falls clearly within a dozen steps.
    assert records[-1]["loss"] < 0.8 * records[0]["loss"]
    val = tr.read_metrics(result.run_dir, "val")
    assert [v["step"] for v in val] == [6, 12]
    assert 0 <= val[-1]["ssim_mean"] <= val[-1]["ssim_best"] <= 1
    assert val[-1]["psnr_mean"] <= val[-1]["psnr_best"]
    names = sorted(p.name for p in (result.run_dir / "checkpoints").iterdir())
    assert names == ["last.pt", "step_00000008.pt", "step_00000012.pt"]
    assert (result.run_dir / "samples" / "step_00000012.png").is_file()
    assert (result.run_dir / "samples" / "step_00000012.gif").is_file()
    assert any((result.run_dir / "tb").iterdir())
    saved = ck.read_checkpoint(result.checkpoint)
    assert saved["config"] == cfg.to_dict() and saved["step"] == 12
    assert saved["sampler"] == {"epoch": 1, "batch": 4, "seed": cfg.train.seed}


def test_resume_matches_uninterrupted_run(tiny_config, fake_data, tmp_path):
    train_set, _ = fake_data
    full = tr.train(tiny_config, tmp_path / "full", train_set=train_set)
    short = replace_section(tiny_config, "train", max_steps=3)
    tr.train(short, tmp_path / "split", train_set=train_set)
    tr.train(tiny_config, tmp_path / "split", resume=True, train_set=train_set)
    a, b = tr.read_metrics(full.run_dir), tr.read_metrics(tmp_path / "split")
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    pa, pb = _params(full.run_dir), _params(tmp_path / "split")
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    # Different seed: different losses (the comparison above can fail).
    other = replace_section(tiny_config, "train", seed=1)
    c = tr.read_metrics(tr.train(other, tmp_path / "other", train_set=train_set).run_dir)
    assert [r["loss"] for r in c] != [r["loss"] for r in a]


def test_existing_run_dir_is_never_overwritten(tiny_config, fake_data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists and is not empty"):
        tr.train(tiny_config, run, train_set=fake_data[0])
    assert [p.name for p in run.iterdir()] == ["notes.txt"]
    with pytest.raises(UserError, match="does not exist"):
        tr.train(tiny_config, tmp_path / "nope", resume=True, train_set=fake_data[0])


def test_resume_with_another_config_names_the_key(tiny_config, fake_data, tmp_path):
    tr.train(replace_section(tiny_config, "train", max_steps=3), tmp_path / "run",
             train_set=fake_data[0])
    other = replace_section(tiny_config, "train", lr=5e-3)
    with pytest.raises(CheckpointError, match=r"train\.lr"):
        tr.train(other, tmp_path / "run", resume=True, train_set=fake_data[0])


class _SignalAt(torch.utils.data.Dataset):
    """Wraps a dataset and sends SIGTERM to this process when item ``trigger`` is read."""

    def __init__(self, base, trigger):
        self.base, self.trigger, self.fired = base, trigger, False

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        if i == self.trigger and not self.fired:
            self.fired = True
            os.kill(os.getpid(), signal.SIGTERM)
        return self.base[i]


def test_sigterm_saves_a_checkpoint_and_resume_continues(tiny_config, fake_data, tmp_path):
    train_set, _ = fake_data
    cfg = replace_section(tiny_config, "train", checkpoint_every=100)
    reference = tr.read_metrics(tr.train(cfg, tmp_path / "ref", train_set=train_set).run_dir)
    plan = tr.BatchPlan(train_set, cfg.train.batch_size, cfg.train.seed)
    trigger = plan.epoch_batches(0)[3][0]  # read by step 4
    result = tr.train(cfg, tmp_path / "run", train_set=_SignalAt(train_set, trigger))
    assert result.status == "interrupted" and result.step == 4
    assert ck.read_checkpoint(result.checkpoint)["step"] == 4
    done = tr.train(cfg, tmp_path / "run", resume=True, train_set=train_set)
    assert done.status == "finished" and done.step == cfg.train.max_steps
    assert [r["loss"] for r in tr.read_metrics(done.run_dir)] == [r["loss"] for r in reference]


def test_non_finite_loss_stops_with_diagnostic_and_keeps_checkpoint(tiny_config, fake_data,
                                                                    tmp_path, monkeypatch):
    from hvrnn.model import base

    real = base.elbo_terms
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:
            terms["kl/level_1"] = terms["kl/level_1"] * float("nan")
            terms["loss"] = terms["loss"] + terms["kl/level_1"]
        return terms

    monkeypatch.setattr(base, "elbo_terms", poisoned)
    with pytest.raises(tr.TrainingDiverged, match=r"step 5: .*kl/level_1=nan") as info:
        tr.train(tiny_config, tmp_path / "run", train_set=fake_data[0])
    assert "step_00000003.pt" in str(info.value)
    assert ck.read_checkpoint(tmp_path / "run")["step"] == 3
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1]) == {**json.loads(lines[-1]), "kind": "end", "status": "failed"}


def test_metrics_log_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "train", "step": 1, "loss": 2.0}\n{"kind": "train", "st')
    log = tr.MetricsLog(path)
    log.write({"kind": "train", "step": 1, "loss": 3.0})
    log.write({"kind": "train", "step": 2, "loss": 4.0})
    log.close()
    assert [(r["step"], r["loss"]) for r in tr.read_metrics(tmp_path)] == [(1, 3.0), (2, 4.0)]


def test_initial_model_is_reproducible(tiny_config):
    a, b = tr.build_initial_model(tiny_config), tr.build_initial_model(tiny_config)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))
    assert hvrnn.count_parameters(a)["total"] > 0


def test_time_budget_ends_the_run_like_max_steps(tiny_config, fake_data, tmp_path):
    """train.max_minutes: the step that crosses the budget is the last; it is logged,
    validated and checkpointed, and the run is recorded as finished."""
    cfg = replace_section(tiny_config, "train", max_steps=10_000, max_minutes=1e-9,
                         checkpoint_every=1000, val_every=1000, log_every=1000)
    train_set, val_set = fake_data
    result = tr.train(cfg, tmp_path / "run", train_set=train_set, val_set=val_set)
    assert result.status == "finished" and result.step == 1
    assert [r["step"] for r in tr.read_metrics(result.run_dir)] == [1]
    assert [r["step"] for r in tr.read_metrics(result.run_dir, "val")] == [1]
    assert ck.read_checkpoint(result.checkpoint)["step"] == 1
    # A resumed run has a budget of its own.
    more = tr.train(replace_section(cfg, "train", max_minutes=0.0, max_steps=3),
                    tmp_path / "run", resume=True, train_set=train_set, val_set=val_set)
    assert more.step == 3
