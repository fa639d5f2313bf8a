#!/usr/bin/env bash
# The zoo remade on the CPU by `procmem train` itself (no GPU, no PyTorch port): one model per
# data source, every one with the bundled model's recipe (configs/run-d-kml-mixup.toml: cpu-tiny,
# 1,000 steps × 64 images, seed 0), its student read the bundle's way (`procmem standardise`
# defaults: grid8 pooling, 384 PCA-whitened axes and the dense patch tokens, all fitted on KML
# Mixup images, no real image). The KML Mixup member is the bundle itself (models/), so this
# trains the other six. ≈ 40 min a model on 2 cores with nothing else running.
#
#   scripts/zoo-cpu.sh                 # all six, in order; rerun to continue after a stop
#   scripts/zoo-cpu.sh shaders         # one (or several) by name
#
# Resumable: a finished model (zoo/<name>.json) is skipped; an interrupted run continues from
# its last checkpoint (`procmem train --resume`, every 100 steps), so the curve stays one curve.
# Checkpoints stay in runs/zoo/ (not in git); the exports land in zoo/, stored in f16 (15 MB;
# `procmem export --half`) from Shaders Mixup on; the first two (Shaders, real photos) are f32
# (30 MB). The real-image member needs scikit-image (pip) for its 20,000 photo crops
# (tools/zoo_gpu.py photos).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PROCMEM_BIN:-target/release/procmem}
[ -x "$BIN" ] || cargo build --release --locked
RUNS=${ZOO_RUNS:-runs/zoo}
PHOTOS=${ZOO_PHOTOS:-$RUNS/photos}
RECIPE=configs/run-d-kml-mixup.toml
STEPS=1000
mkdir -p zoo "$RUNS"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(shaders real-photos shaders-mixup shaders-kml dead-leaves spectral-noise)
for m in "${names[@]}"; do
  if [ -e "zoo/$m.json" ]; then echo "zoo/$m: done" >&2; continue; fi
  out="$RUNS/$m"
  final="$out/step_$(printf %06d $STEPS).json"
  if [ ! -e "$final" ]; then
    last=$(ls "$out"/step_*.json 2>/dev/null | sort | tail -1 || true)
    if [ -n "$last" ]; then
      echo "zoo/$m: resuming from $last" >&2
      "$BIN" train --resume "$last" --out "$out"
    elif [ "$m" = real-photos ]; then
      [ -e "$PHOTOS/photos.json" ] || python3 tools/zoo_gpu.py photos --out "$PHOTOS" --count 20000 --size 64 --seed 0
      "$BIN" train --config "$RECIPE" --folder "$PHOTOS" --out "$out"
    else
      "$BIN" train --config "$RECIPE" --process "$m" --out "$out"
    fi
  fi
  # Fitted in f32, stored in f16 (half the bytes in git; the numbers are measured on the f16 file).
  "$BIN" standardise --model "$final" --student --out "$out/standardised"
  "$BIN" export --checkpoint "$out/standardised.json" --half --out "zoo/$m"
  cp "$out/metrics.jsonl" "zoo/$m.metrics.jsonl"
  cp "$out/config.toml" "zoo/$m.config.toml"
done
