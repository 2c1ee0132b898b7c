"""PredNet (model.kind=prednet): the published KITTI sizes, the losses in closed form, the
extrapolation mode, the saturating prediction and its config checks (the contract is in
tests/test_model_contract.py)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import seeded_model, tiny, video_batch

import hvrnn
from hvrnn.cli import main
from hvrnn.config import ConfigError
from hvrnn.model.prednet import hard_sigmoid


def kitti_count(channels: int = 3, stack=(3, 48, 96, 192), filt: int = 3) -> dict[str, int]:
    """The parameters of coxlab/prednet's PredNet with the kitti_train.py settings, from its
    layer definitions: per layer l four gate convolutions (i, f, c, o; k x k with bias) from
    2 A_l + R_l (+ R_{l+1} below the top) channels to R_l, an Ahat convolution R_l -> A_l and,
    below the top, an A convolution 2 A_l -> A_{l+1}; R channels equal A channels."""
    a = (channels, *stack[1:])
    conv = lambda c_in, c_out: filt * filt * c_in * c_out + c_out  # noqa: E731
    n = len(a)
    lstm = sum(4 * conv(2 * a[i] + a[i] + (a[i + 1] if i < n - 1 else 0), a[i])
               for i in range(n))
    ahat = sum(conv(a[i], a[i]) for i in range(n))
    target = sum(conv(2 * a[i], a[i + 1]) for i in range(n - 1))
    return {"representation": lstm, "prediction": ahat, "target": target,
            "total": lstm + ahat + target}


@pytest.mark.parametrize("preset", ["bair64_prednet", "cityscapes128_prednet"])
def test_presets_have_the_published_kitti_settings_and_size(preset, capsys):
    cfg = hvrnn.load_config(preset)
    m = cfg.model
    assert m.kind == "prednet" and m.a_channels == (3, 48, 96, 192) == m.r_channels
    assert m.a_filter_sizes == (3, 3, 3) and m.ahat_filter_sizes == m.r_filter_sizes == (3,) * 4
    assert m.layer_loss_weights == (1.0, 0.0, 0.0, 0.0) and not m.extrap_finetune
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.lr_final) == (4, 1e-3, 1e-4)
    assert cfg.train.lr_decay_steps == (9375, 9375) and cfg.train.max_steps == 18750
    assert main(["info", preset, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == kitti_count()
    assert info["parameters"]["total"] == 6_915_948


def test_hard_sigmoid_is_the_keras_one():
    x = torch.tensor([-3.0, -2.5, -1.0, 0.0, 1.0, 2.5, 3.0])
    torch.testing.assert_close(hard_sigmoid(x), torch.tensor([0, 0, 0.3, 0.5, 0.7, 1, 1]))


def test_prediction_error_in_closed_form():
    """With the L0 weights the loss is 0.5 * the mean |Ahat_0 - x| of the frames after the
    first (E_0 holds both rectified halves of the error), weighted equally over time."""
    cfg = tiny("tiny_prednet")
    model = seeded_model(cfg)
    x = video_batch(cfg, t=4)
    with torch.no_grad():
        out = model(x)
        terms = model.training_terms(x, cfg.loss)
    expected = 0.5 * (out.all_frames[:, 1:] - x[:, 1:]).abs().mean()
    torch.testing.assert_close(terms["prediction_error"], expected, rtol=1e-5, atol=1e-7)
    assert terms["loss"] is terms["prediction_error"]
    assert out.errors[:, 0, 0].min() > 0  # the first frame's error exists but weighs 0
    w = tiny("tiny_prednet", "model.layer_loss_weights=[0.0,1.0,0.0]")
    m1 = seeded_model(w)
    with torch.no_grad():
        o1 = m1(x)
        t1 = m1.training_terms(x, w.loss)
    torch.testing.assert_close(t1["prediction_error"], o1.errors[:, 1:, 1].mean(), rtol=1e-5,
                               atol=1e-7)


def test_extrapolation_reads_its_own_predictions():
    """The extrapolation pass equals the sampler (which feeds the prediction back), its
    bottom-layer errors vanish after the context, and fine-tuning trains on 0.5 * MAE."""
    cfg = tiny("tiny_prednet", "model.extrap_finetune=true")
    model = seeded_model(cfg)
    x, k = video_batch(cfg, t=4), cfg.data.n_ctx
    with torch.no_grad():
        out = model(x, extrapolate=True)
        rolled = hvrnn.sample(model, x[:, :k], horizon=4, n_samples=5)
        terms = model.training_terms(x, cfg.loss)
    assert rolled.shape[1] == 1  # deterministic: one sample whatever N is
    torch.testing.assert_close(rolled[:, 0], out.frames, rtol=0, atol=1e-6)
    assert out.errors[:, k:, 0].abs().max() == 0 and out.errors[:, :k, 0].min() > 0
    expected = 0.5 * (out.all_frames[:, 1:] - x[:, 1:]).abs().mean()
    torch.testing.assert_close(terms["loss"], expected, rtol=1e-5, atol=1e-7)
    assert model.score_term == "extrapolation_error"
    # Teacher forcing reads the true frames instead: other predictions after the first.
    with torch.no_grad():
        forced = model(x)
    torch.testing.assert_close(forced.frames[:, 0], out.frames[:, 0])
    assert (forced.frames[:, 1:] - out.frames[:, 1:]).abs().max() > 0


def test_bottom_prediction_saturates_at_pixel_max():
    cfg = tiny("tiny_prednet", "model.pixel_max=0.25")
    model = seeded_model(cfg)
    with torch.no_grad():  # a large bias drives every Ahat_0 far above pixel_max
        model.ahat[0].bias.fill_(5.0)
        out = model(video_batch(cfg, t=2))
    assert out.frames.max() == 0.25 and out.frames.min() == 0.25


@pytest.mark.parametrize("override,key", [
    ("model.a_filter_sizes=[3]", "model.a_filter_sizes"),
    ("model.layer_loss_weights=[0.0,0.0,0.0]", "model.layer_loss_weights"),
    ("model.r_filter_sizes=[3,2,3]", "model.r_filter_sizes"),
    ("model.latent_resolutions=[1]", "model.latent_resolutions"),
    ("data.image_size=30", "data.image_size"),
])
def test_bad_prednet_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        hvrnn.build_model(tiny("tiny_prednet", override).model)


def test_extrapolation_fine_tuning_starts_from_a_trained_model(tmp_path, fake_data):
    """The original fine-tunes its t+1 model in the extrapolation mode: train.init_from starts
    a run from another run's weights (optimisers fresh); weights of another model are
    refused, naming the key."""
    from conftest import TINY_OVERRIDES
    from helpers import replace_section

    from hvrnn import checkpoint as ck
    from hvrnn.distributed import setup
    from hvrnn.errors import CheckpointError
    from hvrnn.training import train
    from hvrnn.training.state import TrainState

    cfg = replace_section(tiny("tiny_prednet", *TINY_OVERRIDES), "train", max_steps=2)
    first = train(cfg, tmp_path / "t1", train_set=fake_data[0])
    tuned = tiny("tiny_prednet", *TINY_OVERRIDES, "model.extrap_finetune=true",
                 f"train.init_from={first.run_dir}")
    state = TrainState.create(tuned, setup("cpu"))
    saved = ck.read_checkpoint(first.checkpoint)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in state.model.state_dict().items())
    assert not state.optimizers["model"].state  # fresh optimiser
    result = train(replace_section(tuned, "train", max_steps=1), tmp_path / "t2",
                   train_set=fake_data[0])
    assert result.status == "finished"
    other = tiny("tiny_savp", *TINY_OVERRIDES, f"train.init_from={first.checkpoint}")
    with pytest.raises(CheckpointError, match=r"train\.init_from"):
        TrainState.create(other, setup("cpu"))
    with pytest.raises(CheckpointError, match="does not exist"):
        train(tiny("tiny_prednet", *TINY_OVERRIDES, "train.init_from=nope.pt"),
              tmp_path / "t3", train_set=fake_data[0])
    assert not (tmp_path / "t3").exists()
