#!/usr/bin/env bash
# Everything that needs a GPU, in one run of at most --budget seconds (default 480) on one card,
# each stage under its own timeout, in order of importance (a stage that no longer fits in what
# is left is skipped and says so):
#
#   1. bair64 training step (149 M parameters) at batch 16: float32 as before; bf16 and float32
#      with the fast exact options (fused Adam, finite check on the device); bf16 with GroupNorm
#      in bf16 too (train.amp_group_norm); then the small
#      recipe smmnist64_fast at batch 32 before / after (+ on-device SM-MNIST batches) / after
#      with compiled ConvLSTM steps (CUDA graphs); the BAIR protocol's time (bair64-c2-p28-n100,
#      48 of its 256 sequences timed, scaled); the official implementation's step at batch 16
#      (float32, bf16) when its folder is there; bair64 at batch 64 and 128; channels_last;
#      compiled ConvLSTM steps on bair64; the protocol with compiled steps.
#   2. smmnist32_gpu from the shipped weights (train.init_from=pretrained:smmnist32) for the
#      minutes reserved (--train-minutes, default 1; compiled steps if stage 1 found them
#      faster), scored on smmnist32-c2-p10-n10 and exported as a pretrained folder (tar).
#      --train-only skips stage 1 (a later lease that only trains: --budget 540
#      --train-minutes 6, say).
#
#   bash bench/gpu_run.sh [OUT_DIR] [--budget S] [--train-minutes M] [--data DIR] [--train-only]
#   bash bench/gpu_run.sh /tmp/dry --dry-run      # the same stages on the CPU, tiny sizes
#
# OUT_DIR defaults to $OUT (the device machine's result folder). --data holds smmnist32/ (made
# by `hvrnn data smmnist --size 32 --num-sequences 256 --out DIR/smmnist32`) and optionally
# official/ (github.com/facebookresearch/improved_vrnn's layers.py, flows.py, losses.py,
# models/vrnn_hier.py and a vrnn_layers.py holding `from layers import *`; never committed:
# its licence is non-commercial); default .gpu_carry. Needs nothing from the network: hvrnn runs
# from src/ when it is not installed. At most 8 result files: gpu_run.log, env.json,
# bench.jsonl (one JSON object per measurement), smmnist32_train.jsonl, smmnist32_eval.json,
# smmnist32_per_frame.csv, smmnist32_samples.png, pretrained_smmnist32.tar.
set -uo pipefail
out=${OUT:-gpu_out}; budget=480; train_min=1; data=.gpu_carry; dry=0; train_only=0
while (($#)); do
  case $1 in
    --dry-run) dry=1 ;;
    --train-only) train_only=1 ;;
    --budget) budget=$2; shift ;;
    --train-minutes) train_min=$2; shift ;;
    --data) data=$2; shift ;;
    -*) echo "error: unknown option $1" >&2; exit 2 ;;
    *) out=$1 ;;
  esac
  shift
done
slow=1  # stage timeouts are the GPU's; a dry run on a (shared) CPU gets 5x theirs
((dry)) && slow=5 && [[ $budget == 480 ]] && budget=2400
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd); data=$(cd "$data" 2>/dev/null && pwd || echo "$data")
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
log=$out/gpu_run.log; jsonl=$out/bench.jsonl
exec 2> >(tee -a "$log" >&2)
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }
# the training's minutes plus its start, final validation and checkpoint, the scoring, the export
reserve=$(python3 -c "print(int($train_min * 60 + 150 * $slow))")

# stage NAME TIMEOUT CMD...: runs CMD (stdout appended to bench.jsonl) if it fits before the
# training reserve; its output and exit status go to the log.
stage() {
  local name=$1 t=$(($2 * slow)) l; shift 2
  l=$(($(left) - reserve))
  ((l < t)) && t=$l
  if ((t < 15)); then echo "== SKIP $name: $((l > 0 ? l : 0)) s left before the training" >&2
    return 1; fi
  echo "== $name (timeout ${t}s, $(left) s of the budget left)" >&2
  local t0=$(date +%s)
  timeout -k 5 "$t" "$@" >> "$jsonl"
  local rc=$?
  echo "== $name: exit $rc after $(($(date +%s) - t0)) s" >&2
  return $rc
}

