#!/usr/bin/env bash
# Import benchmark (issue 19): `procmem memory build` images/s against the model's own embedding
# speed in the same run (`procmem bench train`'s "embedding with patch tokens", which the bundled
# model's grid pooling needs), on Fashion-MNIST's 8,000 first test images (IDX) and on a folder
# of 200 large JPEGs (tools/make_photo_folder.py). Needs scripts/fetch-eval-data.sh's data.
# Nothing else should run meanwhile (2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
bin=target/release/procmem
data=${PROCMEM_DATA:-$HOME/.cache/procmem/data}
fm=$data/fashion-mnist
photos=target/bench-import/photos
[ -d "$photos" ] || python3 tools/make_photo_folder.py "$data/emoji-google/img/google/64" "$photos"
nproc; grep -m1 "model name" /proc/cpuinfo
for round in $(seq "${ROUNDS:-2}"); do
  echo "## round $round"
  NODEVICE_SELECT=1 "$bin" bench train --steps 1 2>&1 | grep "embedding with patch tokens"
  /usr/bin/time -f "memory build, IDX 8000: %e s, peak %M KB" "$bin" memory build \
    --features models/procmem-kml-mixup.json --idx-images "$fm/t10k-images-idx3-ubyte.gz" \
    --idx-labels "$fm/t10k-labels-idx1-ubyte.gz" --fashion-mnist-names --limit 8000 \
    --out target/bench-import/idx.pmem 2>&1 | tail -1
  /usr/bin/time -f "memory build, 200 JPEGs: %e s, peak %M KB" "$bin" memory build \
    --features models/procmem-kml-mixup.json --folder "$photos" \
    --out target/bench-import/photos.pmem 2>&1 | tail -1
done
