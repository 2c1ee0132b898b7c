"""What ``hvrnn compare`` writes (docs/evaluation.md): ``table.md`` and ``table.csv``,
``curves.png``, ``figures/seq_<i>.png`` and ``compare.json``, each written atomically.

Figure columns (the paper's supplementary Figures C.1-C.3): the context frames, then the
predicted frames t = 3, 4, 6, 8, 10, 12, 15, 18, 20, 25 (1-based frame indices of the clip)
that fall in the horizon; when the protocol predicts 10 frames or fewer, every predicted frame.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from hvrnn.errors import UserError
from hvrnn.evaluation.compare import (
    Entry,
    check_same_protocol,
    claim_evaluation_folders,
    collect_entries,
    evaluate_missing,
)
from hvrnn.evaluation.ground_truth import clips_uint8, ground_truth
from hvrnn.evaluation.protocols import Protocol, get_protocol
from hvrnn.io.output import OutputFolder, put

PAPER_STEPS = (3, 4, 6, 8, 10, 12, 15, 18, 20, 25)
EVERY_STEP_UP_TO = 10  # horizons this short show every predicted frame
SHOWN = ("best", "mean")  # best of N, mean of N
DIGITS = {"psnr": 2}  # 4 for the others
OUTPUTS = ("table.md", "table.csv", "curves.png", "compare.json")
Out = Path | OutputFolder  # a folder written file by file, or as one unit


def _root(out: Out) -> Path:
    return out.path if isinstance(out, OutputFolder) else out


def figure_steps(n_ctx: int, n_pred: int) -> list[int]:
    """1-based frame indices t of the predicted columns of a figure (module docstring)."""
    if n_pred <= EVERY_STEP_UP_TO:
        return list(range(n_ctx + 1, n_ctx + n_pred + 1))
    return [t for t in PAPER_STEPS if n_ctx < t <= n_ctx + n_pred]


def _curve_metrics(entries: list[Entry]) -> list[str]:
    names: list[str] = []
    for e in entries:
        for m, v in e.metrics["metrics"].items():
            if isinstance(v, dict) and "best" in v and m not in names:
                names.append(m)
    return names


def _fmt(v: Any, digits: int) -> str:
    return "n/a" if not isinstance(v, (int, float)) or not math.isfinite(v) else \
        f"{v:.{digits}f}"


def _summary(s: dict[str, Any] | None, digits: int) -> tuple[str, list[Any]]:
    """'mean ± std [lo, hi]' and the CSV values (mean, std, lo, hi) of one summary."""
    if not s:
        return "", ["", "", "", ""]
    lo, hi = (s.get("ci95") or [None, None])[:2]
    cell = f"{_fmt(s.get('mean'), digits)} ± {_fmt(s.get('std'), digits)} " \
           f"[{_fmt(lo, digits)}, {_fmt(hi, digits)}]"
    return cell, [s.get("mean"), s.get("std"), lo, hi]


def _fvd(metrics: dict[str, Any]) -> tuple[str, list[Any]]:
    fvd = metrics["metrics"].get("fvd")
    if not isinstance(fvd, dict):
        return "n/a", ["", "", ""]
    return (f"{fvd['mean']:.1f} ± {fvd['std']:.1f} ({fvd['rounds']} rounds)",
            [fvd["mean"], fvd["std"], fvd["rounds"]])


def _elbo(metrics: dict[str, Any]) -> tuple[str, str, list[Any]]:
    """Negative ELBO per clip and KL per level ("a / b", coarsest level first) of an entry's
    teacher-forced pass, and their CSV values; empty where the entry has none (predictions
    files, deterministic kinds)."""
    per = (metrics.get("elbo") or {}).get("per_clip_mean") or {}
    levels = [per[k] for k in sorted((k for k in per if k.startswith("kl/level_")),
                                     key=lambda k: int(k.rsplit("_", 1)[1]))] or \
        ([per["kl"]] if "kl" in per else [])  # a kind that records only the total
    if "nelbo" not in per:
        return "n/a", "n/a", ["", ""]
    return (_fmt(per["nelbo"], 1), " / ".join(_fmt(v, 2) for v in levels) or "n/a",
            [per["nelbo"], ";".join(repr(float(v)) for v in levels)])


def _metric_cells(results: dict[str, Any], names: list[str]) -> tuple[list[str], list[Any]]:
    """(Markdown cells, CSV values) of each metric in ``names`` and selection of ``SHOWN`` in
    ``results`` (a metrics.json ``metrics`` or ``baselines`` entry)."""
    md: list[str] = []
    row: list[Any] = []
    for m in names:
        res = results.get(m)
        for s in SHOWN:
            cell, values = _summary(res.get(s) if isinstance(res, dict) else None,
                                    DIGITS.get(m, 4))
            md.append(cell)
            row += values
    return md, row


def _headers(names: list[str]) -> tuple[list[str], list[str]]:
    """The Markdown and CSV headers of the comparison table with the metrics ``names``."""
    md_head = ["model", "kind", "N", "sequences"]
    csv_head = ["label", "source", "kind", "n_samples", "n_sequences"]
    for m in names:
        md_head += [f"{m} {s} of N" for s in SHOWN]
        csv_head += [f"{m}_{s}_{q}" for s in SHOWN for q in ("mean", "std", "ci95_lo",
                                                              "ci95_hi")]
    md_head += ["FVD", "neg. ELBO (nats/clip)", "KL per level (nats/clip)", "frames/s"]
    csv_head += ["fvd_mean", "fvd_std", "fvd_rounds", "nelbo", "kl_per_level",
                 "frames_per_second"]
    return md_head, csv_head


def table_rows(entries: list[Entry]) -> tuple[list[str], list[list[str]], list[str],
                                              list[list[Any]]]:
    """(Markdown header, Markdown rows, CSV header, CSV rows) of the comparison table: one
    row per entry, then the trivial predictors of the first evaluation that has them (same
    protocol and sequences)."""
    names = _curve_metrics(entries)
    md_head, csv_head = _headers(names)
    md_rows, csv_rows = [], []
    for e in entries:
        r = e.metrics
        md_cells, values = _metric_cells(r["metrics"], names)
        cell, fvd_values = _fvd(r)
        nelbo, kls, elbo_values = _elbo(r)
        fps = (r.get("sampling") or {}).get("frames_per_second")
        md_rows.append([e.label, e.model_kind, str(r.get("n_samples")),
                        str(r.get("n_sequences")), *md_cells, cell, nelbo, kls, _fmt(fps, 1)])
        csv_rows.append([e.label, str(e.source), e.model_kind, r.get("n_samples"),
                         r.get("n_sequences"), *values, *fvd_values, *elbo_values,
                         fps if fps is not None else ""])
    scored = next((e.metrics for e in entries if e.metrics.get("baselines")), None)
    for name, res in ((scored or {}).get("baselines") or {}).items():
        md_cells, values = _metric_cells(res, names)
        n = scored.get("n_sequences")
        md_rows.append([f"{name} (trivial)", "trivial", "1", str(n), *md_cells,
                        "n/a", "n/a", "n/a", "n/a"])
        csv_rows.append([f"{name} (trivial)", "", "trivial", 1, n, *values,
                         "", "", "", "", "", ""])
    return md_head, md_rows, csv_head, csv_rows


def write_table(entries: list[Entry], p: Protocol, out: Out) -> None:
    """``table.md`` (cells: mean ± std over sequences [bootstrap 95% interval]) and
    ``table.csv`` (the same numbers, unrounded)."""
    md_head, md_rows, csv_head, csv_rows = table_rows(entries)
    main = next((e.metrics["metrics"]["ssim"].get("convention") for e in entries
                 if isinstance(e.metrics["metrics"].get("ssim"), dict)), None)
    lines = [f"Protocol {p.id}: best and mean of N samples per sequence, mean ± std over "
             "sequences [95% bootstrap interval]; FVD mean ± std over rounds; negative ELBO "
             "and KL per latent level (coarsest first) of the teacher-forced pass, nats per "
             "clip; sampling throughput in predicted frames per second."
             + (f" psnr and ssim under the {main} metric convention, psnr@NAME and ssim@NAME "
                "under NAME's (docs/evaluation.md)." if main else ""), "",
             "| " + " | ".join(md_head) + " |", "|" + "---|" * len(md_head)]
    lines += ["| " + " | ".join(row) + " |" for row in md_rows]
    put(out, "table.md", lambda t: t.write_text("\n".join(lines) + "\n"))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(csv_head)
    writer.writerows([[repr(v) if isinstance(v, float) else v for v in row]
                      for row in csv_rows])
    put(out, "table.csv", lambda t: t.write_text(buf.getvalue()))


def write_curves(entries: list[Entry], p: Protocol, out: Out) -> None:
    """``curves.png``: per metric, the per-frame best-of-N (solid) and mean-of-N (dashed)
    curves of every entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _curve_metrics(entries)
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    t = np.arange(p.n_ctx + 1, p.n_ctx + p.n_pred + 1)
    for ax, m in zip(axes[0], names, strict=True):
        for i, e in enumerate(entries):
            res = e.metrics["metrics"].get(m)
            if not isinstance(res, dict):
                continue
            colour = f"C{i % 10}"
            for s, style in zip(SHOWN, ("-", "--"), strict=True):
                ax.plot(t, res[s]["per_frame_mean"], style, color=colour,
                        label=f"{e.label} ({s} of {e.metrics.get('n_samples')})")
        ax.set_title(m)
        ax.set_xlabel("frame t")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(p.id)
    fig.tight_layout()
    put(out, "curves.png", lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)


