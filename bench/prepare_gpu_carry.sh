#!/usr/bin/env bash
# Prepare .gpu_carry/ (git-ignored), what bench/gpu_run.sh reads on a machine without network:
#
#   bash bench/prepare_gpu_carry.sh [OFFICIAL]
#
# - .gpu_carry/smmnist32: `hvrnn data smmnist --size 32 --num-sequences 256` (the test set of
#   protocol smmnist32-c2-p10-n10 and the MNIST digits, about 19 MB);
# - .gpu_carry/official, if OFFICIAL is given: a checkout of
#   github.com/facebookresearch/improved_vrnn, or its bare git directory, from which the four
#   files that bench/official_step.py imports are taken, plus a one-line vrnn_layers.py
#   (`from layers import *`, the module vrnn_hier.py imports, missing upstream). Never commit
#   them: the official code's licence is non-commercial (CC BY-NC 4.0).
set -euo pipefail
cd "$(dirname "$0")/.."
hvrnn=${HVRNN:-.venv/bin/hvrnn}
mkdir -p .gpu_carry
[[ -f .gpu_carry/smmnist32/manifest.json ]] || \
  "$hvrnn" data smmnist --size 32 --num-sequences 256 --out .gpu_carry/smmnist32
if (($#)); then
  src=$1 dst=.gpu_carry/official
  mkdir -p "$dst/models"
  for f in layers.py flows.py losses.py models/vrnn_hier.py LICENSE; do
    if [[ -d $src/.git || -f $src/$f ]]; then cp "$src/$f" "$dst/$f"
    else git --git-dir="$src" show "HEAD:$f" > "$dst/$f"; fi
  done
  echo 'from layers import *  # the module vrnn_hier.py imports (missing upstream)' \
    > "$dst/vrnn_layers.py"
fi
du -sh .gpu_carry/* >&2
