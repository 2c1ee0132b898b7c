"""A model kind added the way docs/architecture.md describes, in two files: one module
(``tests/toy_kind.py``: config class, network, objective, registration) and one preset
(``tests/fixtures/toy.yaml``). It trains, samples and is evaluated through the public API, and
the contract suite of tests/test_model_contract.py covers it as it covers the built-in kinds."""

from __future__ import annotations

import json

import torch
import toy_kind
from conftest import FakeVideos

import hvrnn
from hvrnn.evaluate import evaluate_checkpoint
from hvrnn.evaluation.protocols import Protocol
from hvrnn.model import MODEL_PRESETS, MODEL_REGISTRY
from hvrnn.training import read_metrics, train


def test_the_kind_is_registered_from_its_module():
    assert MODEL_REGISTRY["toy"] is toy_kind.ToyModel
    assert MODEL_PRESETS["toy"] == toy_kind.PRESET
    cfg = hvrnn.load_config(toy_kind.PRESET)
    assert isinstance(cfg.model, toy_kind.ToyConfig) and cfg.model.latent_shapes == ((4, 1, 1),)
    assert isinstance(hvrnn.build_model(cfg.model), toy_kind.ToyModel)


def test_a_kind_from_one_module_trains_samples_and_is_evaluated(tmp_path, smmnist16_root):
    cfg = hvrnn.load_config(toy_kind.PRESET, [
        f"data.root={smmnist16_root}", "data.num_workers=0", "train.batch_size=4",
        "train.max_steps=1", "train.val_every=1", "train.val_batches=1", "train.image_every=0",
        "train.val_n_samples=2"])
    d = cfg.data
    result = train(cfg, tmp_path / "run", train_set=FakeVideos(8, d.seq_len, d.image_size),
                   val_set=FakeVideos(4, d.seq_len, d.image_size, offset=100))
    assert result.status == "finished" and result.step == 1
    (record,) = read_metrics(result.run_dir)
    assert record["nelbo"] > record["nll"] > 0 and record["grad_norm"] > 0
    torch.manual_seed(cfg.train.seed)
    initial = hvrnn.build_model(cfg.model)

    model, loaded = hvrnn.load_checkpoint(result.run_dir)
    assert isinstance(model, toy_kind.ToyModel) and loaded == cfg
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                      initial.state_dict().values(),
                                                      strict=True))  # the step changed it
    context = FakeVideos(2, d.n_ctx, d.image_size)[0][None].repeat(2, 1, 1, 1, 1)
    first, again = (hvrnn.sample(model, context, horizon=4, n_samples=3,
                                 generator=torch.Generator().manual_seed(0)) for _ in range(2))
    assert first.shape == (2, 3, 4, 1, 16, 16) and torch.equal(first, again)
    assert 0 <= first.min() and first.max() <= 1 and (first[:, 0] != first[:, 1]).any()

    protocol = Protocol("smmnist16-toy", "smmnist", 16, 1, 2, 4, 3, max_sequences=4,
                        data_root=smmnist16_root)
    scores = evaluate_checkpoint(result.run_dir, protocol, tmp_path / "eval", batch_size=2)
    assert scores["n_sequences"] == 4 and scores["n_samples"] == 3
    elbo = scores["elbo"]["per_clip_mean"]
    assert elbo["nelbo"] > elbo["nll"] > 0
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["n_sequences"] == 4
