"""Small synthetic polyp data set in the native Kvasir-SEG and CVC-ClinicDB layouts, for demos and tests."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["make_synthetic_polyps"]

# colonoscopy-like colours (RGB): orange-red mucosa, darker folds, pink-red polyps, white specular glare
_MUCOSA = np.array([206.0, 98.0, 66.0])
_FOLD = np.array([150.0, 52.0, 38.0])
_POLYP = np.array([226.0, 128.0, 122.0])
_GLARE = np.array([252.0, 250.0, 244.0])
_ID_CHARS = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Blobby noise in [-1, 1]: a coarse random grid upsampled bilinearly to ``shape``."""
    coarse = rng.uniform(-1.0, 1.0, size=(shape[0] // cell + 2, shape[1] // cell + 2)).astype(np.float32)
    up = Image.fromarray(coarse).resize((coarse.shape[1] * cell, coarse.shape[0] * cell), Image.Resampling.BILINEAR)
    return np.asarray(up)[: shape[0], : shape[1]]


def _glare(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    """Soft specular highlight weight in [0, 1] around ``(cy, cx)``."""
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2 * rng.uniform(0.5, 2.0)) / (2.0 * r**2))


def _make_frame(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One frame: ``(H, W, 3)`` uint8 RGB image and ``(H, W)`` bool polyp mask (never empty)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    texture = 0.6 * _smooth_noise(rng, size, 16) + 0.4 * _smooth_noise(rng, size, 4)
    rgb = _MUCOSA + 18.0 * texture[..., None] + rng.normal(0.0, 4.0, size=(h, w, 1))
    # haustral folds: a few dark curved bands across the lumen wall
    phase = rng.uniform(0, 2 * np.pi)
    folds = np.sin(2 * np.pi * (xx / w * rng.uniform(1.0, 2.5) + 0.3 * np.sin(yy / h * 3.0 + phase)))
    fold_weight = np.clip(folds - 0.6, 0.0, None)[..., None] * 1.5
    rgb = rgb * (1 - fold_weight) + _FOLD * fold_weight
    mask = np.zeros(size, dtype=bool)
    glare = np.zeros(size, dtype=np.float32)
    for _ in range(int(rng.integers(1, 3))):
        ry = rng.uniform(0.12, 0.28) * min(h, w)
        rx = ry * rng.uniform(0.7, 1.4)
        cy, cx = rng.uniform(ry, h - ry), rng.uniform(rx, w - rx)
        angle = rng.uniform(0.0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
        theta = np.arctan2(v, u)
        wobble = 1.0 + 0.06 * np.cos(3 * theta + rng.uniform(0, 2 * np.pi))
        rho = np.sqrt(u**2 + v**2) / wobble
        lesion = rho <= 1.0
        # dome shading: lit from the scope, brighter at the top of the polyp, a darker rim at its base
        dome = np.sqrt(np.clip(1.0 - rho**2, 0.0, 1.0))[..., None]
        colour = _POLYP * (0.8 + 0.25 * dome) + 10.0 * _smooth_noise(rng, size, 6)[..., None]
        rgb = np.where(lesion[..., None], colour, rgb)
        mask |= lesion
        glare = np.maximum(glare, _glare(rng, yy, xx, cy - 0.3 * ry, cx + 0.2 * rx, 0.12 * ry) * lesion)
    # glare on the mucosa too, so that a highlight alone does not mean polyp
    for _ in range(int(rng.integers(1, 4))):
        glare = np.maximum(glare, _glare(rng, yy, xx, rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.0, 2.5)))
    rgb = rgb * (1 - glare[..., None]) + _GLARE * glare[..., None]
    # vignetting of the endoscope's light: corners fall off to dark
    r2 = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2
    rgb = rgb * np.clip(1.0 - 0.35 * r2, 0.15, 1.0)[..., None]
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7))
    return np.asarray(image), mask


def _kvasir_id(rng: np.random.Generator) -> str:
    """A 25-character lower-case id like Kvasir-SEG's (``cju0qkwl35piu0993l0dewei2``)."""
    return "cju" + "".join(rng.choice(_ID_CHARS, size=22))


