"""Run a command while every CPU core is kept busy by other processes, as on a shared machine.

    python3 scripts/under_load.py [--workers N] -- COMMAND [ARG ...]

Starts N processes (default: one per core) that spin at normal priority, runs COMMAND, stops
the spinners (by their process ids) and exits with COMMAND's status. CI runs the test suite this
way once, so that a test that passes only on an idle machine (a timeout, a race with a worker,
a thread count) fails there rather than on a user's busy machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys


def _spin() -> None:
    while True:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="busy processes (default: one per core)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.workers)]
    for p in spinners:
        p.start()
    print(f"under_load: {len(spinners)} busy process(es) while running: {' '.join(command)}",
          file=sys.stderr, flush=True)
    try:
        return subprocess.call(command)
    finally:
        for p in spinners:
            p.terminate()
        for p in spinners:
            p.join()


if __name__ == "__main__":
    sys.exit(main())
