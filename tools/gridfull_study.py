"""Study of the finest grid: every patch token of the last block (docs/training.md, "Every
patch token"), PCA-whitened to M leading procedural axes.

Reads the `.npy` features of `GRID_FULL=1 cargo run --release --example pooling_study -- MODEL
DIR` (and with `PROCEDURAL_IMAGES=8000` for the fit set). Each token (or each grid region, for
`grid4`) is L2-normalised and the whole scaled to unit length, as src/model/pooling.rs does;
the PCA whitening of src/model/standardise.rs (`fit_components`, ε = 0) is fitted on the 8,000
procedural rows only, in its Gram form (8,000 × 8,000, fewer rows than the 12,288 dimensions),
and scored as tools/layers_study.py does (Fashion-MNIST validation split to choose; test, MNIST
and emoji recall@1 reported). `grid4 16 768` reproduces the session-15 bundle to the digit.
Usage: python3 tools/gridfull_study.py DIR KIND REGIONS M[,M...]   e.g. DIR grid8 64 768,1536
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import numpy as np
from standardise_study import knn, mean_cos
d = sys.argv[1]; kind = sys.argv[2]; parts = int(sys.argv[3])
load = lambda n: np.load(f"{d}/{n}.npy", mmap_mode='r')
def emb(s):
    x = np.array(load(f"{s}-{kind}"), dtype=np.float32); n, w = x.shape
    x = x.reshape(n, parts, w // parts)
    x /= np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return x.reshape(n, w) / np.sqrt(parts)
unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
p = emb("procedural-8000").astype(np.float64); mu = p.mean(0); p -= mu
g = p @ p.T / (len(p) - 1)
l, u = np.linalg.eigh(g); o = np.argsort(-l); l, u = l[o], u[:, o]
fl_tr = np.load(f"{d}/fmnist-train-labels.npy")[:, 0].astype(int); fl_te = np.load(f"{d}/fmnist-test-labels.npy")[:, 0].astype(int)
ml_tr = np.load(f"{d}/mnist-train-labels.npy")[:, 0].astype(int); ml_te = np.load(f"{d}/mnist-test-labels.npy")[:, 0].astype(int)
for m in [int(v) for v in sys.argv[4].split(",")]:
    lm = l[:m]
    v = p.T @ u[:, :m] / np.sqrt((len(p) - 1) * lm)        # principal axes, unit length
    w = (v / np.sqrt(lm)).astype(np.float32)
    f = lambda s: unit((emb(s) - mu.astype(np.float32)) @ w)
    a = f("fmnist-train")
    val = knn(a[:50000], fl_tr[:50000], a[50000:], fl_tr[50000:], ks=(10,))
    test = knn(a, fl_tr, f("fmnist-test"), fl_te, ks=(10,))
    mn = knn(f("mnist-train"), ml_tr, f("mnist-test"), ml_te, ks=(10,))
    q, gal = f("emoji-google"), f("emoji-twitter")
    r1 = 100 * (np.argmax(q @ gal.T, 1) == np.arange(len(q))).mean()
    print(f"| {kind} pca {m} | {val[10]:.2f} | {test[10]:.2f} | {mn[10]:.2f} | {r1:.2f} | {mean_cos(a):.3f} |", flush=True)
