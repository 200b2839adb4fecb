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


def write_smooth_rgb(path: Path, height: int = 96, width: int = 96, **save_options) -> np.ndarray:
    """Write a smooth colour gradient (compresses like a photograph, unlike noise) and return its pixels."""
    rows, cols = np.mgrid[0:height, 0:width]
    pixels = np.stack([rows * 255 // height, cols * 255 // width, (rows + cols) * 127 // (height + width)], axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path, **save_options)
    return pixels.astype(np.uint8)


def jpeg_scan_start(data: bytes) -> int:
    """Offset of the first byte of entropy-coded data (after the first SOS segment's header)."""
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


def overwrite(path: Path, offset: int, new: bytes) -> None:
    """Overwrite bytes of a file in place, keeping its length (damage, not truncation)."""
    data = bytearray(path.read_bytes())
    data[offset : offset + len(new)] = new
    path.write_bytes(bytes(data))


def zero_jpeg_scan(path: Path, fraction: float = 0.4, n_bytes: int = 32) -> Path:
    """Overwrite ``n_bytes`` of a JPEG's compressed data with zeros at ``fraction`` of it, keeping the length.

    Zero bytes form no marker, so the marker structure and the end marker stay intact (the cheap checks pass)
    while the Huffman codes break: libjpeg warns and Pillow decodes a partly wrong image without a word.
    """
    data = path.read_bytes()
    start, end = jpeg_scan_start(data), data.rindex(b"\xff\xd9")
    overwrite(path, start + int((end - start) * fraction), bytes(n_bytes))
    return path


def write_zeroed_jpeg(path: Path) -> Path:
    """Write a smooth RGB JPEG damaged in the middle of its compressed data (:func:`zero_jpeg_scan`)."""
    write_smooth_rgb(path)
    return zero_jpeg_scan(path)
