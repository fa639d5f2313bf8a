"""Reference value for `ibot_patch_loss` (src/train/dino.rs, test `ibot_loss_matches_dinov2`).

DINOv2's iBOTPatchLoss (facebookresearch/dinov2, dinov2/loss/ibot_patch_loss.py) written out in
numpy, float64: `softmax_center_teacher` then `forward_masked` with masks_weight = 1 / (masked
patches of the crop) and the sum divided by the number of crops. Run: python3 tools/ibot_loss_reference.py
"""
import numpy as np


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


# 3 global crops of 4 patches, K = 3 prototypes. Crop 0 masks patches 1 and 3, crop 1 none,
# crop 2 patch 0: M = 3 masked patches, in crop-major order.
student = np.array([[0.3, -0.2, 0.5], [0.1, 0.4, -0.3], [-0.6, 0.2, 0.0]])
teacher = np.array([[0.2, 0.1, -0.4], [0.5, -0.1, 0.3], [0.0, 0.3, 0.1]])
center = np.array([[0.05, -0.02, 0.01]])
student_temp, teacher_temp, crops = 0.1, 0.04, 3
weights = np.array([1 / 2, 1 / 2, 1 / 1])

targets = np.exp(log_softmax((teacher - center) / teacher_temp))  # softmax_center_teacher
loss = np.sum(targets * log_softmax(student / student_temp), axis=-1)
print(repr(-np.sum(loss * weights) / crops))
