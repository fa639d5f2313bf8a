#!/usr/bin/env bash
# Every table of docs/results.md's zoo part, each written by the procmem command shown in it.
# Needs the zoo in zoo/ (scripts/zoo-cpu.sh here, or scripts/zoo-gpu.sh on a GPU machine, then
# tools/zoo_gpu.py unpack) and the evaluation data (scripts/fetch-eval-data.sh). Embeddings are
# cached per model fingerprint in $PROCMEM_DATA/cache/embeddings, so a rerun only recomputes the
# tables.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PROCMEM_BIN:-target/release/procmem}
OUT=${ZOO_REPORT:-docs/results}
mkdir -p "$OUT"
F=()
for m in kml-mixup shaders-kml shaders-mixup shaders dead-leaves spectral-noise real-photos; do
  [ -e "zoo/$m.json" ] && F+=(--features "zoo/$m.json")
done
F+=(--features models/procmem-kml-mixup.json)
RES=zoo/results.jsonl
rm -f "$RES"
run() { echo "+ procmem $*" >&2; /usr/bin/time -f "  (%e s)" "$BIN" "$@"; }
for d in fashion-mnist mnist emoji; do
  run eval knn --dataset $d "${F[@]}" --results "$RES" --report "$OUT/knn-$d.md" >/dev/null
done
run eval retrieval "${F[@]}" --results "$RES" --report "$OUT/retrieval.md" >/dev/null
for d in fashion-mnist mnist emoji; do
  run eval probe --dataset $d "${F[@]}" --results "$RES" --report "$OUT/probe-$d.md" >/dev/null
done
run privacy --dataset fashion-mnist "${F[@]}" --k 1,10,20,100 --plot "$OUT/privacy-fashion-mnist.png" --report "$OUT/privacy-fashion-mnist.md" >/dev/null
KML=zoo/kml-mixup.json; [ -e "$KML" ] || KML=models/procmem-kml-mixup.json  # the CPU zoo's KML Mixup member is the bundle
run eval unlearn --dataset fashion-mnist --features "$KML" --k 20 --report "$OUT/unlearn-fashion-mnist.md" >/dev/null
run eval seg --data "${PROCMEM_DATA:-$HOME/.cache/procmem/data}/composite-seed0" "${F[@]}" --report "$OUT/seg.md" >/dev/null
echo "tables in $OUT" >&2
python3 tools/include_tables.py docs/results.md --demote 2
