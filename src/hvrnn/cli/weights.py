"""``hvrnn weights list``, ``hvrnn weights fetch NAME|GROUP ...``, ``hvrnn weights add NAME FILE``.

Neither the parser nor the handler loads torch: :mod:`hvrnn.weights` needs only the standard
library, so listing the cache is instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hvrnn.cli.common import FORMATTER


def run(args: argparse.Namespace) -> int:
    """List the cache, download files, or install a local copy; print what was installed."""
    from hvrnn import weights

    if args.action == "list":
        print(weights.format_list())
    elif args.action == "fetch":
        for entry in weights.resolve_names(args.names):
            path = weights.fetch(entry.name, force=args.force)
            print(f"{entry.name}: {path} (SHA-256 verified)")
    else:
        path = weights.add(args.name, args.file, force=args.force)
        print(f"{args.name}: {path} (SHA-256 verified)")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "weights", formatter_class=FORMATTER, help="list, download or install metric weights",
        description="The pretrained files LPIPS and FVD need (ImageNet AlexNet/VGG16, LPIPS v0.1 "
                    "heads, Kinetics-400 I3D) in the weights cache ($HVRNN_CACHE/weights, "
                    "default ~/.cache/hvrnn/weights). 'fetch' downloads from the publishers, "
                    "resumes interrupted downloads and checks the pinned SHA-256; 'add' "
                    "verifies and installs a file obtained elsewhere.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("list", help="each file: what needs it, where, verified or missing")
    a.set_defaults(func=run)
    a = actions.add_parser("fetch", formatter_class=FORMATTER, help="download and verify files",
                           description="Download NAME (a file: alexnet, vgg16, lpips-alex, "
                                       "lpips-vgg, i3d; or a group: lpips, lpips-vgg16, fvd, "
                                       "all).")
    a.add_argument("names", nargs="+", metavar="NAME", help="files or groups to download")
    a.add_argument("--force", action="store_true",
                   help="download again / replace a file that differs from the published one")
    a.set_defaults(func=run)
    a = actions.add_parser("add", formatter_class=FORMATTER,
                           help="verify and install a local copy",
                           description="Check FILE against the published size and SHA-256 of "
                                       "NAME and copy it into the cache (for machines without "
                                       "internet).")
    a.add_argument("name", metavar="NAME", help="the file FILE is a copy of (alexnet, vgg16, "
                   "lpips-alex, lpips-vgg, i3d)")
    a.add_argument("file", type=Path, metavar="FILE", help="the local copy")
    a.add_argument("--force", action="store_true", help="replace a file that differs")
    a.set_defaults(func=run)
    return p
