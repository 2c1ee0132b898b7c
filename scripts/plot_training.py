"""Validation curves of one or more runs against training wall-clock minutes.

    python scripts/plot_training.py RUN_DIR [RUN_DIR ...] --labels A B --out curves.png

Reads each run's ``metrics.jsonl`` (``hvrnn.training.logs.read_metrics``: one record per step,
the latest written) and plots, against the minutes spent training
(``hvrnn.training.logs.training_minutes``: gaps between sessions do not count), the validation
best-of-N SSIM and the KL per latent level.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--labels", nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reference", nargs=2, action="append", default=[], metavar=("NAME", "SSIM"),
                    help="a horizontal line on the SSIM panel, e.g. 'all-black frames' 0.497")
    args = ap.parse_args()
    from hvrnn.training.logs import read_metrics, training_minutes

    fig, (a_ssim, a_kl) = plt.subplots(1, 2, figsize=(12, 4.2))
    colors = plt.get_cmap("tab20" if len(args.runs) > 10 else "tab10").colors
    for i, run in enumerate(args.runs):
        label = args.labels[i] if args.labels else run.name
        minutes = training_minutes(run)
        val = [r for r in read_metrics(run, "val") if r["step"] in minutes]
        t = [minutes[r["step"]] for r in val]
        line, = a_ssim.plot(t, [r["ssim_best"] for r in val], marker=".", label=label,
                            color=colors[i % len(colors)])
        levels = sorted(k for k in val[0] if k.startswith("kl/level_"))
        for k in levels:
            a_kl.plot(t, [max(r[k], 1e-3) for r in val], marker=".", color=line.get_color(),
                      alpha=0.45 if k == levels[0] and len(levels) > 1 else 1.0,
                      label=f"{label}, {k[3:]}")
    for name, value in args.reference:
        a_ssim.axhline(float(value), ls="--", c="k", lw=0.8)
        a_ssim.text(0, float(value) + 0.003, f"{name} {float(value):.3f}", fontsize=7)
    a_ssim.set_xlabel("training minutes")
    a_ssim.set_ylabel("validation SSIM, best of N")
    a_ssim.legend(fontsize=7, loc="lower right")
    a_kl.set_yscale("log")
    a_kl.set_xlabel("training minutes")
    a_kl.set_ylabel("validation KL per clip (nats)")
    a_kl.legend(fontsize=6.5)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
