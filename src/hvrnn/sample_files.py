"""Sampling to files (``hvrnn sample``).

:func:`write_samples` draws prior samples from a checkpoint and writes ``samples.npz`` (the
predictions layout of docs/evaluation.md), one PNG grid per sequence (rows: ground truth, then
samples; columns: time steps), GIFs and MP4s.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hvrnn import viz
from hvrnn.distributed import resolve_device
from hvrnn.errors import DataError, UserError, require
from hvrnn.io.files import reading
from hvrnn.io.frames import to_float, to_uint8
from hvrnn.io.npy import check_not_empty
from hvrnn.io.output import OutputFolder, put, put_bytes
from hvrnn.outputs import checkpoint_tag, default_output_base
from hvrnn.sampling import sample
from hvrnn.sources import load_model, model_file


def read_context_file(path: str | Path, n_ctx: int, image_size: int, channels: int
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Clips from ``.npy`` / ``.npz`` as float tensors.

    The file holds uint8 clips ``(N, T, H, W)`` or ``(N, T, H, W, C)`` with ``T >= n_ctx``
    (``.npz``: key ``context``, optional ``truth``; else the only array). Frames after the
    first ``n_ctx`` are ground truth.

    Returns:
        (context (N, K, C, H, W), truth (N, T', C, H, W) or None), float32 in [0, 1].
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"context file '{path}' does not exist")
    with reading(path, "context file"):
        clips, truth = _load_clips(path)
    arrays = [("clips", clips)] + ([("truth", truth)] if truth is not None else [])
    out = []
    for name, arr in arrays:
        check_not_empty(arr.shape, f"{name} in '{path}'")
        if arr.dtype != np.uint8:
            raise UserError(f"{name} in {str(path)!r} must be uint8, got {arr.dtype}")
        if arr.ndim == 4:
            arr = arr[..., None]
        if arr.ndim != 5 or arr.shape[2:] != (image_size, image_size, channels):
            raise UserError(f"{name} in {str(path)!r} has shape {arr.shape}; the model needs "
                            f"(N, T, {image_size}, {image_size}, {channels})")
        out.append(to_float(arr))
    clips_t = out[0]
    if clips_t.shape[1] < n_ctx:
        raise UserError(f"clips in {str(path)!r} have {clips_t.shape[1]} frames; the model "
                        f"needs {n_ctx} context frames")
    context = clips_t[:, :n_ctx]
    if truth is not None:
        return context, out[1]
    return context, (clips_t[:, n_ctx:] if clips_t.shape[1] > n_ctx else None)


def _load_clips(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(clips, truth or None) of an ``.npy`` / ``.npz`` file, read whole (no pickles)."""
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded, None
    with loaded:
        keys = list(loaded.keys())
        if "context" in keys:
            return loaded["context"], (loaded["truth"] if "truth" in keys else None)
        if len(keys) == 1:
            return loaded[keys[0]], None
    raise UserError(f"context file '{path}' has keys {keys}; expected 'context' (and "
                    "optionally 'truth')")


def _grid_steps(t: int, max_columns: int = 10) -> list[int]:
    if t <= max_columns:
        return list(range(t))
    return sorted({int(round(x)) for x in np.linspace(0, t - 1, max_columns)})