def read_samples(path: Path, rows: list[int], p: Protocol | None = None
                 ) -> dict[int, np.ndarray]:
    """Rows of the ``samples`` array of a predictions file, read in order without loading the
    rest: {row: (N, T, H, W, C) uint8}; with ``p``, the array must hold the protocol's
    predicted frames (UserError naming the file otherwise)."""
    from hvrnn.evaluation.ground_truth import check_array
    from hvrnn.io.npy import open_npz

    reader = open_npz(path, ("samples",), required="samples", what="predictions file")["samples"]
    out, pos = {}, 0
    try:
        if p is not None:
            check_array("samples", reader, (None, None, p.n_pred, p.image_size, p.image_size,
                                            p.channels), p, str(path))
        for row in sorted(set(rows)):
            while pos < row:  # skip, a few rows at a time
                pos += len(reader.read(min(8, row - pos)))
            block = reader.read(1)
            if len(block) == 0:
                raise UserError(f"{str(path)!r} holds no sequence {row}")
            out[row], pos = block[0], pos + 1
    finally:
        reader.close()
    return out


def choose_sample(samples: np.ndarray, truth: np.ndarray, show: str, seed: int, row: int,
                  ssim_variant: str) -> int:
    """Index of the sample shown: the best by frame-averaged SSIM against ``truth`` (T, H, W,
    C), or a random one drawn with ``seed`` and the sequence index."""
    if show == "random":
        return int(np.random.default_rng([seed, row]).integers(samples.shape[0]))
    from hvrnn.io.frames import to_float
    from hvrnn.metrics.ssim import ssim

    x = to_float(samples).double()
    y = to_float(truth).double()[None].expand_as(x)
    return int(ssim(x, y, ssim_variant).mean(1).argmax())


