#!/usr/bin/env bash
# Generator benchmark: procmem's images/s for every process and size, and the paper-style
# numpy/OpenCV K-means Leaves composition as the peer, in one run on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
cargo build --release --locked
echo "## machine"; nproc; grep -m1 "model name" /proc/cpuinfo; free -g | head -2
echo "## procmem"
target/release/procmem bench generate --kml-at-output-resolution --seconds "${SECONDS_PER_CELL:-3}"
echo "## peer: paper-style numpy/OpenCV KML composition (tools/bench_kml_numpy.py)"
python3 -m pip install -q numpy opencv-python-headless >/dev/null 2>&1 || true
for out in 64 128 224; do python3 tools/bench_kml_numpy.py --seconds "${SECONDS_PER_CELL:-3}" --out "$out"; done
