"""Own-prediction inputs (``loss.rollout_inputs``): the schedule, the history pass, and that the
frames read in training are the ones sampling feeds back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from helpers import kind_config, noise, seeded_model, tiny, video_batch

from hvrnn.config import ConfigError
from hvrnn.model import StepContext
from hvrnn.objective import rollout_clips
from hvrnn.sampling import rollout

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from rollout_gap import predict  # noqa: E402


def test_rollout_clips_rises_linearly_then_stays():
    assert rollout_clips(8, 0, 0.5, 4000) == 0
    assert rollout_clips(8, 2000, 0.5, 4000) == 2  # 8 * 0.5 * 0.5
    assert rollout_clips(8, 4000, 0.5, 4000) == 4
    assert rollout_clips(8, 10**6, 0.5, 4000) == 4
    assert rollout_clips(8, 0, 0.5, 0) == 4  # no warm-up: the whole fraction at once
    assert rollout_clips(8, 10**6, 0.0, 4000) == 0
    assert rollout_clips(6, 10**6, 1.0) == 6


def test_only_hvrnn_reads_its_own_predictions():
    with pytest.raises(ConfigError, match=r"loss\.rollout_inputs"):
        kind_config("svg_lp", "loss.rollout_inputs=0.5")


def _model_and_clip(t: int = 4):
    cfg = tiny("tiny", "loss.likelihood=bce")
    model = seeded_model(cfg)
    return cfg, model, video_batch(cfg, b=3, t=t)


def test_history_of_the_true_frames_is_the_teacher_forced_pass():
    cfg, model, video = _model_and_clip()
    k = cfg.data.n_ctx
    eps = noise(model, 3, 4)
    with torch.no_grad():
        plain = model(video, eps=eps)
        same = model(video, eps=eps, history=video[:, k:-1])
    # Equal up to float rounding: the history is encoded in a batch of its own.
    torch.testing.assert_close(same.logits, plain.logits, rtol=1e-4, atol=1e-5)


def test_history_changes_the_prior_and_decoder_but_not_the_posterior():
    cfg, model, video = _model_and_clip()
    k = cfg.data.n_ctx
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # the prior heads start at zero: give them something to say
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    eps = noise(model, 3, 4)
    other = torch.rand_like(video[:, k:-1])
    with torch.no_grad():
        plain = model(video, eps=eps)
        moved = model(video, eps=eps, history=other)
    for q0, q1 in zip(plain.posterior, moved.posterior, strict=True):
        torch.testing.assert_close(q1.mean, q0.mean, rtol=0, atol=0)
        torch.testing.assert_close(q1.var, q0.var, rtol=0, atol=0)
    # Frame x_1 is predicted from the context alone; later frames read the history.
    torch.testing.assert_close(moved.logits[:, 0], plain.logits[:, 0], rtol=0, atol=0)
    assert (moved.logits[:, 1:] - plain.logits[:, 1:]).abs().max() > 1e-4
    assert (moved.prior[-1].mean[:, 1:] - plain.prior[-1].mean[:, 1:]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="history has 2 frames"):
        model(video, history=other[:, :2])


def test_training_reads_the_frames_that_sampling_feeds_back():
    """The first rollout_clips clips read a free-running sample (hvrnn.sampling.rollout with the
    generator seeded by the step); the others and every no-grad pass read the true frames."""
    cfg, model, video = _model_and_clip()
    k, step = cfg.data.n_ctx, 123
    loss = tiny("tiny", "loss.likelihood=bce", "loss.rollout_inputs=0.7").loss
    seen = []

    def forward(v, eps=None, history=None):
        seen.append(history)
        return model(v, eps=eps, history=history)

    eps = noise(model, 3, 4)
    terms = model.training_terms(video, loss, StepContext(step=step, noise=eps), forward=forward)
    n = rollout_clips(3, step, 0.7)
    assert n == 2 and seen[0].shape == (3, 3, *video.shape[2:])
    own = rollout(model, video[:n, :k], 3, 1, generator=torch.Generator().manual_seed(step))
    torch.testing.assert_close(seen[0][:n], own[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(seen[0][n:], video[n:, k:-1], rtol=0, atol=0)
    assert torch.isfinite(terms["loss"])
    with torch.no_grad():  # validation and evaluation: the teacher-forced ELBO
        model.training_terms(video, loss, StepContext(step=step, noise=eps), forward=forward)
    assert seen[1] is None


def test_rollout_gap_ways_of_predicting():
    """scripts/rollout_gap.py: free-running is sampling; one step from the true past differs
    from it only after the first frame (step == teacher-forced pass, the posterior way, is
    tested in test_model.py)."""
    cfg, model, video = _model_and_clip()
    k = cfg.data.n_ctx
    with torch.no_grad():
        free = predict(model, video, 2, "free-running", seed=4)
        sampled = rollout(model, video[:, :k], 4, 2, generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(free, sampled, rtol=0, atol=0)
        one = predict(model, video, 2, "one step from the true past", seed=4)
        torch.testing.assert_close(one[:, :, 0], free[:, :, 0], rtol=0, atol=0)
        assert (one[:, :, 1:] - free[:, :, 1:]).abs().max() > 1e-4
        post = predict(model, video, 1, "posterior", seed=4)  # reads the true frames
        assert post.shape == (3, 1, 4, *video.shape[2:]) and torch.isfinite(post).all()


def test_one_step_predictions_match_the_step_api_from_the_true_past():
    """loss.rollout_from=truth: the batched pass equals stepping with the true frames fed back
    and the same prior noise (drawn level by level, (B, T, C_l, r, r) each)."""
    cfg, model, video = _model_and_clip()
    k = cfg.data.n_ctx
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():  # non-zero prior heads, so that the noise matters
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        batched = model.one_step_predictions(video, torch.Generator().manual_seed(9))
        g = torch.Generator().manual_seed(9)
        eps = [torch.randn(3, 4, *shape, generator=g) for shape in cfg.model.latent_shapes]
        state, frames = model.init_state(video[:, :k]), []
        for t in range(4):
            x_prev = None if t == 0 else video[:, k + t - 1]
            state, out = model.step(state, x_prev, eps=[e[:, t] for e in eps])
            frames.append(out.mean)
    torch.testing.assert_close(batched, torch.stack(frames, 1), rtol=1e-4, atol=1e-5)
    free = model.free_running(video[:, :k], 4, torch.Generator().manual_seed(9))
    assert (free[:, 1:] - batched[:, 1:]).abs().max() > 1e-4  # fed back: its own frames
    with pytest.raises(ConfigError, match=r"loss\.rollout_from"):
        tiny("tiny", "loss.rollout_from=future")
