"""Core model: official parameter counts, initialisation, causality, step API == forward,
KL, overfitting, sampling and configuration errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import moving_square, overfit, video_batch

import hvrnn
from hvrnn.config import ConfigError
from hvrnn.distributions import DiagonalGaussian
from hvrnn.model.base import latent_noise
from hvrnn.model.convert import to_center_taps
from hvrnn.objective import elbo_terms, kl_per_level, kl_weight, reconstruction_nll


def tiny(*overrides: str):
    return hvrnn.load_config("tiny", list(overrides))


def tiny_model(*overrides: str, seed: int = 0):
    torch.manual_seed(seed)
    return hvrnn.build_model(tiny(*overrides).model)


# ---------------------------------------------------------------------------------------------
# Size
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset,total", [("bair64", 207_890_619), ("bair64_nohier", 151_423_931)])
def test_official_parameter_counts(preset, total):
    cfg = hvrnn.load_config(preset, ["model.center_tap_1x1=false", "model.prior_dense=false"])
    model = hvrnn.build_model(cfg.model)
    counts = hvrnn.count_parameters(model)
    assert counts["total"] == total
    assert sum(v for k, v in counts.items() if k != "total") == total
    if preset == "bair64":  # SPEC 3.10 components, in millions
        expect = {"encoder": 27.7, "decoder": 84.3, "decoder_init": 7.0, "prior": 40.1,
                  "prior_init": 4.3, "posterior": 40.2, "posterior_init": 4.3}
        for k, v in expect.items():
            assert round(counts[k] / 1e6, 1) == v, k
    assert model.inert_parameters() == 58_884_096


def test_center_tap_and_dense_prior_sizes():
    from hvrnn.info import model_info

    info = model_info(hvrnn.load_config("bair64"))
    # The 1x1 build removes exactly the inert weights of the 3x3 build.
    assert info["center_tap_saving"] == 58_884_096
    assert info["parameters"]["total"] + 58_884_096 == info["total_with_3x3_taps"]
    assert info["inert"] == 0
    # Dense prior heads read z^1 (10 ch) at level 2 and z^1 + z^2 (522 ch) at level 3.
    assert info["prior_dense_extra"] == 10 * 2 * 512 + (10 + 512) * 2 * 128
    nohier = model_info(hvrnn.load_config("bair64_nohier", ["model.center_tap_1x1=false"]))
    assert nohier["parameters"]["total"] == 151_423_931


def test_center_tap_init_matches_3x3_distribution():
    torch.manual_seed(0)
    m = hvrnn.build_model(hvrnn.load_config("bair64_nohier").model)
    lstm = m.prior[0].lstm.ih  # 512 -> 2048, 1x1 kernel standing for a 3x3 one
    assert lstm.kernel_size == (1, 1)
    bound = 1 / (9 * 512) ** 0.5
    assert lstm.weight.abs().max() <= bound
    assert lstm.weight.abs().max() > 0.99 * bound  # uniform(-bound, bound) fills the range
    assert lstm.weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.02)


def test_center_tap_model_equals_3x3_model():
    full = tiny_model("model.center_tap_1x1=false").eval()
    cfg = tiny()
    taps = hvrnn.build_model(cfg.model).eval()
    taps.load_state_dict(to_center_taps(full.state_dict(), taps))
    x = video_batch(cfg)
    eps = latent_noise(full.cfg, 2, 4)
    with torch.no_grad():
        a, b = full(x, eps), taps(x, eps)
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Initialisation and KL
# ---------------------------------------------------------------------------------------------
def test_heads_at_init_give_standard_softplus_variance():
    cfg = tiny()
    model = tiny_model()
    with torch.no_grad():
        out = model(video_batch(cfg))
    for dist in out.prior + out.posterior:
        assert dist.mean.abs().max() < 0.01
        assert dist.var.sub(torch.log(torch.tensor(2.0))).abs().max() < 0.01
    terms = elbo_terms(out, video_batch(cfg)[:, cfg.model.n_ctx:], "bce")
    assert terms["kl"].item() < 1.0  # heads ignore their inputs: q ~= p


def test_analytic_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    q = DiagonalGaussian(torch.randn(3, 5, 4, generator=g), torch.rand(3, 5, 4, generator=g) + .1)
    p = DiagonalGaussian(torch.randn(3, 5, 4, generator=g), torch.rand(3, 5, 4, generator=g) + .1)
    ref = torch.distributions.kl_divergence(q.to_torch(), p.to_torch())
    torch.testing.assert_close(q.kl(p), ref, rtol=1e-5, atol=1e-6)
    assert q.kl(q).abs().max() < 1e-6
    assert (q.kl(p) >= 0).all()
    torch.testing.assert_close(q.log_prob(q.mean), q.to_torch().log_prob(q.mean))


def test_mc_kl_estimator_is_unbiased():
    q = DiagonalGaussian(torch.tensor([[0.3, -1.0]]), torch.tensor([[0.5, 2.0]]))
    p = DiagonalGaussian(torch.tensor([[0.0, 0.5]]), torch.tensor([[1.0, 1.5]]))
    torch.manual_seed(0)
    z = q.rsample(torch.randn(200_000, 2))[:, None]  # (B, T=1, C)
    from hvrnn.model.base import VRNNOutput

    out = VRNNOutput(torch.zeros(1), [p.map(lambda t: t.expand_as(z))],
                     [q.map(lambda t: t.expand_as(z))], [z])
    mc = kl_per_level(out, "mc")[0].mean() / 1  # mean over the 200k draws (rows)
    analytic = q.kl(p).sum()
    assert mc.item() == pytest.approx(analytic.item(), abs=0.01)


def test_reconstruction_terms_match_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 1, 4, 4, generator=g)
    target = torch.rand(2, 3, 1, 4, 4, generator=g)
    bce = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits), target,
                                                   reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(reconstruction_nll(logits, target, "bce"), bce)
    l1 = (torch.sigmoid(logits) - target).abs().flatten(1).sum(1)
    torch.testing.assert_close(reconstruction_nll(logits, target, "l1"), l1)
    assert kl_weight(0, 1.0, 10) == 0.0 and kl_weight(5, 2.0, 10) == 1.0
    assert kl_weight(50, 2.0, 10) == 2.0 and kl_weight(0, 0.5, 0) == 0.5


# ---------------------------------------------------------------------------------------------
# Causality and the two execution paths
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dense,skips", [(True, False), (False, False), (True, True)])
def test_causality(dense, skips):
    """Changing x_j leaves every output of earlier steps and the prior of step j unchanged.

    With a dense prior the upper-level latents fed to the prior of step j are the posterior
    samples of step j (SPEC 2: the KL of level l is taken with z^{<l} ~ q), so only its
    first level is a function of x_{<j} alone; the dense levels are checked with prior_dense off.
    """
    ov = (() if dense else ("model.prior_dense=false",)) + \
        (("model.frame_skips=true",) if skips else ())
    cfg = tiny(*ov)
    model = tiny_model(*ov).eval()
    with torch.no_grad():  # heads start input-independent (SPEC 3.7); make them listen
        for net in [*model.prior, *model.posterior]:
            net.head_norm.weight.fill_(1.0)
    k, t = cfg.model.n_ctx, 5
    x = video_batch(cfg, t=t)
    eps = latent_noise(model.cfg, 2, t)
    j = 3  # perturb future frame x_j (video index k + j - 1), predicted at step index j - 1
    x2 = x.clone()
    x2[:, k + j - 1] = torch.rand_like(x2[:, k + j - 1])
    with torch.no_grad():
        a, b = model(x, eps), model(x2, eps)
    s = j - 1  # step index that scores frame x_j
    torch.testing.assert_close(a.logits[:, :s], b.logits[:, :s], rtol=0, atol=0)
    for lvl, (pa, pb, qa, qb) in enumerate(zip(a.prior, b.prior, a.posterior, b.posterior,
                                               strict=True)):
        upto = s if dense and lvl > 0 else s + 1
        torch.testing.assert_close(pa.mean[:, :upto], pb.mean[:, :upto], rtol=0, atol=0)
        torch.testing.assert_close(pa.var[:, :upto], pb.var[:, :upto], rtol=0, atol=0)
        torch.testing.assert_close(qa.mean[:, :s], qb.mean[:, :s], rtol=0, atol=0)
    # ...while the posterior at that step and everything later do see the change.
    assert (a.posterior[0].mean[:, s] - b.posterior[0].mean[:, s]).abs().max() > 0
    assert (a.logits[:, s:] - b.logits[:, s:]).abs().max() > 0
    assert (a.prior[0].mean[:, s + 1:] - b.prior[0].mean[:, s + 1:]).abs().max() > 0


@pytest.mark.parametrize("overrides", [(), ("model.prior_dense=false",),
                                       ("model.latent_resolutions=[1]",),
                                       ("model.latent_resolutions=[1,4,16]",),
                                       ("model.frame_skips=true",)])
def test_step_api_reproduces_teacher_forced_forward(overrides):
    cfg = tiny(*overrides)
    model = tiny_model(*overrides)  # training mode: GroupNorm has no batch statistics
    with torch.no_grad():
        for net in [*model.prior, *model.posterior]:
            net.head_norm.weight.normal_()
    b, t = 2, 4
    x = video_batch(cfg, b=b, t=t)
    eps = latent_noise(model.cfg, b, t, torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x, eps)
        k = cfg.model.n_ctx
        state = model.init_state(x[:, :k], posterior=True)
        outs = []
        for i in range(t):
            state, out = model.step(state, None, x[:, k + i], eps=[e[:, i] for e in eps])
            outs.append(out)
    torch.testing.assert_close(torch.stack([o.logits for o in outs], 1), ref.logits,
                               rtol=0, atol=1e-5)
    for lvl in range(len(ref.prior)):
        for field in ("mean", "var"):
            step_p = torch.stack([getattr(o.prior[lvl], field) for o in outs], 1)
            step_q = torch.stack([getattr(o.posterior[lvl], field) for o in outs], 1)
            torch.testing.assert_close(step_p, getattr(ref.prior[lvl], field), rtol=0, atol=1e-5)
            torch.testing.assert_close(step_q, getattr(ref.posterior[lvl], field),
                                       rtol=0, atol=1e-5)


def test_step_with_explicit_prev_frames_equals_cached_features():
    cfg = tiny()
    model = tiny_model().eval()
    x = video_batch(cfg, t=3)
    k = cfg.model.n_ctx
    eps = latent_noise(model.cfg, 2, 3)
    with torch.no_grad():
        s1 = model.init_state(x[:, :k])
        s2 = model.init_state(x[:, :k])
        for i in range(3):
            s1, o1 = model.step(s1, None if i == 0 else x[:, k + i - 1],
                                eps=[e[:, i] for e in eps])
            s2, o2 = model.step(s2, x[:, k + i - 1], eps=[e[:, i] for e in eps])
            torch.testing.assert_close(o1.logits, o2.logits, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------
def test_samples_reproducible_and_seed_dependent():
    cfg = tiny()
    model = tiny_model()
    ctx = video_batch(cfg, t=0)[:, : cfg.model.n_ctx]

    def draw(seed, **kw):
        return hvrnn.sample(model, ctx, horizon=5, n_samples=3,
                            generator=torch.Generator().manual_seed(seed), **kw)

    a, b, c = draw(0), draw(0), draw(1)
    assert a.shape == (2, 3, 5, 1, 32, 32)
    assert a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-4
    assert (a[:, 0] - a[:, 1]).abs().max() > 1e-4  # samples of one context differ
    # Means: all samples equal, independent of the seed; temperature 0 is the same thing.
    m0, m1 = draw(0, use_mean=True), draw(1, use_mean=True)
    torch.testing.assert_close(m0, m1, rtol=0, atol=0)
    torch.testing.assert_close(m0[:, 0], m0[:, 2], rtol=0, atol=0)
    torch.testing.assert_close(draw(5, temperature=0.0), m0, rtol=0, atol=1e-6)


def test_sample_rows_follow_their_own_context():
    cfg = tiny()
    model = tiny_model()
    ctx = video_batch(cfg, b=3, t=0)[:, : cfg.model.n_ctx]
    g = torch.Generator().manual_seed(0)
    joint = hvrnn.sample(model, ctx, horizon=3, n_samples=2, use_mean=True, generator=g)
    alone = hvrnn.sample(model, ctx[1:2], horizon=3, n_samples=1, use_mean=True, generator=g)
    torch.testing.assert_close(joint[1, 0], alone[0, 0], rtol=0, atol=1e-5)


def test_rerun_baseline_fills_one_frame_per_pass():
    """The official re-run procedure fills one frame per pass of the whole zero-padded clip."""
    from hvrnn.sampling import rerun_rollout

    cfg = tiny()
    model = tiny_model()
    ctx = video_batch(cfg, t=0)[:, : cfg.model.n_ctx]
    out = rerun_rollout(model, ctx, 3, n_samples=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 2, 3, 1, 32, 32)
    part = rerun_rollout(model, ctx, 3, n_samples=1, max_passes=1)
    assert part[:, :, 1:].abs().max() == 0 and part[:, :, 0].abs().max() > 0


@pytest.mark.parametrize("mode", ["decoder", "all"])
def test_activation_checkpointing_gives_the_same_gradients(mode):
    cfg = tiny()
    x = video_batch(cfg, t=3)
    grads = []
    for flag in ("none", mode):
        model = tiny_model(f"model.activation_checkpointing={flag}")
        eps = latent_noise(model.cfg, 2, 3, torch.Generator().manual_seed(0))
        terms = elbo_terms(model(x, eps), x[:, cfg.model.n_ctx:], model.likelihood)
        terms["loss"].backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Learning
# ---------------------------------------------------------------------------------------------
def test_tiny_model_overfits_one_batch():
    cfg = tiny("model.likelihood=l2")
    model = tiny_model("model.likelihood=l2")
    first, last = overfit(model, moving_square(cfg), cfg.model.n_ctx, steps=150)
    assert last < 0.5 * first


# ---------------------------------------------------------------------------------------------
# Configuration errors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override,key", [
    ("model.bogus=1", "model.bogus"),
    ("model.latent_resolutions=[1,3]", "model.latent_resolutions"),
    ("model.latent_resolutions=[8,1]", "model.latent_resolutions"),
    ("data.n_ctx=0", "data.n_ctx"),
    ("data.image_size=48", "model.image_size"),
    ("model.n_z=ten", "model.n_z"),
    ("model.likelihood=poisson", "model.likelihood"),
    ("model.gn_groups_lstm=3", "model.gn_groups_lstm"),
])
def test_bad_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        tiny(override)


def test_config_is_frozen_and_round_trips(tmp_path):
    from hvrnn.config import config_from_dict, save_config

    cfg = tiny("model.n_z=3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.n_z = 5
    save_config(cfg, tmp_path / "c.yaml")
    again = hvrnn.load_config(tmp_path / "c.yaml")
    assert dataclasses.replace(again, name=cfg.name) == cfg
    assert config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="model.n_ctx"):
        hvrnn.load_config("tiny", ["model.n_ctx=3"])  # disagrees with data.n_ctx=2


def test_unknown_model_kind_is_refused_by_build_model():
    cfg = tiny("model.kind=svg")
    with pytest.raises(ConfigError, match=r"model\.kind='svg'"):
        hvrnn.build_model(cfg.model)


def test_derived_preset_keeps_its_own_name():
    cfg = hvrnn.load_config("bair64_nohier")
    assert cfg.name == "bair64_nohier" and cfg.model.latent_resolutions == (1,)
    assert cfg.data.name == "bair"  # inherited from its base preset


def test_float_overrides_accept_exponent_notation():
    assert tiny("train.lr=1e-3").train.lr == 1e-3
    assert tiny("model.var_floor=0").model.var_floor == 0.0
    with pytest.raises(ConfigError, match="train.lr"):
        tiny("train.lr=fast")


def test_wrong_context_length_rejected():
    model = tiny_model()
    with pytest.raises(ValueError, match="n_ctx"):
        model.init_state(torch.rand(1, 5, 1, 32, 32))
