"""Where the commands that write outputs from a trained model (``hvrnn sample``,
``hvrnn evaluate``, ``hvrnn compare``) put them by default, and the name of the checkpoint an
output came from."""

from __future__ import annotations

import os
from pathlib import Path

from hvrnn import pretrained
from hvrnn.checkpoint import list_checkpoints
from hvrnn.io.files import sha256_file


def checkpoint_tag(path: str | Path) -> str:
    """A name for the checkpoint file ``path`` that changes when its content does: the
    ``step_<N>`` file it is another name of (``last.pt``), else its own name; for a shipped
    model, ``pretrained``."""
    p = Path(path)
    if p.name == pretrained.WEIGHTS_FILE:
        return "pretrained"
    if p.name == "last.pt" and p.parent.is_dir():
        digest = None
        for other in reversed(list_checkpoints(p.parent.parent)):
            if os.path.samefile(other, p):  # last.pt is a second name of a step file
                return other.stem
            if other.stat().st_size == p.stat().st_size:  # or a copy of one
                digest = digest or sha256_file(p)
                if sha256_file(other) == digest:
                    return other.stem
        return f"last-{(digest or sha256_file(p))[:12]}"
    return p.stem


def default_output_base(source: str | Path) -> Path:
    """Where outputs derived from a checkpoint go by default: its run directory, or
    ``runs/pretrained-<name>`` for a shipped model (never inside the installed package)."""
    if pretrained.is_pretrained(source):
        return Path("runs") / f"pretrained-{pretrained.folder(str(source)).name}"
    p = Path(source)
    if p.is_dir():
        return p
    return p.parent.parent if p.parent.name == "checkpoints" else p.parent


__all__ = ["checkpoint_tag", "default_output_base"]
