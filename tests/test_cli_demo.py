"""``hvrnn demo`` end to end on fake digits with a handful of steps (the real run takes minutes)."""

from __future__ import annotations

import json

import numpy as np
import torch
from conftest import fake_digits

from hvrnn.cli import main
from hvrnn.demo import black_predictions, copy_last_predictions


def test_copy_last_predictions_repeats_the_last_context_frame():
    ctx = np.random.default_rng(0).integers(0, 256, (3, 2, 4, 4, 1), dtype=np.uint8)
    pred = copy_last_predictions(ctx, 5)
    assert pred.shape == (3, 1, 5, 4, 4, 1) and pred.dtype == np.uint8
    assert all(np.array_equal(pred[i, 0, t], ctx[i, -1]) for i in range(3) for t in range(5))


def test_black_predictions_are_zeros_of_the_prediction_shape():
    ctx = np.full((2, 3, 4, 5, 1), 200, np.uint8)
    pred = black_predictions(ctx, 6)
    assert pred.shape == (2, 1, 6, 4, 5, 1) and pred.dtype == np.uint8 and not pred.any()


def test_demo_scores_the_pretrained_model_references_and_a_model_trained_here(tmp_path, capsys):
    from hvrnn.data.smmnist import prepare_smmnist

    mnist = tmp_path / "mnist.npz"
    np.savez(mnist, train=fake_digits(40, 0), test=fake_digits(80, 1))
    data = tmp_path / "smmnist32"
    prepare_smmnist(data, num_sequences=64, seq_len=12, image_size=32, mnist_path=mnist)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--data", str(data), "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "demo_results.json").read_text())
    assert results["steps"] == 2 and results["protocol"] == "smmnist32-c2-p10-n10"
    folders = {"pretrained (pretrained:smmnist32)": "pretrained",
               "copy last frame": "copy_last_frame", "all-black frames": "all_black_frames",
               "untrained (its initialisation)": "untrained"}
    scratch = [name for name in results["scores"] if name.startswith("trained here (2 steps")]
    assert len(scratch) == 1 and len(results["scores"]) == 5
    folders[scratch[0]] = "scratch"
    for name, folder in folders.items():
        metrics = json.loads((out / "eval" / folder / "metrics.json").read_text())
        row = results["scores"][name]
        assert row["ssim_best"] == metrics["metrics"]["ssim"]["best"]["mean"]
        assert row["ssim_best_t1"] == metrics["metrics"]["ssim"]["best"]["per_frame_mean"][0]
        assert f"{row['ssim_best']:.3f}" in printed and name in printed
    # The references are one deterministic prediction each; the models are scored best of N.
    assert results["scores"]["copy last frame"]["n_samples"] == 1
    assert results["scores"]["pretrained (pretrained:smmnist32)"]["n_samples"] > 1
    black = np.load(out / "eval" / "all_black_frames_predictions.npz")["samples"]
    assert not black.any()
    for folder in ("pretrained_samples", "scratch_samples"):
        for name in ("samples.npz", "grid.png", "seq_000.gif"):
            assert (out / folder / name).is_file(), (folder, name)
        # The samples' context comes from the demo's data, wherever the model was trained.
        written = json.loads((out / folder / "samples.json").read_text())
        assert written["context"] == f"{data} (test split)"
    assert (out / "run" / "checkpoints" / "last.pt").is_file()
    # The demo never writes into a folder that already has files.
    assert main(["demo", "--out", str(out), "--data", str(data), "--steps", "2"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_the_demo_trains_in_float32_where_bf16_is_emulated(tmp_path, monkeypatch):
    """The recipe's bf16 autocast, kept where the CPU has native bf16 kernels; float32 where
    it has not (emulated bf16 would spend the demo's minutes on a fraction of the steps)."""
    import hvrnn.accel as accel
    import hvrnn.distributed as distributed
    from hvrnn.config import load_config
    from hvrnn.demo import DEMO_CONFIG, demo_config

    assert load_config(DEMO_CONFIG).train.amp == "bf16"
    monkeypatch.setattr(distributed, "resolve_device", lambda name: torch.device("cpu"))
    for native, amp in ((True, "bf16"), (False, "none")):
        monkeypatch.setattr(accel, "cpu_bf16_native", lambda native=native: native)
        cfg = demo_config(tmp_path, minutes=1.0)
        assert cfg.train.amp == amp and cfg.train.max_minutes == 1.0
        assert cfg.model == load_config(DEMO_CONFIG).model  # only the precision differs


def test_bf16_training_on_a_cpu_without_native_bf16_warns(monkeypatch, caplog):
    import logging

    from helpers import tiny

    import hvrnn.accel as accel
    from hvrnn.distributed import DistInfo
    from hvrnn.training.launcher import wrap_for_training

    cfg = tiny("tiny", "train.amp=bf16")
    model = torch.nn.Linear(1, 1)
    for native in (True, False):
        monkeypatch.setattr(accel, "cpu_bf16_native", lambda native=native: native)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hvrnn"):
            wrap_for_training(model, cfg, DistInfo())
        warned = [r.getMessage() for r in caplog.records if "native bf16" in r.getMessage()]
        assert len(warned) == (0 if native else 1)
