"""OpenMP wait policy on the CPU: training-step time with the OpenMP runtime's default, PASSIVE
and ACTIVE waiting, each alone on the machine and as two processes sharing it.

    python bench/omp_wait_policy.py --preset smmnist32 --batch-size 8 --threads 2 --json

Every measurement is its own ``bench/train_step.py`` process (the policy is read when the OpenMP
runtime starts, so it cannot change inside one process), timing the median of 5 steps after 3
warm-up steps with bf16 autocast. ``pair`` runs two identical processes at once and reports
both medians. The policies are interleaved (default, PASSIVE, ACTIVE, then again) so that a
drift of the machine's speed affects each alike; the JSON lists every run.
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

POLICIES = ("default", "PASSIVE", "ACTIVE")


def _launch(policy: str, args: argparse.Namespace) -> subprocess.Popen:
    cmd, env = train_step_process(args.preset, args.batch_size, args.threads,
                                  None if policy == "default" else policy, ("--bf16",))
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)


def _seconds(procs: list[subprocess.Popen]) -> list[float]:
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        out.append(json.loads(stdout.strip().splitlines()[-1])["seconds_per_step"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="smmnist32")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runs: dict[str, dict[str, list[float]]] = {p: {"alone": [], "pair": []} for p in POLICIES}
    for _ in range(args.rounds):
        for policy in POLICIES:
            runs[policy]["alone"] += _seconds([_launch(policy, args)])
            runs[policy]["pair"] += _seconds([_launch(policy, args) for _ in range(2)])
    summary = {p: {k: round(statistics.median(v), 3) for k, v in r.items()}
               for p, r in runs.items()}
    emit({"bench": "omp_wait_policy", "preset": args.preset, "batch_size": args.batch_size,
          "threads_per_process": args.threads, "seconds_per_step_median": summary,
          "runs": runs}, args.json)


if __name__ == "__main__":
    main()
