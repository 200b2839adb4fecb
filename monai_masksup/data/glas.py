"""GLaS (Sirinukunwattana et al., MedIA 2017): the MICCAI 2015 Gland Segmentation challenge data."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .errors import DataFileError, DatasetLayoutError
from .image_checks import validate_datalist
from .layout import list_image_files, require_dir
from .pairing import index_folder_pair, pair_by_name

__all__ = [
    "GLAS_URL",
    "GLAS_WARWICK_LAYOUT",
    "GLAS_EXPORT_LAYOUT",
    "GLAS_SUBSETS",
    "detect_glas_layout",
    "read_glas_grades",
    "index_glas_warwick",
    "index_glas_export",
    "index_glas",
]

GLAS_URL = "https://warwick.ac.uk/fac/cross_fac/tia/data/glascontest/"
GLAS_WARWICK_LAYOUT = (
    "the Warwick release: one folder with train_<n>.bmp + train_<n>_anno.bmp, testA_<n>[_anno].bmp, "
    "testB_<n>[_anno].bmp and Grade.csv"
)
GLAS_EXPORT_LAYOUT = "an export: <root>/{train,test}/img/<name>.png and <root>/{train,test}/labelcol/<name>.png"
#: Warwick subsets and the file prefixes they cover; "test" is test part A followed by part B.
GLAS_SUBSETS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "testA": ("testA",),
    "testB": ("testB",),
    "test": ("testA", "testB"),
}
_EXPORT_SPLIT_DIRS = {
    "train": ("train", "Train_Folder", "Train"),
    "test": ("test", "Test_Folder", "Test"),
    "val": ("val", "validation", "Validation_Folder", "Val"),
}
_EXPORT_IMAGE_DIRS = ("img", "images", "image")
_EXPORT_LABEL_DIRS = ("labelcol", "labels", "label", "masks", "mask")


def _is_warwick(folder: Path) -> bool:
    return (folder / "Grade.csv").is_file() or any(folder.glob("train_*.bmp")) or any(folder.glob("testA_*.bmp"))


def _first_dir(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_dir()), None)


def detect_glas_layout(root: str | os.PathLike) -> tuple[str, Path]:
    """Find which GLaS layout ``root`` holds and the folder that holds it.

    ``root`` may be the data folder itself or its parent (as after unzipping
    ``Warwick QU Dataset (Released 2016_07_08).zip``); then the first subfolder in name order that
    holds either layout is used.

    Args:
        root: folder to inspect.

    Returns:
        ``("warwick" | "export", folder)``.

    Raises:
        DatasetLayoutError: when ``root`` is missing or neither layout is found; the message describes both.
    """
    root = require_dir(root, "GLaS", f"{GLAS_WARWICK_LAYOUT}; or {GLAS_EXPORT_LAYOUT}", GLAS_URL)
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    for folder in candidates:
        if _is_warwick(folder):
            return "warwick", folder
        if any(_first_dir(folder, names) is not None for names in _EXPORT_SPLIT_DIRS.values()):
            return "export", folder
    raise DatasetLayoutError(
        f"GLaS: no GLaS data found in '{root}'. Expected {GLAS_WARWICK_LAYOUT}; or {GLAS_EXPORT_LAYOUT}. "
        f"Download the data from {GLAS_URL}"
    )


def read_glas_grades(root: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Read the Warwick release's ``Grade.csv``.

    Args:
        root: the folder holding ``Grade.csv``.

    Returns:
        ``{name: {"patient_id": ..., "grade": ..., "grade_sirinukunwattana": ...}}`` where ``grade`` is
        the GlaS grade (benign / malignant) and ``grade_sirinukunwattana`` the finer grade of
        Sirinukunwattana et al. 2015.

    Raises:
        DatasetLayoutError: when ``Grade.csv`` is missing.
        DataFileError: when a row has fewer than three columns.
    """
    path = Path(root) / "Grade.csv"
    if not path.is_file():
        raise DatasetLayoutError(
            f"GLaS: '{path}' does not exist. Expected {GLAS_WARWICK_LAYOUT}. Download the data from {GLAS_URL}"
        )
    grades: dict[str, dict[str, str]] = {}
    with open(path, newline="") as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f) if any(cell.strip() for cell in row)]
    for number, row in enumerate(rows[1:], start=2):  # the first row is the header
        if len(row) < 3:
            raise DataFileError(f"'{path}' line {number} has {len(row)} column(s); expected name, patient ID, grade.")
        grades[row[0]] = {
            "patient_id": row[1],
            "grade": row[2],
            "grade_sirinukunwattana": row[3] if len(row) > 3 else "",
        }
    return grades


