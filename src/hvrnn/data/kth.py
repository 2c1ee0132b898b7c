"""KTH human actions: grey 64 x 64 videos, persons 1-16 for training and 17-25 for testing.

Source: a folder holding the original AVI files (``person<PP>_<action>_d<S>_uncomp.avi``, any
depth; unzip the six action archives into it). The six classes are boxing, handclapping,
handwaving, jogging, running and walking. Each video is decoded with PyAV as grey levels and
resized, whole frame, to ``size x size`` (the aspect ratio changes from 4:3, as in the usual
``ffmpeg -s 64x64`` conversion; we use bilinear with antialiasing where ffmpeg defaults to
bicubic). Whole videos are kept (the ``00sequences.txt`` sub-sequence boundaries are not used),
so training windows are drawn anywhere inside one video.

Output (``videos`` layout): ``train.npy`` / ``test.npy`` uint8 ``(F, S, S, 1)``,
``<split>_offsets.npy``, ``<split>_videos.json`` (name, person, action, scenario, frames) and
``manifest.json``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from hvrnn.data.base import register_prepared
from hvrnn.data.manifest import begin_preparation, command_args
from hvrnn.data.transforms import natural_key, resize_frames
from hvrnn.data.videos import read_video, write_video_splits
from hvrnn.errors import DataError, require

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
TRAIN_PERSONS = range(1, 17)
TEST_PERSONS = range(17, 26)
_NAME_RE = re.compile(r"^person(\d+)_([a-z]+)_d(\d+)(?:_uncomp)?$")


def parse_kth_name(stem: str) -> dict | None:
    """``person01_boxing_d1_uncomp`` -> {person: 1, action: boxing, scenario: 1}, else None."""
    m = _NAME_RE.match(stem)
    if not m or m.group(2) not in ACTIONS:
        return None
    return {"person": int(m.group(1)), "action": m.group(2), "scenario": int(m.group(3))}


def prepare_kth(src: str | Path, out: str | Path, size: int = 64, force: bool = False) -> Path:
    """Convert the KTH AVIs into grey ``size x size`` train/test arrays plus a manifest.

    Args:
        src: folder with the ``person*_<action>_d*_uncomp.avi`` files (searched recursively).
        out: output folder (must be empty or absent unless ``force``).
        size: output side S.
        force: replace the files of an existing preparation.

    Returns:
        The output folder.
    """
    args = command_args("kth", src, size=size)
    require("av", purpose="decoding the KTH videos")
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"KTH source '{src}' is not a folder (unzip the six action archives "
                        f"into one folder)")
    found = {}
    for p in src.rglob("*.avi"):
        info = parse_kth_name(p.stem)
        if info is not None:
            found[p.stem] = (p, info)
    if not found:
        raise DataError(f"KTH source '{src}' holds no person<PP>_<action>_d<S>_uncomp.avi files")
    names = sorted(found, key=natural_key)
    foreign = [n for n in names if found[n][1]["person"] not in (*TRAIN_PERSONS, *TEST_PERSONS)]
    if len(foreign) == len(names):
        raise DataError(f"KTH source '{src}' holds no video of persons {TRAIN_PERSONS.start}-"
                        f"{TEST_PERSONS.stop - 1} (found '{found[names[0]][0]}'); KTH numbers "
                        "its 25 persons person01 to person25")
    if foreign:
        warnings.warn(f"KTH source '{src}': {len(foreign)} video(s) of persons outside "
                      f"{TRAIN_PERSONS.start}-{TEST_PERSONS.stop - 1} are left out (the first: "
                      f"'{found[foreign[0]][0]}')", stacklevel=2)
    assignment = {
        "train": [n for n in names if found[n][1]["person"] in TRAIN_PERSONS],
        "test": [n for n in names if found[n][1]["person"] in TEST_PERSONS],
    }
    videos = [(n, lambda p=found[n][0]: read_video(p, fmt="gray")) for n in names]
    with begin_preparation(out, force, args) as prep:
        splits, files = write_video_splits(
            prep, videos, assignment, size, 1,
            lambda frames: resize_frames(frames, size, antialias=True),
            meta=lambda n: found[n][1], desc="kth")
        params = {"image_size": size, "channels": 1, "actions": list(ACTIONS),
                  "train_persons": [TRAIN_PERSONS.start, TRAIN_PERSONS.stop - 1],
                  "test_persons": [TEST_PERSONS.start, TEST_PERSONS.stop - 1],
                  "resize": "whole frame, bilinear with antialiasing"}
        prep.write_manifest(dataset="kth", source=str(src), parameters=params, splits=splits,
                            files=files)
    return prep.path


# Train: random windows inside one video; test: the windows from frame 0.
register_prepared("kth", "hvrnn data kth SRC --out {root} --size {size}",
                  {"train": "train", "test": "test"})
