#!/usr/bin/env bash
# The evaluation tables of docs/results.md for the bundled model, each with the raw-pixel and
# random-init baselines (same code, same split). Needs scripts/fetch-eval-data.sh first.
# FULL=1 uses all of Fashion-MNIST (60k memory, 10k queries); the default is the 10k/2k subset
# of docs/training.md's budget study (a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${PROCMEM_BIN:-target/release/procmem}"
[ -x "$bin" ] || cargo build --release --locked
model=models/procmem-kml-mixup.json
limits=(--limit-train 10000 --limit-test 2000)
[ "${FULL:-0}" = 1 ] && limits=()
out="${1:-docs/results.md}"
{
  echo "# Results of the bundled model"
  echo
  echo "Produced by \`scripts/eval-bundle.sh\` on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%Y-%m-%d)."
  echo "Model: \`$model\` — $(python3 -c "import json;m=json.load(open('$model'));print(f\"{m.get('exported_backbone','teacher')} of step {m['step']}, trained on {', '.join(m['provenance']['sources'])}, procedural only: {m['provenance']['procedural_only']}\")")."
  echo
  echo "## kNN classification, Fashion-MNIST (${limits[*]:-full 60k/10k}, DINO voting T = 0.07, k in 10, 20, 100, 200)"
  echo
  echo "Command: \`procmem eval knn --features $model ${limits[*]} --k 10,20,100,200\`"
  echo
  "$bin" eval knn --features "$model" "${limits[@]}" --k 10,20,100,200 | sed -n '/^| features | best top-1/,$p'
  echo
  "$bin" eval retrieval --features "$model"
  echo
  "$bin" privacy --features "$model" "${limits[@]}" --k 1,10,20,100 --top 5
  echo
  # The segmentation set is made by procmem from the fetched emoji (seed 0), once.
  data="${PROCMEM_DATA:-$HOME/.cache/procmem/data}"
  [ -f "$data/composite-seed0/composite.json" ] || "$bin" data composite --out "$data/composite-seed0" --count 200 --seed 0 >&2
  "$bin" eval seg --data "$data/composite-seed0" --features "$model"
} > "$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
