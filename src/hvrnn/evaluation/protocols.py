"""Named evaluation protocols (docs/design.md section 6, docs/evaluation.md).

A protocol fixes the test sequences (dataset, split, order, how many), the horizons, the number
of samples per sequence, the metric variants and the seed; its id and full definition are stored
with every result. This module imports nothing heavy, so the command line can list protocols
without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvrnn.errors import UserError

FVD_FRAMES = ("context+pred", "pred")


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol.

    Attributes:
        id: the name results are filed under, e.g. ``bair64-c2-p28-n100``.
        dataset: ``data.name`` of the test set; ``data_root`` its default prepared folder.
        image_size, channels: frame size and channels.
        n_ctx, n_pred: context frames given, frames predicted and scored.
        n_samples: samples drawn per test sequence (N of best-of-N).
        split: the split scored; sequences ``0 .. max_sequences - 1`` in dataset order
            (``max_sequences = 0``: all of them). Test windows start at frame 0.
        fvd_frames: frames in each FVD video: ``"context+pred"`` (ground-truth context then
            the prediction; docs/design.md section 6) or ``"pred"``.
        fvd_rounds: FVD repetitions, each with one random sample per sequence.
        i3d_size: frame side fed to I3D (224 for FVD; 0 keeps the frame size, tests only).
        fvd_resize: how frames are resized for I3D: ``"tf1"`` (TensorFlow 1
            ``resize_bilinear``, as the FVD reference implementation) or ``"torch"`` (half-pixel
            centres); see :mod:`hvrnn.metrics.fvd`.
        ssim_variant, psnr_variant: see :func:`hvrnn.metrics.ssim` / :func:`~hvrnn.metrics.psnr`.
        lpips_net: LPIPS backbone.
        seed: seed of the sampling generator, the FVD rounds and the bootstrap.
    """

    id: str
    dataset: str
    image_size: int
    channels: int
    n_ctx: int
    n_pred: int
    n_samples: int
    data_root: str = ""
    split: str = "test"
    max_sequences: int = 0
    fvd_frames: str = "context+pred"
    fvd_rounds: int = 100
    i3d_size: int = 224
    fvd_resize: str = "tf1"
    ssim_variant: str = "skimage"
    psnr_variant: str = "global"
    lpips_net: str = "alex"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_options(self, n_samples: int | None = None, max_sequences: int | None = None
                     ) -> Protocol:
        """The protocol with another N or number of sequences (recorded with the results)."""
        changes = {k: int(v) for k, v in (("n_samples", n_samples),
                                          ("max_sequences", max_sequences)) if v}
        return dataclasses.replace(self, **changes) if changes else self

    def folder_name(self, temperature: float = 1.0) -> str:
        """The default output folder name of an evaluation under this protocol: its id, and
        the options that differ from the registered protocol's (``-n<N>`` samples,
        ``-s<S>`` sequences, ``-t<T>`` temperature), so that evaluations with other options
        never share a folder."""
        base = PROTOCOLS.get(self.id)
        name = self.id
        if base is None or self.n_samples != base.n_samples:
            name += f"-n{self.n_samples}"
        if base is None or self.max_sequences != base.max_sequences:
            name += f"-s{self.max_sequences or 'all'}"
        if temperature != 1.0:
            name += f"-t{temperature:g}"
        return name

    def sequences(self, available: int) -> int:
        """How many test sequences are scored when the split holds ``available``."""
        return min(available, self.max_sequences) if self.max_sequences else available


PROTOCOLS: dict[str, Protocol] = {p.id: p for p in (
    Protocol("smmnist64-c5-p20-n100", "smmnist", 64, 1, 5, 20, 100, data_root="data/smmnist"),
    Protocol("bair64-c2-p28-n100", "bair", 64, 3, 2, 28, 100, data_root="data/bair"),
    Protocol("cityscapes128-c2-p28-n100", "cityscapes", 128, 3, 2, 28, 100, split="val",
             data_root="data/cityscapes128"),
    Protocol("kth64-c10-p30-n100", "kth", 64, 1, 10, 30, 100, data_root="data/kth"),
    # The CPU demo: 32x32 SM-MNIST, 2 -> 10 frames, 10 samples, 64 sequences.
    Protocol("smmnist32-c2-p10-n10", "smmnist", 32, 1, 2, 10, 10, max_sequences=64,
             fvd_rounds=10, data_root="data/smmnist32"),
)}


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The protocol with this id (or the object itself); unknown ids raise UserError."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


def format_protocols() -> str:
    """Every protocol with its full definition, one block each (``hvrnn evaluate
    --list-protocols``)."""
    blocks = []
    for p in PROTOCOLS.values():
        fields = {k: v for k, v in p.to_dict().items() if k != "id"}
        blocks.append(f"{p.id}\n" + "\n".join(f"  {k:14s} {v}" for k, v in fields.items()))
    return "\n".join(blocks)


def protocol_data_config(protocol: Protocol, root: str | Path | None = None) -> Any:
    """The ``DataConfig`` of the protocol's test clips (``n_ctx + n_pred`` frames)."""
    from hvrnn.config import DataConfig

    return DataConfig(name=protocol.dataset, root=str(root or protocol.data_root),
                      image_size=protocol.image_size, channels=protocol.channels,
                      n_ctx=protocol.n_ctx, n_pred=protocol.n_pred, num_workers=0)
