"""Round trips of the dataset converters: BAIR TFRecords, Cityscapes trees, KTH AVIs, videos."""

from __future__ import annotations

import json
import tarfile
import zipfile

import av
import numpy as np
import pytest
import torch
from PIL import Image

from hvrnn.config import DataConfig
from hvrnn.data import (
    build_dataset,
    prepare_bair,
    prepare_cityscapes,
    prepare_kth,
    prepare_videos,
    verify,
)
from hvrnn.data.bair import parse_example
from hvrnn.errors import DataError

tfrecord = pytest.importorskip("tfrecord")


# ---- BAIR ------------------------------------------------------------------------------------


def _write_bair_file(path, clips, rng):
    """Records in the BAIR layout, with the distractor features the real files carry."""
    writer = tfrecord.TFRecordWriter(str(path))
    for clip in clips:
        datum = {}
        for i in range(30):
            datum[f"{i}/image_aux1/encoded"] = (clip[i].tobytes(), "byte")
            datum[f"{i}/image_main/encoded"] = (rng.bytes(100), "byte")
            datum[f"{i}/action"] = (rng.normal(size=4).tolist(), "float")
            datum[f"{i}/endeffector_pos"] = (rng.normal(size=3).tolist(), "float")
        writer.write(datum)
    writer.close()


@pytest.fixture(scope="module")
def bair_source(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("bair_src")
    base = root / "softmotion30_44k"
    clips = {}
    # natural order: traj_0_to_1 < traj_2_to_4 < traj_10_to_11 (lexical order would differ)
    layout = {"train": [("traj_10_to_11", 2), ("traj_0_to_1", 2), ("traj_2_to_4", 3)],
              "test": [("traj_0_to_1", 2)]}
    for split, files in layout.items():
        (base / split).mkdir(parents=True)
        for name, n in files:
            data = rng.integers(0, 256, size=(n, 30, 64, 64, 3), dtype=np.uint8)
            _write_bair_file(base / split / f"{name}.tfrecords", data, rng)
            clips[(split, name)] = data
    expected = {
        "train": np.concatenate([clips[("train", n)] for n in
                                 ("traj_0_to_1", "traj_2_to_4", "traj_10_to_11")]),
        "test": clips[("test", "traj_0_to_1")],
    }
    tar = root / "bair_robot_pushing_dataset_v0.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(base, arcname="softmotion30_44k")
    return root, tar, expected


def test_parse_example_matches_the_protobuf_library():
    from tfrecord import example_pb2

    ex = example_pb2.Example()
    ex.features.feature["a/b"].bytes_list.value.extend([b"xyz", b""])
    ex.features.feature["f"].float_list.value.extend([1.5, 2.0])
    ex.features.feature["i"].int64_list.value.extend([-3, 1 << 40])
    ex.features.feature["big"].bytes_list.value.append(bytes(range(256)) * 50)
    parsed = parse_example(ex.SerializeToString())
    assert parsed == {"a/b": [b"xyz", b""], "big": [bytes(range(256)) * 50]}


@pytest.mark.parametrize("from_tar", [False, True])
def test_bair_round_trip(tmp_path, bair_source, from_tar):
    root, tar, expected = bair_source
    out = prepare_bair(tar if from_tar else root, tmp_path / "bair")
    manifest = verify(out)
    assert manifest["counts"] == {"train": 7, "test": 2}
    for split in ("train", "test"):
        stored = np.load(out / f"{split}.npy")
        assert stored.shape == expected[split].shape and stored.dtype == np.uint8
        np.testing.assert_array_equal(stored, expected[split])  # byte for byte, in order
    cfg = DataConfig(name="bair", root=str(out), image_size=64, channels=3, n_ctx=2, n_pred=28)
    test = build_dataset(cfg, "test")
    x = test[1]
    assert x.shape == (30, 3, 64, 64)
    torch.testing.assert_close(x, torch.from_numpy(expected["test"][1]).permute(0, 3, 1, 2) / 255,
                               rtol=0, atol=0)


def test_bair_detects_a_corrupt_record(tmp_path, bair_source):
    root, _, _ = bair_source
    src = tmp_path / "src" / "test"
    src.mkdir(parents=True)
    clean = (root / "softmotion30_44k" / "test" / "traj_0_to_1.tfrecords").read_bytes()
    data = bytearray(clean)
    data[5000] ^= 0x01
    (src / "traj_0_to_1.tfrecords").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"traj_0_to_1\.tfrecords'?: record 0 has a bad data"):
        prepare_bair(tmp_path / "src", tmp_path / "out")
    (src / "traj_0_to_1.tfrecords").write_bytes(clean[:-10])
    with pytest.raises(DataError, match="record 1 is truncated"):
        prepare_bair(tmp_path / "src", tmp_path / "out2")
    with pytest.raises(DataError, match="does not exist"):
        prepare_bair(tmp_path / "nothing", tmp_path / "out3")


