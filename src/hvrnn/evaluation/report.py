"""The result files of an evaluation and its printed summary.

- ``metrics.json``: protocol, implementations (name, convention, weights SHA-256), the metric
  conventions used (their full definitions), library version, checkpoint or predictions hash,
  and per metric best/mean/worst of N with mean, std and a bootstrap 95% interval over sequences,
  the convention's name beside each metric; ``baselines``: the same numbers for the trivial
  predictors (copy the last context frame, blank frames, the context's mean frame). Strict JSON:
  a non-finite value (the PSNR of a perfect prediction is +inf) is written as null and listed
  under ``non_finite``.
- ``per_frame.csv``: per predicted frame, the mean (and std) over sequences of each selection,
  and the trivial predictors' curves (``<metric>_<predictor>``).
- ``curves.png``: the same curves (trivial predictors in grey).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from hvrnn.evaluation.protocols import Protocol
from hvrnn.evaluation.request import EvaluationResult
from hvrnn.evaluation.scorer import Scorer
from hvrnn.io.files import write_atomically, write_bytes_atomically
from hvrnn.io.output import OutputFolder

SELECTIONS = ("best", "mean", "worst")


def finite_or_null(obj: Any, path: str, found: list[str]) -> Any:
    """Copy of ``obj`` with NaN / +-inf floats replaced by None; their key paths go to ``found``."""
    if isinstance(obj, dict):
        return {k: finite_or_null(v, f"{path}.{k}" if path else str(k), found)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v, f"{path}[{i}]", found) for i, v in enumerate(obj)]
    if isinstance(obj, float) and not math.isfinite(obj):
        found.append(f"{path}={obj}")
        return None
    return obj


def write_outputs(out: OutputFolder, scorer: Scorer, protocol: Protocol, n_sequences: int,
                  extra: dict[str, Any], wall: float) -> EvaluationResult:
    """Write metrics.json (the folder's completion marker), per_frame.csv and curves.png into
    ``out`` (they appear when it is committed); return what metrics.json holds and the
    folder."""
    from hvrnn import __version__
    from hvrnn.metrics.conventions import get_convention

    results = {
        "protocol_id": protocol.id,
        "protocol": protocol.to_dict(),
        "hvrnn_version": __version__,
        "n_sequences": n_sequences,
        "n_samples": scorer.n_samples,
        "n_pred": protocol.n_pred,
        "implementations": scorer.implementations(),
        "conventions": {c: get_convention(c).to_dict() for c in protocol.all_conventions()},
        "metrics": scorer.results(),
        "baselines": scorer.baseline_results(),
        "wall_seconds": round(wall, 2),
        **extra,
    }
    if scorer.n_samples != protocol.n_samples:
        results["note"] = (f"scored {scorer.n_samples} samples per sequence; the protocol "
                           f"asks for {protocol.n_samples}")
    non_finite: list[str] = []
    strict = finite_or_null(results, "", non_finite) | {"non_finite": non_finite}
    out.write_text("per_frame.csv", csv_text(results["metrics"], protocol,
                                             results["baselines"]))
    out.write_bytes("curves.png", plot_png(results["metrics"], protocol, results["baselines"]))
    out.write_text("metrics.json", json.dumps(strict, indent=2, allow_nan=False), marker=True)
    return EvaluationResult(strict, out.path)


def _curve_metrics(res: dict[str, Any]) -> list[str]:
    return [m for m, v in res.items() if isinstance(v, dict) and "best" in v]


def write_csv(path: Path, res: dict[str, Any], protocol: Protocol,
              baselines: dict[str, Any] | None = None) -> None:
    """:func:`csv_text` written to ``path`` atomically."""
    text = csv_text(res, protocol, baselines)
    write_atomically(path, lambda tmp: tmp.write_text(text, newline=""))


def csv_text(res: dict[str, Any], protocol: Protocol,
             baselines: dict[str, Any] | None = None) -> str:
    """per_frame.csv: one row per predicted frame (``t``: 1-based frame index in the clip);
    columns ``<metric>_<selection>[_std]``, then ``<metric>_<predictor>`` of the trivial
    predictors."""
    names = _curve_metrics(res)
    baselines = baselines or {}
    header = ["t"]
    for m in names:
        for s in SELECTIONS:
            header += [f"{m}_{s}", f"{m}_{s}_std"]
    for b, bres in baselines.items():
        header += [f"{m}_{b}" for m in names if m in bres]
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(header)
    for t in range(protocol.n_pred):
        row: list[Any] = [protocol.n_ctx + t + 1]
        for m in names:
            for s in SELECTIONS:
                row += [repr(res[m][s]["per_frame_mean"][t]),
                        repr(res[m][s]["per_frame_std"][t])]
        for bres in baselines.values():
            row += [repr(bres[m]["best"]["per_frame_mean"][t]) for m in names if m in bres]
        w.writerow(row)
    return f.getvalue()


def write_plot(path: Path, res: dict[str, Any], protocol: Protocol,
               baselines: dict[str, Any] | None = None) -> None:
    """:func:`plot_png` written to ``path`` atomically."""
    write_bytes_atomically(path, plot_png(res, protocol, baselines))


BASELINE_STYLES = {"copy_last": "-.", "blank": ":", "context_mean": (0, (5, 1, 1, 1, 1, 1))}


def plot_png(res: dict[str, Any], protocol: Protocol,
             baselines: dict[str, Any] | None = None) -> bytes:
    """curves.png: per-frame curves of best/mean/worst of N, one panel per metric (titled with
    its convention), and the trivial predictors in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _curve_metrics(res)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    t = np.arange(protocol.n_ctx + 1, protocol.n_ctx + protocol.n_pred + 1)
    for ax, m in zip(axes[0], names, strict=True):
        for s, style in zip(SELECTIONS, ("-", "--", ":"), strict=True):
            mean = np.asarray(res[m][s]["per_frame_mean"])
            ax.plot(t, mean, style, label=f"{s} of N")
            if s == "best":
                std = np.asarray(res[m][s]["per_frame_std"])
                ax.fill_between(t, mean - std, mean + std, alpha=0.2)
        for b, bres in (baselines or {}).items():
            if m in bres:
                ax.plot(t, bres[m]["best"]["per_frame_mean"], color="0.5", lw=1,
                        linestyle=BASELINE_STYLES.get(b, "-"), label=b)
        conv = res[m].get("convention")
        ax.set_title(f"{m} ({conv})" if conv and "@" not in m else m, fontsize=9)
        ax.set_xlabel("frame")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(protocol.id)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _fmt(value: Any, path: str, non_finite: dict[str, str], spec: str) -> str:
    """A number for the summary; values written as null in metrics.json print as inf / -inf
    and undefined ones (NaN) as n/a."""
    if value is None:
        text = non_finite.get(path, "nan")
        return "n/a" if text == "nan" else text
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a" if math.isnan(value) else str(value)
    return format(value, spec)


def format_summary(result: dict[str, Any]) -> str:
    """A few lines: best/mean of N for each metric, FVD, negative ELBO, warnings.

    Non-finite values (the PSNR of a prediction equal to its target is +inf; the std of such
    values is undefined) print as ``inf`` and ``n/a``.
    """
    non_finite = dict(item.split("=", 1) for item in result.get("non_finite", []))
    lines = [f"protocol {result['protocol_id']}: {result['n_sequences']} sequences x "
             f"{result['n_samples']} samples"]
    for name, res in result["metrics"].items():
        key = f"metrics.{name}"
        if isinstance(res, str):
            lines.append(f"  {name:12s} {res}")
        elif "best" in res:
            b, m = res["best"], res["mean"]
            label = name if "@" in name or "convention" not in res or name == "stroke_iou" \
                else f"{name}@{res['convention']}"
            lines.append(
                f"  {label:14s} best {_fmt(b['mean'], key + '.best.mean', non_finite, '.4f')} +- "
                f"{_fmt(b['std'], key + '.best.std', non_finite, '.4f')}   "
                f"mean {_fmt(m['mean'], key + '.mean.mean', non_finite, '.4f')} +- "
                f"{_fmt(m['std'], key + '.mean.std', non_finite, '.4f')}")
        else:
            lines.append(f"  {name:12s} {_fmt(res['mean'], key + '.mean', non_finite, '.2f')} +- "
                         f"{_fmt(res['std'], key + '.std', non_finite, '.2f')} "
                         f"({res['rounds']} rounds)")
    if "elbo" in result:
        term = result["elbo"].get("score_term", "nelbo")
        value = result["elbo"]["per_clip_mean"].get(term, math.nan)
        if term == "nelbo":
            lines.append(f"  {'neg. ELBO':12s} {_fmt(value, '', {}, '.2f')} nats per clip")
        else:
            lines.append(f"  {term:12s} {_fmt(value, '', {}, '.4g')}")
    baselines = result.get("baselines") or {}
    if baselines:
        shown = [m for m in ("ssim", "psnr", "stroke_iou") if m in result["metrics"]]
        conv = result["metrics"].get("ssim", {}).get("convention", "")
        lines.append(f"  trivial predictors ({conv} convention; "
                     + ", ".join(shown) + "):")
        for b, bres in baselines.items():
            cells = [_fmt(bres[m]["best"]["mean"], f"baselines.{b}.{m}.best.mean", non_finite,
                          ".4f") for m in shown if m in bres]
            lines.append(f"    {b:14s} " + "  ".join(cells))
    for warning in result.get("warnings", []):
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)
