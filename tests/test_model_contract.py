"""The contract of every registered model kind (the interface training, sampling and evaluation
rely on): output shapes, step API == teacher-forced pass, causality, seeded sampling,
checkpoint round trip, learning, a run of the generic training loop and its exact resume
(every parameter group's optimiser included)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import (
    FIXED_PRIOR,
    check_causal,
    check_step_matches_forward,
    kind_config,
    listening,
    moving_square,
    noise,
    overfit,
    replace_section,
    seeded_model,
    video_batch,
)

import hvrnn
from hvrnn.checkpoint import make_checkpoint, save_checkpoint
from hvrnn.model import MODEL_PRESETS, MODEL_REGISTRY

KINDS = sorted(MODEL_REGISTRY)


def test_every_registered_kind_has_a_preset_of_its_kind():
    assert {"hvrnn", "svg_lp", "prednet", "savp", "toy"} <= set(KINDS)
    assert set(MODEL_PRESETS) == set(MODEL_REGISTRY), "register the kind with its preset"
    for kind in KINDS:
        assert kind_config(kind).model.kind == kind


@pytest.mark.parametrize("kind", KINDS)
class TestModelContract:
    def test_output_shapes(self, kind):
        cfg = kind_config(kind)
        model = seeded_model(cfg)
        b, t, d = 2, 3, cfg.data
        with torch.no_grad():
            out = model(video_batch(cfg, b=b, t=t), noise(model, b, t))
        assert out.mean.shape == (b, t, d.channels, d.image_size, d.image_size)
        assert out.mean.min() >= 0 and out.mean.max() <= 1
        assert len(out.prior) == len(out.posterior) == len(out.z) == len(model.latent_shapes)
        for shape, p, q, z in zip(model.latent_shapes, out.prior, out.posterior, out.z,
                                  strict=True):
            assert p.mean.shape == p.var.shape == q.mean.shape == z.shape == (b, t, *shape)
            assert (p.var > 0).all() and (q.var > 0).all()
        state = model.init_state(video_batch(cfg, b=b, t=0), n_samples=3)
        state, step = model.step(state)
        assert step.mean.shape == (b * 3, d.channels, d.image_size, d.image_size)
        assert [tuple(z.shape) for z in step.z] == [(b * 3, *s) for s in model.latent_shapes]

    def test_step_api_reproduces_teacher_forced_pass(self, kind):
        cfg = kind_config(kind)
        # Training mode: GroupNorm has no batch statistics, both paths normalise per frame.
        check_step_matches_forward(listening(seeded_model(cfg)), cfg)

    def test_explicit_previous_frames_equal_cached_features(self, kind):
        cfg = kind_config(kind)
        model = listening(seeded_model(cfg)).eval()
        x, k = video_batch(cfg, t=3), cfg.data.n_ctx
        eps = noise(model, 2, 3)
        with torch.no_grad():
            s1, s2 = model.init_state(x[:, :k]), model.init_state(x[:, :k])
            for i in range(3):
                s1, o1 = model.step(s1, None if i == 0 else x[:, k + i - 1],
                                    eps=[e[:, i] for e in eps])
                s2, o2 = model.step(s2, x[:, k + i - 1], eps=[e[:, i] for e in eps])
                torch.testing.assert_close(o1.mean, o2.mean, rtol=0, atol=1e-6)
        with pytest.raises(ValueError, match="n_ctx"):
            model.init_state(x[:, :k + 1])
        with pytest.raises(ValueError, match="posterior=True"):
            model.step(model.init_state(x[:, :k]), None, x[:, k])

    def test_causality(self, kind):
        cfg = kind_config(kind)
        check_causal(listening(seeded_model(cfg)).eval(), cfg, fixed_prior=kind in FIXED_PRIOR)

    def test_seeded_sampling(self, kind):
        cfg = kind_config(kind)
        model = seeded_model(cfg)
        ctx = video_batch(cfg, b=2, t=0)

        def draw(seed, context=ctx, n=3, **kw):
            return hvrnn.sample(model, context, horizon=5, n_samples=n,
                                generator=torch.Generator().manual_seed(seed), **kw)

        a, b, c = draw(0), draw(0), draw(1)
        d, n = cfg.data, 3 if model.stochastic else 1  # a deterministic kind gives one
        assert a.shape == (2, n, 5, d.channels, d.image_size, d.image_size)
        assert a.min() >= 0 and a.max() <= 1
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        if not model.stochastic:  # the prediction depends on the context alone
            torch.testing.assert_close(a, c, rtol=0, atol=0)
            assert (a[0] - a[1]).abs().max() > 1e-4
            return
        assert (a - c).abs().max() > 1e-4
        assert (a[:, 0] - a[:, 1]).abs().max() > 1e-4  # samples of one context differ
        # Means: all samples equal, independent of the seed; temperature 0 is the same thing.
        m0, m1 = draw(0, use_mean=True), draw(1, use_mean=True)
        torch.testing.assert_close(m0, m1, rtol=0, atol=0)
        # Rows of one batch may go through differently blocked kernels (SAVP's convolutions on
        # AMD CPUs differ by 2e-7): equal up to float32 rounding.
        torch.testing.assert_close(m0[:, 0], m0[:, 2], rtol=0, atol=1e-6)
        torch.testing.assert_close(draw(5, temperature=0.0), m0, rtol=0, atol=1e-6)
        # Row b * S + s follows context b only.
        alone = draw(0, ctx[1:2], n=1, use_mean=True)
        torch.testing.assert_close(m0[1, 0], alone[0, 0], rtol=0, atol=1e-5)

    def test_checkpoint_round_trip(self, kind, tmp_path):
        cfg = kind_config(kind)
        model = listening(seeded_model(cfg)).eval()
        path = save_checkpoint(make_checkpoint(model=model, step=0, cfg=cfg), tmp_path)
        loaded, cfg2 = hvrnn.load_checkpoint(path)
        assert cfg2 == cfg and type(loaded) is type(model)
        x, eps = video_batch(cfg, t=3), noise(model, 2, 3)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x, eps).mean, model(x, eps).mean, rtol=0,
                                       atol=0)

    def test_overfits_one_batch(self, kind):
        cfg = kind_config(kind)
        model = seeded_model(cfg)
        first, last = overfit(model, cfg, moving_square(cfg), steps=100)
        assert last < 0.5 * first

    def test_generic_training_loop_runs(self, kind, tmp_path, fake_data):
        from conftest import TINY_OVERRIDES

        from hvrnn.training import read_metrics, train

        cfg = replace_section(kind_config(kind, *TINY_OVERRIDES), "train", max_steps=2)
        result = train(cfg, tmp_path / "run", train_set=fake_data[0], val_set=fake_data[1])
        assert result.status == "finished" and result.step == 2
        records = read_metrics(result.run_dir)
        assert [r["step"] for r in records] == [1, 2]
        model = seeded_model(cfg)
        assert all(r[model.score_term] > 0 and math.isfinite(r["loss"]) for r in records)
        if "kl" in records[0]:  # the KL is positive for a kind with latents, 0 without
            has_latents = bool(cfg.model.latent_shapes)
            assert all(r["nll"] > 0 and (r["nelbo"] > r["nll"] if has_latents
                                         else r["nelbo"] == r["nll"] and r["kl"] == 0)
                       for r in records)
        for group in model.parameter_groups():  # every group was stepped
            key = "grad_norm" if group == "model" else f"grad_norm/{group}"
            assert all(r[key] > 0 for r in records), key

    def test_resume_reproduces_the_uninterrupted_run(self, kind, tmp_path, fake_data):
        """2 + 2 steps with a resume equal 4 steps: losses, weights and every optimiser (a
        discriminator's included)."""
        from conftest import TINY_OVERRIDES

        from hvrnn import checkpoint as ck
        from hvrnn.training import read_metrics, train

        cfg = replace_section(kind_config(kind, *TINY_OVERRIDES), "train", max_steps=4,
                              checkpoint_every=2)
        full = train(cfg, tmp_path / "full", train_set=fake_data[0])
        train(replace_section(cfg, "train", max_steps=2), tmp_path / "split",
              train_set=fake_data[0])
        train(cfg, tmp_path / "split", resume=True, train_set=fake_data[0])
        a, b = read_metrics(full.run_dir), read_metrics(tmp_path / "split")
        assert [r["loss"] for r in a] == [r["loss"] for r in b]
        ca, cb = (ck.read_checkpoint(ck.latest_checkpoint(d)) for d in (full.run_dir,
                                                                          tmp_path / "split"))
        assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
        groups = seeded_model(cfg).parameter_groups()
        assert set(ca["optimizers"]) == set(cb["optimizers"]) == set(groups)
        for name, opt in ca["optimizers"].items():
            for pid, st in opt["state"].items():
                other = cb["optimizers"][name]["state"][pid]
                assert all(torch.equal(st[k], other[k]) for k in ("exp_avg", "exp_avg_sq"))