# ---- Cityscapes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cityscapes_source(tmp_path_factory):
    """A scaled-down leftImg8bit_sequence tree: 64 x 32 frames (2:1 like 2048 x 1024)."""
    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("cs") / "leftImg8bit_sequence"
    groups = {("train", "aachen", 0): 30, ("train", "aachen", 1): 29,
              ("train", "bochum", 7): 30, ("val", "frankfurt", 3): 30}
    frames = {}
    for (split, city, seq), n in groups.items():
        folder = root / split / city
        folder.mkdir(parents=True, exist_ok=True)
        clip = rng.integers(0, 256, size=(n, 32, 64, 3), dtype=np.uint8)
        for k in range(n):
            frame_no = 19 - 10 + k * 1  # snippets are numbered around frame 19
            Image.fromarray(clip[k]).save(folder / f"{city}_{seq:06d}_{frame_no:06d}"
                                                   f"_leftImg8bit.png")
        frames[(split, city, seq)] = clip
    zpath = root.parent / "leftImg8bit_sequence_trainvaltest.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(root.rglob("*.png")):
            zf.write(p, p.relative_to(root.parent).as_posix())
    return root, zpath, frames


def _reference_resize(clip):
    """Centre 32 x 32 crop, then bilinear 4x down-scaling without antialiasing: output pixel j
    samples source coordinate 4 j + 1.5, the mean of source pixels 4 j + 1 and 4 j + 2."""
    sq = clip[:, :, 16:48].astype(np.float64)
    rows = (sq[:, 1::4] + sq[:, 2::4]) / 2
    out = (rows[:, :, 1::4] + rows[:, :, 2::4]) / 2
    return np.round(out).astype(np.uint8)


@pytest.mark.parametrize("from_zip", [False, True])
def test_cityscapes_round_trip(tmp_path, cityscapes_source, from_zip):
    root, zpath, frames = cityscapes_source
    out = prepare_cityscapes(zpath if from_zip else root, tmp_path / "cs", size=8,
                             workers=2 if from_zip else 0)  # the zip run uses worker processes
    manifest = verify(out)
    assert manifest["counts"] == {"train": 2, "val": 1}  # the 29-frame snippet is dropped
    assert manifest["parameters"]["dropped_snippets"] == {"train": 1, "val": 0}
    assert manifest["splits"]["train"]["snippets"] == ["aachen_000000", "bochum_000007"]
    train = np.load(out / "train.npy")
    assert train.shape == (2, 30, 8, 8, 3)
    np.testing.assert_array_equal(train[0], _reference_resize(frames[("train", "aachen", 0)]))
    np.testing.assert_array_equal(train[1], _reference_resize(frames[("train", "bochum", 7)]))
    cfg = DataConfig(name="cityscapes", root=str(out), image_size=8, channels=3, n_ctx=2,
                     n_pred=10)
    test = build_dataset(cfg, "test")  # the official val split (docs/design.md section 8, D7)
    assert len(test) == 1
    ref = _reference_resize(frames[("val", "frankfurt", 3)])[:12]
    np.testing.assert_array_equal((test[0].permute(0, 2, 3, 1) * 255).round().byte().numpy(),
                                  ref)
    assert len(build_dataset(cfg, "train")) == 45_000


# ---- KTH and custom videos --------------------------------------------------------------------


def _write_video(path, frames, codec, pix_fmt, fmt):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format=fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _smooth_clip(rng, t, h, w, c):
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 / w + 40 * k + 20 * ch) % 256 for k in range(t)
                     for ch in range(c)]).reshape(t, c, h, w)
    return np.clip(base.transpose(0, 2, 3, 1) + rng.integers(0, 3, size=(t, h, w, c)), 0,
                   255).astype(np.uint8)


