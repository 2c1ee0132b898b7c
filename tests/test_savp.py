"""SAVP (model.kind=savp): the released BAIR sizes, CDNA kernels, the loss terms and their
schedules, the variants, and exact resume with the discriminators' optimiser (the contract is
in tests/test_model_contract.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES
from helpers import replace_section, seeded_model, tiny, video_batch

import hvrnn
from hvrnn import checkpoint as ck
from hvrnn.cli import main
from hvrnn.config import ConfigError
from hvrnn.model import StepContext
from hvrnn.model.savp_nets import apply_cdna, gan_loss, normalise_kernels, symmetric_pad


def savp_bair_count(ngf=32, ndf=32, nef=64, nz=8, c=3, kernels=4, k=5, clip=10, size=64):
    """The parameters of the released SAVP at 64x64, from the layer definitions of
    alexlee-gk/video_prediction (savp_model.py, networks.py, rnn_ops.py, ops.py):

    * generator: a TensorFlow LSTM cell on z (kernel (2 nz, 4 nz) + bias); per encoder stage
      a conv-pool (5x5 at the first stage, else 3x3, with bias) over its input and the tiled z
      plus an instance norm (gain, bias), and a ConvLSTM with a 5x5 kernel without bias over
      [input, z, h] to 4 filters, an instance norm of the gates and of the cell; decoder
      stages likewise with 3x3 up-sampling convolutions, skip inputs, and no ConvLSTM at the
      last stage; a dense layer from the coarsest ConvLSTM output to the CDNA kernels; the
      scratch and mask heads (3x3 conv, instance norm, 3x3 conv; the mask conv also reads
      the 7 candidate images);
    * posterior: 4x4 stride-2 convs 2c -> nef -> 2 nef -> 4 nef (instance norms after the
      last two) and two dense heads to nz;
    * each video discriminator: seven 3D convs with bias and a dense layer from
      8 ndf x 4 x 8 x 8 (a 10-frame clip) to 1.
    """
    conv = lambda k_, i, o, bias=True: k_ * k_ * i * o + (o if bias else 0)  # noqa: E731
    norm = lambda ch: 2 * ch  # noqa: E731
    lstm = lambda i, f: conv(5, i + f, 4 * f, bias=False) + norm(4 * f) + norm(f)  # noqa: E731
    enc, dec = [ngf, 2 * ngf, 4 * ngf], [2 * ngf, ngf, ngf]
    g = (2 * nz) * (4 * nz) + 4 * nz
    ins = [2 * c, enc[0], enc[1]]
    for i, w in enumerate(enc):
        g += conv(5 if i == 0 else 3, ins[i] + nz, w) + norm(w) + lstm(w + nz, w)
    dins = [enc[2], dec[0] + enc[1], dec[1] + enc[0]]
    for i, w in enumerate(dec):
        g += conv(3, dins[i] + nz, w) + norm(w) + (lstm(w + nz, w) if i < 2 else 0)
    g += enc[2] * (size // 8) ** 2 * kernels * k * k + kernels * k * k
    masks = kernels + 3
    g += conv(3, ngf, ngf) + norm(ngf) + conv(3, ngf, c)
    g += conv(3, ngf, ngf) + norm(ngf) + conv(3, ngf + masks * c, masks)
    post = conv(4, 2 * c, nef) + conv(4, nef, 2 * nef) + norm(2 * nef) \
        + conv(4, 2 * nef, 4 * nef) + norm(4 * nef) + 2 * (4 * nef * nz + nz)
    conv3 = lambda k_, i, o: k_ ** 3 * i * o + o  # noqa: E731
    d = (conv3(3, c, ndf) + conv3(4, ndf, 2 * ndf) + conv3(3, 2 * ndf, 2 * ndf)
         + conv3(4, 2 * ndf, 4 * ndf) + conv3(3, 4 * ndf, 4 * ndf) + conv3(4, 4 * ndf, 8 * ndf)
         + conv3(3, 8 * ndf, 8 * ndf) + 8 * ndf * ((clip - 4) // 2 + 1) * (size // 8) ** 2 + 1)
    return {"generator": g, "posterior": post, "discriminator/vae": d, "discriminator/gan": d,
            "total": g + post + 2 * d}


def test_bair_preset_has_the_released_settings_and_size(capsys):
    cfg = hvrnn.load_config("bair64_savp")
    m, t = cfg.model, cfg.train
    assert (m.ngf, m.ndf, m.nef, m.n_z, m.cdna_kernels, m.cdna_kernel_size) == (32, 32, 64, 8,
                                                                                4, 5)
    assert (m.l1_weight, m.kl_weight, m.vae_gan_weight, m.gan_weight) == (100, 0.1, 1, 1)
    assert m.kl_anneal_steps == (50_000, 100_000) and m.schedule_sampling_k == 900
    assert (t.lr, t.adam_betas, t.batch_size, t.weight_decay) == (2e-4, (0.5, 0.999), 16, 0)
    assert t.lr_decay_steps == (200_000, 300_000) and t.lr_final == 0
    assert main(["info", "bair64_savp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["parameters"] == savp_bair_count()


def test_cdna_kernels_move_the_image():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 8, 8, generator=g)
    # Raw zeros give the identity kernel (up to the 1e-12 floor of the other taps).
    identity = normalise_kernels(torch.zeros(2, 1, 5, 5))
    torch.testing.assert_close(apply_cdna(image, identity)[:, 0], image, rtol=0, atol=1e-9)
    # A kernel with its mass one tap right of the centre reads the right neighbour.
    shift = torch.full((2, 1, 3, 3), -1.0)
    shift[:, :, 1, 2], shift[:, :, 1, 1] = 1.0, -1.0
    moved = apply_cdna(image, normalise_kernels(shift))[:, 0]
    torch.testing.assert_close(moved[..., :-1], image[..., 1:], rtol=0, atol=1e-9)
    torch.testing.assert_close(moved[..., -1], image[..., -1], rtol=0, atol=1e-9)  # symmetric
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    padded = symmetric_pad(torch.from_numpy(x), 2).numpy()
    assert np.array_equal(padded, np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="symmetric"))


def test_gan_losses_in_closed_form():
    logits = torch.tensor([-2.0, 0.5, 3.0])
    softplus = torch.nn.functional.softplus
    torch.testing.assert_close(gan_loss(logits, True, "gan"), softplus(-logits).mean())
    torch.testing.assert_close(gan_loss(logits, False, "gan"), softplus(logits).mean())
    torch.testing.assert_close(gan_loss(logits, True, "lsgan"), ((logits - 1) ** 2).mean())


def test_loss_terms_and_schedules():
    cfg = tiny("tiny_savp", "model.kl_anneal_steps=[10,20]", "model.schedule_sampling_k=5.0")
    model = seeded_model(cfg).train()
    x = video_batch(cfg, t=5)
    terms = model.training_terms(x, cfg.loss, StepContext(step=15))
    m = cfg.model
    expected = (m.l1_weight * terms["l1"] + 0.5 * m.kl_weight * terms["kl_step"]
                + m.vae_gan_weight * terms["gan/vae"] + m.gan_weight * terms["gan/gan"])
    torch.testing.assert_close(terms["loss"], expected)
    torch.testing.assert_close(terms["loss/discriminator"],
                               terms["discriminator/vae"] + terms["discriminator/gan"])
    torch.testing.assert_close(terms["nelbo"], terms["nll"] + terms["kl"])
    torch.testing.assert_close(terms["nll"], terms["l1"] * x[0, 2:].numel())
    torch.testing.assert_close(terms["kl_step"], terms["kl"] / 5)
    assert [model.kl_weight_at(s) for s in (0, 10, 15, 20, 99)] == [0, 0, 0.05, 0.1, 0.1]
    # Scheduled sampling: probability k / (k + exp(step / k)); all own frames when < 1e-3.
    torch.manual_seed(0)
    mask = model.feed_mask(4000, 3, step=5, device=torch.device("cpu"))
    assert mask[:, 0].all() and mask[:, 1:].float().mean().item() == pytest.approx(
        5 / (5 + math.e), abs=0.02)
    late = model.feed_mask(4, 3, step=100, device=torch.device("cpu"))
    assert late[:, 0].all() and not late[:, 1:].any()
    # Evaluation: no scheduled sampling, no adversarial term.
    with torch.no_grad():
        ev = model.eval().training_terms(x, cfg.loss, StepContext(step=15))
    assert "loss/discriminator" not in ev and not any(k.startswith("gan/") for k in ev)


@pytest.mark.parametrize("variant,groups,components", [
    ("savp", ["model", "discriminator"], ["generator", "posterior", "discriminator/vae",
                                          "discriminator/gan"]),
    ("vae", ["model"], ["generator", "posterior"]),
    ("gan", ["model", "discriminator"], ["generator", "discriminator/gan"]),
])
def test_variants(variant, groups, components):
    cfg = tiny("tiny_savp", f"model.variant={variant}")
    model = seeded_model(cfg).train()
    assert list(model.parameter_groups()) == groups
    assert [k for k in hvrnn.count_parameters(model) if k != "total"] == components
    terms = model.training_terms(video_batch(cfg, t=4), cfg.loss)
    assert ("kl" in terms) == (variant != "gan")
    assert ("loss/discriminator" in terms) == (variant != "vae")
    n_group = {name: sum(p.numel() for p in ps) for name, ps in model.parameter_groups().items()}
    assert sum(n_group.values()) == hvrnn.count_parameters(model)["total"]


def test_clip_length_is_checked_against_the_data():
    with pytest.raises(ConfigError, match=r"model\.clip_length"):
        tiny("tiny_savp", "model.clip_length=8", "data.n_pred=3")
    tiny("tiny_savp", "model.clip_length=8", "data.n_pred=3", "model.variant=vae")


def test_resume_restores_the_discriminators_and_their_optimiser(tmp_path, fake_data):
    """With scheduled sampling and random discriminator windows drawn during training, 3 + 3
    steps with a resume equal 6 steps: losses, generator and discriminator weights (spectral
    norm vectors included) and both optimisers."""
    from hvrnn.training import read_metrics, train

    cfg = replace_section(tiny("tiny_savp", *TINY_OVERRIDES, "data.n_pred=5",
                               "model.schedule_sampling_k=2.0", "model.clip_length=4"),
                          "train", max_steps=6, checkpoint_every=3)
    data = type(fake_data[0])(16, cfg.data.seq_len, cfg.data.image_size)
    full = train(cfg, tmp_path / "full", train_set=data)
    train(replace_section(cfg, "train", max_steps=3), tmp_path / "split", train_set=data)
    train(cfg, tmp_path / "split", resume=True, train_set=data)
    a, b = read_metrics(full.run_dir), read_metrics(tmp_path / "split")
    assert [r["loss/discriminator"] for r in a] == [r["loss/discriminator"] for r in b]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    ca, cb = (ck.read_checkpoint(ck.latest_checkpoint(d)) for d in (full.run_dir,
                                                                      tmp_path / "split"))
    d_keys = [k for k in ca["model"] if k.startswith("discriminators.")]
    assert any(k.endswith("_u") for k in d_keys)  # spectral-norm power-iteration vectors
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    da, db = ca["optimizers"]["discriminator"], cb["optimizers"]["discriminator"]
    assert len(da["state"]) == len(d_keys) - sum(k.endswith(("_u", "_v")) for k in d_keys)
    for pid, st in da["state"].items():
        assert torch.equal(st["exp_avg_sq"], db["state"][pid]["exp_avg_sq"])
    # Another seed draws other windows and masks: the comparison above can fail.
    other = train(replace_section(cfg, "train", seed=1), tmp_path / "other", train_set=data)
    assert [r["loss"] for r in read_metrics(other.run_dir)] != [r["loss"] for r in a]


def test_recurrent_posterior_keeps_the_contract():
    """model.posterior_rnn (the original's use_e_rnn): an LSTM over the pair features, carried
    through the context and the teacher-forced steps; q(z_t) then reads every earlier pair."""
    from helpers import check_causal, check_step_matches_forward, listening, noise

    cfg = tiny("tiny_savp", "model.posterior_rnn=true")
    model = listening(seeded_model(cfg))
    check_step_matches_forward(model, cfg)
    check_causal(model.eval(), cfg, fixed_prior=True)
    x = video_batch(cfg, t=4)
    x2 = x.clone()
    x2[:, 0] = torch.rand_like(x2[:, 0])  # a context frame only
    with torch.no_grad():
        a, b = model(x, noise(model, 2, 4)), model(x2, noise(model, 2, 4))
    assert (a.posterior[0].mean[:, -1] - b.posterior[0].mean[:, -1]).abs().max() > 0
    nef = cfg.model.nef
    plain = hvrnn.count_parameters(seeded_model(tiny("tiny_savp")))["posterior"]
    width = 4 * nef  # dense 4 nef -> 4 nef, an LSTM of 4 nef cells (TF cell: one kernel)
    extra = (width * width + width) + (2 * width * 4 * width + 4 * width)
    assert hvrnn.count_parameters(model)["posterior"] == plain + extra
