#!/usr/bin/env bash
# Rebuilds the bundled model (models/) and the demo memory (assets/demo/) from a training
# checkpoint. The demo memory must be re-embedded whenever the bundled model changes: memories
# record their model's fingerprint and procmem refuses to mix models.
#
#   scripts/make-bundle.sh runs/kml-mixup/step_000600.json [--student]
#
# Needs Fashion-MNIST in $PROCMEM_DATA (scripts/fetch-eval-data.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt="$1"; shift
which_flag="${1:-}"
DATA="${PROCMEM_DATA:-$HOME/.cache/procmem/data}"
bin="${PROCMEM_BIN:-target/release/procmem}"
[ -x "$bin" ] || cargo build --release --locked
run_dir="$(dirname "$ckpt")"
mkdir -p models assets/demo
"$bin" export --checkpoint "$ckpt" $which_flag --out models/procmem-kml-mixup
# The embedding: every final patch token kept (grid8 pooling, 12,288 values) and its
# standardisation (PCA whitening to 384 axes), fitted on 8,000 KML Mixup images (no real image;
# docs/training.md, "Every patch token"); and, by the defaults, the patch tokens'
# standardisation for the dense tasks (the first block's tokens, 1,000 KML Mixup images at 128²,
# ε = 30; docs/dense.md).
"$bin" standardise --model models/procmem-kml-mixup.json --pooling grid8 --components 384 --images 8000 --shrinkage 0 \
  --out models/procmem-kml-mixup
cp "$run_dir/metrics.jsonl" models/procmem-kml-mixup.metrics.jsonl
cp "$run_dir/config.toml" models/procmem-kml-mixup.config.toml
fm="$DATA/fashion-mnist"
"$bin" memory build --features models/procmem-kml-mixup.json --fashion-mnist-names \
  --idx-images "$fm/train-images-idx3-ubyte.gz" --idx-labels "$fm/train-labels-idx1-ubyte.gz" \
  --limit 3000 --out assets/demo/memory.pmem
"$bin" memory build --features models/procmem-kml-mixup.json --fashion-mnist-names \
  --idx-images "$fm/t10k-images-idx3-ubyte.gz" --idx-labels "$fm/t10k-labels-idx1-ubyte.gz" \
  --limit 200 --out assets/demo/queries.pmem
cp "$fm/COPYRIGHT" assets/demo/FASHION-MNIST-COPYRIGHT 2>/dev/null || true
ls -la models assets/demo
