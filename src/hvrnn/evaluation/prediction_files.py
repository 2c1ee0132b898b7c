"""Predictions written by other codebases, converted to the predictions ``.npz`` layout.

``hvrnn evaluate --predictions`` scores a ``.npz`` holding ``samples`` uint8
``(sequences, N, T_pred, H, W, C)`` and optionally ``context`` uint8 ``(sequences, K, H, W, C)``.
This module turns two other layouts into that file, so that samples made elsewhere are scored
with the same protocol:

**PNG folder** (the layout of ``sample.py`` in the official improved VRNN code)::

    ROOT/<sequence>/<sample>/<frame>.png     predicted frame <frame> (0 = first predicted)
    ROOT/<sequence>/ctx/<frame>.png          optional: the K context frames
    ROOT/<sequence>/gt/<frame>.png           optional: ground truth (not read; the protocol's
                                             test set is the ground truth)

``<sequence>``, ``<sample>`` and ``<frame>`` are decimal integers counted from 0; zero padding
is allowed (``sample.py`` writes ``0000``). ``ROOT`` is the ``samples`` folder of such a run.

**Video folder**: one file per sample, named ``<sequence>_<sample>.mp4`` (or ``.gif``,
``.webm``, ``.avi``, ``.mov``), integers from 0, zero padding allowed (``0007_0012.mp4``). A file
holds either the T_pred predicted frames, or the K context frames followed by the T_pred
predicted ones (then the first K frames become ``context``). Lossy codecs change pixel values
and therefore the scores; write lossless video (e.g. ``libx264rgb`` with ``crf=0``) or PNGs for
exact numbers. GIF writers that merge identical consecutive frames (Pillow does) leave fewer
frames; the frame durations are used to restore them.

Both: sequence ``i`` must be test sequence ``i`` of the protocol (its order); every sequence
needs the same number of samples; frames must have the protocol's size and channels (grey
protocols accept RGB frames whose channels agree within :data:`GREY_TOLERANCE` grey levels,
as lossy codecs leave them, and keep their rounded mean). The first mismatch (count, size,
channels, frame count, a stray file) raises :class:`~hvrnn.errors.UserError` naming the file.

**Arrays of other codebases** (OpenSTL's ``saved/``, SRVP's ``random_<i>.npz``; PredRNN's PNG
folders are refused with the conversion to use): :mod:`hvrnn.evaluation.prediction_arrays`.

SVG (Denton and Fergus, 2018) is not a layout here: its ``generate_svg_lp.py`` writes one montage
GIF per test sequence (ground truth, posterior, best and three random samples side by side, with
captions), drawn from a shuffled test loader, so its files cannot be matched to test sequences.
Save SVG samples in one of the two layouts above instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hvrnn.errors import UserError
from hvrnn.evaluation.protocols import Protocol
from hvrnn.io.npy import NpzWriter

VIDEO_EXTENSIONS = (".mp4", ".gif", ".webm", ".avi", ".mov")
GREY_TOLERANCE = 3  # grey levels by which R, G, B of a grey frame may differ (lossy codecs)
_INT = re.compile(r"^\d+$")
_VIDEO_NAME = re.compile(r"^(\d+)_(\d+)$")


@dataclass
class _Sequence:
    samples: list[Path]  # per sample: a folder (png) or a file (video)
    context: Path | None = None  # png: the ctx folder


def predictions_layout(path: str | Path) -> str:
    """``"npz"`` (a file), ``"png"`` or ``"video"`` (a folder), judged from its entries.

    Raises:
        UserError: the path does not exist or is a folder of neither layout.
    """
    path = Path(path)
    if path.is_file():
        return "openstl" if path.suffix == ".npy" else "npz"
    if not path.is_dir():
        raise UserError(f"predictions {str(path)!r} do not exist")
    if (path / "preds.npy").is_file():
        return "openstl"
    if (path / "random_1.npz").is_file():
        return "srvp"
    entries = [e for e in path.iterdir() if not e.name.startswith(".")]
    if any(e.is_dir() and (e / "gt1.png").is_file() for e in entries):
        raise UserError(
            f"{str(path)!r} is a PredRNN results folder (<batch>/gt<t>.png, pd<t>.png), which "
            "holds only the first clip of each test batch; save its test predictions with "
            "np.save('preds.npy', img_out) as (sequences, T_pred, C, H, W) floats in [0, 1] "
            "and pass that file")
    if any(e.is_file() and e.suffix.lower() in VIDEO_EXTENSIONS for e in entries):
        return "video"
    if any(e.is_dir() and _INT.match(e.name) for e in entries):
        return "png"
    raise UserError(f"{str(path)!r} is neither a PNG folder (<sequence>/<sample>/<frame>.png) nor "
                    f"a video folder (<sequence>_<sample>.mp4); see docs/evaluation.md")


def _numbered(entries: list[Path], what: str) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for e in sorted(entries):
        i = int(e.stem if e.is_file() else e.name)
        if i in out:
            raise UserError(f"{str(e)!r} and {str(out[i])!r} are both {what} {i}")
        out[i] = e
    return out


def _consecutive(found: dict[int, Path], where: Path, what: str,
                 expected: int | None) -> list[Path]:
    """The entries numbered 0..n-1 (n = expected, or all found), or a one-line error."""
    n = len(found) if expected is None else expected
    for i in range(n):
        if i not in found:
            raise UserError(f"{str(where)!r}: {what} {i} is missing ({len(found)} found, "
                            f"numbered {min(found, default=0)}..{max(found, default=-1)}; "
                            f"{n} expected)")
    extra = sorted(set(found) - set(range(n)))
    if extra:
        raise UserError(f"{str(found[extra[0]])!r}: {what} {extra[0]} is beyond the {n} expected")
    return [found[i] for i in range(n)]


def _scan_png(root: Path, n_sequences: int | None) -> list[_Sequence]:
    dirs = []
    for e in sorted(root.iterdir()):
        if e.name.startswith("."):
            continue
        if not (e.is_dir() and _INT.match(e.name)):
            raise UserError(f"{str(e)!r} is not a sequence folder (expected "
                            f"{str(root)}/<sequence>/<sample>/<frame>.png)")
        dirs.append(e)
    seqs = _numbered(dirs, "sequence")
    out = []
    for seq_dir in _consecutive(seqs, root, "sequence", n_sequences):
        samples, ctx = [], None
        for e in sorted(seq_dir.iterdir()):
            if e.name.startswith("."):
                continue
            if e.is_dir() and e.name == "ctx":
                ctx = e
            elif e.is_dir() and e.name == "gt":
                continue
            elif e.is_dir() and _INT.match(e.name):
                samples.append(e)
            else:
                raise UserError(f"{str(e)!r} is not a sample folder (expected "
                                f"{str(seq_dir)}/<sample>/<frame>.png, or ctx/, gt/)")
        if not samples:
            raise UserError(f"{str(seq_dir)!r} holds no sample folders (expected "
                            f"{str(seq_dir)}/<sample>/<frame>.png)")
        out.append(_Sequence(_consecutive(_numbered(samples, "sample"), seq_dir,
                                          "sample", None), ctx))
    return out


def _scan_video(root: Path, n_sequences: int | None) -> list[_Sequence]:
    by_seq: dict[int, list[Path]] = {}
    for e in sorted(root.iterdir()):
        if e.name.startswith(".") or e.suffix.lower() not in VIDEO_EXTENSIONS:
            continue
        m = _VIDEO_NAME.match(e.stem)
        if not e.is_file() or m is None:
            raise UserError(f"{str(e)!r} does not follow the naming rule "
                            "<sequence>_<sample>.<ext> (e.g. 0007_0012.mp4)")
        by_seq.setdefault(int(m.group(1)), []).append(e)
    seqs = {i: root for i in by_seq}
    out = []
    for i, _ in enumerate(_consecutive(seqs, root, "sequence", n_sequences)):
        found: dict[int, Path] = {}
        for f in by_seq[i]:
            j = int(_VIDEO_NAME.match(f.stem).group(2))
            if j in found:
                raise UserError(f"{str(f)!r} and {str(found[j])!r} are both sample {j} of "
                                f"sequence {i}")
            found[j] = f
        out.append(_Sequence(_consecutive(found, root, f"sample of sequence {i}", None)))
    return out


def _to_channels(frame: np.ndarray, channels: int, where: Path) -> np.ndarray:
    """(H, W[, c]) uint8 -> (H, W, channels), or a one-line error."""
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape[-1] in (2, 4):  # grey + alpha, RGB + alpha: only an opaque alpha is allowed
        if (frame[..., -1] != 255).any():
            raise UserError(f"{str(where)!r} has transparent pixels")
        frame = frame[..., :-1]
    c = frame.shape[-1]
    if c == channels:
        return frame
    if channels == 1 and c == 3:
        spread = int((frame.max(-1).astype(np.int16) - frame.min(-1)).max(initial=0))
        if spread > GREY_TOLERANCE:
            raise UserError(f"{str(where)!r} has colour frames (R, G, B differ by up to {spread}) "
                            "but the protocol is grey")
        return np.round(frame.mean(axis=-1, keepdims=True)).astype(np.uint8)
    raise UserError(f"{str(where)!r} has {c} channel(s), the protocol needs {channels}")


def _check_size(frame: np.ndarray, size: int, where: Path) -> None:
    if frame.shape[:2] != (size, size):
        raise UserError(f"{str(where)!r} is {frame.shape[1]}x{frame.shape[0]} pixels, the "
                        f"protocol needs {size}x{size}")


def _read_png(path: Path, p: Protocol) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode == "P":
                im = im.convert("RGBA")
            if im.mode not in ("L", "LA", "RGB", "RGBA"):
                raise UserError(f"{str(path)!r} has image mode {im.mode}; expected 8-bit grey "
                                "or RGB")
            frame = np.asarray(im)
    except Image.DecompressionBombError as exc:
        raise UserError(f"{str(path)!r} is too large an image to decode: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{str(path)!r} cannot be read as an image: {exc}") from None
    if frame.dtype != np.uint8:
        raise UserError(f"{str(path)!r} is not 8-bit ({frame.dtype})")
    _check_size(frame, p.image_size, path)
    return _to_channels(frame, p.channels, path)


def _read_frames_dir(folder: Path, p: Protocol, expected: int, what: str) -> np.ndarray:
    """(expected, H, W, C) uint8 from <frame>.png files numbered 0..expected-1."""
    files = [e for e in folder.iterdir() if not e.name.startswith(".")]
    for e in files:
        if not (e.is_file() and e.suffix.lower() == ".png" and _INT.match(e.stem)):
            raise UserError(f"{str(e)!r} is not a frame file <frame>.png")
    frames = _numbered(files, "frame")
    if len(frames) != expected:
        raise UserError(f"{str(folder)!r} holds {len(frames)} frames, {what} has {expected}")
    return np.stack([_read_png(f, p) for f in _consecutive(frames, folder, "frame", expected)])


def _gif_frames(path: Path, counts: tuple[int, ...]) -> np.ndarray:
    """(T, H, W, 4) frames of a GIF. Writers that merge identical consecutive frames add their
    durations up. If the file has fewer frames than one of ``counts``, its shortest frame
    duration is taken as one frame's and every frame whose duration is a whole multiple of it
    is repeated that many times, when this gives exactly one of ``counts``; a file whose frames
    all last the same is left as it is (nothing was merged), but for a single frame whose
    duration divides into exactly one of ``counts``."""
    from PIL import Image, ImageSequence

    frames, durations = [], []
    with Image.open(path) as im:
        for fr in ImageSequence.Iterator(im):
            frames.append(np.asarray(fr.convert("RGBA")))
            durations.append(int(fr.info.get("duration", 0) or 0))
    unit = min(durations, default=0)
    if len(frames) not in counts and unit > 0 and len(set(durations)) > 1 and \
            all(d % unit == 0 for d in durations) and sum(durations) // unit in counts:
        repeats = [d // unit for d in durations]
        return np.concatenate([np.repeat(f[None], r, axis=0)
                               for f, r in zip(frames, repeats, strict=True)])
    whole = [n for n in counts if len(frames) == 1 and unit > 0 and unit % n == 0]
    if len(whole) == 1:  # one frame throughout, and only one count it can be cut into
        return np.repeat(frames[0][None], whole[0], axis=0)
    return np.stack(frames)


def _read_video(path: Path, p: Protocol) -> tuple[np.ndarray, np.ndarray | None]:
    """(T_pred, H, W, C) predicted frames and (K, H, W, C) context (or None) of one file."""
    try:
        if path.suffix.lower() == ".gif":
            raw = _gif_frames(path, (p.n_pred, p.n_ctx + p.n_pred))
        else:
            import imageio.v3 as iio

            raw = iio.imread(path, index=None, plugin="pyav")
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001  (any unreadable file is a user error here)
        raise UserError(f"{str(path)!r} cannot be read as a video: {exc}") from None
    if raw.ndim == 3:
        raw = raw[..., None]
    t = raw.shape[0]
    if t not in (p.n_pred, p.n_ctx + p.n_pred):
        raise UserError(f"{str(path)!r} holds {t} frames; protocol {p.id} needs {p.n_pred} "
                        f"predicted frames, or {p.n_ctx} context + {p.n_pred} predicted")
    _check_size(raw[0], p.image_size, path)
    frames = np.stack([_to_channels(f, p.channels, path) for f in raw])
    if t == p.n_pred:
        return frames, None
    return frames[p.n_ctx:], frames[:p.n_ctx]


def _read_sequence(seq: _Sequence, layout: str, p: Protocol
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """samples (N, T_pred, H, W, C) and context (K, H, W, C) or None."""
    if layout == "png":
        samples = np.stack([_read_frames_dir(d, p, p.n_pred, f"protocol {p.id} (predicted "
                                                "frames)") for d in seq.samples])
        ctx = None
        if seq.context is not None:
            ctx = _read_frames_dir(seq.context, p, p.n_ctx, f"protocol {p.id} (context)")
        return samples, ctx
    read = [_read_video(f, p) for f in seq.samples]
    contexts = {c is None for _, c in read}
    if len(contexts) > 1:
        first = next(f for f, (_, c) in zip(seq.samples, read, strict=True) if c is None)
        raise UserError(f"{str(first)!r} holds only predicted frames while other samples of its "
                        "sequence include the context")
    return np.stack([s for s, _ in read]), read[0][1]


def iter_predictions(path: str | Path, protocol: Protocol, n_sequences: int | None = None
                     ) -> tuple[str, int, int, Iterator[tuple[np.ndarray, np.ndarray | None]]]:
    """Scan a PNG or video folder and read it sequence by sequence.

    Args:
        path: the folder.
        protocol: the protocol the predictions are for (frame counts, size, channels).
        n_sequences: sequences required (numbered 0..n-1); None: as many as found.

    Returns:
        ``(layout, sequences, samples per sequence, iterator)``; the iterator yields
        ``(samples (N, T_pred, H, W, C), context (K, H, W, C) or None)`` uint8 per sequence.

    Raises:
        UserError: the first mismatch, naming the file or folder.
    """
    root = Path(path)
    layout = predictions_layout(root)
    if layout == "npz":
        raise UserError(f"{str(root)!r} is a file; PNG and video predictions are folders")
    if layout in ("openstl", "srvp"):
        from hvrnn.evaluation.prediction_arrays import iter_arrays

        return iter_arrays(root, layout, protocol, n_sequences)
    seqs = _scan_png(root, n_sequences) if layout == "png" else _scan_video(root, n_sequences)
    if not seqs:
        raise UserError(f"{str(root)!r} holds no sequences")
    n = len(seqs[0].samples)
    for i, seq in enumerate(seqs):
        if len(seq.samples) != n:
            where = seq.samples[-1] if len(seq.samples) > n else seq.samples[0].parent
            raise UserError(f"{str(where)!r}: sequence {i} has {len(seq.samples)} samples, "
                            f"sequence 0 has {n}")
    if layout == "png":
        with_ctx = [s.context is not None for s in seqs]
        if any(with_ctx) and not all(with_ctx):
            i = with_ctx.index(False)
            raise UserError(f"{str(seqs[i].samples[0].parent)!r} has no ctx/ folder while "
                            "sequence 0 has one")

    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        have_ctx = None
        for seq in seqs:
            samples, ctx = _read_sequence(seq, layout, protocol)
            if have_ctx is not None and have_ctx != (ctx is not None):
                raise UserError(f"{str(seq.samples[0])!r}: some sequences include the context "
                                "frames and others do not")
            have_ctx = ctx is not None
            yield samples, ctx

    return layout, len(seqs), n, blocks()


def convert_predictions(path: str | Path, out: str | Path, protocol: Protocol,
                        n_sequences: int | None = None, force: bool = False) -> dict[str, Any]:
    """Convert a PNG or video folder to the predictions ``.npz`` (see the module docstring).

    The file is written sequence by sequence (never all samples in memory) by
    :class:`hvrnn.io.npy.NpzWriter`: under a temporary name, renamed when complete.

    Args:
        path: the folder.
        out: the ``.npz`` to write; an existing file needs ``force``.
        protocol: the protocol the predictions are for.
        n_sequences: sequences required; None: as many as found.

    Returns:
        ``{"layout", "sequences", "samples", "context": bool, "file"}``.

    Raises:
        UserError: a mismatch in the folder (named), or ``out`` exists without ``force``.
    """
    out = Path(out)
    if out.exists() and not force:
        raise UserError(f"{str(out)!r} already exists; pass --force (force=True) to overwrite it")
    layout, s, n, blocks = iter_predictions(path, protocol, n_sequences)
    out.parent.mkdir(parents=True, exist_ok=True)
    shape = (s, n, protocol.n_pred, protocol.image_size, protocol.image_size, protocol.channels)
    writer = NpzWriter(out, "samples", shape, np.uint8)
    contexts: list[np.ndarray] = []
    try:
        for samples, ctx in blocks:
            writer.write(samples[None])  # one sequence: (1, N, T, H, W, C)
            if ctx is not None:
                contexts.append(ctx)
    except BaseException:
        writer.abort()
        raise
    writer.close({"context": np.stack(contexts)} if contexts else None)
    return {"layout": layout, "sequences": s, "samples": n, "context": bool(contexts),
            "file": str(out)}
