"""RETOUCH (Bogunović et al., IEEE TMI 2019): OCT volumes of three vendors with IRF/SRF/PED references."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from .errors import DataFileError, DatasetLayoutError
from .layout import natural_key, require_dir
from .metaimage_header import metaimage_size

__all__ = ["RETOUCH_URL", "RETOUCH_LAYOUT", "RETOUCH_CLASSES", "RETOUCH_VENDORS", "index_retouch"]

RETOUCH_URL = "https://retouch.grand-challenge.org/"
RETOUCH_LAYOUT = (
    "<root>/<vendor folder>/<volume>/oct.mhd (+ .raw) and reference.mhd (+ .raw), vendor folders named "
    "'Cirrus', 'Spectralis', 'Topcon' or as released ('RETOUCH-TrainingSet-Cirrus', ...)"
)
#: label values of ``reference.mhd``: 0 background, 1 intraretinal fluid, 2 subretinal fluid, 3 pigment epithelial
#: detachment.
RETOUCH_CLASSES: tuple[str, ...] = ("background", "IRF", "SRF", "PED")
RETOUCH_VENDORS: tuple[str, ...] = ("Cirrus", "Spectralis", "Topcon")
_VENDOR = re.compile(r"(?:.*-)?(Cirrus|Spectralis|Topcon)", re.IGNORECASE)


def _vendor_folders(root: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        match = _VENDOR.fullmatch(folder.name)
        if match:
            vendor = next(v for v in RETOUCH_VENDORS if v.lower() == match.group(1).lower())
            found.setdefault(vendor, []).append(folder)
    return found


def index_retouch(
    root: str | os.PathLike,
    vendors: Sequence[str] | None = None,
    require_reference: bool = True,
    validate: bool = True,
) -> list[dict]:
    """Index RETOUCH volumes: one item per volume, read later with MONAI's ``ITKReader``.

    Each volume folder holds ``oct.mhd`` (the B-scans, stacked along ITK's z) and, in the training set,
    ``reference.mhd`` (labels 0-3, :data:`RETOUCH_CLASSES`). Loaded by ``ITKReader`` (MONAI's default
    ``reverse_indexing``) a volume is ``(C, width, depth, n_bscans)``: B-scan ``k`` is ``[..., k]``.

    Args:
        root: the folder holding the vendor folders.
        vendors: keep only these vendors (``RETOUCH_VENDORS`` names, any case), or ``None`` for all found.
        require_reference: every volume must have ``reference.mhd`` (training set); with ``False`` volumes
            without it are indexed without a ``"label"`` (the test set, or unlabelled volumes).
        validate: read every header: the pixel data files must exist and be complete, and ``oct.mhd`` and
            ``reference.mhd`` of a volume must have the same size.

    Returns:
        ``[{"image": oct.mhd, "label": reference.mhd, "vendor": str, "volume": str, "subject": "<vendor>/<volume>"},
        ...]`` sorted by vendor and volume. RETOUCH has one volume per eye, so the volume is the subject that
        splits keep together.

    Raises:
        DatasetLayoutError: when ``root`` is missing, holds no vendor folder, a requested vendor is absent, or a
            vendor folder holds no volume.
        DataFileError: naming the file for a volume without ``oct.mhd``, a missing reference (with
            ``require_reference``), a missing or truncated ``.raw`` file, or an image/reference size mismatch.
    """
    root = require_dir(root, "RETOUCH", RETOUCH_LAYOUT, RETOUCH_URL)
    found = _vendor_folders(root)
    if not found:
        raise DatasetLayoutError(
            f"RETOUCH: no vendor folder in '{root}'. Expected layout: {RETOUCH_LAYOUT}. "
            f"Download the data from {RETOUCH_URL}"
        )
    if vendors is not None:
        wanted = {v.lower() for v in vendors}
        unknown = wanted - {v.lower() for v in RETOUCH_VENDORS}
        if unknown:
            raise ValueError(f"unknown RETOUCH vendor(s) {sorted(unknown)}; choose from {list(RETOUCH_VENDORS)}.")
        missing = sorted(wanted - {v.lower() for v in found})
        if missing:
            raise DatasetLayoutError(f"RETOUCH: no folder of vendor(s) {missing} in '{root}' (found {sorted(found)}).")
        found = {v: f for v, f in found.items() if v.lower() in wanted}
    items: list[dict] = []
    for vendor, folders in found.items():
        volumes = [d for folder in folders for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if not volumes:
            raise DatasetLayoutError(
                f"RETOUCH: vendor folder(s) {[str(f) for f in folders]} hold no volume folder. "
                f"Expected layout: {RETOUCH_LAYOUT}."
            )
        for volume in sorted(volumes, key=natural_key):
            items.append(_volume_item(volume, vendor, require_reference, validate))
    return items


def _volume_item(volume: Path, vendor: str, require_reference: bool, validate: bool) -> dict:
    image, label = volume / "oct.mhd", volume / "reference.mhd"
    if not image.is_file():
        raise DataFileError(
            f"RETOUCH volume folder '{volume}' has no 'oct.mhd'"
            + (" but a 'reference.mhd': an unpaired reference." if label.is_file() else ".")
        )
    item = {"image": str(image), "vendor": vendor, "volume": volume.name, "subject": f"{vendor}/{volume.name}"}
    if label.is_file():
        item["label"] = str(label)
    elif require_reference:
        raise DataFileError(
            f"RETOUCH volume '{image}' has no 'reference.mhd' beside it (index the test set, or unlabelled volumes, "
            "with require_reference=False)."
        )
    if validate:
        size = metaimage_size(image)
        if "label" in item:
            label_size = metaimage_size(label)
            if label_size != size:
                raise DataFileError(
                    f"RETOUCH volume size mismatch (x, y, z): '{image}' is {size}, '{label}' is {label_size}."
                )
    return item
