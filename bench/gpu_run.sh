#!/usr/bin/env bash
# What only a GPU can show, in about seven minutes on one GPU: bf16 and fp32 training throughput
# of the paper's bair64 model, step-wise sampling throughput of the BAIR protocol (100 samples of
# 28 frames), and a short run of the smmnist64_fast recipe scored on protocol
# smmnist64-c5-p20-n100 (best of 100 samples, 20 predicted frames).
#
#   bash bench/gpu_run.sh OUT_DIR [TRAIN_MINUTES]
#
# Needs a prepared 64x64 SM-MNIST test set in data/smmnist64
# (hvrnn data smmnist --size 64 --num-sequences 256 --out data/smmnist64).
set -uo pipefail
out=${1:?usage: bash bench/gpu_run.sh OUT_DIR [TRAIN_MINUTES]}
minutes=${2:-4.5}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
log="$out/gpu_run.log"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $py -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0])"
  for args in "--bf16" ""; do
    timeout 120 $py bench/train_step.py --preset bair64 --batch-size 16 $args --device cuda \
      --json >> "$out/train_step_bair64.jsonl"
  done
  timeout 120 $py bench/sampling.py --preset bair64 --horizon 28 --samples 100 --skip-rerun \
    --bf16 --device cuda --json >> "$out/sampling_bair64.jsonl"
  run=$(mktemp -d)/smmnist64_fast
  timeout $(python3 -c "print(int($minutes * 60 + 120))") $py -m hvrnn.cli train smmnist64_fast \
    data.root=data/smmnist64 data.num_workers=4 train.max_minutes="$minutes" --run-dir "$run"
  cp "$run/metrics.jsonl" "$out/train_metrics.jsonl"
  timeout 240 $py -m hvrnn.cli evaluate "$run" --protocol smmnist64-c5-p20-n100 \
    --data-root data/smmnist64 --device cuda --no-lpips --no-fvd --out "$run/eval"
  cp "$run/eval/metrics.json" "$out/metrics.json"
  cp "$run/eval/per_frame.csv" "$out/per_frame.csv"
  last=$(ls "$run/samples"/*.png | tail -n 1) && cp "$last" "$out/samples_last.png"
} 2>&1 | tee "$log"
