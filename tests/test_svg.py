"""SVG-LP baseline (model.kind=svg_lp): sizes, step API == forward, causality, sampling,
learning and a short training run through the generic loop."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import moving_square, overfit, video_batch

import hvrnn
from hvrnn.config import ConfigError
from hvrnn.model.base import latent_noise
from hvrnn.model.svg import SVGLP


def tiny(*overrides: str):
    return hvrnn.load_config("tiny_svglp", list(overrides))


def tiny_model(*overrides: str, seed: int = 0) -> SVGLP:
    torch.manual_seed(seed)
    return hvrnn.build_model(tiny(*overrides).model)


def noise(model, b, t, seed=3):
    return latent_noise(model.cfg, b, t, torch.Generator().manual_seed(seed))


def test_bair_preset_matches_svg_dcgan64_sizes():
    """Closed-form counts of SVG's DCGAN-64 encoder (nc=3, g=128) and LSTMs (256 cells)."""
    cfg = hvrnn.load_config("bair64_svglp")
    assert cfg.model.kind == "svg_lp" and cfg.model.likelihood == "l2"
    counts = hvrnn.count_parameters(hvrnn.build_model(cfg.model))
    convs = [(3, 64, 4), (64, 128, 4), (128, 256, 4), (256, 512, 4), (512, 128, 4)]
    norms = 2 * (64 + 128 + 256 + 512 + 128)
    assert counts["encoder"] == sum(i * o * k * k + o for i, o, k in convs) + norms
    lstm = 4 * 256 * (256 + 256) + 2 * 4 * 256
    assert counts["predictor"] == (192 * 256 + 256) + 2 * lstm + (256 * 128 + 128)
    gauss = (128 * 256 + 256) + lstm + 2 * (256 * 64 + 64)
    assert counts["prior"] == counts["posterior"] == gauss
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_step_api_reproduces_teacher_forced_forward():
    cfg = tiny()
    model = tiny_model()  # training mode: GroupNorm has no batch statistics
    b, t, k = 2, 4, cfg.model.n_ctx
    x = video_batch(cfg, b=b, t=t)
    eps = noise(model, b, t)
    with torch.no_grad():
        ref = model(x, eps)
        state = model.init_state(x[:, :k], posterior=True)
        outs = []
        for i in range(t):
            state, out = model.step(state, None, x[:, k + i], eps=[eps[0][:, i]])
            outs.append(out)
    assert ref.logits.shape == (b, t, 1, 32, 32)
    assert ref.z[0].shape == (b, t, cfg.model.n_z, 1, 1)
    torch.testing.assert_close(torch.stack([o.logits for o in outs], 1), ref.logits,
                               rtol=0, atol=1e-5)
    for name in ("prior", "posterior"):
        for field in ("mean", "var"):
            got = torch.stack([getattr(getattr(o, name)[0], field) for o in outs], 1)
            torch.testing.assert_close(got, getattr(getattr(ref, name)[0], field),
                                       rtol=0, atol=1e-5)
    # The posterior sample is mean + exp(logvar / 2) * eps.
    q = ref.posterior[0]
    torch.testing.assert_close(ref.z[0], q.mean + q.var.sqrt() * eps[0], rtol=0, atol=1e-6)


def test_explicit_prev_frames_equal_cached_codes():
    cfg = tiny()
    model = tiny_model().eval()
    x, k = video_batch(cfg, t=3), cfg.model.n_ctx
    eps = noise(model, 2, 3)
    with torch.no_grad():
        s1, s2 = model.init_state(x[:, :k]), model.init_state(x[:, :k])
        for i in range(3):
            s1, o1 = model.step(s1, None if i == 0 else x[:, k + i - 1], eps=[eps[0][:, i]])
            s2, o2 = model.step(s2, x[:, k + i - 1], eps=[eps[0][:, i]])
            torch.testing.assert_close(o1.logits, o2.logits, rtol=0, atol=1e-6)


