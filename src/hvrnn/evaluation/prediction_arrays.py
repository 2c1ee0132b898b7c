"""Prediction arrays written by other codebases, read sequence by sequence (the layouts
``"openstl"`` and ``"srvp"`` of :func:`hvrnn.evaluation.prediction_files.predictions_layout`).

- OpenSTL (Tan et al. 2023): ``saved/preds.npy`` float (sequences, T_pred, C, H, W) in [0, 1]
  (rounded to uint8), one sample per sequence; the folder ``saved/`` or the file ``preds.npy``
  itself. ``inputs.npy`` (the context) next to it is read as ``context``; ``inputs.npy`` +
  ``trues.npy`` are the ground truth when neither ``--targets`` nor ``--data-root`` is given.
- SRVP (Franceschi et al. 2020): the folder of ``random_1.npz`` ... ``random_<k>.npz`` written
  by its ``test.py`` (each ``samples`` uint8 (sequences, T_pred, H, W, C)): k samples per
  sequence.
- PredRNN (Wang et al. 2017): its PNG folders (``<batch>/gt<t>.png``, ``pd<t>.png``) hold only
  the first clip of each test batch; they are refused with the conversion to use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from hvrnn.errors import UserError
from hvrnn.evaluation.protocols import Protocol
from hvrnn.io.files import reading


def _as_uint8(a: np.ndarray, where: Path) -> np.ndarray:
    """uint8 as is; floats in [0, 1] rounded to 0..255 (outside by more than 1e-4: refused)."""
    if a.dtype == np.uint8:
        return np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise UserError(f"{str(where)!r} holds {a.dtype}; expected uint8 or floats in [0, 1]")
    a = np.asarray(a, dtype=np.float64)
    if a.size and (a.min() < -1e-4 or a.max() > 1 + 1e-4 or not np.isfinite(a).all()):
        raise UserError(f"{str(where)!r} holds values in [{a.min():.4g}, {a.max():.4g}]; "
                        "expected [0, 1] (OpenSTL's saved arrays of a [0, 1] dataset)")
    return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)


def _load_npy(path: Path) -> np.ndarray:
    with reading(path, "predictions file"):
        return np.load(path, mmap_mode="r", allow_pickle=False)


def openstl_truth(root: Path, p: Protocol
                  ) -> tuple[int, Callable[[int, int], np.ndarray]] | None:
    """(sequences, clips(a, b) -> uint8 (b - a, K + T, H, W, C)) from OpenSTL's ``inputs.npy``
    and ``trues.npy`` next to ``preds.npy``, or None when they are not both there."""
    folder = root if root.is_dir() else root.parent
    if not ((folder / "inputs.npy").is_file() and (folder / "trues.npy").is_file()):
        return None
    inputs, trues = _load_npy(folder / "inputs.npy"), _load_npy(folder / "trues.npy")
    for name, arr, t in (("inputs.npy", inputs, p.n_ctx), ("trues.npy", trues, p.n_pred)):
        _check_stl(arr, folder / name, p, t)

    def clips(a: int, b: int) -> np.ndarray:
        both = np.concatenate([_as_uint8(inputs[a:b], folder / "inputs.npy"),
                               _as_uint8(trues[a:b], folder / "trues.npy")], axis=1)
        return np.ascontiguousarray(both.transpose(0, 1, 3, 4, 2))

    return int(trues.shape[0]), clips


def _check_stl(arr: np.ndarray, where: Path, p: Protocol, frames: int) -> None:
    expected = (frames, p.channels, p.image_size, p.image_size)
    if arr.ndim != 5 or tuple(arr.shape[1:]) != expected:
        raise UserError(f"{str(where)!r} has shape {tuple(arr.shape)}, expected (sequences, "
                        f"{', '.join(map(str, expected))}) (OpenSTL's (B, T, C, H, W)) for "
                        f"protocol {p.id}")


Sequences = Iterator[tuple[np.ndarray, np.ndarray | None]]


def iter_arrays(root: Path, layout: str, p: Protocol, n_sequences: int | None
                ) -> tuple[str, int, int, Sequences]:
    """OpenSTL's preds.npy or SRVP's random_<i>.npz files, sequence by sequence: (layout,
    sequences, samples per sequence, the iterator of (samples uint8 (N, T, H, W, C), context
    uint8 (K, H, W, C) or None))."""
    if layout == "openstl":
        return (layout, *_openstl_arrays(root, p, n_sequences))
    return (layout, *_srvp_arrays(root, p, n_sequences))


def _sequence_count(held: int, wanted: int | None, path: Path) -> int:
    """The sequences read: ``wanted`` (or all); refused when the file holds fewer."""
    if wanted is not None and held < wanted:
        raise UserError(f"{str(path)!r} holds {held} sequences; {wanted} expected")
    return wanted or held


def _openstl_arrays(root: Path, p: Protocol, n_sequences: int | None
                    ) -> tuple[int, int, Sequences]:
    """OpenSTL's ``saved/preds.npy`` (float (S, T, C, H, W) in [0, 1]) and, when present,
    ``inputs.npy`` as the context: one sample per sequence."""
    path = root / "preds.npy" if root.is_dir() else root
    preds = _load_npy(path)
    _check_stl(preds, path, p, p.n_pred)
    ctx_path = path.parent / "inputs.npy"
    inputs = _load_npy(ctx_path) if ctx_path.is_file() else None
    if inputs is not None:
        _check_stl(inputs, ctx_path, p, p.n_ctx)
    s = _sequence_count(preds.shape[0], n_sequences, path)

    def blocks() -> Sequences:
        for i in range(s):
            samples = _as_uint8(preds[i], path).transpose(0, 2, 3, 1)[None]
            ctx = None if inputs is None else \
                _as_uint8(inputs[i], ctx_path).transpose(0, 2, 3, 1)
            yield np.ascontiguousarray(samples), ctx

    return s, 1, blocks()


def _srvp_arrays(root: Path, p: Protocol, n_sequences: int | None
                 ) -> tuple[int, int, Sequences]:
    """SRVP's ``random_<i>.npz`` files (i = 1, 2, ...; ``samples`` uint8 (S, T, H, W, C)):
    file i is sample i of every sequence; no context."""
    frame = (p.image_size, p.image_size, p.channels)
    files = []
    while (root / f"random_{len(files) + 1}.npz").is_file():
        files.append(root / f"random_{len(files) + 1}.npz")
    arrays = []
    for f in files:
        with reading(f, "predictions file"), np.load(f, allow_pickle=False) as z:
            if "samples" not in z:
                raise UserError(f"{str(f)!r} has no 'samples' array (SRVP's random_<i>.npz)")
            a = z["samples"]
        if a.dtype != np.uint8 or a.ndim != 5 or tuple(a.shape[1:]) != (p.n_pred, *frame):
            raise UserError(f"{str(f)!r}: 'samples' is {a.dtype} {tuple(a.shape)}, expected "
                            f"uint8 (sequences, {p.n_pred}, {', '.join(map(str, frame))}) for "
                            f"protocol {p.id}")
        if arrays and a.shape[0] != arrays[0].shape[0]:
            raise UserError(f"{str(f)!r} holds {a.shape[0]} sequences, {str(files[0])!r} "
                            f"holds {arrays[0].shape[0]}")
        arrays.append(a)
    s = _sequence_count(arrays[0].shape[0], n_sequences, files[0])

    def blocks() -> Sequences:
        for i in range(s):
            yield np.stack([a[i] for a in arrays]), None

    return s, len(arrays), blocks()
