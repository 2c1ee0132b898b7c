"""PNG and video folders of predictions converted to the predictions .npz, and their errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hvrnn.errors import UserError
from hvrnn.evaluation.prediction_files import convert_predictions, predictions_layout
from hvrnn.evaluation.protocols import Protocol


def small_protocol(**changes) -> Protocol:
    """A 16x16 grey protocol, 2 context and 10 predicted frames, with ``changes``."""
    return dataclasses.replace(Protocol("test-c2-p10", "smmnist", 16, 1, 2, 10, 2), **changes)


def make_predictions(s: int = 3, n: int = 2, proto: Protocol | None = None, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 samples (S, N, T, H, W, C) and context (S, K, H, W, C)."""
    proto = proto or small_protocol()
    rng = np.random.default_rng(seed)
    size, c = proto.image_size, proto.channels
    samples = rng.integers(0, 256, (s, n, proto.n_pred, size, size, c), dtype=np.uint8)
    context = rng.integers(0, 256, (s, proto.n_ctx, size, size, c), dtype=np.uint8)
    return samples, context


def _png(path: Path, frame: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(path)


def write_png_folder(root: Path, samples: np.ndarray, context: np.ndarray | None,
                     truth: np.ndarray | None = None) -> Path:
    """The layout of improved_vrnn's sample.py: <seq>/<sample>/<frame>.png, ctx/, gt/."""
    for i in range(samples.shape[0]):
        seq = root / f"{i:04d}"
        for j in range(samples.shape[1]):
            for t in range(samples.shape[2]):
                _png(seq / f"{j:04d}" / f"{t:04d}.png", samples[i, j, t])
        if context is not None:
            for t in range(context.shape[1]):
                _png(seq / "ctx" / f"{t:04d}.png", context[i, t])
        if truth is not None:
            for t in range(truth.shape[1]):
                _png(seq / "gt" / f"{t:04d}.png", truth[i, t])
    return root


def write_video(path: Path, frames: np.ndarray) -> None:
    """(T, H, W, C) uint8 as lossless H.264 RGB (.mp4) or GIF; grey is repeated to RGB."""
    rgb = np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        import imageio.v3 as iio

        iio.imwrite(path, rgb, duration=100, loop=0)
        return
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=10)
        stream.width, stream.height = rgb.shape[2], rgb.shape[1]
        stream.pix_fmt = "rgb24"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for f in rgb:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())


def write_video_folder(root: Path, samples: np.ndarray, context: np.ndarray | None,
                       ext: str = ".mp4") -> Path:
    """One file per sample, <sequence>_<sample><ext>; context frames first when given."""
    for i in range(samples.shape[0]):
        for j in range(samples.shape[1]):
            clip = samples[i, j] if context is None else np.concatenate([context[i],
                                                                         samples[i, j]])
            write_video(root / f"{i:04d}_{j:04d}{ext}", clip)
    return root


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("channels", [1, 3])
def test_png_folder_round_trip(tmp_path: Path, channels: int) -> None:
    proto = small_protocol(channels=channels)
    samples, context = make_predictions(proto=proto)
    root = write_png_folder(tmp_path / "samples", samples, context, truth=samples[:, 0])
    assert predictions_layout(root) == "png"
    info = convert_predictions(root, tmp_path / "p.npz", proto, n_sequences=3)
    assert info == {"layout": "png", "sequences": 3, "samples": 2, "context": True,
                    "file": str(tmp_path / "p.npz")}
    got = _load(tmp_path / "p.npz")
    np.testing.assert_array_equal(got["samples"], samples)
    np.testing.assert_array_equal(got["context"], context)
    with pytest.raises(UserError, match="already exists"):
        convert_predictions(root, tmp_path / "p.npz", proto)


@pytest.mark.parametrize("ext, with_context", [(".mp4", True), (".gif", False)])
def test_video_folder_round_trip(tmp_path: Path, ext: str, with_context: bool) -> None:
    samples, context = make_predictions()
    root = write_video_folder(tmp_path / "videos", samples, context if with_context else None,
                              ext)
    (root / "README.txt").write_text("files other than videos are ignored")
    assert predictions_layout(root) == "video"
    info = convert_predictions(root, tmp_path / "p.npz", small_protocol())
    assert (info["sequences"], info["samples"], info["context"]) == (3, 2, with_context)
    got = _load(tmp_path / "p.npz")
    np.testing.assert_array_equal(got["samples"], samples)
    if with_context:
        np.testing.assert_array_equal(got["context"], context)
    else:
        assert "context" not in got


