"""Study of the procedural standardisation (src/model/standardise.rs) on cached embeddings.

Reads procmem's embedding cache (`PMEMB001` files written by `procmem eval knn`) for
Fashion-MNIST and a `.pmem` memory of procedural images (`procmem memory build --folder`), fits
μ and W on the procedural rows only, and reports kNN accuracy (DINO voting, T = 0.07) on the
validation split (memory = first 50k training images, queries = last 10k) and the test split,
plus the mean cosine of random pairs. Usage:
  python3 tools/standardise_study.py CACHE_DIR FINGERPRINT PROCEDURAL.pmem
"""
import json, struct, sys
import numpy as np

def read_emb(path):
    b = open(path, 'rb').read()
    assert b[:8] == b'PMEMB001'
    n, d = struct.unpack('<QQ', b[8:24])
    return np.frombuffer(b[24:], dtype='<f4').reshape(n, d).astype(np.float64)

def read_pmem(path):
    b = open(path, 'rb').read()
    assert b[:4] == b'PMEM'
    hl = struct.unpack('<Q', b[8:16])[0]
    h = json.loads(b[16:16 + hl]); d = h['dim']; o = 16 + hl
    rows = []
    while o < len(b) - 8:
        o += 12
        sl = struct.unpack('<I', b[o:o + 4])[0]; o += 4 + sl + 8
        tl = struct.unpack('<I', b[o:o + 4])[0]; o += 4 + tl
        rows.append(np.frombuffer(b[o:o + 4 * d], dtype='<f4')); o += 4 * d
    return np.array(rows, dtype=np.float64)

def labels(path):
    import gzip
    return np.frombuffer(gzip.open(path).read()[8:], dtype=np.uint8)

def unit(x): return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

def knn(mem, ml, q, ql, ks=(10, 20), T=0.07, classes=10):
    out = {k: 0 for k in ks}
    for s in range(0, len(q), 2000):
        sim = q[s:s + 2000] @ mem.T
        idx = np.argpartition(-sim, max(ks), axis=1)[:, :max(ks)]
        ss = np.take_along_axis(sim, idx, 1); o = np.argsort(-ss, 1)
        idx = np.take_along_axis(idx, o, 1); ss = np.take_along_axis(ss, o, 1)
        for k in ks:
            votes = np.zeros((len(idx), classes))
            np.add.at(votes, (np.arange(len(idx))[:, None].repeat(k, 1), ml[idx[:, :k]]), np.exp(ss[:, :k] / T))
            out[k] += (votes.argmax(1) == ql[s:s + 2000]).sum()
    return {k: 100 * v / len(q) for k, v in out.items()}

def fit(p, shrink):
    mu = p.mean(0); c = np.cov(p - mu, rowvar=False)
    l, v = np.linalg.eigh(c); eps = max(shrink * l.clip(0).mean(), 1e-12)
    return mu, (v * (1 / np.sqrt(l.clip(0) + eps))) @ v.T

def mean_cos(x, rng=np.random.default_rng(0)):
    i = rng.integers(0, len(x), 5000); j = rng.integers(0, len(x), 5000)
    return float((x[i] * x[j]).sum(1).mean())

if __name__ == '__main__':
    cache, fp, pmem = sys.argv[1:4]
    data = sys.argv[4] if len(sys.argv) > 4 else None
    tr = read_emb(f'{cache}/{fp}-fashion-mnist-train-60000-v1.emb')
    te = read_emb(f'{cache}/{fp}-fashion-mnist-test-10000-v1.emb')
    ytr = labels(f'{data}/fashion-mnist/train-labels-idx1-ubyte.gz'); yte = labels(f'{data}/fashion-mnist/t10k-labels-idx1-ubyte.gz')
    proc = read_pmem(pmem)
    print(f'procedural rows {len(proc)}, dim {proc.shape[1]}')
    for name, f in [('none', None)] + [(f'centre only', 'c')] + [(f'shrinkage {s}', s) for s in (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)]:
        if f is None: a, b = tr, te
        elif f == 'c': mu = proc.mean(0); a, b = unit(tr - mu), unit(te - mu)
        else: mu, w = fit(proc, f); a, b = unit((tr - mu) @ w), unit((te - mu) @ w)
        val = knn(a[:50000], ytr[:50000], a[50000:], ytr[50000:])
        test = knn(a, ytr, b, yte) if '--test' in sys.argv else {}
        print(f'{name:16s} val k10 {val[10]:.2f} k20 {val[20]:.2f}  test {test}  mean cos {mean_cos(a):.3f}', flush=True)
