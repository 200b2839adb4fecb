"""Generated OCT-like volumes (layered retina with IRF/SRF/PED pockets) in the RETOUCH layout and as PNG B-scans."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "synthetic_oct_volume",
    "write_metaimage_volume",
    "write_bscan_pngs",
    "make_synthetic_retouch",
]

# label values as in RETOUCH's reference.mhd
_IRF, _SRF, _PED = 1, 2, 3


def _smooth_curve(rng: np.random.Generator, n: int, amplitude: float, knots: int = 4) -> np.ndarray:
    """A smooth random curve over ``n`` columns: few random knots, linearly interpolated then box-smoothed."""
    xs = np.linspace(0, n - 1, knots)
    curve = np.interp(np.arange(n), xs, rng.uniform(-amplitude, amplitude, knots))
    kernel = np.ones(max(n // 8, 1)) / max(n // 8, 1)
    return np.convolve(np.pad(curve, len(kernel), mode="edge"), kernel, mode="same")[len(kernel) : -len(kernel)]


def synthetic_oct_volume(
    shape: Sequence[int] = (8, 48, 64), seed: int = 0, n_pockets: Sequence[int] = (2, 1, 1)
) -> tuple[np.ndarray, np.ndarray]:
    """One OCT-like volume and its reference: a layered retina with fluid pockets of the three RETOUCH classes.

    Each B-scan shows dark vitreous on top, a retina of bright and dark bands between the inner limiting
    membrane and a bright retinal pigment epithelium (RPE), and a speckled choroid below, all following one
    smooth curve per volume. Fluid pockets are ellipsoids spanning a few neighbouring B-scans, dark and
    labelled as in RETOUCH: intraretinal fluid (1, IRF) inside the inner retina, subretinal fluid (2, SRF)
    between the retina and the RPE, pigment epithelial detachment (3, PED) under a raised RPE. Speckle is
    multiplicative, as in OCT. Deterministic under ``seed``; numpy only.

    Args:
        shape: ``(n_bscans, depth, width)``, ITK's ``(z, y, x)`` array order; depth and width at least 32.
        seed: random seed.
        n_pockets: how many IRF, SRF and PED pockets to draw.

    Returns:
        ``(image, label)``: ``uint8`` arrays of ``shape``; label values 0-3.

    Raises:
        ValueError: when ``shape`` is not three sizes with depth and width of at least 32, or ``n_pockets``
            is not three counts.
    """
    if len(shape) != 3 or min(shape[1:]) < 32 or shape[0] < 1:
        raise ValueError(f"shape must be (n_bscans >= 1, depth >= 32, width >= 32), got {tuple(shape)}.")
    if len(n_pockets) != 3:
        raise ValueError(f"n_pockets must give the IRF, SRF and PED counts, got {tuple(n_pockets)}.")
    n, h, w = (int(s) for s in shape)
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
    base = 0.3 * h + _smooth_curve(rng, w, 0.06 * h)  # inner limiting membrane per column
    thickness = 0.35 * h
    ilm = base[None, None, :] + 0.02 * h * np.sin(z / n * np.pi)  # the retina tilts a little across B-scans
    depth = (y - ilm) / thickness  # 0 at the ILM, 1 at the RPE
    label = np.zeros((n, h, w), dtype=np.uint8)
    rpe_lift = np.zeros((n, h, w))

    def ellipsoid(cz: float, cy: np.ndarray | float, cx: float, rz: float, ry: float, rx: float) -> np.ndarray:
        return ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0

    for _ in range(int(n_pockets[2])):  # PED first: it raises the RPE that SRF then sits on
        cz, cx = rng.uniform(0, n), rng.uniform(0.2 * w, 0.8 * w)
        rz, rx, ry = max(n / 4, 1.0), rng.uniform(0.06, 0.12) * w, rng.uniform(0.05, 0.08) * h
        dome = np.clip(1 - ((z - cz) / rz) ** 2 - ((x - cx) / rx) ** 2, 0, None)
        rpe_lift = np.maximum(rpe_lift, np.sqrt(dome) * ry)
    rpe_depth = 1.0 - rpe_lift / thickness
    ped = (depth > rpe_depth + 0.06) & (depth <= 1.06) & (rpe_lift > 0.5)
    label[ped] = _PED
    for _ in range(int(n_pockets[1])):
        cz, cx = rng.uniform(0, n), rng.uniform(0.2 * w, 0.8 * w)
        rz, rx, ry = max(n / 5, 1.0), rng.uniform(0.06, 0.1) * w, rng.uniform(0.04, 0.07) * h
        cy = ilm + (rpe_depth - 0.02) * thickness
        pocket = ellipsoid(cz, cy, cx, rz, ry, rx) & (depth < rpe_depth - 0.02) & (label == 0)
        label[pocket] = _SRF
    for _ in range(int(n_pockets[0])):
        cz, cx = rng.uniform(0, n), rng.uniform(0.15 * w, 0.85 * w)
        rz, rx, ry = max(n / 6, 1.0), rng.uniform(0.03, 0.07) * w, rng.uniform(0.03, 0.06) * h
        cy = ilm + rng.uniform(0.3, 0.6) * thickness
        pocket = ellipsoid(cz, cy, cx, rz, ry, rx) & (depth > 0.15) & (depth < rpe_depth - 0.15) & (label == 0)
        label[pocket] = _IRF

    intensity = np.full((n, h, w), 0.08)  # vitreous
    retina = (depth >= 0) & (depth < rpe_depth)
    bands = 0.45 + 0.2 * np.cos(depth * 5 * np.pi)  # alternating nerve-fibre, plexiform and nuclear layers
    intensity[retina] = bands[retina]
    intensity[(depth >= 0) & (depth < 0.06)] = 0.8  # bright nerve fibre layer under the ILM
    rpe = (depth >= rpe_depth) & (depth < rpe_depth + 0.06)
    intensity[rpe] = 0.95
    below = depth >= rpe_depth + 0.06
    intensity[below] = 0.35 * np.exp(-(depth[below] - rpe_depth[below]) * 2.0)  # choroid fading with depth
    intensity[label == _PED] = 0.15
    intensity[(label == _IRF) | (label == _SRF)] = 0.05
    speckle = rng.gamma(4.0, 1.0 / 4.0, size=intensity.shape)
    noisy = intensity * speckle + rng.normal(0.0, 0.02, size=intensity.shape)
    image = np.clip(noisy * 255.0, 0, 255).astype(np.uint8)
    return image, label


def write_metaimage_volume(
    array: np.ndarray, path: str | os.PathLike, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> Path:
    """Write a ``(z, y, x)`` array as an uncompressed MetaImage ``.mhd`` + ``.raw`` pair through ITK.

    Args:
        array: the volume in ITK's array order.
        path: the ``.mhd`` file (its ``.raw`` is written beside it).
        spacing: ``(x, y, z)`` voxel spacing in mm written to the header.

    Returns:
        ``path`` as a ``Path``.
    """
    import itk

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = itk.image_from_array(np.ascontiguousarray(array))
    image.SetSpacing([float(s) for s in spacing])
    itk.imwrite(image, str(path), compression=False)
    return path


def write_bscan_pngs(
    image: np.ndarray, label: np.ndarray | None, folder: str | os.PathLike
) -> list[dict[str, str]]:
    """Write a ``(z, y, x)`` uint8 volume as PNG B-scans ``<folder>/images/bscan_<k>.png`` (+ ``labels/``).

    B-scan ``k`` is ``image[k]``: depth down the rows, A-scans along the columns, as OCT exports show it.

    Args:
        image: ``uint8`` volume ``(n_bscans, depth, width)``.
        label: ``uint8`` label volume of the same shape, or ``None``.
        folder: output folder (created if needed).

    Returns:
        one ``{"image": path, "label": path?}`` item per B-scan, in B-scan order.

    Raises:
        ValueError: when the arrays are not ``uint8`` volumes of equal shape (PNG holds 8 bits exactly).
    """
    if image.ndim != 3 or image.dtype != np.uint8 or (label is not None and label.shape != image.shape):
        raise ValueError(
            f"write_bscan_pngs needs uint8 (n_bscans, depth, width) volumes of equal shape, got image "
            f"{image.dtype} {image.shape}" + ("" if label is None else f" and label {label.shape}") + "."
        )
    folder = Path(folder)
    items = []
    digits = max(3, len(str(image.shape[0] - 1)))
    for k in range(image.shape[0]):
        name = f"bscan_{k:0{digits}d}.png"
        item = {"image": str(folder / "images" / name)}
        (folder / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[k]).save(item["image"])
        if label is not None:
            (folder / "labels").mkdir(parents=True, exist_ok=True)
            item["label"] = str(folder / "labels" / name)
            Image.fromarray(label[k].astype(np.uint8)).save(item["label"])
        items.append(item)
    return items


def make_synthetic_retouch(
    root: str | os.PathLike,
    n_volumes: int = 2,
    vendors: Sequence[str] = ("Cirrus", "Spectralis", "Topcon"),
    shape: Sequence[int] = (8, 48, 64),
    seed: int = 0,
    png_root: str | os.PathLike | None = None,
) -> Path:
    """Write a small RETOUCH-like data set: ``<root>/<vendor>/TRAIN<nnn>/oct.mhd`` and ``reference.mhd``.

    Volumes come from :func:`synthetic_oct_volume` (seeds ``seed``, ``seed + 1``, ...) and are real
    MetaImage files written through ITK, so :func:`index_retouch` and MONAI's ``ITKReader`` read them as they
    read RETOUCH. Volume numbers run on across vendors, as in the release (``TRAIN001``, ``TRAIN002``, ...).

    Args:
        root: output folder (created if needed; files of the same names are overwritten).
        n_volumes: volumes per vendor.
        vendors: vendor folder names.
        shape: ``(n_bscans, depth, width)`` of every volume.
        seed: random seed of the first volume.
        png_root: when given, every volume is also written as PNG B-scans in
            ``<png_root>/<vendor>/TRAIN<nnn>/{images,labels}/bscan_<k>.png`` (:func:`write_bscan_pngs`).

    Returns:
        ``root`` as a ``Path``.
    """
    root = Path(root)
    number = 0
    for vendor in vendors:
        for _ in range(n_volumes):
            number += 1
            volume = f"TRAIN{number:03d}"
            image, label = synthetic_oct_volume(shape, seed=seed + number - 1)
            write_metaimage_volume(image, root / vendor / volume / "oct.mhd")
            write_metaimage_volume(label, root / vendor / volume / "reference.mhd")
            if png_root is not None:
                write_bscan_pngs(image, label, Path(png_root) / vendor / volume)
    return root
