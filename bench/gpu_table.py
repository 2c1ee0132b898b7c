"""The Markdown table of docs/benchmarks.md's GPU section from ``bench/gpu_run.sh``'s
``bench.jsonl`` (one JSON object per measurement) and ``env.json``.

    python bench/gpu_table.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def label(r: dict) -> str:
    """The setting of one training-step row, in words."""
    if r["bench"] == "official_step":
        return f"official `vrnn_hier`, {'bf16' if r['bf16'] else 'float32'}"
    parts = [r["preset"], "bf16" if r["bf16"] else "float32"]
    parts += [name for key, name in (("fused", "fused Adam"), ("device_check", "device check"),
                                     ("channels_last", "channels_last"),
                                     ("bf16_norm", "bf16 GroupNorm"),
                                     ("data_on_device", "data on device")) if r.get(key)]
    if r.get("compile", "none") != "none":
        parts.append(f"compiled {r['compile']} ({r['compile_mode']})")
    return ", ".join(parts)


def main() -> None:
    folder = Path(sys.argv[1])
    env = json.loads((folder / "env.json").read_text())
    rows = [json.loads(line) for line in (folder / "bench.jsonl").read_text().splitlines()
            if line.startswith("{")]
    print(f"Card: {env.get('gpu', 'none (CPU)')}, torch {env['packages']['torch']}, Python "
          f"{env['python']}.\n")
    print("| setting | batch | s / step (waited; back to back) | predicted frames / s | "
          "TFLOP/s | peak GPU memory | compile s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r["bench"] not in ("train_step", "official_step"):
            continue
        waited = r["seconds_per_step"]
        piped = r.get("pipelined_seconds_per_step")
        mem = r.get("peak_cuda_mb")
        print(f"| {label(r)} | {r['batch_size']} | {waited:.3f}"
              f"{f'; {piped:.3f}' if piped else ''} | {r['frames_per_second']:,.0f} | "
              f"{r.get('tflop_per_second', '')} | {f'{mem / 1024:.1f} GB' if mem else ''} | "
              f"{r.get('compile_seconds') if r.get('compile', 'none') != 'none' else ''} |")
    for r in rows:
        if r["bench"] == "protocol":
            print(f"\nProtocol {r['protocol']} ({r['preset']}, {'bf16' if r['bf16'] else 'fp32'},"
                  f" compile {r['compile']}, {r['batch_size']} sequences a batch): "
                  f"{r['sequences']} sequences timed, model time "
                  f"{r['whole_protocol_model_seconds']} s and data + metrics "
                  f"{r['whole_protocol_other_seconds']} s for the whole protocol "
                  f"(first batch {r['first_batch_seconds']} s).")


if __name__ == "__main__":
    main()
