"""Writers of small image files for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_rgb(path: Path, height: int = 12, width: int = 16, seed: int = 0) -> np.ndarray:
    """Write a random RGB image (format from the suffix) and return its (H, W, 3) pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def write_grey(path: Path, pixels: np.ndarray) -> None:
    """Write an 8-bit grey image (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def write_pair(image: Path, label: Path, height: int = 12, width: int = 16, seed: int = 0) -> None:
    """Write a random RGB image and a 0/255 square mask of the same size."""
    write_rgb(image, height, width, seed)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[2:6, 3:9] = 255
    write_grey(label, mask)


def truncate(path: Path, keep_fraction: float = 0.6) -> None:
    """Cut a file to a fraction of its bytes, as an interrupted download would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