def test_gif_with_merged_identical_frames_is_restored(tmp_path: Path) -> None:
    samples, _ = make_predictions(s=1, n=1)
    samples[0, 0, 5:] = samples[0, 0, 4]  # a frozen prediction: Pillow merges these frames
    samples[0, 0, 1] = samples[0, 0, 0]
    write_video(tmp_path / "v" / "0_0.gif", samples[0, 0])
    from PIL import Image as PILImage

    with PILImage.open(tmp_path / "v" / "0_0.gif") as im:
        assert im.n_frames < 10  # the writer did merge them
    convert_predictions(tmp_path / "v", tmp_path / "p.npz", small_protocol())
    np.testing.assert_array_equal(_load(tmp_path / "p.npz")["samples"], samples)


def _one_line(exc: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, msg


def test_png_folder_mismatches_name_the_first_offending_file(tmp_path: Path) -> None:
    proto = small_protocol()
    samples, context = make_predictions()
    out = tmp_path / "p.npz"

    root = write_png_folder(tmp_path / "count", samples, context)
    with pytest.raises(UserError) as exc:
        convert_predictions(root, out, proto, n_sequences=4)
    _one_line(exc, "sequence 3 is missing", str(root))

    root = write_png_folder(tmp_path / "size", samples, context)
    _png(root / "0001" / "0001" / "0003.png", np.zeros((17, 16, 1), np.uint8))
    with pytest.raises(UserError) as exc:
        convert_predictions(root, out, proto)
    _one_line(exc, str(root / "0001" / "0001" / "0003.png"), "16x17", "16x16")

    root = write_png_folder(tmp_path / "channels", samples, context)
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 0] = 200
    _png(root / "0002" / "0000" / "0000.png", colour)
    with pytest.raises(UserError) as exc:
        convert_predictions(root, out, proto)
    _one_line(exc, str(root / "0002" / "0000" / "0000.png"), "colour", "grey")
    with pytest.raises(UserError) as exc:
        convert_predictions(write_png_folder(tmp_path / "grey", samples, None), out,
                            small_protocol(channels=3))
    _one_line(exc, str(tmp_path / "grey" / "0000" / "0000" / "0000.png"), "1 channel(s)")

    root = write_png_folder(tmp_path / "frames", samples, context)
    (root / "0001" / "0000" / "0009.png").unlink()
    with pytest.raises(UserError) as exc:
        convert_predictions(root, out, proto)
    _one_line(exc, str(root / "0001" / "0000"), "holds 9 frames", "10")

    root = write_png_folder(tmp_path / "samples", samples, context)
    for f in (root / "0002" / "0001").iterdir():
        f.unlink()
    (root / "0002" / "0001").rmdir()
    with pytest.raises(UserError) as exc:
        convert_predictions(root, out, proto)
    _one_line(exc, "sequence 2 has 1 samples, sequence 0 has 2")

    root = write_png_folder(tmp_path / "stray", samples, context)
    (root / "0001" / "notes.txt").write_text("x")
    with pytest.raises(UserError) as exc:
        convert_predictions(root, out, proto)
    _one_line(exc, str(root / "0001" / "notes.txt"))
    assert not out.exists() and not (tmp_path / "p.npz.part").exists()


def test_video_folder_mismatches_name_the_first_offending_file(tmp_path: Path) -> None:
    proto = small_protocol()
    samples, context = make_predictions()
    out = tmp_path / "p.npz"

    root = write_video_folder(tmp_path / "frames", samples, None, ".gif")
    write_video(root / "0001_0001.gif", samples[1, 1, :7])
    with pytest.raises(UserError) as exc:
        convert_predictions(root, out, proto)
    _one_line(exc, str(root / "0001_0001.gif"), "holds 7 frames", "10 predicted")

    root = write_video_folder(tmp_path / "name", samples, None, ".gif")
    write_video(root / "seq1-sample0.gif", samples[1, 0])
    with pytest.raises(UserError) as exc:
        convert_predictions(root, out, proto)
    _one_line(exc, str(root / "seq1-sample0.gif"), "<sequence>_<sample>")

    root = write_video_folder(tmp_path / "count", samples, None, ".gif")
    (root / "0001_0000.gif").unlink()
    with pytest.raises(UserError) as exc:
        convert_predictions(root, out, proto)
    _one_line(exc, "sample of sequence 1 0 is missing")

    root = write_video_folder(tmp_path / "size", samples, None, ".gif")
    write_video(root / "0000_0001.gif", samples[0, 1, :, :8, :8])
    with pytest.raises(UserError) as exc:
        convert_predictions(root, out, proto)
    _one_line(exc, str(root / "0000_0001.gif"), "8x8")

    root = write_video_folder(tmp_path / "mixed", samples, context, ".gif")
    write_video(root / "0002_0001.gif", samples[2, 1])
    with pytest.raises(UserError) as exc:
        convert_predictions(root, out, proto)
    _one_line(exc, str(root / "0002_0001.gif"), "include the context")
    with pytest.raises(UserError, match="neither a PNG folder"):
        predictions_layout(tmp_path / "frames" / "..")