def make_synthetic_polyps(
    root: str | os.PathLike,
    n_kvasir: int = 16,
    n_cvc: int = 10,
    size: Sequence[int] = (96, 128),
    seed: int = 0,
    n_cvc_test: int = 2,
) -> Path:
    """Write a small polyp data set in the native Kvasir-SEG and CVC-ClinicDB layouts.

    Each frame shows one or two smooth pink-red elliptic polyps with dome shading and specular
    highlights on a textured orange-red mucosa with dark folds, glare spots and vignetting. Files:

    - ``root/Kvasir-SEG/images/<id>.jpg`` (RGB JPEG) and ``root/Kvasir-SEG/masks/<id>.jpg``: the mask as
      an RGB JPEG of 0 / 255, so it carries compression noise and needs the ``> 127`` threshold like the
      real masks; ids are 25-character strings like the real ones.
    - ``root/CVC-ClinicDB/Original/<n>.tif`` (RGB TIFF, ``photometric='rgb'``) and
      ``root/CVC-ClinicDB/Ground Truth/<n>.tif`` (8-bit grey 0 / 255 with a faint low-value halo at the
      border, as some real labels have), ``n = 1 .. n_cvc``.
    - ``root/splits/cvc_test.txt``: the last ``n_cvc_test`` frame numbers, for the bundle's
      ``--cvc_test_ids`` (written last, so its presence means the data set is complete).

    Deterministic under ``seed``; numpy, PIL and tifffile only.

    Args:
        root: output folder (created if needed; existing files of the same names are overwritten).
        n_kvasir: number of Kvasir-SEG image/mask pairs.
        n_cvc: number of CVC-ClinicDB frame/label pairs.
        size: ``(height, width)`` of every image.
        seed: random seed.
        n_cvc_test: number of CVC-ClinicDB frames listed in ``splits/cvc_test.txt``.

    Returns:
        ``root`` as a ``Path``, ready for :func:`index_kvasir_seg` and :func:`index_cvc_clinicdb`.

    Raises:
        ValueError: when ``size`` is not two values of at least 32 pixels, ``n_kvasir`` or ``n_cvc`` is
            below 1, or ``n_cvc_test`` is not in ``[1, n_cvc - 1]``.
    """
    import tifffile

    if len(size) != 2 or min(size) < 32:
        raise ValueError(f"size must be (height, width) with both >= 32, got {tuple(size)}.")
    if n_kvasir < 1 or n_cvc < 2:
        raise ValueError(f"need n_kvasir >= 1 and n_cvc >= 2, got n_kvasir={n_kvasir}, n_cvc={n_cvc}.")
    if not 1 <= n_cvc_test < n_cvc:
        raise ValueError(f"n_cvc_test must be in [1, n_cvc - 1] = [1, {n_cvc - 1}], got {n_cvc_test}.")
    hw = (int(size[0]), int(size[1]))
    root = Path(root)
    kvasir, cvc, splits = root / "Kvasir-SEG", root / "CVC-ClinicDB", root / "splits"
    for folder in (kvasir / "images", kvasir / "masks", cvc / "Original", cvc / "Ground Truth", splits):
        folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for _ in range(n_kvasir):
        image, mask = _make_frame(rng, hw)
        name = _kvasir_id(rng)
        Image.fromarray(image).save(kvasir / "images" / f"{name}.jpg", quality=90)
        # the real masks are RGB JPEGs: JPEG noise around 0 and 255 exercises the > 127 threshold
        Image.fromarray(mask.astype(np.uint8) * 255).convert("RGB").save(kvasir / "masks" / f"{name}.jpg", quality=90)
    for n in range(1, n_cvc + 1):
        image, mask = _make_frame(rng, hw)
        label = mask.astype(np.uint8) * 255
        ring = np.zeros_like(mask)
        ring[1:] |= mask[:-1]
        ring[:-1] |= mask[1:]
        ring[:, 1:] |= mask[:, :-1]
        ring[:, :-1] |= mask[:, 1:]
        label[ring & ~mask] = 24  # faint halo below the >= 128 threshold, as on some real labels
        tifffile.imwrite(cvc / "Original" / f"{n}.tif", image, photometric="rgb")
        tifffile.imwrite(cvc / "Ground Truth" / f"{n}.tif", label, photometric="minisblack")
    (splits / "cvc_test.txt").write_text("".join(f"{n}\n" for n in range(n_cvc - n_cvc_test + 1, n_cvc + 1)))
    return root
