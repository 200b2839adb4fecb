"""Small synthetic GLaS-like data set in the Warwick layout, for demos and tests."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["make_synthetic_glas"]

# H&E-like colours (RGB): pale pink stroma, purple epithelium, dark nuclei, near-white lumen
_STROMA = np.array([236.0, 184.0, 208.0])
_EPITHELIUM = np.array([168.0, 104.0, 168.0])
_NUCLEUS = np.array([86.0, 44.0, 124.0])
_LUMEN = np.array([246.0, 236.0, 242.0])
_FINE_GRADES = {
    "benign": ("healthy", "adenomatous"),
    "malignant": ("moderately differentiated", "poorly differentiated"),
}


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Blobby noise in [-1, 1]: a coarse random grid upsampled bilinearly to ``shape``."""
    coarse = rng.uniform(-1.0, 1.0, size=(shape[0] // cell + 2, shape[1] // cell + 2)).astype(np.float32)
    up = Image.fromarray(coarse).resize((coarse.shape[1] * cell, coarse.shape[0] * cell), Image.Resampling.BILINEAR)
    return np.asarray(up)[: shape[0], : shape[1]]


def _draw_gland(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: tuple[int, int], irregularity: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One gland: returns (gland mask, lumen mask, normalised radius rho) over the image grid."""
    h, w = size
    ry = rng.uniform(0.10, 0.22) * min(h, w)
    rx = ry * rng.uniform(0.7, 1.6)
    cy, cx = rng.uniform(0.4 * ry, h - 0.4 * ry), rng.uniform(0.4 * rx, w - 0.4 * rx)
    angle = rng.uniform(0.0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
    theta = np.arctan2(v, u)
    # low-order harmonics of the boundary make the outline irregular, more so for malignant glands
    wobble = 1.0 + sum(
        irregularity * rng.uniform(0.3, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
    )
    rho = np.sqrt(u**2 + v**2) / wobble
    lumen_fraction = rng.uniform(0.35, 0.6)
    return rho <= 1.0, rho <= lumen_fraction, rho


def _make_image(
    rng: np.random.Generator, size: tuple[int, int], malignant: bool
) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = _STROMA + 14.0 * _smooth_noise(rng, size, 8)[..., None] + rng.normal(0.0, 6.0, size=(h, w, 1))
    # sparse stromal nuclei, so that "dark dot" alone does not mean gland
    stromal_nuclei = rng.random(size) < 0.01
    rgb[stromal_nuclei] = _NUCLEUS + 30.0
    label = np.zeros(size, dtype=np.uint8)
    n_glands = int(rng.integers(2, 6))
    irregularity = 0.22 if malignant else 0.08
    for _ in range(60):  # rejection sampling of non-touching glands
        if label.max() >= n_glands:
            break
        gland, lumen, rho = _draw_gland(rng, yy, xx, size, irregularity)
        grown = rho <= 1.25  # keep a band of stroma between glands, as in real tissue
        if gland.sum() < 30 or (label[grown] > 0).any():
            continue
        instance = int(label.max()) + 1
        label[gland] = instance
        epithelium = gland & ~lumen
        rgb[epithelium] = _EPITHELIUM + rng.normal(0.0, 8.0, size=(int(epithelium.sum()), 3))
        nuclei = epithelium & (rho > 0.7) & (_smooth_noise(rng, size, 2) > 0.35)
        rgb[nuclei] = _NUCLEUS + rng.normal(0.0, 8.0, size=(int(nuclei.sum()), 3))
        if not malignant or rng.random() < 0.5:  # malignant glands often lose their lumen
            rgb[lumen] = _LUMEN + rng.normal(0.0, 4.0, size=(int(lumen.sum()), 3))
        else:
            rgb[lumen] = _EPITHELIUM + rng.normal(0.0, 8.0, size=(int(lumen.sum()), 3))
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
    return np.asarray(image), label


def make_synthetic_glas(
    root: str | os.PathLike,
    n_train: int = 12,
    n_test_a: int = 4,
    n_test_b: int = 2,
    size: Sequence[int] = (96, 128),
    seed: int = 0,
) -> Path:
    """Write a small GLaS-like data set in the Warwick release layout.

    Each image shows 2 to 5 non-touching glands (purple epithelium with dark nuclei around a pale
    lumen, irregular outlines for malignant cases) on pink, textured stroma, saved as
    ``<part>_<n>.bmp``; ``<part>_<n>_anno.bmp`` holds the instance labels ``1..k`` (0 = stroma) as
    the real annotations do; ``Grade.csv`` has the real file's columns. Glands differ clearly from
    stroma in colour, so a small U-Net learns to segment them within a few epochs. Deterministic
    under ``seed``; numpy and PIL only.

    Args:
        root: output folder (created if needed; existing files of the same names are overwritten).
        n_train: number of ``train_<n>`` images.
        n_test_a: number of ``testA_<n>`` images.
        n_test_b: number of ``testB_<n>`` images.
        size: ``(height, width)`` of every image.
        seed: random seed.

    Returns:
        ``root`` as a ``Path``, ready for :func:`index_glas`.

    Raises:
        ValueError: when ``size`` is not two values of at least 32 pixels.
    """
    if len(size) != 2 or min(size) < 32:
        raise ValueError(f"size must be (height, width) with both >= 32, got {tuple(size)}.")
    hw = (int(size[0]), int(size[1]))
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)"]
    patient = 0
    for part, count in (("train", n_train), ("testA", n_test_a), ("testB", n_test_b)):
        for n in range(1, count + 1):
            if n % 2 == 1:  # two images per patient, like the several fields cut from one slide
                patient += 1
            malignant = bool(patient % 2 == 0)
            image, label = _make_image(rng, hw, malignant)
            Image.fromarray(image).save(root / f"{part}_{n}.bmp")
            Image.fromarray(label).save(root / f"{part}_{n}_anno.bmp")
            grade = "malignant" if malignant else "benign"
            fine = _FINE_GRADES[grade][int(rng.integers(0, 2))]
            rows.append(f"{part}_{n},{patient},{grade},{fine}")
    (root / "Grade.csv").write_text("\n".join(rows) + "\n")
    return root