echo "== gpu_run.sh $(date -u +%FT%TZ) budget ${budget}s dry_run=$dry out=$out data=$data" >&2
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv >&2
$py - > "$out/env.json" <<'EOF' || { echo "error: hvrnn cannot run here (env.json)" >&2; exit 1; }
import importlib, json, platform, sys
need = ["torch", "einops", "numpy", "yaml", "tqdm", "PIL", "safetensors"]
optional = ["scipy", "matplotlib", "imageio", "tensorboard", "skimage", "triton"]
found = {}
for name in need + optional:
    try:
        found[name] = getattr(importlib.import_module(name), "__version__", "present")
    except Exception as exc:  # noqa: BLE001
        found[name] = f"missing ({type(exc).__name__})"
import torch
info = {"python": platform.python_version(), "packages": found,
        "cuda": torch.cuda.is_available(), "cpu_count": __import__("os").cpu_count()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                multiprocessors=p.multi_processor_count, cuda_version=torch.version.cuda)
print(json.dumps(info))
missing = [n for n in need if found[n].startswith("missing")]
if missing:
    sys.exit(f"missing packages: {missing}")
EOF
cat "$out/env.json" >&2

if ((dry)); then
  dev=cpu; big=(--preset tiny); b16=2; b64=4; b128=0; small=(--preset smmnist32); bs=4
  steps=(--warmup 1 --steps 1); proto=(--preset tiny --sequences 2 --n-samples 2 --batch-size 1
    data.image_size=64 data.channels=3 data.n_ctx=2); official=(--n-hid 16 --batch-size 1)
  evalopt=(--max-sequences 4 --n-samples 2); trainopt=(train.batch_size=4 train.val_every=0
    train.image_every=10 train.checkpoint_every=10)
else
  dev=cuda; big=(--preset bair64); b16=16; b64=64; b128=128; small=(--preset smmnist64_fast)
  bs=32; steps=(--warmup 3 --steps 5); proto=(--preset bair64 --sequences 48 --batch-size 16)
  official=(--batch-size 16); evalopt=(); trainopt=()
fi
fast=(--fused --device-check)
ts=("$py" bench/train_step.py --device $dev "${steps[@]}" --json)

# ---- 1. measurements ------------------------------------------------------------------------
if ((train_only)); then echo "== --train-only: no measurements" >&2; else
stage "bair64 b$b16 float32 (as before)" 60 "${ts[@]}" "${big[@]}" --batch-size $b16
stage "bair64 b$b16 bf16 + fused + device check" 60 "${ts[@]}" "${big[@]}" --batch-size $b16 --bf16 \
  "${fast[@]}"
stage "bair64 b$b16 float32 + fused + device check" 60 "${ts[@]}" "${big[@]}" --batch-size $b16 \
  "${fast[@]}"
stage "bair64 b$b16 bf16 + fused + device check + bf16 GroupNorm" 60 "${ts[@]}" "${big[@]}" \
  --batch-size $b16 --bf16 --bf16-norm "${fast[@]}"
stage "small recipe b$bs before" 45 "${ts[@]}" "${small[@]}" --batch-size $bs --bf16
stage "small recipe b$bs after" 45 "${ts[@]}" "${small[@]}" --batch-size $bs --bf16 "${fast[@]}" \
  --data-on-device
stage "small recipe b$bs after + compiled cells (reduce-overhead)" 150 "${ts[@]}" "${small[@]}" \
  --batch-size $bs --bf16 "${fast[@]}" --data-on-device --compile cells \
  --compile-mode reduce-overhead
stage "BAIR protocol bf16" 90 $py bench/protocol.py --device $dev --bf16 "${proto[@]}" --json
if [[ -f $data/official/models/vrnn_hier.py ]]; then
  for prec in "" --bf16; do
    stage "official b$b16 ${prec:-float32}" 60 $py bench/official_step.py --device $dev \
      --official-root "$data/official" "${official[@]}" "${steps[@]}" $prec --json
  done
else
  echo "== SKIP official step: no $data/official/models/vrnn_hier.py" >&2
