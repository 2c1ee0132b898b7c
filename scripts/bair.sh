#!/usr/bin/env bash
# Download BAIR robot pushing (about 30 GB) and convert it to data/bair (train.npy, test.npy).
# Usage: scripts/bair.sh [DATA_DIR]
set -euo pipefail
DATA=${1:-data}
URL=http://rail.eecs.berkeley.edu/datasets/bair_robot_pushing_dataset_v0.tar
TAR="$DATA/raw/bair_robot_pushing_dataset_v0.tar"
mkdir -p "$DATA/raw"
if [[ ! -f "$TAR" ]]; then
  curl -L --fail --continue-at - -o "$TAR.partial" "$URL"
  mv "$TAR.partial" "$TAR"
fi
hvrnn data bair "$TAR" --out "$DATA/bair"
hvrnn data verify "$DATA/bair"