def test_causality():
    """Changing x_j leaves earlier logits/posteriors and the prior up to step j unchanged."""
    cfg = tiny()
    model = tiny_model().eval()
    k, t, j = cfg.model.n_ctx, 5, 3
    x = video_batch(cfg, t=t)
    x2 = x.clone()
    x2[:, k + j - 1] = torch.rand_like(x2[:, k + j - 1])
    eps = noise(model, 2, t)
    with torch.no_grad():
        a, b = model(x, eps), model(x2, eps)
    s = j - 1  # the step that scores x_j
    torch.testing.assert_close(a.logits[:, :s], b.logits[:, :s], rtol=0, atol=0)
    for field in ("mean", "var"):
        pa, pb = getattr(a.prior[0], field), getattr(b.prior[0], field)
        qa, qb = getattr(a.posterior[0], field), getattr(b.posterior[0], field)
        torch.testing.assert_close(pa[:, :s + 1], pb[:, :s + 1], rtol=0, atol=0)
        torch.testing.assert_close(qa[:, :s], qb[:, :s], rtol=0, atol=0)
    assert (a.posterior[0].mean[:, s] - b.posterior[0].mean[:, s]).abs().max() > 0
    assert (a.logits[:, s:] - b.logits[:, s:]).abs().max() > 0
    assert (a.prior[0].mean[:, s + 1:] - b.prior[0].mean[:, s + 1:]).abs().max() > 0


def test_context_frames_condition_the_prediction():
    """Every context frame reaches the output (the LSTMs run over the whole context)."""
    cfg = tiny()
    model = tiny_model().eval()
    x = video_batch(cfg, t=2)
    x2 = x.clone()
    x2[:, 0] = torch.rand_like(x2[:, 0])  # the first context frame: no skip, no code of c_K
    eps = noise(model, 2, 2)
    with torch.no_grad():
        a, b = model(x, eps), model(x2, eps)
    assert (a.prior[0].mean[:, 0] - b.prior[0].mean[:, 0]).abs().max() > 0
    assert (a.logits[:, 0] - b.logits[:, 0]).abs().max() > 0


def test_sampling_shape_and_seeded_reproducibility():
    cfg = tiny()
    model = tiny_model()
    ctx = video_batch(cfg, b=2, t=0)

    def draw(seed, **kw):
        return hvrnn.sample(model, ctx, horizon=5, n_samples=3,
                            generator=torch.Generator().manual_seed(seed), **kw)

    a, b, c = draw(0), draw(0), draw(1)
    assert a.shape == (2, 3, 5, 1, 32, 32)
    assert a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 0
    assert (a[:, 0] - a[:, 1]).abs().max() > 0  # samples of one context differ
    m0, m1 = draw(0, use_mean=True), draw(1, use_mean=True)
    torch.testing.assert_close(m0, m1, rtol=0, atol=0)
    torch.testing.assert_close(draw(5, temperature=0.0), m0, rtol=0, atol=1e-6)
    # Row b * S + s follows context b only.
    alone = hvrnn.sample(model, ctx[1:2], horizon=5, n_samples=1, use_mean=True)
    torch.testing.assert_close(m0[1, 0], alone[0, 0], rtol=0, atol=1e-5)


def test_tiny_svg_overfits_one_batch():
    cfg = tiny()
    model = tiny_model()
    first, last = overfit(model, moving_square(cfg), cfg.model.n_ctx, steps=100)
    assert last < 0.1 * first


@pytest.mark.parametrize("override,key", [
    ("model.latent_resolutions=[1,8]", "model.latent_resolutions"),
    ("model.g_dim=10", "model.g_dim"),
    ("model.prior_layers=0", "model.prior_layers"),
])
def test_bad_svg_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        hvrnn.build_model(tiny(override).model)


def test_generic_training_loop_runs_svg(tmp_path, fake_data):
    from conftest import TINY_OVERRIDES

    from hvrnn.train import read_metrics, train

    cfg = tiny(*TINY_OVERRIDES, "model.latent_resolutions=[1]")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=2))
    result = train(cfg, tmp_path / "run", train_set=fake_data[0], val_set=fake_data[1])
    assert result.status == "finished" and result.step == 2
    records = read_metrics(result.run_dir)
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["nelbo"] > r["nll"] > 0 for r in records)
