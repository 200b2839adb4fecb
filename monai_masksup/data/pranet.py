"""The polyp benchmark layout distributed with PraNet (Fan et al., MICCAI 2020)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import DatasetLayoutError
from .layout import natural_key, require_dir
from .pairing import index_folder_pair

__all__ = ["PRANET_URL", "PRANET_LAYOUT", "list_pranet_test_sets", "index_pranet"]

PRANET_URL = "https://github.com/DengPingFan/PraNet"
PRANET_LAYOUT = (
    "<root>/TrainDataset/{image,mask}/<name>.png (Kvasir 900 + CVC-ClinicDB 550) and "
    "<root>/TestDataset/<test set>/{images,masks}/<name>.png|jpg (CVC-300, CVC-ClinicDB, CVC-ColonDB, "
    "ETIS-LaribPolypDB, Kvasir); 'image'/'images' and 'mask'/'masks' are both accepted"
)


def _pick(folder: Path, names: Sequence[str]) -> Path:
    """The first of ``names`` that exists inside ``folder`` (else the first, for the error message)."""
    for name in names:
        if (folder / name).is_dir():
            return folder / name
    return folder / names[0]


def list_pranet_test_sets(root: str | os.PathLike) -> list[str]:
    """Names of the test sets under ``<root>/TestDataset``.

    Args:
        root: the folder holding ``TestDataset``.

    Returns:
        sorted folder names, e.g. ``["CVC-300", "CVC-ClinicDB", ...]``.

    Raises:
        DatasetLayoutError: when ``TestDataset`` is missing.
    """
    test_root = require_dir(Path(root) / "TestDataset", "PraNet polyp benchmark", PRANET_LAYOUT, PRANET_URL)
    return sorted((p.name for p in test_root.iterdir() if p.is_dir()), key=natural_key)


def index_pranet(
    root: str | os.PathLike,
    subset: str = "train",
    ids: str | os.PathLike | Sequence[str] | None = None,
    validate: bool = True,
    decode: bool = False,
) -> list[dict[str, str]]:
    """Index the training set or one test set of the PraNet polyp benchmark.

    This is the split the MaskSup paper uses for polyps: training on ``TrainDataset`` (900 Kvasir-SEG
    + 550 CVC-ClinicDB frames), testing on the other 62 CVC-ClinicDB frames (``TestDataset/CVC-ClinicDB``).
    Masks are PNG files; binarise them with ``BinarizeLabeld("label", threshold=127)``.

    Args:
        root: the folder holding ``TrainDataset`` and ``TestDataset``.
        subset: ``"train"`` or the name of a test set folder, e.g. ``"CVC-ClinicDB"`` or ``"Kvasir"``.
        ids: optional id selection (split file or sequence of file stems).
        validate: check headers, sizes and file completeness with :func:`validate_datalist`.
        decode: also decode every file completely (:func:`validate_datalist` with ``decode=True``, implies
            ``validate``): finds compressed data damaged without marker damage, which the other checks cannot
            see, at the cost of one full decode of every image.

    Returns:
        ``[{"image": path, "label": path}, ...]`` sorted by name.

    Raises:
        DatasetLayoutError: when the folders are missing or empty, or ``subset`` names no test set
            (the message lists those present).
        DataFileError: for unpaired, truncated or mismatched files.
    """
    root = Path(root)
    if subset == "train":
        base = root / "TrainDataset"
    else:
        base = root / "TestDataset" / subset
        if not base.is_dir() and (root / "TestDataset").is_dir():
            raise DatasetLayoutError(
                f"PraNet polyp benchmark: no test set '{subset}' in '{root / 'TestDataset'}'; "
                f"found {list_pranet_test_sets(root)}. Use subset='train' or one of these."
            )
    return index_folder_pair(
        _pick(base, ("image", "images")),
        _pick(base, ("mask", "masks")),
        "PraNet polyp benchmark",
        PRANET_LAYOUT,
        PRANET_URL,
        ids=ids,
        validate=validate,
        decode=decode,
    )