def test_kth_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    src = tmp_path / "kth" / "boxing"
    src.mkdir(parents=True)
    videos = {"person01_boxing_d1_uncomp": 12, "person16_walking_d4_uncomp": 9,
              "person17_running_d2_uncomp": 11, "person25_handwaving_d3_uncomp": 8}
    originals = {}
    for name, t in videos.items():
        frames = rng.integers(0, 256, size=(t, 30, 40), dtype=np.uint8)  # 4:3 like 160 x 120
        _write_video(src / f"{name}.avi", frames, "ffv1", "gray", "gray")  # lossless
        originals[name] = frames
    (src / "person02_dancing_d1_uncomp.avi").write_bytes(b"not a KTH action")
    out = prepare_kth(tmp_path / "kth", tmp_path / "out", size=16)
    manifest = verify(out)
    assert manifest["counts"] == {"train": 2, "test": 2}
    listing = json.loads((out / "test_videos.json").read_text())
    assert [v["person"] for v in listing] == [17, 25]
    assert [v["action"] for v in listing] == ["running", "handwaving"]
    stored = np.load(out / "test.npy")
    offsets = np.load(out / "test_offsets.npy")
    np.testing.assert_array_equal(offsets, [0, 11, 19])
    assert stored.shape == (19, 16, 16, 1)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(originals["person17_running_d2_uncomp"]).float()[:, None],
        size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    np.testing.assert_array_equal(stored[:11, ..., 0], ref[:, 0].round().byte().numpy())
    cfg = DataConfig(name="kth", root=str(out), image_size=16, channels=1, n_ctx=4, n_pred=5)
    train = build_dataset(cfg, "train")
    assert len(train) == 2 and train[0].shape == (9, 1, 16, 16)


def test_videos_from_frame_folders_files_and_gif(tmp_path):
    rng = np.random.default_rng(3)
    src = tmp_path / "src"
    src.mkdir()
    folders = {}
    for name, t in (("walk", 6), ("jump", 5)):
        (src / name).mkdir()
        clip = rng.integers(0, 256, size=(t, 20, 20, 3), dtype=np.uint8)
        for k in range(t):  # natural order: 2 before 10
            Image.fromarray(clip[k]).save(src / name / f"f{k * 4}.png")
        folders[name] = clip
    smooth = _smooth_clip(rng, 7, 32, 48, 3)
    _write_video(src / "clip.mp4", smooth, "libx264", "yuv420p", "rgb24")
    _write_video(src / "anim.gif", smooth[:4, :24, :24], "gif", "rgb8", "rgb24")
    out = prepare_videos(src, tmp_path / "out", size=20, channels=3, test_list=["jump"])
    verify(out)
    names = {s: [v["name"] for v in json.loads((out / f"{s}_videos.json").read_text())]
             for s in ("train", "test")}
    assert names == {"train": ["anim", "clip", "walk"], "test": ["jump"]}
    offsets = np.load(out / "train_offsets.npy")
    np.testing.assert_array_equal(np.diff(offsets), [4, 7, 6])
    train = np.load(out / "train.npy")
    np.testing.assert_array_equal(train[11:17], folders["walk"])  # lossless path is exact
    np.testing.assert_array_equal(np.load(out / "test.npy"), folders["jump"])
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(smooth[:, :, 8:40]).permute(0, 3, 1, 2).float(), size=(20, 20),
        mode="bilinear", align_corners=False, antialias=True).permute(0, 2, 3, 1).numpy()
    assert np.abs(train[4:11].astype(float) - ref).mean() < 8  # lossy H.264
    with pytest.raises(DataError, match="'nope', which is not a video"):
        prepare_videos(src, tmp_path / "bad", test_list=["nope"])


def test_videos_from_npy_grey_and_fraction_split(tmp_path):
    rng = np.random.default_rng(4)
    arr = rng.integers(0, 256, size=(10, 6, 12, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "clips.npy", arr)
    out = prepare_videos(tmp_path / "clips.npy", tmp_path / "out", size=12, channels=1,
                         test_fraction=0.3, seed=5)
    manifest = verify(out)
    assert manifest["counts"] == {"train": 7, "test": 3}
    test_names = [v["name"] for v in json.loads((out / "test_videos.json").read_text())]
    first = int(test_names[0])
    grey = np.stack([np.asarray(Image.fromarray(f).convert("L")) for f in arr[first, :, :, 2:14]])
    got = np.load(out / "test.npy")[:6, ..., 0]
    assert np.abs(got.astype(int) - grey.astype(int)).max() <= 1  # BT.601 luma, as PIL "L"
    again = prepare_videos(tmp_path / "clips.npy", tmp_path / "out2", size=12, channels=1,
                           test_fraction=0.3, seed=5)
    assert verify(again)["files"] == manifest["files"]  # the seeded split is reproducible
    cfg = DataConfig(name="videos", root=str(out), image_size=12, channels=1, n_ctx=2, n_pred=3)
    ds = build_dataset(cfg, "test")
    assert len(ds) == 3 and ds[2].shape == (5, 1, 12, 12)
    with pytest.raises(DataError, match="channels=1, but data.channels=3"):
        build_dataset(DataConfig(name="videos", root=str(out), image_size=12, channels=3), "test")
    bad = tmp_path / "bad.npy"
    np.save(bad, arr.astype(np.float32))
    with pytest.raises(DataError, match="expected uint8"):
        prepare_videos(bad, tmp_path / "out3")
