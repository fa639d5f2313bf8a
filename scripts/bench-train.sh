#!/usr/bin/env bash
# Training-speed benchmark: procmem's DINO step and embedding throughput, and the PyTorch
# counterpart on the same configuration and thread count, in one run on this machine.
# PyTorch is a large download (the default wheel plus its CUDA libraries; it runs on the CPU);
# it is installed here only, never in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
cargo build --release --locked
echo "## machine"; nproc; grep -m1 "model name" /proc/cpuinfo
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q torch numpy
# This machine's speed drifts by several per cent between minutes, so the two alternate, ROUNDS
# times (default 3), and only same-run ratios are compared.
for round in $(seq "${ROUNDS:-3}"); do
  echo "## round $round: procmem"
  NODEVICE_SELECT=1 target/release/procmem bench train --steps "${STEPS:-10}"
  echo "## round $round: PyTorch (tools/bench_train_torch.py)"
  python3 tools/bench_train_torch.py --threads 2 --steps "${STEPS:-10}"
done