fi
stage "bair64 b$b64 bf16 + fused + device check" 60 "${ts[@]}" "${big[@]}" --batch-size $b64 --bf16 \
  "${fast[@]}"
((b128)) && stage "bair64 b$b128 bf16 + fused + device check" 75 "${ts[@]}" "${big[@]}" \
  --batch-size $b128 --bf16 "${fast[@]}"
stage "bair64 b$b16 bf16 + fused + device check + channels_last" 60 "${ts[@]}" "${big[@]}" \
  --batch-size $b16 --bf16 "${fast[@]}" --channels-last
stage "bair64 b$b16 bf16 + fused + device check + compiled cells" 180 "${ts[@]}" "${big[@]}" \
  --batch-size $b16 --bf16 "${fast[@]}" --compile cells
stage "BAIR protocol bf16 + compiled cells" 150 $py bench/protocol.py --device $dev --bf16 \
  --compile default "${proto[@]}" --json

fi

# ---- 2. smmnist32 from the shipped weights ----------------------------------------------------
compile=$($py - "$jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")] if __import__("os").path.exists(sys.argv[1]) else []
small = [r for r in rows if r.get("bench") == "train_step" and r.get("data_on_device")]
fps = {r["compile"]: r["frames_per_second"] for r in small}
print("true" if fps.get("cells", 0) > 1.1 * fps.get("none", float("inf")) else "false")
EOF
)
run=$(mktemp -d)/smmnist32_gpu
minutes=$(python3 -c "print(round(max(0.1, min($train_min, ($(left) - 150 * $slow) / 60)), 2))")
echo "== train smmnist32_gpu from pretrained:smmnist32 for $minutes min (compiled cells: $compile)" >&2
t0=$(date +%s)
timeout -k 10 $(python3 -c "print(int($minutes * 60 + 90 * $slow))") $py -m hvrnn.cli train smmnist32_gpu \
  "data.root=$data/smmnist32" train.init_from=pretrained:smmnist32 "train.max_minutes=$minutes" \
  train.device=$dev train.compile=$compile train.compile_scope=cells \
  train.compile_mode=reduce-overhead "${trainopt[@]}" --run-dir "$run" >&2
echo "== train: exit $? after $(($(date +%s) - t0)) s" >&2
cp "$run/metrics.jsonl" "$out/smmnist32_train.jsonl" 2>/dev/null
if [[ -f $run/checkpoints/last.pt ]]; then
  timeout -k 5 $((120 * slow)) $py -m hvrnn.cli evaluate "$run" --protocol smmnist32-c2-p10-n10 \
    --data-root "$data/smmnist32" --device $dev --no-lpips --no-fvd "${evalopt[@]}" \
    --out "$run/eval" >&2
  cp "$run/eval/metrics.json" "$out/smmnist32_eval.json" 2>/dev/null
  cp "$run/eval/per_frame.csv" "$out/smmnist32_per_frame.csv" 2>/dev/null
  last=$(ls "$run/samples"/*.png 2>/dev/null | tail -n 1)
  [[ -n $last ]] && cp "$last" "$out/smmnist32_samples.png"
  card=$($py -c "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU (dry run)')")
  steps_done=$(python3 -c "import json; print([json.loads(l) for l in open('$run/metrics.jsonl')][-1]['step'])")
  timeout -k 5 $((60 * slow)) $py scripts/export_pretrained.py "$run" --name smmnist32 --eval "$run/eval" \
    --summary "hierarchical CVRNN (latents at 1x1 and 8x8) on 32x32 Stochastic Moving MNIST: the 2-hour CPU model continued on one $card" \
    --recipe "pretrained:smmnist32 (18785 steps, 2 h on a 2-core CPU), then preset smmnist32_gpu for $minutes min, $steps_done steps, on one $card" \
    --machine "$card" --out "$run/pretrained/smmnist32" >&2 \
    && tar -C "$run/pretrained" -cf "$out/pretrained_smmnist32.tar" smmnist32
fi
echo "== done in $(($(date +%s) - start)) s; files: $(ls "$out" | tr '\n' ' ')" >&2
