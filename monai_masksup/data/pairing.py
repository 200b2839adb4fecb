"""Pairing image files with label files by name, never by sorted position."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import DataFileError
from .image_checks import validate_datalist
from .layout import IMAGE_SUFFIXES, list_image_files, natural_key
from .splits import read_id_list, select_ids

__all__ = ["LABEL_SUFFIXES", "pair_key", "pair_by_name", "index_folder_pair"]

#: stem endings that mark a label file (``train_1_anno.bmp``, ``x_mask.png``, ...); removed before matching.
LABEL_SUFFIXES: tuple[str, ...] = ("_anno", "_mask", "_label", "_labels", "_gt", "_seg", "_segmentation")


def pair_key(path: str | os.PathLike, strip_suffixes: Sequence[str] = ()) -> str:
    """The name an image and its label share: the file stem without extension or label suffix.

    Args:
        path: file path.
        strip_suffixes: stem endings removed once (the first that matches), e.g. ``("_anno",)``.

    Returns:
        the pairing key, e.g. ``"train_1"`` for ``train_1_anno.bmp``.
    """
    stem = Path(path).stem
    for suffix in strip_suffixes:
        if suffix and stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _index_by_key(files: Sequence[str | os.PathLike], strip_suffixes: Sequence[str], role: str) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for f in files:
        key = pair_key(f, strip_suffixes)
        if key in index:
            raise DataFileError(
                f"two {role} files share the name '{key}': '{index[key]}' and '{f}'; keep one of them "
                "(e.g. only the TIFF or only the PNG export)."
            )
        index[key] = Path(f)
    return index


def pair_by_name(
    image_files: Sequence[str | os.PathLike],
    label_files: Sequence[str | os.PathLike],
    label_suffixes: Sequence[str] = LABEL_SUFFIXES,
    image_key: str = "image",
    label_key: str = "label",
) -> list[dict[str, str]]:
    """Build a MONAI datalist by matching each image with the label of the same name.

    Extensions may differ (``1.jpg`` with ``1.png``); label stems may carry one of ``label_suffixes``
    (``train_1.bmp`` with ``train_1_anno.bmp``).

    Args:
        image_files: image paths.
        label_files: label paths.
        label_suffixes: stem endings removed from label names before matching.
        image_key: datalist key for the image path.
        label_key: datalist key for the label path.

    Returns:
        ``[{image_key: str, label_key: str}, ...]`` sorted by image name (natural order).

    Raises:
        DataFileError: when an image has no label, a label has no image, or two files of one role
            share a name. The message names the file.
    """
    images = _index_by_key(image_files, (), "image")
    labels = _index_by_key(label_files, label_suffixes, "label")
    for key, path in images.items():
        if key not in labels:
            raise DataFileError(
                f"image '{path}' has no label: expected a file named '{key}' (or '{key}_mask', '{key}_anno', ...) "
                "beside the other labels."
            )
    for key, path in labels.items():
        if key not in images:
            raise DataFileError(f"label '{path}' has no image: expected an image named '{key}.*'.")
    keys = sorted(images, key=natural_key)
    return [{image_key: str(images[k]), label_key: str(labels[k])} for k in keys]


def index_folder_pair(
    image_dir: str | os.PathLike,
    label_dir: str | os.PathLike,
    dataset: str,
    layout: str,
    url: str,
    ids: str | os.PathLike | Sequence[str] | None = None,
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
    validate: bool = True,
    decode: bool = False,
) -> list[dict[str, str]]:
    """Index a data set stored as one image folder and one label folder with matching names.

    Args:
        image_dir: folder of images.
        label_dir: folder of labels.
        dataset: data set name, for error messages.
        layout: the expected layout, for error messages.
        url: where to download the data set, for error messages.
        ids: ``None`` for every pair, a split file (one id per line) or a sequence of ids (file stems).
        suffixes: accepted file extensions.
        validate: check headers, sizes and file completeness with :func:`validate_datalist`.
        decode: also decode every file completely (:func:`validate_datalist` with ``decode=True``, implies
            ``validate``): finds compressed data damaged without marker damage, which the other checks cannot
            see, at the cost of one full decode of every image.

    Returns:
        ``[{"image": path, "label": path}, ...]`` sorted by name.

    Raises:
        DatasetLayoutError: when a folder is missing or empty.
        DataFileError: for unpaired, truncated or mismatched files, or ids without a pair.
    """
    images = list_image_files(image_dir, dataset, layout, url, suffixes)
    labels = list_image_files(label_dir, dataset, layout, url, suffixes)
    wanted = read_id_list(ids)
    if wanted is not None:
        # pair only the selected ids, so a split file also works on a partial copy of the data set
        keep = set(wanted)
        images = [f for f in images if f.stem in keep]
        labels = [f for f in labels if pair_key(f, LABEL_SUFFIXES) in keep]
    datalist = pair_by_name(images, labels)
    if wanted is not None:
        source = f"split file '{ids}'" if isinstance(ids, (str, os.PathLike)) else "the given ids"
        datalist = select_ids(datalist, wanted, source=source)
    return list(validate_datalist(datalist, decode=decode)) if validate or decode else datalist
