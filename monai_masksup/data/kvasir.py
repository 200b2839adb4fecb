"""Kvasir-SEG (Jha et al., MMM 2020): polyp images and masks as JPEG files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .pairing import index_folder_pair

__all__ = ["KVASIR_SEG_URL", "KVASIR_SEG_LAYOUT", "index_kvasir_seg"]

KVASIR_SEG_URL = "https://datasets.simula.no/kvasir-seg/"
KVASIR_SEG_LAYOUT = "<root>/images/<id>.jpg and <root>/masks/<id>.jpg (root = the unzipped 'Kvasir-SEG' folder)"


def index_kvasir_seg(
    root: str | os.PathLike,
    ids: str | os.PathLike | Sequence[str] | None = None,
    validate: bool = True,
    decode: bool = False,
) -> list[dict[str, str]]:
    """Index Kvasir-SEG image/mask pairs.

    Masks are RGB JPEGs with compression noise, never exactly {0, 255}: binarise them with
    ``BinarizeLabeld("label", threshold=127)`` (foreground ``> 127``).

    Args:
        root: the ``Kvasir-SEG`` folder, or a folder holding it.
        ids: ``None`` for every pair, a split file (one id per line, e.g. ``splits_medico2020/train.txt``)
            or a sequence of ids.
        validate: check headers, sizes and file completeness with :func:`validate_datalist`.
        decode: also decode every file completely (:func:`validate_datalist` with ``decode=True``, implies
            ``validate``): finds compressed data damaged without marker damage, which the other checks cannot
            see, at the cost of one full decode of every image.

    Returns:
        ``[{"image": path, "label": path}, ...]`` sorted by name.

    Raises:
        DatasetLayoutError: when the folders are missing or empty.
        DataFileError: for unpaired, truncated or mismatched files, or ids without a pair.
    """
    root = Path(root)
    if not (root / "images").is_dir() and (root / "Kvasir-SEG" / "images").is_dir():
        root = root / "Kvasir-SEG"
    return index_folder_pair(
        root / "images",
        root / "masks",
        "Kvasir-SEG",
        KVASIR_SEG_LAYOUT,
        KVASIR_SEG_URL,
        ids=ids,
        validate=validate,
        decode=decode,
    )
