#!/usr/bin/env bash
# Memory benchmarks, procmem and faiss-cpu on the same vectors in one run (docs/benchmarks.md):
# exact search 100k x 384 with 1,000 queries, HNSW recall@10 and latency, unlearning with a
# 1,000-query watch list, privacy analysis for 10k queries, and a 1M-entry memory.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import faiss" 2>/dev/null || pip install --quiet faiss-cpu numpy
cargo build --release --locked
bin=target/release/procmem
data=target/bench-memory
nproc; grep -m1 "model name" /proc/cpuinfo
# faiss-cpu's wheel bundles OpenBLAS 0.3.15, which takes this Xeon (Sapphire Rapids) for a
# "Prescott" and runs sgemm ~5x slower; name the core so the peer runs at its best.
if grep -q avx512f /proc/cpuinfo && [ -z "${OPENBLAS_CORETYPE:-}" ]; then export OPENBLAS_CORETYPE=SkylakeX; fi
# 1,000 queries for search/HNSW/unlearning; the privacy row uses 10,000 (separate folder).
"$bin" bench memory --data "$data" --entries 100000 --queries 1000
python3 tools/bench_memory_faiss.py "$data"
"$bin" bench memory --data "$data-10k" --entries 100000 --queries 10000 --no-hnsw 2>&1 | grep -i "privacy\|watch list"
"$bin" bench memory --data "$data" --only-large --large 1000000
# Real embeddings: Fashion-MNIST (60k memory, 1,000 queries) embedded by the bundled model
# (needs scripts/fetch-eval-data.sh; the embeddings come from the cache after the first run).
"$bin" bench memory --data "$data-fmnist" --embeddings models/procmem-kml-mixup.json --queries 1000
python3 tools/bench_memory_faiss.py "$data-fmnist"
