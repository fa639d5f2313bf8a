#!/usr/bin/env bash
# The model zoo of docs/results.md on one GPU machine: one model per data source, one recipe
# (configs/zoo.json) and one step count for all.
#
#   scripts/zoo-gpu.sh                      # uses target/release/procmem; needs PyTorch with CUDA
#
# 1. `procmem generate` writes ZOO_IMAGES images of each procedural process (on the GPU through
#    wgpu), and tools/zoo_gpu.py cuts as many random crops of scikit-image's photographs (the
#    real-image model's data, disjoint from every evaluation set).
# 2. A 30-step calibration run measures the step time; the step count is then chosen so that all
#    seven models fit ZOO_TRAIN_SECONDS (or is ZOO_STEPS when set), and is the same for every model.
# 3. Each model is trained by tools/zoo_gpu.py and written as a procmem model file in ZOO_OUT.
#    With ZOO_PACK set, each is also copied to that folder in f16 (for a transfer) with its logs.
#
# Bring the models home with `python3 tools/zoo_gpu.py unpack PACKED.f16.json models-zoo/NAME.json`.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${PROCMEM_BIN:-target/release/procmem}
WORK=${ZOO_WORK:-/tmp/procmem-zoo}
OUT_MODELS=${ZOO_OUT:-$WORK/models}
IMAGES=${ZOO_IMAGES:-20000}
TRAIN_SECONDS=${ZOO_TRAIN_SECONDS:-420}
PACK=${ZOO_PACK:-}
RECIPE=${ZOO_RECIPE:-configs/zoo.json}
SOURCES="kml-mixup shaders-kml shaders-mixup shaders dead-leaves spectral-noise"
mkdir -p "$WORK/data" "$OUT_MODELS" ${PACK:+"$PACK"}
LOG="$WORK/zoo.log"
say() { echo "[$(date +%T)] $*" | tee -a "$LOG"; }
start=$(date +%s)

say "procmem: $($BIN --version)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"

# 1. Data. Generation runs in the background, one process after another, leaving cores for the
# trainer; each set is marked done (or failed) for the training loop below.
(
  for p in $SOURCES; do
    t=$(date +%s)
    if RAYON_NUM_THREADS=${ZOO_GEN_THREADS:-12} $BIN generate --process "$p" --count "$IMAGES" --size 64 --seed 0 \
      --out "$WORK/data/$p" >"$WORK/data/$p.log" 2>&1; then
      echo "[$(date +%T)] generated $p: $IMAGES images in $(( $(date +%s) - t )) s" >>"$LOG"
      touch "$WORK/data/$p.done"
    else
      echo "[$(date +%T)] generating $p FAILED: $(tail -3 "$WORK/data/$p.log")" >>"$LOG"
      touch "$WORK/data/$p.failed"
    fi
  done
) &
python3 tools/zoo_gpu.py photos --out "$WORK/data/photos" --count "$IMAGES" --seed 0 2>&1 | tee -a "$LOG"

# 2. Calibration: the step time of this machine for this recipe.
if [ -z "${ZOO_STEPS:-}" ]; then
  python3 tools/zoo_gpu.py train --name calibrate --data "$WORK/data/photos" --steps 30 --out "$WORK/calibrate" --recipe "$RECIPE" \
    --skip-fingerprint >>"$LOG" 2>&1
  step_s=$(python3 -c "
import json; r=[json.loads(l) for l in open('$WORK/calibrate/calibrate.metrics.jsonl')]
print((r[-1]['elapsed_s']-r[0]['elapsed_s'])/(r[-1]['step']-r[0]['step']))")
  left=$(( start + TRAIN_SECONDS + 90 - $(date +%s) ))
  # 7 models; 6 s per model for loading data and writing the model.
  ZOO_STEPS=$(python3 -c "print(max(50, int(($left / 7 - 6) / $step_s) // 50 * 50))")
  say "calibration: $step_s s per step; $left s left for training -> $ZOO_STEPS steps per model"
fi

# 3. Train: the real-image model first (its data exist), then each procedural source once generated.
train() {
  local name=$1 data=$2
  say "training $name on $data ($ZOO_STEPS steps)"
  if python3 tools/zoo_gpu.py train --name "$name" --data "$data" --steps "$ZOO_STEPS" --out "$OUT_MODELS" --recipe "$RECIPE" \
      --skip-fingerprint >>"$WORK/$name.train.log" 2>&1; then
    say "$(tail -1 "$WORK/$name.train.log")"
    if [ -n "$PACK" ]; then
      # The f16 weights go to PACK; their JSON and the logs travel in one archive (few files).
      mkdir -p "$WORK/packed"
      python3 tools/zoo_gpu.py pack "$OUT_MODELS/$name.json" "$WORK/packed" && mv "$WORK/packed/$name.f16.safetensors" "$PACK/"
      cp "$OUT_MODELS/$name.metrics.jsonl" "$WORK/packed/"
    fi
  else
    say "training $name FAILED: $(tail -5 "$WORK/$name.train.log")"
  fi
  if [ -n "$PACK" ]; then
    tar -C "$WORK" -cf "$PACK/zoo-logs.tar" --exclude='data/*/*.png' --exclude=models --exclude='calibrate/*.safetensors' . 2>/dev/null
  fi
}
train real-photos "$WORK/data/photos"
for p in $SOURCES; do
  while [ ! -e "$WORK/data/$p.done" ] && [ ! -e "$WORK/data/$p.failed" ]; do sleep 1; done
  [ -e "$WORK/data/$p.done" ] && train "$p" "$WORK/data/$p"
done
wait
say "zoo done in $(( $(date +%s) - start )) s"
[ -n "$PACK" ] && tar -C "$WORK" -cf "$PACK/zoo-logs.tar" --exclude='data/*/*.png' --exclude=models --exclude='calibrate/*.safetensors' . 2>/dev/null
exit 0
