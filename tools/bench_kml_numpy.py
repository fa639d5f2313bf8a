"""Peer benchmark: the paper code's K-means Leaves composition (fast2leaves.py's steps) in
numpy + OpenCV, on pre-rendered inputs, one process. Compare with the `KML compose (CPU)` row of
`procmem bench generate`, which runs the same steps in Rust on the same inputs sizes.

Run: python3 tools/bench_kml_numpy.py [--seconds 5] [--out 64]
Needs numpy and opencv-python-headless (pip). Steps per image, as the paper's code:
  points = s1 (256x256 RGB in [0,1]); init = first/last row of np.unique(points, axis=0);
  3 Lloyd iterations; mask = label==0; cv2.blur 3x3; resize to out (bilinear); cv2.blur 3x3;
  out = s2*m + s3*(1-m).
The paper resizes with torchvision (antialiased bilinear); cv2.INTER_AREA-free INTER_LINEAR is
used here, which is cheaper, so this peer is if anything optimistic.
"""
import argparse
import os
import time

import cv2
import numpy as np

cv2.setNumThreads(1)


def kml(s1, s2, s3, out):
    pts = s1.reshape(-1, 3)
    u = np.unique(pts, axis=0)
    c = np.stack([u[0], u[-1]])
    for _ in range(3):
        d = ((pts[:, None, :] - c[None]) ** 2).sum(-1)
        labels = d.argmin(1)
        counts = np.bincount(labels, minlength=2)
        sums = np.stack([np.bincount(labels, weights=pts[:, ch], minlength=2) for ch in range(3)], 1)
        c = sums / np.maximum(counts, 1)[:, None]
    m = (labels == 0).astype(np.float32).reshape(s1.shape[:2])
    m = cv2.blur(m, (3, 3))
    m = cv2.resize(m, (out, out), interpolation=cv2.INTER_LINEAR)
    m = cv2.blur(m, (3, 3))[..., None]
    return s2 * m + s3 * (1 - m)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out", type=int, default=64)
    ap.add_argument("--res", type=int, default=256)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    # Smooth random images (a blurred noise field), so k-means sees image-like colour clusters.
    def img(n):
        x = rng.random((n // 8, n // 8, 3), dtype=np.float32)
        return cv2.resize(x, (n, n), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    inputs = [(img(a.res), img(a.out), img(a.out)) for _ in range(16)]
    kml(*inputs[0], a.out)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < a.seconds:
        kml(*inputs[n % 16], a.out)
        n += 1
    dt = time.perf_counter() - t0
    print(f"numpy {np.__version__}, opencv {cv2.__version__}, 1 process, OMP/BLAS threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print(f"paper-style KML composition {a.res}->{a.out}: {n} images in {dt:.1f} s = {n / dt:.1f} images/s")


if __name__ == "__main__":
    main()
