"""SVG-LP baseline (model.kind=svg_lp): sizes, its Gaussian parameterisation, conditioning on
the whole context and its config checks (the contract is in tests/test_model_contract.py)."""

from __future__ import annotations

import json

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
from hvrnn.cli import main
from hvrnn.config import ConfigError


def test_dcgan_pair_matches_svg_dcgan64_sizes():
    """Closed-form counts of SVG's DCGAN-64 encoder (nc=3, g=128) and LSTMs (256 cells)."""
    cfg = hvrnn.load_config("bair64_svglp", ["model.frame_network=dcgan"])
    assert cfg.model.kind == "svg_lp" and cfg.loss.likelihood == "l2"
    counts = hvrnn.count_parameters(hvrnn.build_model(cfg.model))
    convs = [(3, 64, 4), (64, 128, 4), (128, 256, 4), (256, 512, 4), (512, 128, 4)]
    norms = 2 * (64 + 128 + 256 + 512 + 128)
    assert counts["encoder"] == sum(i * o * k * k + o for i, o, k in convs) + norms
    lstm = 4 * 256 * (256 + 256) + 2 * 4 * 256
    assert counts["predictor"] == (192 * 256 + 256) + 2 * lstm + (256 * 128 + 128)
    gauss = (128 * 256 + 256) + lstm + 2 * (256 * 64 + 64)
    assert counts["prior"] == counts["posterior"] == gauss
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert counts["total"] == 12_689_539


def test_bair_preset_matches_svg_vgg64_sizes(capsys):
    """``hvrnn info bair64_svglp`` against the count of SVG's BAIR model worked out from
    models/vgg_64.py and models/lstm.py of edenton/svg (nc=3, g_dim=128, z_dim=64, rnn_size
    256): a vgg_layer is a 3x3 conv with bias and a norm with a gain and a bias per channel
    (BatchNorm there, GroupNorm here: the same count); encoder blocks c1..c4 (64, 64 | 128, 128
    | 256 x 3 | 512 x 3) and a 4x4 conv 512 -> 128 with its norm; decoder upc1 (4x4
    transposed conv 128 -> 512, norm), upc2..upc4 (vgg layers from twice the width), upc5 (a
    vgg layer and a 3x3 transposed conv 64 -> 3); the LSTMs as in the DCGAN test."""
    cfg = hvrnn.load_config("bair64_svglp")
    assert cfg.model.frame_network == "vgg" and cfg.model.g_dim == 128 and cfg.model.n_z == 64

    def vgg(i, o):
        return 9 * i * o + o + 2 * o

    encoder = (vgg(3, 64) + vgg(64, 64) + vgg(64, 128) + vgg(128, 128) + vgg(128, 256)
               + 2 * vgg(256, 256) + vgg(256, 512) + 2 * vgg(512, 512)
               + 16 * 512 * 128 + 128 + 2 * 128)
    decoder = (16 * 128 * 512 + 512 + 2 * 512
               + vgg(1024, 512) + vgg(512, 512) + vgg(512, 256)
               + vgg(512, 256) + vgg(256, 256) + vgg(256, 128)
               + vgg(256, 128) + vgg(128, 64)
               + vgg(128, 64) + 9 * 64 * 3 + 3)
    lstm = 4 * 256 * (256 + 256) + 2 * 4 * 256
    predictor = (192 * 256 + 256) + 2 * lstm + (256 * 128 + 128)
    gauss = (128 * 256 + 256) + lstm + 2 * (256 * 64 + 64)
    assert main(["info", "bair64_svglp", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == {"encoder": encoder, "decoder": decoder,
                                  "predictor": predictor, "prior": gauss, "posterior": gauss,
                                  "total": encoder + decoder + predictor + 2 * gauss}
    assert info["parameters"]["total"] == 22_831_747


def test_vgg_pair_keeps_the_contract():
    cfg = tiny("tiny_svglp", "model.frame_network=vgg")
    model = listening(seeded_model(cfg))
    check_step_matches_forward(model, cfg)
    check_causal(model.eval(), cfg)


def test_posterior_sample_is_mean_plus_std_times_noise():
    cfg = tiny("tiny_svglp")
    model = seeded_model(cfg)
    eps = noise(model, 2, 4)
    with torch.no_grad():
        out = model(video_batch(cfg, t=4), eps)
    assert out.z[0].shape == (2, 4, cfg.model.n_z, 1, 1)
    q = out.posterior[0]  # variance exp(logvar): sample mean + exp(logvar / 2) * eps
    torch.testing.assert_close(out.z[0], q.mean + q.var.sqrt() * eps[0], rtol=0, atol=1e-6)


def test_context_frames_condition_the_prediction():
    """Every context frame reaches the output (the LSTMs run over the whole context)."""
    cfg = tiny("tiny_svglp")
    model = seeded_model(cfg).eval()
    x = video_batch(cfg, t=2)
    x2 = x.clone()
    x2[:, 0] = torch.rand_like(x2[:, 0])  # the first context frame: no skip, no code of c_K
    eps = noise(model, 2, 2)
    with torch.no_grad():
        a, b = model(x, eps), model(x2, eps)
    assert (a.prior[0].mean[:, 0] - b.prior[0].mean[:, 0]).abs().max() > 0
    assert (a.logits[:, 0] - b.logits[:, 0]).abs().max() > 0


@pytest.mark.parametrize("override,key", [
    ("model.latent_resolutions=[1,8]", "model.latent_resolutions"),
    ("model.g_dim=10", "model.g_dim"),
    ("model.prior_layers=0", "model.prior_layers"),
    ("model.frame_network=resnet", "model.frame_network"),
])
def test_bad_svg_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        hvrnn.build_model(tiny("tiny_svglp", override).model)
