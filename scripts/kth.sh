#!/usr/bin/env bash
# Download the six KTH action archives, unzip them and convert to grey 64x64 arrays (data/kth).
# Usage: scripts/kth.sh [DATA_DIR]
set -euo pipefail
DATA=${1:-data}
RAW="$DATA/raw/kth"
mkdir -p "$RAW"
for action in boxing handclapping handwaving jogging running walking; do
  if [[ ! -f "$RAW/$action.zip" ]]; then
    curl -L --fail -o "$RAW/$action.zip.partial" "http://www.nada.kth.se/cvap/actions/$action.zip"
    mv "$RAW/$action.zip.partial" "$RAW/$action.zip"
  fi
  unzip -n -q "$RAW/$action.zip" -d "$RAW/$action"
done
hvrnn data kth "$RAW" --out "$DATA/kth" --size 64
hvrnn data verify "$DATA/kth"
