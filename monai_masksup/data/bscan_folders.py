"""OCT volumes exported as folders of 2D B-scan images, one folder per volume."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataFileError, DatasetLayoutError
from .image_checks import image_size
from .layout import list_image_files, natural_key, require_dir
from .pairing import index_folder_pair

__all__ = ["BSCAN_FOLDERS_LAYOUT", "index_bscan_folders"]

BSCAN_FOLDERS_LAYOUT = (
    "<root>/.../<volume>/images/<bscan>.png and, for labelled volumes, <root>/.../<volume>/labels/<bscan>.png "
    "(B-scans in natural name order; labels hold class indices)"
)


def index_bscan_folders(
    root: str | os.PathLike, image_folder: str = "images", label_folder: str = "labels", validate: bool = True
) -> list[dict]:
    """Index volumes stored as B-scan images: one item per volume, listing its B-scan files in order.

    Every folder under ``root`` that holds an ``image_folder`` is a volume (e.g. the PNG export of
    :func:`make_synthetic_retouch`: ``<root>/<vendor>/<volume>/images``). Load the items with
    :func:`bscan_png_volume_transforms`, which stacks the B-scans into a ``(1, width, depth, n_bscans)`` volume
    like ``ITKReader`` gives, so both storage forms share the per-volume normalisation and B-scan slicing.
    (Exports of single annotated B-scans without their volume, like Duke DME, have their own indexer:
    :func:`index_duke_oct`.)

    Args:
        root: folder searched for volume folders.
        image_folder: name of the folder of B-scan images inside a volume folder.
        label_folder: name of the folder of label images; volumes without it are indexed without ``"label"``.
        validate: check headers and completeness of every file, and that the B-scans of a volume share one size.

    Returns:
        ``[{"image": [path, ...], "label": [path, ...]?, "volume": rel, "subject": rel}, ...]`` sorted by the
        volume folder's path relative to ``root`` (``rel``).

    Raises:
        DatasetLayoutError: when ``root`` is missing or holds no volume folder.
        DataFileError: naming the file for unpaired or mismatched B-scans, or B-scans of different sizes.
    """
    root = require_dir(root, "OCT B-scan folders", BSCAN_FOLDERS_LAYOUT, "your export")
    volume_dirs = sorted({p.parent for p in root.rglob(image_folder) if p.is_dir()}, key=lambda p: natural_key(str(p)))
    if not volume_dirs:
        raise DatasetLayoutError(
            f"OCT B-scan folders: no '{image_folder}' folder under '{root}'. Expected layout: {BSCAN_FOLDERS_LAYOUT}."
        )
    items = []
    for volume in volume_dirs:
        name = volume.relative_to(root).as_posix() or "."
        if (volume / label_folder).is_dir():
            pairs = index_folder_pair(
                volume / image_folder, volume / label_folder, "OCT B-scan folders", BSCAN_FOLDERS_LAYOUT,
                "your export", validate=validate,
            )  # fmt: skip
            item = {"image": [p["image"] for p in pairs], "label": [p["label"] for p in pairs]}
        else:
            files = list_image_files(volume / image_folder, "OCT B-scan folders", BSCAN_FOLDERS_LAYOUT, "your export")
            item = {"image": [str(f) for f in files]}
        if validate:
            sizes = {f: image_size(f) for f in item["image"]}
            first = item["image"][0]
            odd = [f for f, s in sizes.items() if s != sizes[first]]
            if odd:
                raise DataFileError(
                    f"B-scans of volume '{volume}' differ in size: '{odd[0]}' is {sizes[odd[0]]}, '{first}' is "
                    f"{sizes[first]} (height x width); a volume's B-scans must stack."
                )
        item.update(volume=name, subject=name)
        items.append(item)
    return items
