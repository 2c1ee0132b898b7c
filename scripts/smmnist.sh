#!/usr/bin/env bash
# Prepare Stochastic Moving MNIST: the 64x64 set of the paper and the 32x32 set of the tiny config.
# MNIST comes from $MNIST if set (IDX folder, .npz or mnist.pkl.gz), else the cache / download.
# Usage: scripts/smmnist.sh [DATA_DIR]
set -euo pipefail
DATA=${1:-data}
MNIST_ARG=()
if [[ -n "${MNIST:-}" ]]; then MNIST_ARG=(--mnist "$MNIST"); fi
hvrnn data smmnist --out "$DATA/smmnist" --size 64 --num-sequences 1000 --seq-len 30 "${MNIST_ARG[@]}"
hvrnn data smmnist --out "$DATA/smmnist32" --size 32 --num-sequences 1000 --seq-len 30 "${MNIST_ARG[@]}"
hvrnn data verify "$DATA/smmnist"
hvrnn data verify "$DATA/smmnist32"
