#!/usr/bin/env bash
# Convert Cityscapes sequences to 128x128 and 64x64 arrays.
# The archive needs a Cityscapes account: log in at https://www.cityscapes-dataset.com and download
# leftImg8bit_sequence_trainvaltest.zip (package 14, about 324 GB) into DATA_DIR/raw first.
# Usage: scripts/cityscapes.sh [DATA_DIR] [WORKERS]
set -euo pipefail
DATA=${1:-data}
WORKERS=${2:-8}
ZIP="$DATA/raw/leftImg8bit_sequence_trainvaltest.zip"
if [[ ! -f "$ZIP" ]]; then
  echo "error: $ZIP not found; download it from https://www.cityscapes-dataset.com (login needed)" >&2
  exit 2
fi
hvrnn data cityscapes "$ZIP" --out "$DATA/cityscapes128" --size 128 --workers "$WORKERS"
hvrnn data cityscapes "$ZIP" --out "$DATA/cityscapes64" --size 64 --workers "$WORKERS"
hvrnn data verify "$DATA/cityscapes128"
hvrnn data verify "$DATA/cityscapes64"
