"""Tests of hvrnn.data: SM-MNIST dynamics, seeding, manifests, build_dataset, MNIST sources, CLI."""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import pickle
import struct

import numpy as np
import pytest
import torch
from conftest import fake_digits
from PIL import Image

from hvrnn.cli.data import add_parser as add_data_parser
from hvrnn.config import DataConfig
from hvrnn.data import (
    PreparedVideoDataset,
    build_dataset,
    generate_clip,
    item_rng,
    prepare_smmnist,
    verify,
)
from hvrnn.data.manifest import ArrayWriter, write_manifest
from hvrnn.data.mnist import load_mnist, read_mnist_path
from hvrnn.data.smmnist import MAX_SPEED, digit_trajectory, resize_digit
from hvrnn.errors import DataError


@pytest.fixture(scope="module")
def mnist_npz(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    np.savez(path, train=fake_digits(40, 0), test=fake_digits(20, 1))
    return str(path)


@pytest.fixture(scope="module")
def smmnist_root(tmp_path_factory, mnist_npz) -> str:
    out = tmp_path_factory.mktemp("sm") / "smmnist32"
    prepare_smmnist(out, num_sequences=12, seq_len=20, image_size=32, mnist_path=mnist_npz)
    return str(out)


def sm_cfg(root: str, **kw) -> DataConfig:
    base = dict(name="smmnist", root=root, image_size=32, channels=1, n_ctx=2, n_pred=6)
    base.update(kw)
    return DataConfig(**base)


# ---- SM-MNIST dynamics ----------------------------------------------------------------------


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("image_size", [64, 32])
def test_trajectory_bounces_only_at_walls(image_size, deterministic):
    limit = image_size - image_size // 2
    redraws = 0
    for seed in range(150):
        pos, vel = digit_trajectory(np.random.default_rng(seed), 40, limit, deterministic)
        assert pos.min() >= 0 and pos.max() <= limit - 1  # the digit stays inside the canvas
        assert np.abs(vel).max() <= MAX_SPEED
        for t in range(1, 40):
            raw = pos[t - 1] + vel[t - 1]
            np.testing.assert_array_equal(pos[t], np.clip(raw, 0, limit - 1))
            hit = (raw < 0) | (raw > limit - 1)  # per axis (row, col)
            if not hit.any():
                np.testing.assert_array_equal(vel[t], vel[t - 1])  # no change between walls
                continue
            # the new normal velocity points away from the wall; columns are tested last, and
            # a column bounce re-draws dy too (docs/design.md section 5.1), so a corner only fixes
            # the sign of dx
            for ax in (1,) if hit[1] else (0,):
                assert vel[t][ax] >= 1 if raw[ax] < 0 else vel[t][ax] <= -1
            if deterministic:
                np.testing.assert_array_equal(vel[t], np.where(hit, -vel[t - 1], vel[t - 1]))
            elif hit.sum() == 1 and vel[t][int(hit[0])] != vel[t - 1][int(hit[0])]:
                redraws += 1  # the tangential component was re-drawn: the stochastic part
    if not deterministic:
        assert redraws > 50


def test_clip_is_drawn_at_the_exposed_positions():
    digits = fake_digits(10, 3)
    clip = generate_clip(digits, np.random.default_rng(7), seq_len=12, image_size=64)
    assert clip.video.shape == (12, 64, 64, 1) and clip.video.dtype == np.uint8
    expected = np.zeros((12, 64, 64), dtype=np.int64)
    for n in range(2):
        img = np.asarray(Image.fromarray(digits[clip.digit_ids[n]]).resize((32, 32),
                                                                          Image.BILINEAR))
        for t in range(12):
            y, x = clip.positions[n, t]
            expected[t, y:y + 32, x:x + 32] += img
    np.testing.assert_array_equal(clip.video[..., 0], np.minimum(expected, 255))


def test_digit_size_follows_canvas():
    assert resize_digit(fake_digits(1, 0)[0], 16).shape == (16, 16)
    clip = generate_clip(fake_digits(5, 0), np.random.default_rng(0), seq_len=4, image_size=32)
    assert clip.video.shape == (4, 32, 32, 1) and clip.positions.max() <= 15


def test_same_seed_and_index_give_the_same_clip():
    digits = fake_digits(30, 2)
    a = generate_clip(digits, item_rng(3, "test", 5), seq_len=10)
    b = generate_clip(digits, item_rng(3, "test", 5), seq_len=10)
    c = generate_clip(digits, item_rng(3, "test", 6), seq_len=10)
    d = generate_clip(digits, item_rng(3, "train", 5), seq_len=10)
    np.testing.assert_array_equal(a.video, b.video)
    assert not np.array_equal(a.video, c.video)
    assert not np.array_equal(a.positions, d.positions)  # splits draw independent streams


# ---- prepared SM-MNIST, build_dataset --------------------------------------------------------


def test_smmnist_test_set_is_reproducible(tmp_path, mnist_npz, smmnist_root):
    other = prepare_smmnist(tmp_path / "again", num_sequences=12, seq_len=20, image_size=32,
                            mnist_path=mnist_npz)
    m1 = json.loads((other / "manifest.json").read_text())
    m2 = json.loads(open(f"{smmnist_root}/manifest.json").read())
    assert m1["files"] == m2["files"]
    stored = np.load(other / "test.npy")
    test_digits = read_mnist_path(mnist_npz)["test"]
    clip = generate_clip(test_digits, item_rng(0, "test", 7), seq_len=20, image_size=32)
    np.testing.assert_array_equal(stored[7], clip.video)


def test_build_dataset_items(smmnist_root):
    cfg = sm_cfg(smmnist_root, train_length=9)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert len(train) == 9 and len(test) == 12
    stored = np.load(f"{smmnist_root}/test.npy")
    for ds in (train, test):
        x = ds[3]
        assert x.shape == (8, 1, 32, 32) and x.dtype == torch.float32
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0
    # fixed test windows: frames 0..T-1 of each stored clip
    expected = torch.from_numpy(stored[3, :8]).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(test[3], expected, rtol=0, atol=0)
    torch.testing.assert_close(train[4], build_dataset(cfg, "train")[4], rtol=0, atol=0)
    assert not torch.equal(train[4], train[5])
    before = train[4]
    train.set_epoch(1)
    assert not torch.equal(before, train[4])
    assert DataConfig().train_length == 0 and len(build_dataset(sm_cfg(smmnist_root), "train")) \
        == 60000


def test_train_items_survive_pickling(smmnist_root):
    ds = build_dataset(sm_cfg(smmnist_root), "test")
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._frames is None
    torch.testing.assert_close(clone[2], ds[2], rtol=0, atol=0)


def test_missing_or_unprepared_root_names_path_and_command(tmp_path, smmnist_root):
    with pytest.raises(DataError, match=r"nowhere.*does not exist.*hvrnn data smmnist --out"):
        build_dataset(sm_cfg(str(tmp_path / "nowhere")), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*no manifest\.json.*hvrnn data smmnist"):
        build_dataset(sm_cfg(str(tmp_path / "empty")), "test")
    with pytest.raises(DataError, match="image_size=32, but data.image_size=64"):
        build_dataset(sm_cfg(smmnist_root, image_size=64), "test")
    with pytest.raises(DataError, match="num_digits=2, but data.num_digits=3"):
        build_dataset(sm_cfg(smmnist_root, num_digits=3), "train")
    with pytest.raises(DataError, match="20 frames, fewer than .* 26"):
        build_dataset(sm_cfg(smmnist_root, n_pred=24), "test")
    with pytest.raises(DataError, match="split 'dev'"):
        build_dataset(sm_cfg(smmnist_root), "dev")
    with pytest.raises(DataError, match="not a known dataset"):
        build_dataset(sm_cfg(smmnist_root, name="ucf"), "test")


def test_existing_output_needs_force(tmp_path, mnist_npz):
    out = tmp_path / "sm"
    prepare_smmnist(out, num_sequences=2, seq_len=4, image_size=16, mnist_path=mnist_npz)
    with pytest.raises(DataError, match=r"not empty; .*pass --force"):
        prepare_smmnist(out, num_sequences=2, seq_len=4, image_size=16, mnist_path=mnist_npz)
    prepare_smmnist(out, num_sequences=3, seq_len=4, image_size=16, mnist_path=mnist_npz,
                    force=True)
    assert verify(out)["counts"] == {"test": 3}


# ---- windows over prepared arrays ------------------------------------------------------------


def _ramp_dataset(root, lengths, layout="clips"):
    """A prepared folder whose frame values equal their index inside their video."""
    root.mkdir()
    if layout == "clips":
        arr = np.broadcast_to(np.arange(lengths[0], dtype=np.uint8)[None, :, None, None, None],
                              (len(lengths), lengths[0], 4, 4, 1))
        np.save(root / "train.npy", np.ascontiguousarray(arr))
        info = {"file": "train.npy", "layout": "clips", "count": len(lengths),
                "shape": list(arr.shape)}
        files = ["train.npy"]
    else:
        frames = np.concatenate([np.arange(n, dtype=np.uint8) for n in lengths])
        np.save(root / "train.npy", np.ascontiguousarray(
            np.broadcast_to(frames[:, None, None, None], (len(frames), 4, 4, 1))))
        np.save(root / "train_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]))
        info = {"file": "train.npy", "offsets": "train_offsets.npy", "layout": "videos",
                "count": len(lengths)}
        files = ["train.npy", "train_offsets.npy"]
    write_manifest(root, dataset="videos", source="test", parameters={"image_size": 4,
                   "channels": 1}, splits={"train": info, "test": info}, files=files,
                   prepare_command="none")
    return info


def test_train_windows_cover_every_start_uniformly(tmp_path):
    info = _ramp_dataset(tmp_path / "r", [6])
    ds = PreparedVideoDataset(tmp_path / "r", info, 3, train=True, seed=1, length=2000)
    starts = np.array([int(round(float(ds[i][0, 0, 0, 0]) * 255)) for i in range(2000)])
    counts = np.bincount(starts, minlength=6)
    assert counts[4:].sum() == 0 and (counts[:4] > 0).all()  # len - T + 1 = 4 valid starts
    chi2 = ((counts[:4] - 500) ** 2 / 500).sum()
    assert chi2 < 16.3  # chi-square, 3 d.o.f., p = 0.001
    for i in range(5):  # consecutive frames of one window
        np.testing.assert_allclose(ds[i][:, 0, 0, 0] * 255 - ds[i][0, 0, 0, 0] * 255,
                                   [0, 1, 2], atol=1e-4)


def test_video_layout_windows_stay_inside_one_video(tmp_path):
    lengths = [5, 2, 9]
    info = _ramp_dataset(tmp_path / "v", lengths, layout="videos")
    cfg = DataConfig(name="videos", root=str(tmp_path / "v"), image_size=4, channels=1,
                     n_ctx=2, n_pred=2, train_length=300)
    train = build_dataset(cfg, "train")
    with pytest.warns(UserWarning, match="1 of 3 videos"):
        test = build_dataset(cfg, "test")
    assert len(test) == 2 and len(train) == 300
    for i in range(300):
        vals = (train[i][:, 0, 0, 0] * 255).round().long()
        assert torch.equal(vals - vals[0], torch.arange(4))  # consecutive, same video
        video = [0, 2][i % 2]
        assert 0 <= int(vals[0]) <= lengths[video] - 4
    assert [int(test[i][0, 0, 0, 0] * 255) for i in range(2)] == [0, 0]
    assert info["layout"] == "videos"


# ---- manifest verification -------------------------------------------------------------------


def test_verify_detects_corrupt_truncated_and_missing_files(tmp_path, mnist_npz):
    out = prepare_smmnist(tmp_path / "sm", num_sequences=3, seq_len=5, image_size=16,
                          mnist_path=mnist_npz)
    assert set(verify(out)["files"]) == {"test.npy", "digits.npz"}
    data = bytearray((out / "test.npy").read_bytes())
    data[-10] ^= 0xFF
    (out / "test.npy").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"test\.npy' is corrupt"):
        verify(out)
    (out / "test.npy").write_bytes(bytes(data[:-100]))
    with pytest.raises(DataError, match=r"test\.npy' is truncated"):
        verify(out)
    cfg = sm_cfg(str(out), image_size=16, n_pred=2)
    with pytest.raises(DataError, match=r"test\.npy' is truncated"):
        build_dataset(cfg, "test")  # opening a split checks sizes too
    (out / "digits.npz").unlink()
    with pytest.raises(DataError, match=r"digits\.npz' is missing"):
        build_dataset(cfg, "train")


def test_array_writer_never_leaves_a_partial_file_under_the_final_name(tmp_path):
    w = ArrayWriter(tmp_path / "a.npy", (2, 3))
    w[0] = np.arange(3)
    assert not (tmp_path / "a.npy").exists()
    w[1] = np.arange(3, 6)
    w.close()
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(6).reshape(2, 3))


# ---- MNIST sources ---------------------------------------------------------------------------


def _write_idx(path, images, gz):
    raw = struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_mnist_sources(tmp_path, monkeypatch):
    train, test = fake_digits(6, 4), fake_digits(3, 5)
    idx = tmp_path / "idx"
    idx.mkdir()
    _write_idx(idx / "train-images-idx3-ubyte.gz", train, gz=True)
    _write_idx(idx / "t10k-images-idx3-ubyte", test, gz=False)
    got = load_mnist(idx)
    np.testing.assert_array_equal(got["train"], train)
    np.testing.assert_array_equal(got["test"], test)

    # the mnist.pkl.gz layout: ((train, y), (valid, y), (test, y)) of 784 floats = pixel / 256
    rows = [(x.reshape(len(x), 784).astype(np.float32) / 256, np.zeros(len(x), np.int64))
            for x in (train[:4], train[4:], test)]
    pkl = tmp_path / "mnist.pkl.gz"
    pkl.write_bytes(gzip.compress(pickle.dumps(tuple(rows))))
    got = load_mnist(pkl)
    np.testing.assert_array_equal(got["train"], train)
    np.testing.assert_array_equal(got["test"], test)

    evil = tmp_path / "evil.pkl.gz"
    evil.write_bytes(gzip.compress(pickle.dumps(print)))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_mnist(evil)

    # the cache is used when no path is given; an empty cache without remote access fails
    monkeypatch.setenv("HVRNN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"no MNIST digits in the cache .*cache/mnist"):
        load_mnist(allow_remote=False)
    (tmp_path / "cache" / "mnist").mkdir(parents=True)
    np.savez(tmp_path / "cache" / "mnist" / "mnist.npz", train=train, test=test)
    np.testing.assert_array_equal(load_mnist(allow_remote=False)["test"], test)
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "missing.npz")


# ---- command line ----------------------------------------------------------------------------


def _parser():
    parser = argparse.ArgumentParser(prog="hvrnn")
    add_data_parser(parser.add_subparsers(dest="command"))
    return parser


def test_cli_prepares_verifies_and_refuses_to_overwrite(tmp_path, mnist_npz, capsys):
    parser = _parser()
    out = tmp_path / "cli"
    argv = ["data", "smmnist", "--out", str(out), "--size", "16", "--num-sequences", "3",
            "--seq-len", "6", "--mnist", mnist_npz]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    assert np.load(out / "test.npy").shape == (3, 6, 16, 16, 1)
    args = parser.parse_args(["data", "verify", str(out)])
    assert args.func(args) == 0
    assert "files match" in capsys.readouterr().out
    args = parser.parse_args(argv)
    with pytest.raises(DataError, match="--force"):
        args.func(args)
    args = parser.parse_args(argv + ["--force", "--seed", "1"])
    assert args.func(args) == 0
    for cmd in (["data"], ["data", "smmnist"], ["data", "bair"], ["data", "cityscapes"],
                ["data", "kth"], ["data", "videos"], ["data", "verify"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([*cmd, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert len(text.split("\n\n")[1]) > 60  # a description paragraph, not just usage


def test_data_config_round_trip_with_replace(smmnist_root):
    cfg = dataclasses.replace(sm_cfg(smmnist_root), n_ctx=5, n_pred=15)
    assert build_dataset(cfg, "test")[0].shape == (20, 1, 32, 32)
