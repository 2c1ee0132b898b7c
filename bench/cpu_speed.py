"""The CPU recipe's training step before and after its speed settings, measured in one run.

    python bench/cpu_speed.py --preset smmnist32 --batch-size 8 --threads 2 --json
    python bench/cpu_speed.py ... --compile      # also torch.compile (minutes of compilation)

Each variant is its own ``bench/train_step.py`` process (the OpenMP wait policy is read when the
runtime starts), timing the median of 5 steps after 3 warm-up steps; the variants are
interleaved over ``--rounds`` so that a drift of the machine's speed affects each alike:

- ``before``: what hvrnn 0.1.0's command line did, float32 with ``OMP_WAIT_POLICY=PASSIVE``;
- ``fp32``: float32 with the OpenMP runtime's default waiting;
- ``after``: bf16 autocast (``train.amp=bf16``) with the default waiting, the recipe as trained;
- ``after_batch1``: the same at batch 1, whose step time bounds the per-step cost that does not
  scale with the batch (Python, operator dispatch, optimiser over 2.5 M parameters);
- ``after_compile`` (``--compile``): ``after`` with ``torch.compile``; its first warm-up step
  holds the compilation, and the report says after how many steps it pays for itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, train_step_process  # noqa: E402

VARIANTS = {  # name: (OMP_WAIT_POLICY or None, train_step.py flags, batch size or None)
    "before": ("PASSIVE", [], None),
    "fp32": (None, [], None),
    "after": (None, ["--bf16"], None),
    "after_batch1": (None, ["--bf16"], 1),
}


def _run(name: str, args: argparse.Namespace) -> dict:
    compiled = (None, ["--bf16", "--compile", "model"], None)
    policy, flags, batch = VARIANTS[name] if name in VARIANTS else compiled
    cmd, env = train_step_process(args.preset, batch or args.batch_size, args.threads, policy,
                                  tuple(flags))
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="smmnist32")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (once)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name in VARIANTS:
            runs[name].append(_run(name, args))
    if args.compile:
        runs["after_compile"] = [_run("after_compile", args)]
    summary = {}
    for name, rs in runs.items():
        sec = statistics.median(r["seconds_per_step"] for r in rs)
        summary[name] = {"seconds_per_step": round(sec, 4),
                         "frames_per_second": round(statistics.median(
                             r["frames_per_second"] for r in rs), 1),
                         "batch_size": rs[0]["batch_size"]}
    base = summary["before"]["seconds_per_step"]
    for s in summary.values():
        s["speed_vs_before"] = round(base / s["seconds_per_step"], 2)
    if args.compile:
        first = runs["after_compile"][0]["warmup_step_seconds"][0]
        gain = summary["after"]["seconds_per_step"] - summary["after_compile"]["seconds_per_step"]
        summary["after_compile"]["first_step_seconds"] = round(first, 1)
        summary["after_compile"]["pays_off_after_steps"] = (
            round(first / gain) if gain > 0 else None)
    emit({"bench": "cpu_speed", "preset": args.preset, "threads": args.threads,
          "summary": summary, "runs": runs}, args.json)


if __name__ == "__main__":
    main()
