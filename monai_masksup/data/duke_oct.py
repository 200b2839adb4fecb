"""Duke DME OCT (Chiu et al., BOE 2015) exported as PNG B-scans with grader-1 fluid masks."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from monai.data import PILReader
from monai.transforms import LoadImaged
from PIL import Image

from .annotated_columns import DEFAULT_IGNORE_VALUE, IgnoreUnannotatedColumnsd
from .binarize_label import BinarizeLabeld
from .errors import DataFileError
from .oct_bscans import oct_normalisation
from .pairing import index_folder_pair

__all__ = [
    "DUKE_OCT_URL",
    "DUKE_OCT_LAYOUT",
    "DUKE_OCT_CLASSES",
    "DUKE_BSCANS_PER_SUBJECT",
    "index_duke_oct",
    "fluid_column_extent",
    "duke_oct_transforms",
]

DUKE_OCT_URL = "https://people.duke.edu/~sf59/Chiu_BOE_2014_dataset.htm"
DUKE_OCT_LAYOUT = "<root>/images/img_<i>.png and <root>/masks_fluid1/img_<i>.png (i = 0, 1, ...; 11 B-scans a subject)"
#: the classes of the Duke export: it holds one fluid class (grader 1's intraretinal fluid), no IRF/SRF/PED split.
DUKE_OCT_CLASSES: tuple[str, ...] = ("background", "fluid")
#: annotated B-scans per subject in the Duke DME data set: B-scan ``img_<i>`` is of subject ``i // 11 + 1``.
DUKE_BSCANS_PER_SUBJECT = 11

_NAME = re.compile(r"img_(\d+)")
ColumnRanges = str | Sequence[int] | Mapping[int, Sequence[int]] | None


def _grey(image: Image.Image) -> Image.Image:
    """The export stores the 8-bit scans (and masks) as RGB with three equal channels: keep one."""
    return image.convert("L")


def fluid_column_extent(label_files: Sequence[str | os.PathLike]) -> tuple[int, int]:
    """The columns ``[start, stop)`` spanned by the fluid (value > 0) of some labels together.

    Args:
        label_files: Duke mask files (PNG, grey or RGB).

    Returns:
        ``(start, stop)`` of the columns holding fluid in at least one of the masks.

    Raises:
        DataFileError: when none of the masks holds fluid (the extent is undefined).
    """
    columns = None
    for f in label_files:
        with Image.open(f) as im:
            fluid = np.asarray(_grey(im)) > 0
        has = fluid.any(axis=0)
        columns = has if columns is None else columns | has
    if columns is None or not columns.any():
        names = ", ".join(Path(f).name for f in label_files)
        raise DataFileError(
            f"Duke OCT: no fluid in any of the masks {names}, so their annotated columns cannot be estimated; "
            "give the annotated columns explicitly."
        )
    hit = np.flatnonzero(columns)
    return int(hit[0]), int(hit[-1]) + 1


def index_duke_oct(
    root: str | os.PathLike,
    annotated_columns: ColumnRanges = None,
    subjects: Sequence[int] | None = None,
    validate: bool = True,
) -> list[dict]:
    """Index the Duke DME export: B-scan PNGs with grader-1 fluid masks, each item tagged with its subject.

    B-scan ``img_<i>`` is of subject ``i // 11 + 1`` (11 annotated B-scans a subject); split by this subject,
    never by B-scan, since the scans of one eye are strongly correlated. Masks store fluid region ``k`` as
    ``(256 - k) mod 256``, so fluid is ``value > 0`` (:func:`duke_oct_transforms` binarises them); some
    B-scans have no fluid (empty masks).

    **Unannotated columns.** The graders traced only a central range of A-scan columns of each B-scan; the
    export stored the rest as 0, the same value as background. The range is not recorded in the export. What
    the masks show: fluid of subject 2 is cut straight at column 109 in several scans (the left edge of the
    annotated range), and no fluid of either subject lies outside columns 109-602. ``annotated_columns``
    chooses what to treat as annotated; the items get ``"annotated_columns": [start, stop)`` and
    :class:`IgnoreUnannotatedColumnsd` sets the label elsewhere to an ignore value:

    - ``None`` (default): every column counts as annotated (the export as it is).
    - ``"fluid_extent"``: per subject, the columns spanned by the fluid of all its masks
      (:func:`fluid_column_extent`; here 151-602 for subject 1, 109-307 for subject 2). Conservative: it
      ignores some annotated background beside the fluid, but never trains unannotated fluid as background.
    - ``(start, stop)``: the same range for every B-scan.
    - ``{subject: (start, stop)}``: a range per subject (e.g. from the original ``.mat`` files, where
      unannotated columns are NaN); subjects not listed are fully annotated.

    Args:
        root: the folder holding ``images/`` and ``masks_fluid1/``.
        annotated_columns: see above.
        subjects: keep only these subjects (1-based), or ``None`` for all.
        validate: check headers, sizes and file completeness with :func:`validate_datalist`.

    Returns:
        ``[{"image": path, "label": path, "subject": int, "annotated_columns": [start, stop]?}, ...]`` in
        B-scan order.

    Raises:
        DatasetLayoutError: when a folder is missing or holds no PNG.
        DataFileError: for unpaired, truncated or mismatched files, a file not named ``img_<i>``, a requested
            subject without B-scans, or ``"fluid_extent"`` on a subject without fluid.
        ValueError: for an ``annotated_columns`` of another form.
    """
    root = Path(root)
    items = index_folder_pair(
        root / "images", root / "masks_fluid1", "Duke DME OCT", DUKE_OCT_LAYOUT, DUKE_OCT_URL, validate=validate
    )
    for item in items:
        match = _NAME.fullmatch(Path(item["image"]).stem)
        if match is None:
            raise DataFileError(
                f"Duke OCT: '{item['image']}' is not named img_<i>, so its subject (i // 11 + 1) is unknown. "
                f"Expected layout: {DUKE_OCT_LAYOUT}."
            )
        item["subject"] = int(match.group(1)) // DUKE_BSCANS_PER_SUBJECT + 1
    if subjects is not None:
        wanted = [int(s) for s in subjects]
        absent = sorted(set(wanted) - {item["subject"] for item in items})
        if absent:
            raise DataFileError(f"Duke OCT: no B-scans of subject(s) {absent} in '{root}'.")
        items = [item for item in items if item["subject"] in wanted]
    ranges = _column_ranges(items, annotated_columns)
    for item in items:
        if ranges.get(item["subject"]) is not None:
            item["annotated_columns"] = list(ranges[item["subject"]])
    return items


def _column_ranges(items: Sequence[dict], annotated_columns: ColumnRanges) -> dict[int, tuple[int, int] | None]:
    subjects = sorted({item["subject"] for item in items})
    if annotated_columns is None:
        return {}
    if isinstance(annotated_columns, str):
        if annotated_columns != "fluid_extent":
            raise ValueError(
                f"annotated_columns must be None, 'fluid_extent', (start, stop) or a dict, got '{annotated_columns}'."
            )
        return {
            s: fluid_column_extent([item["label"] for item in items if item["subject"] == s]) for s in subjects
        }
    if isinstance(annotated_columns, Mapping):
        return {int(s): (int(c[0]), int(c[1])) for s, c in annotated_columns.items()}
    if len(annotated_columns) != 2:
        raise ValueError(f"annotated_columns (start, stop) must have two values, got {annotated_columns!r}.")
    return {s: (int(annotated_columns[0]), int(annotated_columns[1])) for s in subjects}


def duke_oct_transforms(
    ignore_value: float = DEFAULT_IGNORE_VALUE, normalise: bool = True, lower: float = 1.0, upper: float = 99.0
) -> list:
    """The loading transforms of Duke B-scans: one grey channel, fluid masks in {0, 1}, unannotated columns ignored.

    Images and masks are read as one grey channel (the export's three channels are equal), channel-first with
    MONAI's ``PILReader``, so a B-scan is ``(1, width=768, height=496)``: columns are spatial axis 0. Masks
    become ``1`` where ``value > 0``; with ``annotated_columns`` in the item, columns outside it become
    ``ignore_value`` (:class:`IgnoreUnannotatedColumnsd`). With ``normalise`` the image's ``lower``-``upper``
    percentile range goes onto [0, 1] as for volumes (:func:`oct_normalisation`), but per B-scan, since the export
    keeps 11 B-scans of each volume only.

    Args:
        ignore_value: label value of unannotated columns.
        normalise: scale intensities per B-scan; ``False`` keeps the stored 0-255.
        lower: lower percentile of the normalisation.
        upper: upper percentile of the normalisation.

    Returns:
        a list of MONAI transforms for ``Compose`` over items of :func:`index_duke_oct`.
    """
    transforms: list = [
        LoadImaged(keys=["image", "label"], reader=PILReader(converter=_grey), ensure_channel_first=True),
        BinarizeLabeld(keys="label", threshold=0),
        IgnoreUnannotatedColumnsd(keys="label", ignore_value=ignore_value),
    ]
    if normalise:
        transforms.append(oct_normalisation(lower, upper))
    return transforms
