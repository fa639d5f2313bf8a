"""Writes tests/fixtures/tiny.npz, the MedMNIST-layout fixture of src/memory/npz.rs."""
import numpy as np

np.savez_compressed(
    "tests/fixtures/tiny.npz",
    train_images=np.arange(8, dtype=np.uint8).reshape(2, 2, 2),
    train_labels=np.array([[3], [-1]], dtype=np.int64),
)
