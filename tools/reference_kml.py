"""Reference values for procmem's K-means Leaves building blocks (src/generate/{imageops,kml}.rs).

Run: python3 tools/reference_kml.py   (needs numpy, opencv-python-headless, pillow)

- box blur: cv2.blur (BORDER_REFLECT_101), as the paper's fast2leaves.py
- bilinear resize with antialias: PIL's BILINEAR on mode 'F' (same filter as torchvision's
  antialias=True), and plain half-pixel bilinear (cv2.INTER_LINEAR) for enlarging
- Lloyd k-means with the paper's initialisation (lexicographic min / max of np.unique rows)
"""
import numpy as np
import cv2
from PIL import Image

np.set_printoptions(precision=6, suppress=True)

# Box blur of a corner impulse on 3x3.
x = np.zeros((3, 3), np.float32); x[0, 0] = 9
print("blur corner impulse:\n", cv2.blur(x, (3, 3)))
x = np.zeros((3, 3), np.float32); x[1, 1] = 9
print("blur centre impulse:\n", cv2.blur(x, (3, 3)))

# Antialiased bilinear downsample [0,2,4,6] -> 2 and upsample [0,1] -> 4.
row = np.array([[0, 2, 4, 6]], np.float32)
print("downsample 4->2:", np.asarray(Image.fromarray(row, mode="F").resize((2, 1), Image.BILINEAR)))
row = np.array([[0, 1]], np.float32)
print("upsample 2->4 (cv2 linear):", cv2.resize(row, (4, 1), interpolation=cv2.INTER_LINEAR))
print("upsample 2->4 (PIL):", np.asarray(Image.fromarray(row, mode="F").resize((4, 1), Image.BILINEAR)))

# A 2-D downsample to check both passes: 8x8 ramp -> 3x3.
ramp = (np.arange(64, dtype=np.float32).reshape(8, 8)) / 63
print("downsample 8x8 ramp -> 3x3:\n", np.asarray(Image.fromarray(ramp, mode="F").resize((3, 3), Image.BILINEAR)))


def fast2means(points, iters=3):
    u = np.unique(points, axis=0)
    c = np.stack([u[0], u[-1]])
    for _ in range(iters):
        d = ((points[:, None, :] - c[None]) ** 2).sum(-1)
        labels = d.argmin(1)
        c = np.stack([points[labels == j].mean(0) for j in range(2)])
    return labels, c


pts = np.array([[0, 0, 0], [.1, 0, 0], [.2, 0, 0], [.9, 0, 0], [1, 0, 0], [.45, 0, 0]], np.float32)
labels, c = fast2means(pts)
print("kmeans labels", labels, "centroids", c[:, 0])
