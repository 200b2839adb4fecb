"""Which files of a studies folder the app serves: 2D images for 2D bundles, volumes for volume bundles.

This module imports neither MONAI Label nor torch, so the test suite checks it in the project's own environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

__all__ = [
    "IMAGE_SUFFIXES",
    "VOLUME_SUFFIXES",
    "datastore_extensions",
    "study_dimension",
    "split_by_dimension",
]

#: 2D image files: PNG (generated, CVC-ClinicDB PNG releases), JPEG (Kvasir-SEG), TIFF (CVC-ClinicDB), BMP (GlaS)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: volume files (OCT B-scan stacks, CT/MR): NIfTI, MetaImage (``.mhd`` header beside its ``.raw``), NRRD
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mhd", ".nrrd")


def datastore_extensions(configured: Sequence[str] = ()) -> list[str]:
    """
    The file patterns of MONAI Label's local datastore: ``configured`` (``MONAI_LABEL_DATASTORE_FILE_EXT``, or
    MONAI Label's default list) with every 2D image and volume pattern the app serves added.

    MONAI Label's default list has no ``.bmp`` (GlaS tiles), ``.jpeg``, ``.tiff`` nor ``.mhd``; the app adds them so
    a studies folder needs no environment variable.

    Args:
        configured: glob patterns such as ``"*.png"``, kept first and in order.

    Returns:
        the patterns, without repeats.
    """
    patterns = list(configured) + [f"*{suffix}" for suffix in IMAGE_SUFFIXES + VOLUME_SUFFIXES]
    return list(dict.fromkeys(patterns))


def study_dimension(path: str | os.PathLike) -> int | None:
    """
    2 for a 2D image file, 3 for a volume file, ``None`` for anything else (judged by the name's suffix).

    Args:
        path: a study's file path or name.
    """
    name = os.fspath(path).lower()
    if name.endswith(VOLUME_SUFFIXES):
        return 3
    if name.endswith(IMAGE_SUFFIXES):
        return 2
    return None


def split_by_dimension(paths: Iterable[str], dimension: int) -> tuple[list[str], list[str]]:
    """
    The studies a bundle of ``dimension`` reads, and the others.

    One studies folder may hold 2D frames and volumes, while the datastore's labelled and unlabelled lists are
    the same for every model: a 2D bundle is handed the image files only, a volume bundle the volume files only.

    Args:
        paths: study file paths.
        dimension: the bundle's served dimension (2 or 3).

    Returns:
        ``(kept, left_out)``, each in the given order.
    """
    kept: list[str] = []
    left_out: list[str] = []
    for path in paths:
        (kept if study_dimension(path) == dimension else left_out).append(path)
    return kept, left_out
