"""The ``hvrnn`` command end to end on tiny data; bad input gives one ``error:`` line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES

from hvrnn import checkpoint as ck
from hvrnn.cli import main


def _overrides(root: str, steps: int = 2) -> list[str]:
    return [o for o in TINY_OVERRIDES if not o.startswith("train.max_steps")] + [
        f"data.root={root}", "data.train_length=16", f"train.max_steps={steps}",
        "train.checkpoint_every=1"]


def _user_error(capsys, argv: list[str], *needles: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def trained_run(smmnist16_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "tiny", *_overrides(smmnist16_root), "--run-dir", str(run)]) == 0
    capsys.readouterr()
    return run


def test_train_sample_evaluate_from_the_checkpoint_alone(trained_run, smmnist16_root, tmp_path,
                                                         capsys):
    last = trained_run / "checkpoints" / "last.pt"
    assert ck.read_checkpoint(last)["step"] == 2
    assert (trained_run / "config.yaml").is_file()

    out = tmp_path / "samples"
    assert main(["sample", str(last), "--n-samples", "3", "--horizon", "5",
                 "--num-sequences", "2", "--out", str(out)]) == 0
    with np.load(out / "samples.npz") as f:
        assert f["samples"].dtype == np.uint8 and f["samples"].shape == (2, 3, 5, 16, 16, 1)
        assert f["context"].shape == (2, 2, 16, 16, 1)
        assert f["truth"].shape == (2, 5, 16, 16, 1)
        samples = f["samples"]
    for name in ("grid.png", "seq_000.png", "seq_001.gif", "seq_001.mp4"):
        assert (out / name).stat().st_size > 0, name
    import imageio.v3 as iio

    grid = iio.imread(out / "seq_000.png")
    scale = 8  # auto_scale(16) = 128 // 16
    # Rows: ground truth + 3 samples; columns: 2 context + 5 predicted, 1-pixel borders.
    assert grid.shape == (4 * 18 * scale, 7 * 18 * scale, 3)
    # The grid shows the samples written to the npz (row 1 = sample 0, column 2 = step 0).
    cell = grid[18 * scale + scale: 18 * scale + 17 * scale: scale,
                2 * 18 * scale + scale: 2 * 18 * scale + 17 * scale: scale, 0]
    assert np.array_equal(cell, samples[0, 0, 0, :, :, 0])
    # grid.png: both sequences' grids (a white gap between them) drawn pixel for pixel, with
    # row and column labels around them.
    labelled = iio.imread(out / "grid.png")[..., :3]
    first = grid[..., :3]
    hits = [(y, x) for y in range(labelled.shape[0] - first.shape[0] + 1)
            for x in range(labelled.shape[1] - first.shape[1] + 1)
            if np.array_equal(labelled[y:y + 8, x:x + 8], first[:8, :8])
            and np.array_equal(labelled[y:y + first.shape[0], x:x + first.shape[1]], first)]
    assert len(hits) == 1 and hits[0][1] > 0  # labels on the left
    assert labelled.shape[0] > 2 * first.shape[0] + 4 * scale

    # The same seed gives the same samples; --force is needed to write into the folder again.
    code = main(["sample", str(trained_run), "--n-samples", "3", "--horizon", "5",
                 "--num-sequences", "2", "--out", str(out)])
    assert code == 2 and "not empty" in capsys.readouterr().err
    assert main(["sample", str(trained_run), "--n-samples", "3", "--horizon", "5",
                 "--num-sequences", "2", "--out", str(out), "--force"]) == 0
    with np.load(out / "samples.npz") as f:
        assert np.array_equal(f["samples"], samples)

    # --context: uint8 clips in a .npy; frames after the context are ground truth.
    clips = (np.random.default_rng(0).random((3, 4, 16, 16)) * 255).astype(np.uint8)
    np.save(tmp_path / "clips.npy", clips)
    out2 = tmp_path / "samples2"
    assert main(["sample", str(last), "--context", str(tmp_path / "clips.npy"),
                 "--n-samples", "2", "--horizon", "3", "--out", str(out2)]) == 0
    with np.load(out2 / "samples.npz") as f:
        assert np.array_equal(f["context"][..., 0], clips[:, :2])
        assert np.array_equal(f["truth"][..., 0], clips[:, 2:])
        assert f["samples"].shape == (3, 2, 3, 16, 16, 1)

    # evaluate rebuilds model and data from the checkpoint alone.
    ev = tmp_path / "eval"
    code = main(["evaluate", str(last), "--protocol", "smmnist32-c2-p10-n10", "--out", str(ev)])
    err = capsys.readouterr().err
    assert code == 2 and "image_size" in err  # 16x16 model, 32x32 protocol: refused clearly


def test_resume_on_the_command_line_continues(trained_run, smmnist16_root, capsys):
    code = main(["train", "tiny", *_overrides(smmnist16_root, steps=3), "--run-dir",
                 str(trained_run), "--resume"])
    assert code == 0, capsys.readouterr().err
    assert ck.read_checkpoint(trained_run)["step"] == 3


def test_bad_input_gives_one_error_line_and_exit_2(smmnist16_root, tmp_path, capsys,
                                                   trained_run):
    _user_error(capsys, ["train", str(tmp_path / "missing.yaml")], "does not exist")
    _user_error(capsys, ["train", "tiny", "model.bogus=1"], "model.bogus")
    _user_error(capsys, ["train", "tiny", "train.batch_size=many"], "train.batch_size")
    _user_error(capsys, ["info", "tiny", "model.n_z=true"], "model.n_z")
    _user_error(capsys, ["train", "tiny", "data.root=" + str(tmp_path / "nowhere"),
                         "--run-dir", str(tmp_path / "r1")], "nowhere")
    # An existing run directory is never reused without --resume, and is left as it was.
    before = sorted(p.name for p in trained_run.rglob("*"))
    _user_error(capsys, ["train", "tiny", *_overrides(smmnist16_root), "--run-dir",
                         str(trained_run)], "already exists")
    assert sorted(p.name for p in trained_run.rglob("*")) == before
    # Resuming with another config names the key.
    _user_error(capsys, ["train", "tiny", *_overrides(smmnist16_root), "model.n_z=5",
                         "--run-dir", str(trained_run), "--resume"], "model.n_z")
    # Corrupt, foreign and unsafe checkpoints.
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    _user_error(capsys, ["sample", str(bad)], "corrupt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    _user_error(capsys, ["sample", str(tmp_path / "foreign.pt")], "not an hvrnn checkpoint")
    _user_error(capsys, ["sample", str(tmp_path / "nothing.pt")], "does not exist")
    # Unwritable outputs: a path below a regular file (refused even for root).
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    _user_error(capsys, ["sample", str(trained_run), "--out", str(blocker / "sub")],
                "cannot write")
    _user_error(capsys, ["train", "tiny", *_overrides(smmnist16_root), "--run-dir",
                         str(blocker / "run")], "cannot write")
    # A bad --context file.
    np.save(tmp_path / "wrong.npy", np.zeros((2, 4, 8, 8), np.uint8))
    _user_error(capsys, ["sample", str(trained_run), "--context", str(tmp_path / "wrong.npy"),
                         "--out", str(tmp_path / "s3")], "wrong.npy")
    # Argument errors are one line too.
    _user_error(capsys, ["sample"], "CHECKPOINT")
    _user_error(capsys, ["frobnicate"], "frobnicate")


def test_console_entry_point_and_help_are_fast_and_clean(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "hvrnn.cli", "--help"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0
    for command in ("info", "data", "train", "sample", "evaluate", "demo"):
        assert command in done.stdout
    # No traceback for a user error in a real process either.
    done = subprocess.run([sys.executable, "-m", "hvrnn.cli", "sample",
                           str(tmp_path / "x.pt")], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_info_prints_parameter_counts(capsys):
    import json

    assert main(["info", "tiny", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"]["total"] == sum(v for k, v in info["parameters"].items()
                                              if k != "total")


def test_info_gives_the_official_counts_on_the_command_line(capsys):
    """`hvrnn info bair64 ...` with the official layout prints 207,890,619 / 151,423,931."""
    import json

    official = ["model.center_tap_1x1=false", "model.prior_dense=false"]
    assert main(["info", "bair64", *official]) == 0
    text = capsys.readouterr().out
    assert "207,890,619" in text and "58,884,096" in text
    assert main(["info", "bair64_nohier", "model.center_tap_1x1=false", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"]["total"] == 151_423_931
    assert main(["info", "bair64"]) == 0
    text = capsys.readouterr().out
    assert "center_tap_1x1 saves 58,884,096" in text and "prior_dense adds 143,872" in text
