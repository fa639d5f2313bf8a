"""Writes a labelled folder of large JPEG "photos" for the import benchmark (scripts/bench-import.sh):
emoji from the emoji-datasource package upscaled to photo sizes (1920x1080, 2048x1536,
1280x960), with Gaussian noise (sigma 12) for photo-like entropy, JPEG quality 90, two classes
(`a`, `b`) of `count / 2` images. Deterministic for a seed. Usage:

    python3 tools/make_photo_folder.py EMOJI_PNG_DIR OUT_DIR [--count 200] [--seed 0]
"""

import argparse
import pathlib

import numpy as np
from PIL import Image

SIZES = [(1920, 1080), (2048, 1536), (1280, 960)]

p = argparse.ArgumentParser()
p.add_argument("emoji_dir", type=pathlib.Path)
p.add_argument("out", type=pathlib.Path)
p.add_argument("--count", type=int, default=200)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()

sources = sorted(a.emoji_dir.glob("*.png"))[: a.count]
if len(sources) < a.count:
    raise SystemExit(f"{a.emoji_dir}: {len(sources)} PNGs, {a.count} needed")
rng = np.random.default_rng(a.seed)
for i, src in enumerate(sources):
    size = SIZES[i % len(SIZES)]
    rgba = Image.open(src).convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB").resize(size, Image.BICUBIC)
    noisy = np.asarray(rgb, dtype=np.float32) + rng.normal(0, 12, (size[1], size[0], 3))
    out = a.out / ("a" if i % 2 == 0 else "b")
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(out / f"img{i:03d}.jpg", quality=90)
print(f"{len(sources)} JPEGs in {a.out}")
