"""Named evaluation protocols (docs/design.md section 6, docs/evaluation.md).

A protocol fixes the test sequences (dataset, split, order, how many), the horizons, the number
of samples per sequence, the metric convention(s) and the seed; its id and full definition are
stored with every result. Protocols are registered here (:data:`PROTOCOLS`) or defined by a
small YAML file (:func:`load_protocol_yaml`), accepted wherever a protocol id is. This module
imports nothing heavy, so the command line can list protocols without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvrnn.errors import UserError

FVD_FRAMES = ("context+pred", "pred")
METRICS = ("psnr", "ssim", "lpips", "fvd", "stroke_iou")
BASELINES = ("copy_last", "blank", "context_mean")
# The time-major Moving MNIST test file of Srivastava et al. (2015), read as distributed.
MNIST_TEST_SEQ = "mnist_test_seq"


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
        convention: the metric convention of ``psnr`` and ``ssim``
            (:data:`hvrnn.metrics.conventions.CONVENTIONS`): the one of the papers the protocol
            is compared with.
        conventions: further conventions scored in the same pass, reported as
            ``psnr@<name>`` / ``ssim@<name>``.
        metrics: what is computed, of :data:`METRICS` (LPIPS and FVD also need weights;
            ``stroke_iou`` is hvrnn's own score for Moving MNIST).
        baselines: trivial predictors scored beside the model (:data:`BASELINES`).
        lpips_net: LPIPS backbone.
        seed: seed of the sampling generator, the FVD rounds and the bootstrap.
        compared_with: the published numbers this protocol reproduces the setting of.
        source: the YAML file of a protocol defined by the user ("" for registered ones).
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
    convention: str = "skimage"
    conventions: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("psnr", "ssim", "lpips", "fvd")
    baselines: tuple[str, ...] = BASELINES
    lpips_net: str = "alex"
    seed: int = 0
    compared_with: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("conventions", "metrics", "baselines"):
            d[k] = list(d[k])
        return d

    @property
    def ssim_variant(self) -> str:
        """The :data:`~hvrnn.metrics.ssim.SSIM_VARIANTS` entry closest to the convention's SSIM
        (for picking a sample to show; the scores use the convention itself)."""
        from hvrnn.metrics.conventions import get_convention

        c = get_convention(self.convention)
        if c.ssim_window == "gaussian":
            return "gaussian"
        return "legacy" if c.ssim_data_range == 2 else "skimage"

    def all_conventions(self) -> tuple[str, ...]:
        """The main convention, then the further ones, each once."""
        return tuple(dict.fromkeys((self.convention, *self.conventions)))

    def with_options(self, n_samples: int | None = None, max_sequences: int | None = None,
                     conventions: list[str] | tuple[str, ...] | None = None) -> Protocol:
        """The protocol with another N, number of sequences or conventions (the first one
        becomes the main convention; recorded with the results)."""
        changes: dict[str, Any] = {k: int(v) for k, v in (("n_samples", n_samples),
                                                          ("max_sequences", max_sequences)) if v}
        if conventions:
            from hvrnn.metrics.conventions import get_convention

            names = []
            for c in conventions:
                try:
                    names.append(get_convention(c).name)
                except ValueError as exc:
                    raise UserError(str(exc)) from None
            changes["convention"] = names[0]
            changes["conventions"] = tuple(dict.fromkeys(names[1:]))
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
        if base is not None and self.all_conventions() != base.all_conventions():
            name += "-" + "+".join(self.all_conventions())
        if temperature != 1.0:
            name += f"-t{temperature:g}"
        return name

    def sequences(self, available: int) -> int:
        """How many test sequences are scored when the split holds ``available``."""
        return min(available, self.max_sequences) if self.max_sequences else available


_SRVP = ("SRVP (Franceschi et al. 2020, Table 1) and SLAMP (Akan et al. 2021, Table 1): "
         "best of 100, SSIM/PSNR of their test.py")
PROTOCOLS: dict[str, Protocol] = {p.id: p for p in (
    Protocol("smmnist64-c5-p20-n100", "smmnist", 64, 1, 5, 20, 100, data_root="data/smmnist",
             convention="srvp", conventions=("skimage", "svg", "mcvd"),
             metrics=("psnr", "ssim", "lpips", "fvd", "stroke_iou"), compared_with=_SRVP),
    # The Improved VRNN paper does not say which SSIM/PSNR code produced its BAIR and
    # Cityscapes tables (its released code has none): scikit-image's, SVG's, SRVP's and, on
    # BAIR, SAVP's (the baseline of its BAIR table) are all reported.
    Protocol("bair64-c2-p28-n100", "bair", 64, 3, 2, 28, 100, data_root="data/bair",
             conventions=("svg", "srvp", "savp"),
             compared_with="Improved VRNN (Castrejon et al. 2019) BAIR table, SVG-LP and SAVP as "
                           "reported there; their SSIM/PSNR convention is not known"),
    Protocol("cityscapes128-c2-p28-n100", "cityscapes", 128, 3, 2, 28, 100, split="val",
             data_root="data/cityscapes128", conventions=("svg", "srvp"),
             compared_with="Improved VRNN (Castrejon et al. 2019) Cityscapes table; its "
                           "SSIM/PSNR convention is not known"),
    Protocol("kth64-c10-p30-n100", "kth", 64, 1, 10, 30, 100, data_root="data/kth",
             convention="srvp", conventions=("skimage", "svg", "savp"),
             compared_with="SRVP (Franceschi et al. 2020, Table 3) and SLAMP (Akan et al. "
                           "2021): best of 100, their test.py"),
    # The CPU demo: 32x32 SM-MNIST, 2 -> 10 frames, 10 samples, 64 sequences.
    Protocol("smmnist32-c2-p10-n10", "smmnist", 32, 1, 2, 10, 10, max_sequences=64,
             fvd_rounds=10, data_root="data/smmnist32", conventions=("srvp", "svg"),
             metrics=("psnr", "ssim", "lpips", "fvd", "stroke_iou"),
             compared_with="nothing published (hvrnn's CPU demo)"),
    # Moving MNIST as distributed (Srivastava et al. 2015), 10 -> 10, deterministic models:
    # the setting of OpenSTL (Tan et al. 2023) and PredRNN (Wang et al. 2017, 2022).
    Protocol("mmnist64-c10-p10-n1", MNIST_TEST_SEQ, 64, 1, 10, 10, 1,
             data_root="data/mnist_test_seq.npy", fvd_frames="context+pred", fvd_rounds=1,
             convention="openstl", conventions=("skimage",),
             metrics=("psnr", "ssim", "lpips", "fvd", "stroke_iou"),
             compared_with="OpenSTL benchmark (Tan et al. 2023, Moving MNIST table) and "
                           "PredRNN: one prediction, mean over the 10,000 test sequences"),
)}


def get_protocol(protocol: str | Path | Protocol) -> Protocol:
    """The protocol with this id, defined by this YAML file, or the object itself.

    Raises:
        UserError: an unknown id, or a YAML file that is missing or invalid (one line per
            mistake).
    """
    if isinstance(protocol, Protocol):
        return protocol
    text = str(protocol)
    if text.endswith((".yaml", ".yml")):
        return load_protocol_yaml(text)
    if text not in PROTOCOLS:
        raise UserError(f"unknown protocol {text!r}; known: {', '.join(PROTOCOLS)}, or a "
                        "protocol file ending in .yaml (see --list-protocols)")
    return PROTOCOLS[text]


_REQUIRED = ("dataset", "image_size", "channels", "n_ctx", "n_pred", "n_samples")
_INTS = {"image_size": 1, "channels": 1, "n_ctx": 1, "n_pred": 1, "n_samples": 1,
         "max_sequences": 0, "fvd_rounds": 1, "i3d_size": 0, "seed": 0}
_LISTS = ("conventions", "metrics", "baselines")


def protocol_problems(data: Any, where: str) -> list[str]:
    """Every mistake of a protocol definition (a YAML mapping), one message each."""
    from hvrnn.metrics.conventions import get_convention

    if not isinstance(data, dict):
        return [f"{where}: expected a mapping of protocol fields, got {type(data).__name__}"]
    fields = {f.name for f in dataclasses.fields(Protocol)} - {"source"}
    problems = [f"{where}: unknown key {k!r}; known keys: {', '.join(sorted(fields))}"
                for k in data if k not in fields]
    problems += [f"{where}: missing key {k!r}" for k in _REQUIRED if k not in data]
    for k, low in _INTS.items():
        v = data.get(k)
        if k in data and (isinstance(v, bool) or not isinstance(v, int) or v < low):
            problems.append(f"{where}: {k} must be an integer >= {low}, got {v!r}")
    if "channels" in data and data["channels"] not in (1, 3):
        problems.append(f"{where}: channels must be 1 or 3, got {data['channels']!r}")
    for k in ("id", "dataset", "data_root", "split", "lpips_net", "convention",
              "compared_with", "fvd_frames", "fvd_resize"):
        if k in data and not isinstance(data[k], str):
            problems.append(f"{where}: {k} must be a string, got {data[k]!r}")
    if isinstance(data.get("split"), str) and data["split"] not in ("train", "val", "test"):
        problems.append(f"{where}: split must be train, val or test, got {data['split']!r}")
    if isinstance(data.get("fvd_frames"), str) and data["fvd_frames"] not in FVD_FRAMES:
        problems.append(f"{where}: fvd_frames must be one of {', '.join(FVD_FRAMES)}, got "
                        f"{data['fvd_frames']!r}")
    for k in _LISTS:
        v = data.get(k)
        if k in data and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            problems.append(f"{where}: {k} must be a list of names, got {v!r}")
    names = ([data["convention"]] if isinstance(data.get("convention"), str) else []) + \
        [c for c in data.get("conventions") or [] if isinstance(c, str)]
    for c in names:
        try:
            get_convention(c)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    for k, allowed in (("metrics", METRICS), ("baselines", BASELINES)):
        for x in data.get(k) or []:
            if isinstance(x, str) and x not in allowed:
                problems.append(f"{where}: {k}: unknown {x!r}; expected some of "
                                f"{', '.join(allowed)}")
    return problems


def load_protocol_yaml(path: str | Path) -> Protocol:
    """A protocol defined by a YAML file: the fields of :class:`Protocol` (``id`` defaults to
    the file name without extension; ``data_root`` is relative to the current folder).

    Raises:
        UserError: a missing or unreadable file, or one line ``error: ...`` per mistake
            (unknown or missing keys, wrong types, unknown conventions, metrics, baselines).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"protocol file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"protocol file '{path}' cannot be read as YAML: {first}") from None
    problems = protocol_problems(data, str(path))
    if problems:
        raise UserError("\nerror: ".join(problems))
    data = dict(data)
    for k in _LISTS:
        if k in data:
            data[k] = tuple(data[k])
    data.setdefault("id", path.stem)
    data["source"] = str(path)
    return Protocol(**data)


def protocol_yaml(p: Protocol) -> str:
    """A protocol in the YAML form :func:`load_protocol_yaml` reads."""
    import json

    lines = [f"# {p.id}" + (f" (from {p.source})" if p.source else "")]
    for k, v in p.to_dict().items():
        if k == "source":
            continue
        lines.append(f"{k}: {json.dumps(v)}")
    return "\n".join(lines)


def format_protocols() -> str:
    """Every registered protocol in the YAML form a protocol file uses, separated by ``---``
    (``hvrnn evaluate --list-protocols``)."""
    return "\n---\n".join(protocol_yaml(p) for p in PROTOCOLS.values())


def protocol_data_config(protocol: Protocol, root: str | Path | None = None) -> Any:
    """The ``DataConfig`` of the protocol's test clips (``n_ctx + n_pred`` frames)."""
    from hvrnn.config import DataConfig

    return DataConfig(name=protocol.dataset, root=str(root or protocol.data_root),
                      image_size=protocol.image_size, channels=protocol.channels,
                      n_ctx=protocol.n_ctx, n_pred=protocol.n_pred, num_workers=0)
