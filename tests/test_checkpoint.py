"""Checkpoints: round trips, atomic writes, RNG states; corrupt, foreign and unsafe files."""

from __future__ import annotations

import dataclasses
import os
import pickle
import random

import numpy as np
import pytest
import torch

import hvrnn
from hvrnn import checkpoint as ck
from hvrnn.errors import CheckpointError, UserError


def _ckpt(cfg, step=3, optimizer=True):
    model = hvrnn.build_model(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3) if optimizer else None
    if opt is not None:  # non-trivial optimizer state
        video = torch.rand(2, cfg.data.seq_len, 1, 16, 16)
        out = model(video)
        out.logits.sum().backward()
        opt.step()
    return model, opt, ck.make_checkpoint(model=model, optimizer=opt, step=step, cfg=cfg)


def test_round_trip_rebuilds_identical_model(tiny_config, tmp_path):
    model, _, state = _ckpt(tiny_config)
    path = ck.save_checkpoint(state, tmp_path)
    loaded, cfg = hvrnn.load_checkpoint(path)
    assert cfg == tiny_config
    video = torch.rand(2, cfg.data.seq_len, 1, 16, 16)
    eps = [torch.randn(2, 3, c, r, r) for c, r in
           zip(cfg.model.level_channels, cfg.model.latent_resolutions, strict=True)]
    model.eval()
    torch.testing.assert_close(loaded(video, eps=eps).logits, model(video, eps=eps).logits,
                               rtol=0, atol=0)
    # A run directory resolves to its last checkpoint.
    again, _ = hvrnn.load_checkpoint(tmp_path)
    for (n1, p1), (_, p2) in zip(again.state_dict().items(), loaded.state_dict().items(),
                                 strict=True):
        assert torch.equal(p1, p2), n1


def test_optimizer_state_survives(tiny_config, tmp_path):
    model, opt, state = _ckpt(tiny_config)
    path = ck.save_checkpoint(state, tmp_path)
    raw = ck.read_checkpoint(path)
    opt2 = torch.optim.Adam(hvrnn.build_model(tiny_config.model).parameters(), lr=1e-3)
    opt2.load_state_dict(ck.optimizer_states(raw)["model"])
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys() and len(s1) > 0
    for k in s1:
        assert torch.equal(s1[k]["exp_avg_sq"], s2[k]["exp_avg_sq"])


def test_rng_capture_restore_replays_every_generator():
    noise = torch.Generator().manual_seed(5)
    state = ck.capture_rng(noise)
    first = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=noise))
    np.random.randn()  # leaves a cached gaussian in numpy's state
    ck.restore_rng(state, noise)
    second = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=noise))
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert first[2] == second[2]
    assert torch.equal(first[3], second[3])


def test_atomic_write_keeps_old_file_when_writer_dies(tiny_config, tmp_path, monkeypatch):
    _, _, state = _ckpt(tiny_config, optimizer=False)
    path = tmp_path / "a.pt"
    ck.atomic_torch_save(state, path)
    before = path.read_bytes()

    def dying_save(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError):
        ck.atomic_torch_save({**state, "step": 99}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary left behind


def test_last_points_to_newest_and_rotation_keeps_n(tiny_config, tmp_path):
    model = hvrnn.build_model(tiny_config.model)
    for step in (1, 2, 3, 4):
        ck.save_checkpoint(ck.make_checkpoint(model=model, optimizer=None, step=step,
                                              cfg=tiny_config), tmp_path, keep=2)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == ["step_00000003.pt",
                                                                "step_00000004.pt"]
    assert ck.read_checkpoint(ck.latest_checkpoint(tmp_path))["step"] == 4


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_is_a_checkpoint_error(tiny_config, tmp_path, damage):
    _, _, state = _ckpt(tiny_config, optimizer=False)
    path = ck.save_checkpoint(state, tmp_path)
    data = path.read_bytes()
    path.unlink()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(4096),
                      "empty": b""}[damage])
    with pytest.raises(CheckpointError, match="corrupt or not a checkpoint"):
        hvrnn.load_checkpoint(path)


def test_foreign_checkpoint_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="not an hvrnn checkpoint"):
        hvrnn.load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        hvrnn.load_checkpoint(tmp_path / "missing.pt")


class _Payload:
    """Unpickling this creates a file: what a malicious checkpoint would do."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_checkpoint_with_code_payload_is_refused(tiny_config, tmp_path):
    target = tmp_path / "pwned.txt"
    _, _, state = _ckpt(tiny_config, optimizer=False)
    state["metrics"] = {"x": _Payload(str(target))}
    path = tmp_path / "evil.pt"
    torch.save(state, path)
    # The payload is real: plain unpickling would create the file.
    assert not target.exists()
    with pytest.raises(CheckpointError, match="refused"):
        hvrnn.load_checkpoint(path)
    assert not target.exists()
    # Also a bare pickle (not a torch zip) carrying the payload.
    bare = tmp_path / "evil_bare.pt"
    bare.write_bytes(pickle.dumps(_Payload(str(target))))
    with pytest.raises(CheckpointError):
        hvrnn.load_checkpoint(bare)
    assert not target.exists()


def test_config_mismatch_names_the_key(tiny_config, tmp_path):
    _, _, state = _ckpt(tiny_config, optimizer=False)
    other = dataclasses.replace(tiny_config,
                                model=dataclasses.replace(tiny_config.model, n_z=7))
    with pytest.raises(CheckpointError, match=r"model\.n_z=4.*model\.n_z=7"):
        ck.check_compatible(state, other, "x.pt")
    # Run-control keys may change on resume.
    longer = dataclasses.replace(tiny_config,
                                 train=dataclasses.replace(tiny_config.train, max_steps=99))
    ck.check_compatible(state, longer, "x.pt")


def test_weights_that_do_not_fit_their_config_are_refused(tiny_config, tmp_path):
    _, _, state = _ckpt(tiny_config, optimizer=False)
    state["model"] = {k: v for i, (k, v) in enumerate(state["model"].items()) if i > 0}
    path = ck.save_checkpoint(state, tmp_path)
    with pytest.raises(CheckpointError, match="does not fit"):
        hvrnn.load_checkpoint(path)
    assert issubclass(CheckpointError, UserError)


def test_checkpoint_of_format_1_loads(tiny_config, tmp_path):
    """A checkpoint of the first format: one ``optimizer``, the config in the earlier layout
    (geometry and the likelihood in the model section, train.beta, train.betas and the other loss
    settings in the train section)."""
    model, opt, state = _ckpt(tiny_config)
    state["format_version"] = 1
    state["optimizer"] = state.pop("optimizers")["model"]
    old = state["config"]
    old["model"].update(n_ctx=2, image_size=16, image_channels=1, g_dim=128)
    loss = old.pop("loss")
    old["model"].update(likelihood=loss.pop("likelihood"), kl_estimator=loss.pop("kl_estimator"))
    old["train"].update(beta=loss.pop("kl_beta"), beta_warmup_steps=loss.pop("kl_warmup_steps"),
                        **loss)
    old["train"]["betas"] = old["train"].pop("adam_betas")
    path = ck.save_checkpoint(state, tmp_path)
    loaded, cfg = hvrnn.load_checkpoint(path)
    assert cfg == tiny_config
    assert ck.optimizer_states(ck.read_checkpoint(path))["model"]["state"].keys() == \
        opt.state_dict()["state"].keys()
    ck.check_compatible(ck.read_checkpoint(path), tiny_config, path)
