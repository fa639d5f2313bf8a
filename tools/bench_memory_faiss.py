"""faiss-cpu counterpart of `procmem bench memory`, on the same vectors (base.npy, queries.npy
written by procmem into the data folder). Same thread count (OMP_NUM_THREADS, default: all).

    python3 tools/bench_memory_faiss.py target/bench-memory --k 10 --ef-search 100
"""
import argparse
import time

import faiss
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("data")
p.add_argument("--k", type=int, default=10)
p.add_argument("--ef-construction", type=int, default=100)
p.add_argument("--ef-search", type=int, default=100)
p.add_argument("--no-hnsw", action="store_true", help="exact search only")
a = p.parse_args()

base = np.load(f"{a.data}/base.npy")
queries = np.load(f"{a.data}/queries.npy")
n, d = base.shape
nq = len(queries)
print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, base {n}x{d}, {nq} queries")

flat = faiss.IndexFlatIP(d)
flat.add(base)
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    _, exact = flat.search(queries, a.k)
    best = min(best, time.perf_counter() - t)
print(f"| faiss IndexFlatIP, {nq} queries, k = {a.k} | {best:.3f} s | {nq / best:.0f} queries/s |")

if a.no_hnsw:
    raise SystemExit(0)
hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
hnsw.hnsw.efConstruction = a.ef_construction
t = time.perf_counter()
hnsw.add(base)
build = time.perf_counter() - t
hnsw.hnsw.efSearch = a.ef_search
faiss.omp_set_num_threads(1)  # latency: one query at a time on one thread, as procmem measures
t = time.perf_counter()
approx = np.vstack([hnsw.search(queries[i : i + 1], a.k)[1] for i in range(nq)])
per_query = (time.perf_counter() - t) / nq
hits = sum(len(set(exact[i]) & set(approx[i])) for i in range(nq))
print(
    f"| faiss HNSW (M 32, efConstruction {a.ef_construction}, efSearch {a.ef_search}) | build {build:.1f} s "
    f"(all threads) | recall@{a.k} {hits / (nq * a.k):.4f}, {per_query * 1e3:.3f} ms/query (sequential) |"
)