def _test_clips(cfg, num_sequences: int, horizon: int, root: str
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first test clips of the checkpoint's dataset in ``root``: context (M, K, ...) and
    truth."""
    from hvrnn.data import build_dataset

    try:
        ds = build_dataset(dataclasses.replace(cfg.data, n_pred=horizon, root=root), "test")
    except DataError as exc:  # data.n_pred there is the horizon: say where it came from
        raise DataError(f"{exc.message} (sampling {horizon} frames: --horizon, else "
                        "eval.horizon, else data.n_pred)", hint=exc.hint,
                        hint_options=exc.hint_options) from None
    clips = torch.stack([ds[i] for i in range(min(num_sequences, len(ds)))])
    return clips[:, :cfg.data.n_ctx], clips[:, cfg.data.n_ctx:]


def write_pictures(out: OutputFolder | Path, context: np.ndarray, samples: np.ndarray,
                   truth: np.ndarray | None, video: bool = True) -> list[int]:
    """``seq_<i>.png|gif|mp4`` per sequence and ``grid.png`` (all of them stacked).

    Args:
        out: the output folder (an :class:`OutputFolder`: the files appear when it is
            committed; a path: each file is written atomically).
        context: uint8 (M, K, H, W, C); samples: uint8 (M, N, T, H, W, C); truth: uint8
            (M, T', H, W, C) or None.

    Returns:
        The predicted time steps shown as grid columns (at most 10, evenly spaced).
    """
    scale = viz.auto_scale(context.shape[2])
    steps = _grid_steps(samples.shape[2])
    grids = []
    for i in range(samples.shape[0]):
        tr = None if truth is None else truth[i]
        grid = viz.sample_grid(context[i], samples[i], tr, steps=steps)
        grids.append(grid)
        put_bytes(out, f"seq_{i:03d}.png", viz.png_bytes(grid.repeat(scale, 0).repeat(scale, 1)))
        frames = viz.animation_frames(context[i], samples[i], tr, scale=scale)
        put_bytes(out, f"seq_{i:03d}.gif", viz.gif_bytes(frames))
        if video:
            put(out, f"seq_{i:03d}.mp4", lambda tmp, f=frames: viz.write_mp4(f, tmp))
    gap = np.full((4, grids[0].shape[1], 3), 255, np.uint8)
    stacked = np.concatenate([x for g in grids for x in (g, gap)][:-1], axis=0)
    put_bytes(out, "grid.png", _labelled_grid(stacked.repeat(scale, 0).repeat(scale, 1), scale,
                                              context.shape[1], steps, truth is not None,
                                              samples.shape[:2]))
    return steps


def _labelled_grid(image: np.ndarray, scale: int, k: int, steps: list[int], truth: bool,
                   shape: tuple[int, int]) -> bytes:
    """grid.png: the stacked grids with a label per row (sequence, truth or sample) and per
    column (the 1-based frame index t; context frames marked c)."""
    (m, n), cell = shape, (image.shape[1] // (k + len(steps)))
    rows, y = [], 0.0
    for i in range(m):
        names = (["truth"] if truth else []) + [f"sample {j + 1}" for j in range(n)]
        for j, name in enumerate(names):
            rows.append((y + cell / 2, f"seq {i}: {name}" if j == 0 else name))
            y += cell
        y += 4 * scale  # the white gap between sequences
    columns = [(cell * (j + 0.5), f"c{j + 1}") for j in range(k)]
    columns += [(cell * (k + i + 0.5), f"t={k + s + 1}") for i, s in enumerate(steps)]
    return viz.labelled_png_bytes(image, rows, columns)


def check_options(n_samples: int, horizon: int, num_sequences: int, seed: int,
                  temperature: float) -> None:
    """The numbers of :func:`write_samples`, refused before any work (one line each)."""
    for name, value, low in (("n_samples", n_samples, 1), ("num_sequences", num_sequences, 1),
                             ("horizon", horizon, 0), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"{name}={value!r} is invalid: expected an integer >= {low}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature >= 0):
        raise UserError(f"temperature={temperature!r} is invalid: expected a finite number "
                        ">= 0")


def _draw(model: Any, ctx: torch.Tensor, cfg: Any, horizon: int, n_samples: int, seed: int,
          temperature: float, dev: torch.device) -> np.ndarray:
    """Samples of every context, uint8 (M, N, T, H, W, C); NaN or inf refused."""
    gen = torch.Generator(device=dev).manual_seed(seed)
    chunks = []
    for start in range(0, ctx.shape[0], max(1, cfg.eval.batch_size)):
        part = ctx[start:start + cfg.eval.batch_size].to(dev)
        chunks.append(sample(model, part, horizon=horizon, n_samples=n_samples, generator=gen,
                             temperature=temperature).cpu())
    return to_uint8(torch.cat(chunks), what="the samples")


def default_sample_folder(source: str | Path, ckpt_file: Path) -> Path:
    """``samples/<checkpoint>`` in the run directory of ``source``, the checkpoint named as
    ``hvrnn evaluate`` names it (:func:`hvrnn.outputs.checkpoint_tag`: ``step_<N>``, also
    for ``last.pt``), so that the samples and the evaluation of one checkpoint share a name."""
    return default_output_base(source) / "samples" / checkpoint_tag(ckpt_file)


def write_samples(checkpoint: str | Path, out: str | Path | None = None, *,
                  context: str | Path | None = None, n_samples: int = 5, horizon: int = 0,
                  num_sequences: int = 4, seed: int = 0, temperature: float = 1.0,
                  device: str = "auto", force: bool = False, video: bool = True,
                  data_root: str | Path | None = None) -> Path:
    """Draw samples from a checkpoint and write them as npz, PNG grids, GIFs and MP4s.

    Every input is checked before sampling; the files appear together when all are complete
    (:class:`~hvrnn.io.output.OutputFolder`): a failure leaves the folder as it was.

    Args:
        checkpoint: a checkpoint file, a run directory or ``pretrained:NAME``.
        out: output folder (default :func:`default_sample_folder`).
        context: ``.npy``/``.npz`` of uint8 clips (see :func:`read_context_file`); default the
            first ``num_sequences`` clips of the test split in ``data_root`` (default: the
            checkpoint config's ``data.root``).
        n_samples: samples per sequence (a deterministic model draws one); horizon:
            predicted frames (0: ``eval.horizon`` or ``data.n_pred``).
        seed: seed of the latent noise; temperature: prior variance multiplier (0: means).
        video: also write MP4s (needs imageio-ffmpeg).

    Returns:
        The output folder, holding ``samples.npz`` (``samples`` uint8 (M, N, T, H, W, C),
        ``context`` uint8 (M, K, H, W, C), ``truth`` uint8 (M, T', H, W, C) when known),
        ``grid.png`` (all sequences), ``seq_<i>.png``, ``seq_<i>.gif``, ``seq_<i>.mp4`` and
        ``samples.json``.

    Raises:
        UserError: a bad input (above), or samples holding NaN or infinite values (the message
            says how many samples of how many sequences).
    """
    check_options(n_samples, horizon, num_sequences, seed, temperature)
    require("imageio", *(("imageio_ffmpeg",) if video else ()), purpose="writing samples")
    path, dev = model_file(checkpoint), resolve_device(device)
    model, cfg = load_model(path, device=dev)
    horizon, root = horizon or cfg.eval.horizon or cfg.data.n_pred, str(data_root or cfg.data.root)
    if context is None:
        ctx, truth = _test_clips(cfg, num_sequences, horizon, root)
    else:
        ctx, truth = read_context_file(context, cfg.data.n_ctx, cfg.data.image_size,
                                       cfg.data.channels)
    folder = OutputFolder(out if out is not None else default_sample_folder(checkpoint, path),
                          force=force)
    folder.check()  # before sampling
    arrays = {"samples": _draw(model, ctx, cfg, horizon, n_samples, seed, temperature, dev),
              "context": to_uint8(ctx)}  # (M, N, T, ...)
    if truth is not None and truth.shape[1] > 0:
        arrays["truth"] = to_uint8(truth)
    with folder:
        folder.write("samples.npz", lambda tmp: np.savez_compressed(tmp, **arrays))
        steps = write_pictures(folder, arrays["context"], arrays["samples"],
                               arrays.get("truth"), video)
        folder.write_text("samples.json", json.dumps({
            "checkpoint": str(path), "n_samples": int(arrays["samples"].shape[1]),
            "horizon": horizon, "seed": seed,
            "temperature": temperature, "sequences": int(arrays["samples"].shape[0]),
            "context": str(context) if context is not None else f"{root} (test split)",
            "grid_columns": steps}, indent=2), marker=True)
    return folder.path