def _figure_rows(entries: list[Entry], clip: np.ndarray, p: Protocol, row: int, show: str,
                 seed: int, samples: dict[str, dict[int, np.ndarray]]
                 ) -> tuple[list[np.ndarray], list[str]]:
    from hvrnn import viz

    k, cols = p.n_ctx, [t - p.n_ctx - 1 for t in figure_steps(p.n_ctx, p.n_pred)]
    context, truth = clip[:k], clip[k:]
    scale = viz.auto_scale(clip.shape[1], 64)
    images = [viz.sample_grid(context, truth[None], None, cols, scale=scale)]
    labels = ["ground truth"]
    for e in entries:
        s = samples.get(e.label, {}).get(row)
        if s is None:
            shown = np.full((1, *truth.shape), 255, np.uint8)
            labels.append(f"{e.label}\n(no predictions)")
        else:
            i = choose_sample(s, truth, show, seed, row, p.ssim_variant)
            shown = s[i:i + 1]
            labels.append(f"{e.label}\n{show}: sample {i} of {s.shape[0]}")
        images.append(viz.sample_grid(context, shown, None, cols, scale=scale))
    return images, labels


def write_figures(entries: list[Entry], p: Protocol, gt: Any, rows: list[int], show: str,
                  seed: int, out: Out) -> list[Path]:
    """``figures/seq_<i>.png`` per test sequence: the ground truth, then one row per entry;
    with several sequences also ``figures/sequences.png``, all of them one under another."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = {e.label: read_samples(e.predictions, rows, p) for e in entries
               if e.predictions is not None}
    (_root(out) / "figures").mkdir(exist_ok=True)
    steps, written, names = figure_steps(p.n_ctx, p.n_pred), [], []
    for row in rows:
        clip = clips_uint8(gt, row, row + 1, p)[0]  # (K + T, H, W, C)
        images, labels = _figure_rows(entries, clip, p, row, show, seed, samples)
        h, w = images[0].shape[:2]
        fig, axes = plt.subplots(len(images), 1, figsize=(max(6.0, w / 60), 0.3 + len(images)
                                                          * max(0.8, h / 60)), squeeze=False)
        cell = w / (p.n_ctx + len(steps))
        for ax, img, label in zip(axes[:, 0], images, labels, strict=True):
            ax.imshow(img)
            ax.set_yticks([])
            ax.set_xticks([])
            ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        top = axes[0, 0]
        top.set_xticks([(j + 0.5) * cell for j in range(p.n_ctx + len(steps))])
        top.set_xticklabels([f"t={t}" for t in [*range(1, p.n_ctx + 1), *steps]], fontsize=7)
        top.xaxis.set_ticks_position("top")
        fig.suptitle(f"{p.id}, test sequence {row}", fontsize=9)
        fig.tight_layout()
        names.append(f"figures/seq_{row:04d}.png")
        written.append(put(  # a tight box keeps long labels whole
            out, names[-1], lambda tmp, f=fig: f.savefig(tmp, dpi=100, bbox_inches="tight")))
        plt.close(fig)
    if len(written) > 1:
        names.append("figures/sequences.png")
        _stack_figures(written, out, names[-1])
    return [_root(out) / name for name in names]


def _stack_figures(paths: list[Path], out: Out, name: str) -> Path:
    """The per-sequence figures one under another (padded white to the widest) in one PNG."""
    import matplotlib.image as mpimg

    images = [mpimg.imread(p)[..., :3] for p in paths]  # (H, W, 3) floats in [0, 1]
    width = max(img.shape[1] for img in images)
    padded = [np.pad(img, ((0, 0), (0, width - img.shape[1]), (0, 0)), constant_values=1.0)
              for img in images]
    return put(out, name, lambda tmp: mpimg.imsave(tmp, np.concatenate(padded), format="png"))


def compare(sources: list[str | Path], protocol: str | Protocol, out: str | Path, *,
            labels: list[str] | None = None, sequences: tuple[int, ...] = (0,),
            show: str = "best", seed: int = 0, force: bool = False,
            data_root: str | Path | None = None, **eval_options: Any) -> dict[str, Any]:
    """Compare ``sources`` (runs, checkpoints, predictions files, evaluation folders) on one
    protocol and write the table, the curves and one figure per test sequence into ``out``.

    Args:
        labels: names of the entries (default: the run / checkpoint / file names).
        sequences: test sequences shown in figures. show: ``best`` (by SSIM) or ``random``
            (seeded by ``seed`` and the sequence) sample per model.
        force: overwrite an earlier comparison in ``out``.
        data_root: prepared test data (default: the protocol's).
        eval_options: for entries evaluated here (see :func:`evaluate_missing`).

    Returns:
        What ``compare.json`` holds.

    Raises:
        UserError: bad input (checked before anything is evaluated or written), or entries
            scored under different protocols.
    """
    p = get_protocol(protocol)
    if show not in ("best", "random"):
        raise UserError(f"show={show!r} is invalid: expected best or random")
    entries = collect_entries(sources, p, labels)
    gt = ground_truth(p, data_root or p.data_root)
    available = p.with_options(max_sequences=eval_options.get("max_sequences")).sequences(
        len(gt))
    bad = [i for i in sequences if not 0 <= i < available]
    if bad:
        raise UserError(f"sequence {bad[0]} does not exist: the protocol scores {available}")
    folder = OutputFolder(out, force=force, watched=OUTPUTS, what="comparison folder")
    folder.check()  # before any evaluation
    claim_evaluation_folders(entries, Path(out), force)
    check_same_protocol(entries, p)
    for e in entries:  # the figures read their samples: the protocol's frames, checked first
        if e.predictions is not None:
            read_samples(e.predictions, [], p)
    with folder:  # locked; the table, curves, figures and compare.json appear together
        return _compare_into(folder, entries, p, gt, sequences, show, seed,
                             {"data_root": data_root, **eval_options}, force)


def _compare_into(out: OutputFolder, entries: list[Entry], p: Protocol, gt: Any,
                  sequences: tuple[int, ...], show: str, seed: int, options: dict[str, Any],
                  force: bool = False) -> dict[str, Any]:
    """Evaluate what is missing, then write the table, curves, figures and compare.json."""
    evaluate_missing(entries, p, out.path, options, force)
    scored = min(e.metrics["n_sequences"] for e in entries)
    if max(sequences) >= scored:
        raise UserError(f"sequence {max(sequences)} was not scored: the entries hold "
                        f"{scored} sequences")
    write_table(entries, p, out)
    write_curves(entries, p, out)
    figures = write_figures(entries, p, gt, list(sequences), show, seed, out)
    summary = {"protocol_id": p.id, "show": show, "seed": seed,
               "figure_steps": figure_steps(p.n_ctx, p.n_pred),
               "figures": [str(f) for f in figures],
               "entries": [{"label": e.label, "source": str(e.source), "kind": e.kind,
                            "model_kind": e.model_kind, "metrics": str(e.metrics_dir /
                                                                       "metrics.json"),
                            "predictions": str(e.predictions) if e.predictions else None}
                           for e in entries]}
    out.write_text("compare.json", json.dumps(summary, indent=2), marker=True)
    return summary


__all__ = ["PAPER_STEPS", "compare", "figure_steps", "read_samples", "table_rows",
           "write_curves", "write_figures", "write_table"]
