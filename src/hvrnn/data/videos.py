"""Your own videos as a dataset (``data.name = videos``); see docs/data.md for the recipe.

Accepted sources:

- a folder of video files (``.mp4 .avi .mov .mkv .webm .gif``; decoded with PyAV), one video
  each;
- a folder of frame folders (``.png .jpg .jpeg .bmp``; frames in natural filename order), one
  video per sub-folder (both kinds may be mixed);
- an ``.npy`` array, uint8 ``(N, T, H, W, C)`` with C in {1, 3}.

Each video is optionally cropped to its centred square, resized to ``size x size`` (bilinear with
antialiasing) and converted to 1 (BT.601 luma) or 3 channels. Videos are split into train and test
by a list of test names or by a fraction drawn with a seeded permutation. Output (``videos``
layout): ``<split>.npy`` uint8 ``(F, S, S, C)``, ``<split>_offsets.npy`` int64 ``(N + 1,)``,
``<split>_videos.json`` (names and lengths) and ``manifest.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hvrnn.data.base import register_prepared
from hvrnn.data.manifest import FrameStreamWriter, Preparation, begin_preparation, command_args
from hvrnn.data.transforms import center_square, convert_channels, natural_key, resize_frames
from hvrnn.errors import DataError, require
from hvrnn.io.files import read_text, reading
from hvrnn.log import progress

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def read_video(path: str | Path, fmt: str = "rgb24") -> np.ndarray:
    """Decode every frame of a video file with PyAV.

    Args:
        path: the video file.
        fmt: PyAV pixel format, ``"rgb24"`` or ``"gray"``.

    Returns:
        uint8 ``(T, H, W, C)`` (C = 3 for rgb24, 1 for gray).
    """
    import av

    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format=fmt) for f in container.decode(video=0)]
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise DataError(f"cannot decode video '{path}': {exc}") from None
    if not frames:
        raise DataError(f"video '{path}' has no frames")
    video = np.stack(frames)
    return video[..., None] if video.ndim == 3 else video


def read_frame_folder(path: str | Path) -> np.ndarray:
    """Frames of a folder of images, in natural filename order. Returns uint8 ``(T, H, W, 3)``."""
    from hvrnn.io.frames import read_image

    path = Path(path)
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise DataError(f"frame folder '{path}' holds no {'/'.join(IMAGE_EXTENSIONS)} images")
    frames = [read_image(f, str(f), DataError) for f in files]
    if len({fr.shape for fr in frames}) != 1:
        raise DataError(f"images in '{path}' differ in size")
    return np.stack(frames)


def list_videos(src: str | Path) -> list[tuple[str, Callable[[], np.ndarray]]]:
    """(name, loader) of every video in ``src`` (see the module docstring), sorted by name."""
    src = Path(src)
    if src.is_file() and src.suffix == ".npy":
        with reading(src, "video array", DataError):
            arr = np.load(src, mmap_mode="r", allow_pickle=False)
        if arr.dtype != np.uint8 or arr.ndim != 5 or arr.shape[-1] not in (1, 3) or \
                0 in arr.shape:
            raise DataError(f"'{src}' holds {arr.dtype} {arr.shape}; expected uint8 "
                            f"(N, T, H, W, C) with N, T, H, W >= 1 and C = 1 or 3")
        width = max(5, len(str(len(arr))))
        return [(f"{i:0{width}d}", lambda i=i: np.asarray(arr[i])) for i in range(len(arr))]
    if not src.is_dir():
        raise DataError(f"video source '{src}' is neither a folder nor an .npy array")
    items: list[tuple[str, Callable[[], np.ndarray]]] = []
    for p in src.iterdir():
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS:
            items.append((p.stem, lambda p=p: read_video(p)))
        elif p.is_dir() and any(q.suffix.lower() in IMAGE_EXTENSIONS for q in p.iterdir()):
            items.append((p.name, lambda p=p: read_frame_folder(p)))
    if any(p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS for p in src.iterdir()):
        require("av", purpose="decoding video files")
    if not items:
        raise DataError(f"'{src}' holds no video files ({' '.join(VIDEO_EXTENSIONS)}) and no "
                        f"folders of frames")
    names = [n for n, _ in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"'{src}' holds several videos named {dup[0]!r} (names must be unique "
                        f"without extension)")
    return sorted(items, key=lambda item: natural_key(item[0]))


def process_frames(frames: np.ndarray, size: int, channels: int, crop: bool) -> np.ndarray:
    """Crop (optional), resize with antialiasing and convert channels: ``(T, S, S, channels)``."""
    if crop:
        frames = center_square(frames)
    if frames.shape[-1] == 4:
        frames = frames[..., :3]  # drop alpha
    return convert_channels(resize_frames(frames, size, antialias=True), channels)


def split_names(names: Sequence[str], test_fraction: float, test_list: Sequence[str] | str | None,
                seed: int) -> dict[str, list[str]]:
    """Assign names to train and test: a given list, or a seeded random fraction."""
    if test_list is not None:
        if isinstance(test_list, (str, Path)):
            path = Path(test_list)
            if not path.is_file():
                raise DataError(f"test list '{path}' does not exist")
            text = read_text(path, "test list", DataError)
            test_list = [ln.strip() for ln in text.splitlines() if ln.strip()]
        unknown = sorted(set(test_list) - set(names))
        if unknown:
            raise DataError(f"test list names {unknown[0]!r}, which is not a video of the source")
        test = set(test_list)
    else:
        if not 0.0 <= test_fraction < 1.0:
            raise DataError(f"test_fraction={test_fraction} is invalid: expected 0 <= f < 1")
        n_test = int(round(test_fraction * len(names)))
        if test_fraction > 0 and len(names) > 1:
            n_test = min(max(n_test, 1), len(names) - 1)
        perm = np.random.default_rng(seed).permutation(len(names))
        test = {names[i] for i in perm[:n_test]}
    return {"train": [n for n in names if n not in test], "test": [n for n in names if n in test]}


def write_video_splits(prep: Preparation, videos: Sequence[tuple[str, Callable[[], np.ndarray]]],
                       assignment: dict[str, list[str]], size: int, channels: int,
                       transform: Callable[[np.ndarray], np.ndarray],
                       meta: Callable[[str], dict] | None = None, desc: str = "videos"
                       ) -> tuple[dict, list[str]]:
    """Decode, transform and store each split in the ``videos`` layout.

    Returns:
        (manifest ``splits`` entries, data file names).
    """
    loaders = dict(videos)
    splits, files = {}, []
    for split, names in assignment.items():
        if not names:
            continue
        data, offsets = f"{split}.npy", f"{split}_offsets.npy"
        listing = []
        with FrameStreamWriter(prep.temp(data), (size, size, channels),
                               offsets_path=prep.temp(offsets)) as writer:
            for name in progress(names, desc=f"{desc} {split}"):
                frames = transform(loaders[name]())
                writer.add(frames)
                extra = meta(name) if meta else {}
                listing.append({"name": name, "frames": int(len(frames)), **extra})
            writer.close()
        prep.write_text(f"{split}_videos.json", json.dumps(listing, indent=2) + "\n")
        splits[split] = {"file": data, "offsets": offsets, "layout": "videos",
                         "count": len(names), "frames": int(sum(v["frames"] for v in listing)),
                         "index": f"{split}_videos.json"}
        files += [data, offsets, f"{split}_videos.json"]
    return splits, files


def prepare_videos(src: str | Path, out: str | Path, *, size: int = 64, channels: int = 3,
                   test_fraction: float = 0.1, test_list: Sequence[str] | str | None = None,
                   seed: int = 0, crop: bool = True, force: bool = False) -> Path:
    """Prepare a folder of videos, frame folders or an ``.npy`` array as a dataset.

    Args:
        src: the source (see the module docstring).
        out: output folder (must be empty or absent unless ``force``).
        size: output side S.
        channels: 1 (grey) or 3 (RGB).
        test_fraction: share of videos drawn for the test split (ignored with ``test_list``).
        test_list: names (file stems / folder names / zero-padded indices for ``.npy``) of the
            test videos, or a text file with one name per line.
        seed: seed of the random train/test assignment.
        crop: crop each video to its centred square before resizing (else the aspect ratio
            changes).
        force: replace the files of an existing preparation.

    Returns:
        The output folder.
    """
    if channels not in (1, 3):
        raise DataError(f"channels={channels} is invalid: expected 1 or 3")
    if size < 1:
        raise DataError(f"size={size} is invalid: expected >= 1")
    args = command_args("videos", src, size=size, channels=channels,
                        test_fraction=test_fraction if test_list is None else None,
                        test_list=test_list if isinstance(test_list, (str, Path)) else None,
                        seed=seed, no_crop=not crop)
    videos = list_videos(src)
    assignment = split_names([n for n, _ in videos], test_fraction, test_list, seed)
    with begin_preparation(out, force, args) as prep:
        splits, files = write_video_splits(
            prep, videos, assignment, size, channels,
            lambda frames: process_frames(frames, size, channels, crop))
        params = {"image_size": size, "channels": channels,
                  "crop": "centre square" if crop else None,
                  "resize": "bilinear with antialiasing", "test_fraction": test_fraction,
                  "test_list": test_list is not None, "seed": seed}
        prep.write_manifest(dataset="videos", source=str(src), parameters=params,
                            splits=splits, files=files)
    return prep.path


# Train: random windows inside one video (data.train_length items per epoch, default one per
# video); test: the windows from frame 0.
register_prepared("videos", "hvrnn data videos SRC --out {root} --size {size}",
                  {"train": "train", "test": "test"})