def index_glas_warwick(
    root: str | os.PathLike,
    subset: str = "train",
    validate: bool = True,
    with_grade: bool = False,
    decode: bool = False,
) -> list[dict[str, str]]:
    """Index GLaS in the Warwick release layout (all files in one folder).

    Annotations are instance maps (each gland its own integer): binarise them in the loading
    pipeline with ``BinarizeLabeld("label", threshold=0)``.

    Args:
        root: the Warwick folder (holding ``train_1.bmp``, ``Grade.csv``, ...).
        subset: ``"train"`` (85 images), ``"testA"`` (60), ``"testB"`` (20) or ``"test"`` (A then B).
        validate: check headers, sizes and file completeness with :func:`validate_datalist`.
        with_grade: add ``"patient_id"`` and ``"grade"`` from ``Grade.csv`` to every item (e.g. to
            split by patient with ``split_train_val(..., group_key="patient_id")``).
        decode: also decode every file completely (:func:`validate_datalist` with ``decode=True``, implies
            ``validate``): finds compressed data damaged without marker damage, which the other checks cannot
            see, at the cost of one full decode of every image.

    Returns:
        ``[{"image": path, "label": path}, ...]`` sorted by name within each part.

    Raises:
        ValueError: for an unknown ``subset``.
        DatasetLayoutError: when the folder or its files of ``subset`` are missing.
        DataFileError: for unpaired, truncated or mismatched files, or names missing from ``Grade.csv``.
    """
    if subset not in GLAS_SUBSETS:
        raise ValueError(f"GLaS subset must be one of {sorted(GLAS_SUBSETS)}, got '{subset}'.")
    root = Path(root)
    datalist: list[dict[str, str]] = []
    for prefix in GLAS_SUBSETS[subset]:
        layout = f"{GLAS_WARWICK_LAYOUT} (looking for {prefix}_<n>.bmp)"
        images = list_image_files(root, "GLaS", layout, GLAS_URL, (".bmp",), pattern=rf"{prefix}_\d+")
        labels = list_image_files(root, "GLaS", layout, GLAS_URL, (".bmp",), pattern=rf"{prefix}_\d+_anno")
        datalist += pair_by_name(images, labels, label_suffixes=("_anno",))
    if with_grade:
        grades = read_glas_grades(root)
        for item in datalist:
            name = Path(item["image"]).stem
            if name not in grades:
                raise DataFileError(f"image '{item['image']}' has no row in '{root / 'Grade.csv'}'.")
            item["patient_id"] = grades[name]["patient_id"]
            item["grade"] = grades[name]["grade"]
    return list(validate_datalist(datalist, decode=decode)) if validate or decode else datalist


def index_glas_export(
    root: str | os.PathLike, subset: str = "train", validate: bool = True, decode: bool = False
) -> list[dict[str, str]]:
    """Index GLaS in the common export layout ``<root>/{train,test}/{img,labelcol}``.

    Also accepts ``Train_Folder`` / ``Test_Folder`` / ``Validation_Folder`` split folders and
    ``images`` / ``labels`` / ``masks`` subfolders. Export labels are usually binary (0/255) but
    some keep the instance ids; ``BinarizeLabeld("label", threshold=0)`` handles both.

    Args:
        root: the folder holding the split folders.
        subset: ``"train"``, ``"test"`` or ``"val"``.
        validate: check headers, sizes and file completeness with :func:`validate_datalist`.
        decode: also decode every file completely (:func:`validate_datalist` with ``decode=True``, implies
            ``validate``): finds compressed data damaged without marker damage, which the other checks cannot
            see, at the cost of one full decode of every image.

    Returns:
        ``[{"image": path, "label": path}, ...]`` sorted by name.

    Raises:
        ValueError: for an unknown ``subset``.
        DatasetLayoutError: when the folders are missing or empty.
        DataFileError: for unpaired, truncated or mismatched files.
    """
    if subset not in _EXPORT_SPLIT_DIRS:
        raise ValueError(f"GLaS export subset must be one of {sorted(_EXPORT_SPLIT_DIRS)}, got '{subset}'.")
    root = Path(root)
    split_dir = _first_dir(root, _EXPORT_SPLIT_DIRS[subset]) or root / _EXPORT_SPLIT_DIRS[subset][0]
    image_dir = _first_dir(split_dir, _EXPORT_IMAGE_DIRS) or split_dir / _EXPORT_IMAGE_DIRS[0]
    label_dir = _first_dir(split_dir, _EXPORT_LABEL_DIRS) or split_dir / _EXPORT_LABEL_DIRS[0]
    return index_folder_pair(
        image_dir, label_dir, "GLaS", GLAS_EXPORT_LAYOUT, GLAS_URL, validate=validate, decode=decode
    )


def index_glas(
    root: str | os.PathLike,
    subset: str = "train",
    validate: bool = True,
    with_grade: bool = False,
    decode: bool = False,
) -> list[dict[str, str]]:
    """Index GLaS in whichever layout ``root`` holds (see :func:`detect_glas_layout`).

    Args:
        root: the Warwick folder, an export folder, or the folder holding one of them.
        subset: Warwick: ``"train"``, ``"testA"``, ``"testB"`` or ``"test"`` (A + B); export:
            ``"train"``, ``"test"`` (``"testA"`` / ``"testB"`` are refused: exports merge them) or ``"val"``.
        validate: check headers, sizes and file completeness with :func:`validate_datalist`.
        with_grade: Warwick layout only: add ``"patient_id"`` and ``"grade"`` to every item.
        decode: also decode every file completely (:func:`validate_datalist` with ``decode=True``, implies
            ``validate``): finds compressed data damaged without marker damage, which the other checks cannot
            see, at the cost of one full decode of every image.

    Returns:
        ``[{"image": path, "label": path}, ...]``.

    Raises:
        ValueError: for a subset the detected layout does not have.
        DatasetLayoutError: when no GLaS layout is found or folders are empty.
        DataFileError: for unpaired, truncated or mismatched files.
    """
    layout, folder = detect_glas_layout(root)
    if layout == "warwick":
        return index_glas_warwick(folder, subset, validate=validate, with_grade=with_grade, decode=decode)
    if with_grade:
        raise ValueError(f"GLaS export layout in '{folder}' has no Grade.csv; with_grade needs the Warwick layout.")
    return index_glas_export(folder, subset, validate=validate, decode=decode)
