"""``hvrnn demo`` end to end on fake digits with a handful of steps (the real run takes minutes)."""

from __future__ import annotations

import json

import numpy as np
from conftest import fake_digits

from hvrnn.cli import main
from hvrnn.demo import copy_last_predictions


def test_copy_last_predictions_repeats_the_last_context_frame():
    ctx = np.random.default_rng(0).integers(0, 256, (3, 2, 4, 4, 1), dtype=np.uint8)
    pred = copy_last_predictions(ctx, 5)
    assert pred.shape == (3, 1, 5, 4, 4, 1) and pred.dtype == np.uint8
    assert all(np.array_equal(pred[i, 0, t], ctx[i, -1]) for i in range(3) for t in range(5))


def test_demo_prepares_trains_samples_and_compares(tmp_path, capsys):
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
    for name in ("trained", "untrained", "copy_last"):
        metrics = json.loads((out / "eval" / name / "metrics.json").read_text())
        assert results["scores"][name]["ssim_best"] == metrics["metrics"]["ssim"]["best"]["mean"]
        assert f"{results['scores'][name]['ssim_best']:.4f}" in printed
    assert results["trained_beats_copy_last"] == (results["scores"]["trained"]["ssim_best"]
                                                  > results["scores"]["copy_last"]["ssim_best"])
    for name in ("samples.npz", "grid.png", "seq_000.gif", "seq_000.mp4"):
        assert (out / "samples" / name).is_file(), name
    assert (out / "run" / "checkpoints" / "last.pt").is_file()
    # The demo never writes into a folder that already has files.
    assert main(["demo", "--out", str(out), "--data", str(data), "--steps", "2"]) == 2
    assert "not empty" in capsys.readouterr().err
