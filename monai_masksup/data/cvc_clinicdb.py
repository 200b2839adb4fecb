"""CVC-ClinicDB (Bernal et al., CMIG 2015): colonoscopy frames and polyp masks, TIFF or PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .pairing import index_folder_pair

__all__ = ["CVC_CLINICDB_URL", "CVC_CLINICDB_LAYOUT", "index_cvc_clinicdb"]

CVC_CLINICDB_URL = "https://polyp.grand-challenge.org/CVCClinicDB/"
CVC_CLINICDB_LAYOUT = (
    "<root>/Original/<n>.tif and '<root>/Ground Truth/<n>.tif' (or the PNG exports <n>.png) "
    "(root = the unzipped 'CVC-ClinicDB' folder)"
)
_SUFFIXES = (".tif", ".tiff", ".png")


def index_cvc_clinicdb(
    root: str | os.PathLike,
    ids: str | os.PathLike | Sequence[str] | None = None,
    validate: bool = True,
    decode: bool = False,
) -> list[dict[str, str]]:
    """Index CVC-ClinicDB frame/mask pairs.

    The original TIFF frames hold three samples per pixel but are tagged as grey: load them with
    ``LoadImaged(..., reader=TiffFileReader)`` and guard with ``EnsureRGBd("image")``. Masks carry a
    faint halo of low values: binarise with ``BinarizeLabeld("label", threshold=127)`` (``>= 128``).

    Args:
        root: the ``CVC-ClinicDB`` folder, or a folder holding it.
        ids: ``None`` for every pair, a split file (one frame number per line) or a sequence of ids.
        validate: check headers, sizes and file completeness with :func:`validate_datalist`.
        decode: also decode every file completely (:func:`validate_datalist` with ``decode=True``, implies
            ``validate``): finds compressed data damaged without marker damage, which the other checks cannot
            see, at the cost of one full decode of every image.

    Returns:
        ``[{"image": path, "label": path}, ...]`` sorted by frame number.

    Raises:
        DatasetLayoutError: when the folders are missing or empty.
        DataFileError: for unpaired, truncated or mismatched files, ids without a pair, or a frame
            present both as TIFF and PNG in one folder.
    """
    root = Path(root)
    if not (root / "Original").is_dir() and (root / "CVC-ClinicDB" / "Original").is_dir():
        root = root / "CVC-ClinicDB"
    return index_folder_pair(
        root / "Original",
        root / "Ground Truth",
        "CVC-ClinicDB",
        CVC_CLINICDB_LAYOUT,
        CVC_CLINICDB_URL,
        ids=ids,
        suffixes=_SUFFIXES,
        validate=validate,
        decode=decode,
    )
