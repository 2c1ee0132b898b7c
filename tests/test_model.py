"""The hierarchical VRNN (model.kind=hvrnn): the official parameter counts, the centre-tap
layout, initialisation, and its options (dense prior, levels, frame skips, activation
checkpointing) against the contract of tests/test_model_contract.py."""

from __future__ import annotations

import pytest
import torch
from helpers import (
    check_causal,
    check_step_matches_forward,
    listening,
    noise,
    seeded_model,
    tiny,
    video_batch,
)

import hvrnn
from hvrnn.layers import to_center_taps
from hvrnn.model import StepContext
from hvrnn.objective import elbo_terms


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
    if preset == "bair64":  # components of the official modules, in millions (design.md 3.10)
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
    assert lstm.kernel_size == (1, 1) and lstm.nominal_kernel == 3
    bound = 1 / (9 * 512) ** 0.5
    assert lstm.weight.abs().max() <= bound
    assert lstm.weight.abs().max() > 0.99 * bound  # uniform(-bound, bound) fills the range
    assert lstm.weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.02)


def test_center_tap_model_equals_3x3_model():
    full = seeded_model(tiny("tiny", "model.center_tap_1x1=false")).eval()
    cfg = tiny()
    taps = hvrnn.build_model(cfg.model).eval()
    taps.load_state_dict(to_center_taps(full.state_dict(), taps))
    x = video_batch(cfg)
    eps = noise(full, 2, 4)
    with torch.no_grad():
        a, b = full(x, eps), taps(x, eps)
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=1e-5)


def test_center_tap_conversion_still_imports_from_its_earlier_place():
    with pytest.warns(DeprecationWarning, match="use hvrnn.layers.convert.to_center_taps"):
        from hvrnn.model.convert import to_center_taps as old
    assert old is to_center_taps


# ---------------------------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------------------------
def test_heads_at_init_give_standard_softplus_variance():
    cfg = tiny()
    model = seeded_model(cfg)
    with torch.no_grad():
        out = model(video_batch(cfg))
    for dist in out.prior + out.posterior:
        assert dist.mean.abs().max() < 0.01
        assert dist.var.sub(torch.log(torch.tensor(2.0))).abs().max() < 0.01
    terms = elbo_terms(out, video_batch(cfg)[:, cfg.data.n_ctx:], "bce")
    assert terms["kl"].item() < 1.0  # heads ignore their inputs: q ~= p


# ---------------------------------------------------------------------------------------------
# Options against the contract
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dense,skips", [(False, False), (True, True)])
def test_causality_of_the_options(dense, skips):
    """Without a dense prior every level's prior at step j is a function of x_<j alone; with
    one only the top level's is (the others read the posterior samples of step j: the KL of
    level l is taken with z_t^<l ~ q). Frame skips keep the model causal."""
    cfg = tiny("tiny", f"model.prior_dense={str(dense).lower()}",
               f"model.frame_skips={str(skips).lower()}")
    check_causal(listening(seeded_model(cfg)).eval(), cfg,
                 prior_levels_at_step=1 if dense else len(cfg.model.latent_resolutions))


@pytest.mark.parametrize("overrides", [("model.prior_dense=false",),
                                       ("model.latent_resolutions=[1]",),
                                       ("model.latent_resolutions=[1,4,16]",),
                                       ("model.frame_skips=true",)])
def test_step_api_reproduces_teacher_forced_forward(overrides):
    cfg = tiny("tiny", *overrides)
    check_step_matches_forward(listening(seeded_model(cfg)), cfg)


@pytest.mark.parametrize("mode", ["decoder", "all"])
def test_activation_checkpointing_gives_the_same_gradients(mode):
    x = video_batch(tiny(), t=3)
    grads = []
    for flag in ("none", mode):
        cfg = tiny("tiny", f"model.activation_checkpointing={flag}")
        model = seeded_model(cfg)
        terms = model.training_terms(x, cfg.loss,
                                     StepContext(noise=noise(model, 2, 3, seed=0)))
        terms["loss"].backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
